package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/klauspost/compress/zstd"

	"github.com/ferry-dev/ferry/internal/bundle"
	"github.com/ferry-dev/ferry/internal/testregistry"
	"github.com/ferry-dev/ferry/lock"
)

// exported builds the export fixture in a source registry and exports it.
func exported(t *testing.T) (*exportFixture, string) {
	t.Helper()
	src := testregistry.NewDistribution(t)
	f := newExportFixture(t, src)
	archive := filepath.Join(t.TempDir(), "release.tar.zst")
	mustFerry(t, "export", "-b", f.root, "-o", archive)
	return f, archive
}

func hexOf(d string) string { return strings.TrimPrefix(d, "sha256:") }

// locationsDigest computes, independently of the importer, the digest of the
// image-locations image for a bundle locking refs (isBundle per ref).
func locationsDigest(t *testing.T, refs map[string]bool) string {
	t.Helper()
	l := lock.ImageLocations{APIVersion: lock.APIVersion, Kind: lock.KindImageLocations}
	for ref, isB := range refs {
		l.Images = append(l.Images, lock.ImageLocation{Image: ref, IsBundle: isB})
	}
	sort.Slice(l.Images, func(i, j int) bool { return l.Images[i].Image < l.Images[j].Image })
	img, err := bundle.LocationsImage(l)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	return d.String()
}

// wantTags is the complete tag set an import of the export fixture writes.
func (f *exportFixture) wantTags(t *testing.T) map[string]string {
	t.Helper()
	tags := map[string]string{"v1": f.rootDigest}
	for _, d := range []string{f.rootDigest, f.inner.DigestStr(), f.app1.DigestStr(), f.app2.DigestStr(), f.app3.DigestStr(), f.index.DigestStr()} {
		tags["sha256-"+hexOf(d)+".imgpkg"] = d
	}
	rootLoc := locationsDigest(t, map[string]bool{f.app1.String(): false, f.app2.String(): false, f.inner.String(): true, f.index.String(): false})
	innerLoc := locationsDigest(t, map[string]bool{f.app3.String(): false})
	tags["sha256-"+hexOf(f.rootDigest)+".image-locations.imgpkg"] = rootLoc
	tags["sha256-"+hexOf(rootLoc)+".imgpkg"] = rootLoc
	tags["sha256-"+hexOf(f.inner.DigestStr())+".image-locations.imgpkg"] = innerLoc
	tags["sha256-"+hexOf(innerLoc)+".imgpkg"] = innerLoc
	return tags
}

// tagsOf lists every tag of repo with its digest.
func tagsOf(t *testing.T, reg *testregistry.Registry, repo string) map[string]string {
	t.Helper()
	r, _ := name.NewRepository(repo)
	list, err := remote.List(r, reg.RemoteOptions(t)...)
	if err != nil {
		if strings.Contains(err.Error(), "NAME_UNKNOWN") {
			return map[string]string{}
		}
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, tag := range list {
		out[tag] = digestOf(t, reg, repo+":"+tag)
	}
	return out
}

func assertTags(t *testing.T, got, want map[string]string) {
	t.Helper()
	for tag, d := range want {
		if got[tag] != d {
			t.Errorf("tag %s = %q, want %s", tag, got[tag], d)
		}
	}
	for tag := range got {
		if _, ok := want[tag]; !ok {
			t.Errorf("unexpected tag %s", tag)
		}
	}
}

func TestImportRecreatesImgpkgTagsAndPullRewrites(t *testing.T) {
	f, archive := exported(t)
	dst := testregistry.NewDistribution(t) // the far side of the gap: another registry
	repo := dst.Repo("far/release")
	lockOut := filepath.Join(t.TempDir(), "bundle.lock.yml")
	r := mustFerry(t, "import", "-f", archive, "--to-repo", repo, "--lock-output", lockOut, "--json")
	var res struct {
		Root, Tag     string
		BlobsUploaded int
	}
	if err := json.Unmarshal([]byte(r.Stdout), &res); err != nil {
		t.Fatalf("--json: %v\n%s", err, r)
	}
	if res.Root != repo+"@"+f.rootDigest || res.Tag != "v1" {
		t.Fatalf("result root %q tag %q", res.Root, res.Tag)
	}
	assertTags(t, tagsOf(t, dst, repo), f.wantTags(t))
	bl, err := lock.ReadBundleLock(lockOut)
	if err != nil || bl.Bundle.Image != repo+"@"+f.rootDigest || bl.Bundle.Tag != "v1" {
		t.Fatalf("BundleLock %+v %v", bl, err)
	}

	// ferry pull on the far side finds every image in the one repository.
	out := filepath.Join(t.TempDir(), "out")
	mustFerry(t, "pull", "-b", repo+":v1", "-o", out, "-r")
	l, _ := lock.ReadImagesLock(filepath.Join(out, ".imgpkg", "images.yml"))
	for i, want := range []name.Digest{f.app1, f.app2, f.inner, f.index} {
		if l.Images[i].Image != repo+"@"+want.DigestStr() {
			t.Errorf("images.yml[%d] = %s, want it in %s", i, l.Images[i].Image, repo)
		}
	}
	nl, err := lock.ReadImagesLock(filepath.Join(out, ".imgpkg", "bundles", "sha256-"+hexOf(f.inner.DigestStr()), ".imgpkg", "images.yml"))
	if err != nil || nl.Images[0].Image != repo+"@"+f.app3.DigestStr() {
		t.Fatalf("nested images.yml %+v %v", nl, err)
	}

	// A second import uploads no blob and leaves the same tags.
	dst.ResetCounts()
	mustFerry(t, "import", "-f", archive, "--to-repo", repo)
	c := dst.Counts()
	if n := c.Get("", testregistry.KindUpload); n != 0 {
		t.Fatalf("re-import made %d upload requests", n)
	}
	if n := c.Get("PUT", testregistry.KindManifest); n != 0 {
		t.Fatalf("re-import wrote %d manifests", n)
	}
	assertTags(t, tagsOf(t, dst, repo), f.wantTags(t))
}

func TestImportFromAPipeOfPlainTar(t *testing.T) {
	f, archive := exported(t)
	dst := testregistry.NewDistribution(t)
	repo := dst.Repo("piped/release")
	// zstd -d < archive | ferry import -f -
	raw, err := os.ReadFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	zr, _ := zstd.NewReader(bytes.NewReader(raw))
	plain, err := io.ReadAll(zr)
	zr.Close()
	if err != nil {
		t.Fatal(err)
	}
	r := ferryIn(t, nil, bytes.NewReader(plain), "import", "-f", "-", "--to-repo", repo)
	if r.Code != 0 {
		t.Fatalf("pipe import: %s", r)
	}
	assertTags(t, tagsOf(t, dst, repo), f.wantTags(t))
}

func TestImportDryRunChangesNothing(t *testing.T) {
	f, archive := exported(t)
	dst := testregistry.NewDistribution(t)
	repo := dst.Repo("dry/release")
	r := mustFerry(t, "import", "-f", archive, "--to-repo", repo, "--dry-run", "--json")
	var res struct {
		DryRun        bool
		BlobsUploaded int
		Tags          []struct{ Tag, Action string }
	}
	if err := json.Unmarshal([]byte(r.Stdout), &res); err != nil {
		t.Fatal(err)
	}
	if !res.DryRun || res.BlobsUploaded != len(f.allBlobs) {
		t.Fatalf("dry run reports %d blobs to upload, want %d: %s", res.BlobsUploaded, len(f.allBlobs), r)
	}
	if got := tagsOf(t, dst, repo); len(got) != 0 {
		t.Fatalf("dry run wrote tags %v", got)
	}
	if n := dst.Counts().Get("", testregistry.KindUpload); n != 0 {
		t.Fatalf("dry run made %d upload requests", n)
	}
}

// corrupt returns a copy of the archive, decompressed, with one byte of the
// last blob flipped (so the zstd checksum cannot catch it: the blob digest must).
func corruptPlainTar(t *testing.T, archive string) []byte {
	t.Helper()
	raw, _ := os.ReadFile(archive)
	zr, _ := zstd.NewReader(bytes.NewReader(raw))
	plain, err := io.ReadAll(zr)
	zr.Close()
	if err != nil {
		t.Fatal(err)
	}
	// The tar ends with two zero blocks and padding; flip a byte well inside
	// the last entry's data.
	end := len(plain) - 1024
	for end > 0 && plain[end] == 0 {
		end--
	}
	plain[end-10] ^= 0xff
	return plain
}

func TestImportInterruptedThenRerunCompletes(t *testing.T) {
	f, archive := exported(t)
	dst := testregistry.NewDistribution(t)
	proxy := testregistry.NewFaultProxy(t, dst, testregistry.FailAfterUploads(3))
	repo := "far/release"
	r := ferry(t, nil, "import", "-f", archive, "--to-repo", proxy.Repo(repo), "--registry-retry-count", "1")
	if r.Code != 1 {
		t.Fatalf("import through a registry that dies after 3 uploads succeeded: %s", r)
	}
	if _, ok := tagsOf(t, dst, dst.Repo(repo))["v1"]; ok {
		t.Fatal("the original tag was written by the failed import")
	}
	proxy.SetRules()
	mustFerry(t, "import", "-f", archive, "--to-repo", proxy.Repo(repo))
	assertTags(t, tagsOf(t, dst, dst.Repo(repo)), f.wantTags(t))
}

func TestImportWithAuthAndTLS(t *testing.T) {
	f, archive := exported(t)
	dst := testregistry.NewDistribution(t, testregistry.WithAuth("far", "side-pass"), testregistry.WithTLS())
	repo := dst.Repo("secure/release")
	r := ferry(t, nil, "import", "-f", archive, "--to-repo", repo, "--registry-ca-cert-path", dst.CACertPath)
	if r.Code != 1 || !strings.Contains(r.Stderr, "credentials") {
		t.Fatalf("want an auth error: %s", r)
	}
	r = ferry(t, []string{"FERRY_USERNAME=far", "FERRY_PASSWORD=side-pass"}, "import", "-f", archive, "--to-repo", repo)
	if r.Code != 1 || !strings.Contains(r.Stderr, "certificate") {
		t.Fatalf("want a TLS verification error: %s", r)
	}
	r = ferry(t, []string{"FERRY_USERNAME=far", "FERRY_PASSWORD=side-pass"}, "import", "-f", archive, "--to-repo", repo, "--registry-ca-cert-path", dst.CACertPath)
	if r.Code != 0 || strings.Contains(r.Stdout+r.Stderr, "side-pass") {
		t.Fatalf("import with credentials: %s", r)
	}
	assertTags(t, tagsOf(t, dst, repo), f.wantTags(t))
}
