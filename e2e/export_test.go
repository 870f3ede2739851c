package e2e

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"

	"github.com/ferry-dev/ferry/fixtures"
	"github.com/ferry-dev/ferry/internal/testregistry"
)

// exportFixture is a root bundle locking two images that share a layer, a
// nested bundle (locking a third image) and a two-platform index.
type exportFixture struct {
	root                    string // REPO:TAG of the root bundle
	rootDigest              string
	app1, app2, app3, index name.Digest
	inner                   name.Digest
	indexChildren           []v1.Hash
	allManifests, allBlobs  map[string]bool
}

func newExportFixture(t *testing.T, reg *testregistry.Registry) *exportFixture {
	t.Helper()
	f := &exportFixture{allManifests: map[string]bool{}, allBlobs: map[string]bool{}}
	shared, err := fixtures.NewLayer(999, 8192)
	if err != nil {
		t.Fatal(err)
	}
	withShared := func(seed uint64) v1.Image {
		img, err := fixtures.Image(seed, 1, 4096)
		if err != nil {
			t.Fatal(err)
		}
		img, err = mutate.Append(img, mutate.Addendum{Layer: shared, MediaType: types.OCIUncompressedLayer})
		if err != nil {
			t.Fatal(err)
		}
		return img
	}
	f.app1 = seed2(t, reg, "src/app1", withShared(100))
	f.app2 = seed2(t, reg, "src/app2", withShared(200))
	f.app3 = seedImage(t, reg, "src/app3", 300)

	// A two-platform index.
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for i, plat := range []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}} {
		img, err := fixtures.Image(uint64(400+10*i), 1, 2048)
		if err != nil {
			t.Fatal(err)
		}
		p := plat
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
		d, _ := img.Digest()
		f.indexChildren = append(f.indexChildren, d)
	}
	idxRef, _ := name.NewTag(reg.Repo("src/multi") + ":1")
	if err := remote.WriteIndex(idxRef, idx, reg.RemoteOptions(t)...); err != nil {
		t.Fatal(err)
	}
	idxDigest, _ := idx.Digest()
	f.index = idxRef.Context().Digest(idxDigest.String())

	r := mustFerry(t, "push", "-b", reg.Repo("src/inner")+":v1", "-f", bundleDir(t, f.app3), "--json")
	var pushed struct{ Image string }
	json.Unmarshal([]byte(r.Stdout), &pushed)
	f.inner, _ = name.NewDigest(pushed.Image)

	f.root = reg.Repo("src/root") + ":v1"
	r = mustFerry(t, "push", "-b", f.root, "-f", bundleDir(t, f.app1, f.app2, f.inner, f.index), "--json")
	json.Unmarshal([]byte(r.Stdout), &pushed)
	f.rootDigest = pushed.Image[strings.Index(pushed.Image, "@")+1:]

	// Everything the archive must hold, computed from the registry itself.
	opts := reg.RemoteOptions(t)
	var addImage func(ref name.Reference)
	addImage = func(ref name.Reference) {
		desc, err := remote.Get(ref, opts...)
		if err != nil {
			t.Fatal(err)
		}
		f.allManifests[desc.Digest.String()] = true
		if desc.MediaType.IsIndex() {
			ii, _ := desc.ImageIndex()
			im, _ := ii.IndexManifest()
			for _, m := range im.Manifests {
				addImage(ref.Context().Digest(m.Digest.String()))
			}
			return
		}
		img, _ := desc.Image()
		m, _ := img.Manifest()
		f.allBlobs[m.Config.Digest.String()] = true
		for _, l := range m.Layers {
			f.allBlobs[l.Digest.String()] = true
		}
	}
	for _, ref := range []name.Reference{f.app1, f.app2, f.app3, f.index, f.inner, mustDigest(t, reg.Repo("src/root")+"@"+f.rootDigest)} {
		addImage(ref)
	}
	return f
}

func mustDigest(t *testing.T, s string) name.Digest {
	t.Helper()
	d, err := name.NewDigest(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// untar decompresses a .tar.zst into a directory and returns the entry
// names in archive order.
func untar(t *testing.T, archive, dir string) []string {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := zstd.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	tr := tar.NewReader(zr)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("reading %s: %v", archive, err)
		}
		names = append(names, h.Name)
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		if h.Typeflag == tar.TypeDir {
			os.MkdirAll(p, 0o755)
			continue
		}
		os.MkdirAll(filepath.Dir(p), 0o755)
		b, _ := io.ReadAll(tr)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return names
}

func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestExportWritesAnOCILayoutStandardToolsRead(t *testing.T) {
	reg := testregistry.NewDistribution(t)
	f := newExportFixture(t, reg)
	dir := t.TempDir()
	archive := filepath.Join(dir, "release.tar.zst")
	r := mustFerry(t, "export", "-b", f.root, "-o", archive, "--json")

	var res struct {
		Archive, SHA256 string
		Images, Blobs   int
	}
	if err := json.Unmarshal([]byte(r.Stdout), &res); err != nil {
		t.Fatalf("--json: %v\n%s", err, r)
	}
	if got := fileSHA256(t, archive); res.SHA256 != got {
		t.Fatalf("printed sha256 %s, file hashes to %s", res.SHA256, got)
	}
	side, err := os.ReadFile(archive + ".sha256")
	if err != nil || string(side) != res.SHA256+"  release.tar.zst\n" {
		t.Fatalf("sidecar %q, %v", side, err)
	}

	out := filepath.Join(dir, "layout")
	names := untar(t, archive, out)
	if len(names) < 2 || names[0] != "oci-layout" || names[1] != "index.json" {
		t.Fatalf("first entries %v, want oci-layout then index.json", names[:min(len(names), 3)])
	}
	seen := map[string]bool{}
	for _, n := range names {
		if seen[n] {
			t.Fatalf("entry %s written twice", n)
		}
		seen[n] = true
	}
	// Every manifest and blob of the source, each exactly once, and nothing else.
	want := len(f.allManifests) + len(f.allBlobs)
	blobs := 0
	for _, n := range names {
		if strings.HasPrefix(n, "blobs/sha256/") && len(n) == len("blobs/sha256/")+64 {
			blobs++
			d := "sha256:" + strings.TrimPrefix(n, "blobs/sha256/")
			if !f.allManifests[d] && !f.allBlobs[d] {
				t.Errorf("archive holds %s, which the source does not reference", d)
			}
		}
	}
	if blobs != want {
		t.Fatalf("archive holds %d blobs, the source has %d manifests and blobs", blobs, want)
	}

	// An independent reader (go-containerregistry's layout) sees the source images.
	p, err := layout.FromPath(out)
	if err != nil {
		t.Fatal(err)
	}
	ii, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := ii.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	roles := map[string]string{}
	for _, desc := range im.Manifests {
		roles[desc.Digest.String()] = desc.Annotations["dev.ferry.role"]
		if desc.MediaType.IsIndex() {
			child, err := ii.ImageIndex(desc.Digest)
			if err != nil {
				t.Fatal(err)
			}
			cd, _ := child.Digest()
			if cd != desc.Digest {
				t.Fatalf("index %s reads back as %s", desc.Digest, cd)
			}
			continue
		}
		img, err := ii.Image(desc.Digest)
		if err != nil {
			t.Fatal(err)
		}
		layers, _ := img.Layers()
		for _, l := range layers {
			rc, err := l.Compressed()
			if err != nil {
				t.Fatal(err)
			}
			h := sha256.New()
			io.Copy(h, rc)
			rc.Close()
			ld, _ := l.Digest()
			if "sha256:"+hex.EncodeToString(h.Sum(nil)) != ld.String() {
				t.Fatalf("layer %s content does not match its digest", ld)
			}
		}
	}
	wantRoles := map[string]string{
		f.rootDigest: "bundle", f.inner.DigestStr(): "nested-bundle",
		f.app1.DigestStr(): "image", f.app2.DigestStr(): "image", f.app3.DigestStr(): "image", f.index.DigestStr(): "image",
	}
	for d, role := range wantRoles {
		if roles[d] != role {
			t.Errorf("index.json role of %s = %q, want %q", d, roles[d], role)
		}
	}
	if len(roles) != len(wantRoles) {
		t.Errorf("index.json lists %d entries, want %d (index children are not listed)", len(roles), len(wantRoles))
	}
	if im.Annotations["dev.ferry.archive.version"] != "1" {
		t.Errorf("archive version annotation %q", im.Annotations["dev.ferry.archive.version"])
	}
	for _, desc := range im.Manifests {
		if desc.Digest.String() == f.rootDigest && desc.Annotations["org.opencontainers.image.ref.name"] != "v1" {
			t.Errorf("root ref.name %q, want v1", desc.Annotations["org.opencontainers.image.ref.name"])
		}
	}
}

func TestExportIsDeterministicWhateverTheConcurrency(t *testing.T) {
	reg := testregistry.NewDistribution(t)
	f := newExportFixture(t, reg)
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.tar.zst"), filepath.Join(dir, "b.tar.zst")
	mustFerry(t, "export", "-b", f.root, "-o", a, "--concurrency", "1")
	mustFerry(t, "export", "-b", f.root, "-o", b, "--concurrency", "8")
	if fileSHA256(t, a) != fileSHA256(t, b) {
		t.Fatal("exports with --concurrency 1 and 8 differ")
	}
	// To standard output: the same bytes.
	r := mustFerry(t, "export", "-b", f.root, "-o", "-")
	sum := sha256.Sum256([]byte(r.Stdout))
	if hex.EncodeToString(sum[:]) != fileSHA256(t, a) {
		t.Fatal("export to standard output differs from export to a file")
	}
}

func TestExportFailuresLeaveNoFile(t *testing.T) {
	reg := testregistry.NewDistribution(t)
	app := seedImage(t, reg, "src/app", 1)
	missing := mustDigest(t, reg.Repo("src/gone")+"@sha256:"+strings.Repeat("ab", 32))
	bundle := reg.Repo("src/broken") + ":v1"
	mustFerry(t, "push", "-b", bundle, "-f", bundleDir(t, app, missing))

	dir := t.TempDir()
	out := filepath.Join(dir, "x.tar.zst")
	r := ferry(t, nil, "export", "-b", bundle, "-o", out)
	// The digest short, as error messages write it.
	if r.Code != 1 || !strings.Contains(r.Stderr, missing.Context().Name()+"@sha256:abababababab (locked by bundle "+bundle+") not found") ||
		strings.Contains(r.Stderr, missing.DigestStr()) {
		t.Fatalf("want an error naming the missing image and the bundle locking it: %s", r)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Fatalf("failed export left %v in the output directory", left)
	}

	r = ferry(t, nil, "export", "-b", bundle, "-o", filepath.Join(dir, "no-such-dir", "x.tar.zst"))
	if r.Code != 1 || !strings.Contains(r.Stderr, "no-such-dir") {
		t.Fatalf("want an error naming the missing directory: %s", r)
	}

	plain := reg.Repo("src/app") + ":seed"
	r = ferry(t, nil, "export", "-b", plain, "-o", out)
	if r.Code != 1 || !strings.Contains(r.Stderr, "-i") {
		t.Fatalf("want a -b of a plain image to suggest -i: %s", r)
	}
	mustFerry(t, "export", "-i", plain, "-o", out)
	if _, err := os.Stat(out); err != nil {
		t.Fatalf("export -i wrote nothing: %v", err)
	}
}
