package serve_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/archive"
	"github.com/ferry-dev/ferry/serve"
)

// An archive none of whose entries has an original reference (the roles
// of a later format may go without) has no
// repository to mirror: serving it as a mirror would answer 404 to every
// pull, so it is refused, pointing at --repo, under which it is served.
func TestAMirrorOfNothingIsRefused(t *testing.T) {
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	path := entriesArchive(t, []archiveEntry{{img: img, role: archive.Role("from-elsewhere")}})

	_, err = serve.New(context.Background(), openFile(t, path), serve.Options{})
	if err == nil || !strings.Contains(err.Error(), "--repo") || !strings.Contains(err.Error(), "original reference") {
		t.Fatalf("serving as a mirror an archive without original references: %v; want a refusal pointing at --repo", err)
	}
	reg, err := serve.New(context.Background(), openFile(t, path), serve.Options{Repository: "anon/app"})
	if err != nil {
		t.Fatalf("serving it under a repository: %v", err)
	}
	out, _ := json.Marshal(reg.Repositories())
	if string(out) != `["anon/app"]` {
		t.Errorf("repositories %s, want [\"anon/app\"]", out)
	}
}

// archiveEntry is an image and how index.json lists it.
type archiveEntry struct {
	img         v1.Image
	role        archive.Role
	originalRef string
}

// entriesArchive writes an archive of the images of entries, each an entry
// of its index.json, and returns its path.
func entriesArchive(t *testing.T, entries []archiveEntry) string {
	t.Helper()
	var index []archive.Entry
	manifests := map[v1.Hash][]byte{}
	for _, e := range entries {
		raw, _ := e.img.RawManifest()
		d, _ := e.img.Digest()
		mt, _ := e.img.MediaType()
		index = append(index, archive.Entry{Descriptor: v1.Descriptor{MediaType: mt, Digest: d, Size: int64(len(raw))}, Role: e.role, OriginalRef: e.originalRef})
		manifests[d] = raw
	}
	desc, err := archive.BuildIndex(index, archive.IndexOptions{CreatedBy: "test"})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, err := archive.NewWriter(&buf, archive.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteHeader(desc, manifests); err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		cfg, _ := e.img.RawConfigFile()
		cd, _ := e.img.ConfigName()
		if err := w.WriteBlob(cd, int64(len(cfg)), bytes.NewReader(cfg)); err != nil {
			t.Fatal(err)
		}
		layers, _ := e.img.Layers()
		for _, l := range layers {
			ld, _ := l.Digest()
			size, _ := l.Size()
			rc, _ := l.Compressed()
			if err := w.WriteBlob(ld, size, rc); err != nil {
				t.Fatal(err)
			}
			rc.Close()
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "entries.tar.zst")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// An original reference's repository path may be one go-containerregistry
// parses but the distribution spec's grammar, which serve checks every
// request's name against, refuses ("team/app_", "a..b"). As a mirror such
// an entry is not served, with a warning naming it, as an entry without
// an original reference is not: listed in _catalog, every request for it
// would get 400 NAME_INVALID. The other entries are served.
func TestAMirrorSkipsRepositoriesItWouldRefuse(t *testing.T) {
	var entries []archiveEntry
	for _, ref := range []string{
		"registry.example.com/team/app_:v1",
		"registry.example.com/a..b/app:v2",
		"registry.example.com/team/ok:v3",
	} {
		img, err := random.Image(256, 1)
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, archiveEntry{img: img, role: archive.RoleImage, originalRef: ref})
	}
	path := entriesArchive(t, entries)
	reg, err := serve.New(t.Context(), openFile(t, path), serve.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := json.Marshal(reg.Repositories()); string(got) != `["team/ok"]` {
		t.Errorf("repositories %s, want [\"team/ok\"]", got)
	}
	for _, ref := range []string{"registry.example.com/team/app_:v1", "registry.example.com/a..b/app:v2"} {
		if !slices.ContainsFunc(reg.View().Warnings, func(w string) bool { return strings.Contains(w, ref) && strings.Contains(w, "not served") }) {
			t.Errorf("no warning names %s as not served: %q", ref, reg.View().Warnings)
		}
	}

	srv := httptest.NewServer(reg)
	t.Cleanup(srv.Close)
	resp, body := do(t, http.MethodGet, srv.URL+"/v2/_catalog", nil)
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != `{"repositories":["team/ok"]}` {
		t.Errorf("_catalog: %d %s, want only team/ok", resp.StatusCode, body)
	}
	d, _ := entries[2].img.Digest()
	resp, _ = do(t, http.MethodGet, srv.URL+"/v2/team/ok/manifests/v3", map[string]string{"Accept": string(types.DockerManifestSchema2)})
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Docker-Content-Digest") != d.String() {
		t.Errorf("team/ok:v3: %d %s, want 200 %s", resp.StatusCode, resp.Header.Get("Docker-Content-Digest"), d)
	}
}
