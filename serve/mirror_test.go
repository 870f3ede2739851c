package serve_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"

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
	raw, _ := img.RawManifest()
	d, _ := img.Digest()
	mt, _ := img.MediaType()
	desc, err := archive.BuildIndex([]archive.Entry{{Descriptor: v1.Descriptor{MediaType: mt, Digest: d, Size: int64(len(raw))}, Role: archive.Role("from-elsewhere")}}, archive.IndexOptions{CreatedBy: "test"})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, err := archive.NewWriter(&buf, archive.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteHeader(desc, map[v1.Hash][]byte{d: raw}); err != nil {
		t.Fatal(err)
	}
	cfg, _ := img.RawConfigFile()
	cd, _ := img.ConfigName()
	if err := w.WriteBlob(cd, int64(len(cfg)), bytes.NewReader(cfg)); err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	for _, l := range layers {
		ld, _ := l.Digest()
		size, _ := l.Size()
		rc, _ := l.Compressed()
		if err := w.WriteBlob(ld, size, rc); err != nil {
			t.Fatal(err)
		}
		rc.Close()
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "anonymous.tar.zst")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

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
