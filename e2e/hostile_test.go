package e2e

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/archive"
	"github.com/ferry-dev/ferry/internal/testregistry"
	"github.com/ferry-dev/ferry/lock"
)

// The shipped binary against the inputs of issue 13 ("Hostile input and
// bad luck"): hand-made archives, registries that lie or loop, and exports
// racing to one file.

// rawManifest is a manifest pushed exactly as written.
type rawManifest struct {
	raw []byte
	mt  types.MediaType
}

func (m rawManifest) RawManifest() ([]byte, error)        { return m.raw, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return m.mt, nil }

// writeArchive writes entries as a plain tar file and returns its path.
func writeArchive(t *testing.T, entries []tarEntry) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "hostile.tar")
	if err := os.WriteFile(path, writeTar(t, entries), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestImportRefusesALockedImageTheArchiveDoesNotHold (item 1): an image
// the nested bundle locks is dropped, with its blobs, from a good export.
// verify refused such an archive; import and copy --tar now do too, before
// any locations image or tag, naming the reference.
func TestImportRefusesALockedImageTheArchiveDoesNotHold(t *testing.T) {
	f, good := exported(t)
	entries := readEntries(t, good)
	d := f.app3.DigestStr()
	var m v1.Manifest
	if err := json.Unmarshal(entries[entryIndex(t, entries, blobEntryName(d))].Data, &m); err != nil {
		t.Fatal(err)
	}
	drop := map[string]bool{blobEntryName(d): true, blobEntryName(m.Config.Digest.String()): true}
	for _, l := range m.Layers {
		drop[blobEntryName(l.Digest.String())] = true
	}
	var out []tarEntry
	for _, e := range entries {
		switch {
		case drop[e.Header.Name]:
			continue
		case e.Header.Name == "index.json":
			var idx v1.IndexManifest
			if err := json.Unmarshal(e.Data, &idx); err != nil {
				t.Fatal(err)
			}
			var keep []v1.Descriptor
			for _, m := range idx.Manifests {
				if m.Digest.String() != d {
					keep = append(keep, m)
				}
			}
			if len(keep) != len(idx.Manifests)-1 {
				t.Fatalf("index.json lists %s %d times", d, len(idx.Manifests)-len(keep))
			}
			idx.Manifests = keep
			e.Data, _ = json.Marshal(idx)
		}
		out = append(out, e)
	}
	bad := writeArchive(t, out)

	if r := ferry(t, nil, "verify", bad); r.Code != 1 || !strings.Contains(r.Stderr, f.app3.String()) {
		t.Errorf("verify: want exit 1 naming %s\n%s", f.app3, r)
	}
	dst := testregistry.NewDistribution(t)
	for _, args := range [][]string{{"import", "-f", bad}, {"copy", "--tar", bad}} {
		repo := dst.Repo("mirror/" + args[0])
		r := ferry(t, nil, append(args, "--to-repo", repo)...)
		if r.Code != 1 || !strings.Contains(r.Stderr, f.app3.String()) || !strings.Contains(r.Stderr, "nothing tagged") {
			t.Errorf("%s: want exit 1 naming %s\n%s", args[0], f.app3, r)
		}
		if tags := tagsOf(t, dst, repo); len(tags) != 0 {
			t.Errorf("%s left tags: %v", args[0], tags)
		}
	}
}

// overflowArchive is the head of an archive whose one image has two
// layers of 2^62+1 bytes: their sum does not fit in an int64.
func overflowArchive(t *testing.T) string {
	t.Helper()
	cfg := []byte(`{"architecture":"amd64","os":"linux"}`)
	cfgDigest, _, _ := v1.SHA256(bytes.NewReader(cfg))
	layer := func(c string) v1.Descriptor {
		return v1.Descriptor{MediaType: types.OCILayer, Size: 1<<62 + 1, Digest: v1.Hash{Algorithm: "sha256", Hex: strings.Repeat(c, 64)}}
	}
	raw, _ := json.Marshal(v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1,
		Config: v1.Descriptor{MediaType: types.OCIConfigJSON, Size: int64(len(cfg)), Digest: cfgDigest},
		Layers: []v1.Descriptor{layer("a"), layer("b")}})
	d, _, _ := v1.SHA256(bytes.NewReader(raw))
	idx, err := archive.BuildIndex([]archive.Entry{{
		Descriptor: v1.Descriptor{MediaType: types.OCIManifestSchema1, Size: int64(len(raw)), Digest: d},
		Role:       archive.RoleImage, OriginalRef: "registry.example/big@" + d.String(),
	}}, archive.IndexOptions{CreatedBy: "hostile test"})
	if err != nil {
		t.Fatal(err)
	}
	hdr := func(name string, b []byte) tarEntry {
		return tarEntry{Header: tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644}, Data: b}
	}
	return writeArchive(t, []tarEntry{
		hdr("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)),
		hdr("index.json", idx),
		hdr(blobEntryName(d.String()), raw),
	})
}

// TestSizesThatOverflowAreRefused (item 9): inspect printed
// "-4611686018427387085 B" and import --dry-run --json carried the
// negative number; both now exit 1 naming the blob.
func TestSizesThatOverflowAreRefused(t *testing.T) {
	path := overflowArchive(t)
	dst := testregistry.NewDistribution(t)
	for _, args := range [][]string{
		{"inspect", path},
		{"inspect", "--json", path},
		{"import", "-f", path, "--to-repo", dst.Repo("mirror/big"), "--dry-run", "--json"},
	} {
		r := ferry(t, nil, args...)
		if r.Code != 1 || !strings.Contains(r.Stderr, "sha256:"+strings.Repeat("b", 64)) || !strings.Contains(r.Stderr, "total") {
			t.Errorf("ferry %s: want exit 1 naming the blob whose size overflows\n%s", strings.Join(args, " "), r)
		}
		if strings.Contains(r.Stdout, "-") && strings.Contains(r.Stdout, "46116860") {
			t.Errorf("ferry %s printed a negative size:\n%s", strings.Join(args, " "), r.Stdout)
		}
	}
}

// TestTagListStopsOnAPaginationLoop (item 5): a registry whose Link header
// leads back to the same page ran tag list until it was killed.
func TestTagListStopsOnAPaginationLoop(t *testing.T) {
	reg := testregistry.NewDistribution(t)
	seedImage(t, reg, "team/app", 1)
	proxy := testregistry.NewFaultProxy(t, reg, testregistry.Rule{
		Method: http.MethodGet, Kind: testregistry.KindTags,
		Fault: testregistry.FaultLink, Link: `</v2/team/app/tags/list?n=1&last=seed>; rel="next"`,
	})
	r := ferry(t, nil, "tag", "list", "-i", proxy.Repo("team/app"))
	if r.Code != 1 || !strings.Contains(r.Stderr, "registry "+proxy.Host) || !strings.Contains(r.Stderr, "loops") {
		t.Errorf("want exit 1 naming the registry and its loop\n%s", r)
	}
}

// TestHugeDeclaredConfigIsNotFetched (item 2): a bundle locks an image
// whose manifest declares a 2 GiB config. export refuses it before
// fetching it, naming the image and the size.
func TestHugeDeclaredConfigIsNotFetched(t *testing.T) {
	reg := testregistry.NewGGCR(t) // distribution would check the size on push
	opts := reg.RemoteOptions(t)
	repo, _ := name.NewRepository(reg.Repo("src/huge"))
	cfg := static.NewLayer([]byte(`{"architecture":"amd64","os":"linux"}`), types.OCIConfigJSON)
	if err := remote.WriteLayer(repo, cfg, opts...); err != nil {
		t.Fatal(err)
	}
	cfgDigest, _ := cfg.Digest()
	raw, _ := json.Marshal(v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1,
		Config: v1.Descriptor{MediaType: types.OCIConfigJSON, Size: 2 << 30, Digest: cfgDigest}, Layers: []v1.Descriptor{}})
	d, _, _ := v1.SHA256(bytes.NewReader(raw))
	huge := repo.Digest(d.String())
	if err := remote.Put(huge, rawManifest{raw: raw, mt: types.OCIManifestSchema1}, opts...); err != nil {
		t.Fatal(err)
	}
	root := reg.Repo("src/bundle") + ":v1"
	mustFerry(t, "push", "-b", root, "-f", bundleDir(t, huge))
	reg.ResetCounts()

	r := ferry(t, nil, "export", "-b", root, "-o", filepath.Join(t.TempDir(), "out.tar.zst"))
	if r.Code != 1 || !strings.Contains(r.Stderr, huge.String()) || !strings.Contains(r.Stderr, "declares 2147483648 bytes") {
		t.Errorf("want exit 1 naming %s and the declared size\n%s", huge, r)
	}
	for _, req := range reg.Requests() {
		if req.Method == http.MethodGet && req.Ref == cfgDigest.String() {
			t.Errorf("the config was fetched")
		}
	}
}

// TestImagesYMLOverTheCap (item 3): pull extracted and parsed an
// images.yml of any size. A bundle whose images.yml is one byte over the
// cap is refused by pull and by export, naming the file.
func TestImagesYMLOverTheCap(t *testing.T) {
	reg := testregistry.NewDistribution(t)
	// The cap is checked before the content is parsed, so the content
	// need not be YAML.
	img := maliciousBundle(t, []tar.Header{
		{Name: ".imgpkg/", Typeflag: tar.TypeDir, Mode: 0o700},
		{Name: ".imgpkg/images.yml", Typeflag: tar.TypeReg, Mode: 0o600, Size: lock.MaxDocumentSize + 1},
	})
	ref := reg.Repo("team/big") + ":v1"
	tag, _ := name.NewTag(ref)
	if err := remote.Write(tag, img, reg.RemoteOptions(t)...); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("more than the %d", lock.MaxDocumentSize)
	for _, args := range [][]string{
		{"pull", "-b", ref, "-o", filepath.Join(t.TempDir(), "out")},
		{"export", "-b", ref, "-o", filepath.Join(t.TempDir(), "out.tar.zst")},
	} {
		r := ferry(t, nil, args...)
		if r.Code != 1 || !strings.Contains(r.Stderr, "images.yml") || !strings.Contains(r.Stderr, want) {
			t.Errorf("ferry %s: want exit 1 naming images.yml and the cap\n%s", args[0], r)
		}
	}
}

// TestRacingExportsToOneFile (item 7): exports of different content to one
// -o FILE, several rounds; after each the checksum file matches the
// archive in place and verify passes. (relocate's
// TestRacingExportsLeaveAMatchingChecksum and internal/volumes'
// TestPutRacing, where the archive and its checksum file are put in place,
// race many more rounds in-process.)
func TestRacingExportsToOneFile(t *testing.T) {
	reg := testregistry.NewDistribution(t)
	a, b := seedImage(t, reg, "src/a", 11), seedImage(t, reg, "src/b", 12)
	out := filepath.Join(t.TempDir(), "out.tar.zst")
	for round := range 4 {
		var wg sync.WaitGroup
		results := make([]result, 2)
		for i, ref := range []name.Digest{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i] = ferry(t, nil, "export", "-i", ref.String(), "-o", out)
			}()
		}
		wg.Wait()
		for _, r := range results {
			if r.Code != 0 {
				t.Fatalf("round %d: export failed\n%s", round, r)
			}
		}
		if r := ferry(t, nil, "verify", out); r.Code != 0 {
			t.Fatalf("round %d: verify of the archive in place\n%s", round, r)
		}
	}
}

// TestInventoryTakesExplicitCredentials: inventory's --repo names the
// registries the explicit credentials go to, as --to-repo does for import;
// two registries that demand them are walked, and the password is never
// printed.
func TestInventoryTakesExplicitCredentials(t *testing.T) {
	var repos []string
	for i, reg := range []*testregistry.Registry{
		testregistry.NewDistribution(t, testregistry.WithAuth("walker", "inv-pass")),
		testregistry.NewDistribution(t, testregistry.WithAuth("walker", "inv-pass")),
	} {
		seedImage(t, reg, "far/a", uint64(40+i))
		repos = append(repos, reg.Repo("far/a"))
	}
	have := filepath.Join(t.TempDir(), "have.json")
	args := []string{"inventory", "--repo", repos[0], "--repo", repos[1], "-o", have, "--json"}
	if r := ferry(t, nil, args...); r.Code != 1 {
		t.Fatalf("without credentials: want exit 1, got %s", r)
	}
	r := ferry(t, nil, append(args, "--registry-username", "walker", "--registry-password", "inv-pass")...)
	if r.Code != 0 || strings.Contains(r.Stdout+r.Stderr, "inv-pass") {
		t.Fatalf("inventory with explicit credentials: %s", r)
	}
	var res struct {
		Repositories []struct {
			Repository             string
			Tags, Manifests, Blobs int
		}
	}
	if err := json.Unmarshal([]byte(r.Stdout), &res); err != nil {
		t.Fatalf("inventory --json: %v\n%s", err, r.Stdout)
	}
	// Each repository holds the seeded image: one tag, one manifest, a
	// config and two layers.
	if len(res.Repositories) != 2 {
		t.Fatalf("inventory lists %d repositories, want 2: %s", len(res.Repositories), r.Stdout)
	}
	for i, got := range res.Repositories {
		if got.Repository != repos[i] || got.Tags != 1 || got.Manifests != 1 || got.Blobs != 3 {
			t.Errorf("repository %d: %+v, want %s with 1 tag, 1 manifest, 3 blobs", i, got, repos[i])
		}
	}
}
