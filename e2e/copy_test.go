package e2e

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferry-dev/ferry/fixtures"
	"github.com/ferry-dev/ferry/internal/testregistry"
	"github.com/ferry-dev/ferry/lock"
)

// copyJSON is the part of copy's --json result the tests read.
type copyJSON struct {
	Repository, Root, Tag       string
	BlobsUploaded, BlobsPresent int
	BlobsMounted                int
	Tags                        []struct{ Tag, Digest, Previous, Action string }
}

func parseCopyJSON(t *testing.T, r result) copyJSON {
	t.Helper()
	var res copyJSON
	if err := json.Unmarshal([]byte(r.Stdout), &res); err != nil {
		t.Fatalf("--json: %v\n%s", err, r)
	}
	return res
}

// mountsOf counts cross-repository mounts: a POST to the upload endpoint
// answered 201 at once (a plain upload's POST gets 202).
func mountsOf(reqs []testregistry.Request) int {
	n := 0
	for _, r := range reqs {
		if r.Method == http.MethodPost && r.Kind == testregistry.KindUpload && r.Status == http.StatusCreated {
			n++
		}
	}
	return n
}

// assertPulledFrom pulls the bundle recursively and checks that images.yml,
// the nested one too, was rewritten to repo.
func assertPulledFrom(t *testing.T, f *exportFixture, repo string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out")
	mustFerry(t, "pull", "-b", repo+":v1", "-o", out, "-r")
	l, err := lock.ReadImagesLock(filepath.Join(out, ".imgpkg", "images.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []name.Digest{f.app1, f.app2, f.inner, f.index} {
		if l.Images[i].Image != repo+"@"+want.DigestStr() {
			t.Errorf("images.yml[%d] = %s, want it in %s", i, l.Images[i].Image, repo)
		}
	}
	nl, err := lock.ReadImagesLock(filepath.Join(out, ".imgpkg", "bundles", "sha256-"+hexOf(f.inner.DigestStr()), ".imgpkg", "images.yml"))
	if err != nil || nl.Images[0].Image != repo+"@"+f.app3.DigestStr() {
		t.Fatalf("nested images.yml %+v %v", nl, err)
	}
}

func TestCopyAcrossRegistriesRecreatesImgpkgTags(t *testing.T) {
	src := testregistry.NewDistribution(t)
	f := newExportFixture(t, src)
	dst := testregistry.NewDistribution(t)
	repo := dst.Repo("far/release")
	lockOut := filepath.Join(t.TempDir(), "bundle.lock.yml")

	res := parseCopyJSON(t, mustFerry(t, "copy", "-b", f.root, "--to-repo", repo, "--lock-output", lockOut, "--json"))
	// Every blob, and the config and layer of the two bundles' locations images.
	if res.Root != repo+"@"+f.rootDigest || res.Tag != "v1" || res.BlobsUploaded != len(f.allBlobs)+4 || res.BlobsMounted != 0 {
		t.Fatalf("result %+v", res)
	}
	if n := len(res.Tags); n == 0 || res.Tags[n-1].Tag != "v1" {
		t.Fatalf("the root tag is not written last: %+v", res.Tags)
	}
	assertTags(t, tagsOf(t, dst, repo), f.wantTags(t))
	bl, err := lock.ReadBundleLock(lockOut)
	if err != nil || bl.Bundle.Image != repo+"@"+f.rootDigest || bl.Bundle.Tag != "v1" {
		t.Fatalf("BundleLock %+v %v", bl, err)
	}
	assertPulledFrom(t, f, repo)

	// Again: nothing is sent, nothing is read from the source's blobs.
	dst.ResetCounts()
	src.ResetCounts()
	r := mustFerry(t, "copy", "-b", f.root, "--to-repo", repo)
	if n := dst.Counts().Get("", testregistry.KindUpload); n != 0 {
		t.Fatalf("re-copy made %d upload requests", n)
	}
	if n := dst.Counts().Get(http.MethodPut, testregistry.KindManifest); n != 0 {
		t.Fatalf("re-copy wrote %d manifests", n)
	}
	// Planning reads configs and bundle layers; no image layer is read.
	layers := map[string]bool{}
	for _, ref := range []name.Digest{f.app1, f.app2, f.app3} {
		img, err := remote.Image(ref, src.RemoteOptions(t)...)
		if err != nil {
			t.Fatal(err)
		}
		m, _ := img.Manifest()
		for _, l := range m.Layers {
			layers[l.Digest.String()] = true
		}
	}
	for _, req := range src.Requests() {
		if req.Method == http.MethodGet && req.Kind == testregistry.KindBlob && layers[req.Ref] {
			t.Errorf("re-copy read layer %s from the source", req.Ref)
		}
	}
	if !strings.Contains(r.Stderr, "unchanged") {
		t.Errorf("re-copy does not report unchanged tags:\n%s", r)
	}
	assertTags(t, tagsOf(t, dst, repo), f.wantTags(t))
}

func TestCopyWithinOneRegistryMountsInsteadOfCopying(t *testing.T) {
	reg := testregistry.NewDistribution(t)
	f := newExportFixture(t, reg)
	repo := reg.Repo("prod/release")
	reg.ResetCounts()

	res := parseCopyJSON(t, mustFerry(t, "copy", "-b", f.root, "--to-repo", repo, "--json"))
	if n := mountsOf(reg.Requests()); n != len(f.allBlobs) {
		t.Fatalf("%d blobs mounted, want all %d", n, len(f.allBlobs))
	}
	if res.BlobsMounted != len(f.allBlobs) {
		t.Fatalf("result says %d mounted, want %d", res.BlobsMounted, len(f.allBlobs))
	}
	assertTags(t, tagsOf(t, reg, repo), f.wantTags(t))
}

func TestCopyImgpkgSpellingsAreExportAndImport(t *testing.T) {
	src := testregistry.NewDistribution(t)
	f := newExportFixture(t, src)
	dir := t.TempDir()
	viaCopy, viaExport := filepath.Join(dir, "copy.tar.zst"), filepath.Join(dir, "export.tar.zst")
	mustFerry(t, "copy", "-b", f.root, "--to-tar", viaCopy)
	mustFerry(t, "export", "-b", f.root, "-o", viaExport)
	if fileSHA256(t, viaCopy) != fileSHA256(t, viaExport) {
		t.Fatal("copy --to-tar and export wrote different archives")
	}
	if _, err := os.Stat(viaCopy + ".sha256"); err != nil {
		t.Fatalf("copy --to-tar wrote no checksum file: %v", err)
	}

	dst := testregistry.NewDistribution(t)
	repo := dst.Repo("far/release")
	res := parseCopyJSON(t, mustFerry(t, "copy", "--tar", viaCopy, "--to-repo", repo, "--json"))
	if res.Root != repo+"@"+f.rootDigest {
		t.Fatalf("result %+v", res)
	}
	assertTags(t, tagsOf(t, dst, repo), f.wantTags(t))
}

func TestCopyUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"copy", "-b", "r.example/b:1"},
		{"copy", "--to-repo", "r.example/x"},
		{"copy", "-b", "r.example/b:1", "-i", "r.example/i:1", "--to-repo", "r.example/x"},
		{"copy", "-b", "r.example/b:1", "--to-repo", "r.example/x", "--to-tar", "x.tar.zst"},
		{"copy", "-b", "r.example/b:1", "--to-tar", "x.tar.zst", "--repo-based-tags"},
		{"copy", "-b", "r.example/b:1", "--to-tar", "x.tar.zst", "--dry-run"},
		{"copy", "-b", "r.example/b:1", "--to-repo", "r.example/x", "--level", "best"},
		{"copy", "--tar", "x.tar.zst", "-b", "r.example/b:1", "--to-repo", "r.example/x"},
		{"copy", "--tar", "x.tar.zst"},
		{"copy", "--tar", "x.tar.zst", "--to-tar", "y.tar.zst"},
		{"copy", "-b", "r.example/b:1", "--to-repo", "NOT A REPO"},
	} {
		r := ferry(t, nil, args...)
		if r.Code != 2 || !strings.HasPrefix(r.Stderr, "ferry: ") {
			t.Errorf("ferry %s: want a usage error (exit 2): %s", strings.Join(args, " "), r)
		}
	}
}

func TestCopyMovesAnExistingTagAndSaysSo(t *testing.T) {
	src := testregistry.NewDistribution(t)
	f := newExportFixture(t, src)
	dst := testregistry.NewDistribution(t)
	repo := dst.Repo("far/release")
	old := seedImage(t, dst, "far/release", 77)
	ref, _ := name.NewTag(repo + ":v1")
	if err := remote.Tag(ref, mustDescriptor(t, dst, old), dst.RemoteOptions(t)...); err != nil {
		t.Fatal(err)
	}

	r := mustFerry(t, "copy", "-b", f.root, "--to-repo", repo)
	if !strings.Contains(r.Stderr, "move") || !strings.Contains(r.Stderr, "(was "+old.DigestStr()[:len("sha256:")+12]+")") {
		t.Fatalf("the moved tag is not reported with its previous digest:\n%s", r)
	}
	want := f.wantTags(t)
	want["seed"] = old.DigestStr()
	assertTags(t, tagsOf(t, dst, repo), want)
}

func mustDescriptor(t *testing.T, reg *testregistry.Registry, d name.Digest) *remote.Descriptor {
	t.Helper()
	desc, err := remote.Get(d, reg.RemoteOptions(t)...)
	if err != nil {
		t.Fatal(err)
	}
	return desc
}

func TestCopyRefusedByTheDestinationTagsNothing(t *testing.T) {
	src := testregistry.NewDistribution(t)
	f := newExportFixture(t, src)
	cases := []struct {
		name string
		rule testregistry.Rule
		want string
	}{
		{"403 on upload", testregistry.Rule{Method: http.MethodPost, Kind: testregistry.KindUpload, Fault: testregistry.FaultStatus, Status: http.StatusForbidden}, "refused access"},
		{"413 on blob data", testregistry.Rule{Method: http.MethodPut, Kind: testregistry.KindUpload, Fault: testregistry.FaultStatus, Status: http.StatusRequestEntityTooLarge}, "HTTP 413"},
		{"507 on commit", testregistry.Rule{Method: http.MethodPut, Kind: testregistry.KindUpload, Fault: testregistry.FaultStatus, Status: http.StatusInsufficientStorage}, "HTTP 507"},
		{"403 on the root tag", testregistry.Rule{Method: http.MethodPut, Kind: testregistry.KindManifest, Path: regexp.MustCompile(`/manifests/v1$`), Fault: testregistry.FaultStatus, Status: http.StatusForbidden}, "v1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dst := testregistry.NewDistribution(t)
			proxy := testregistry.NewFaultProxy(t, dst, tc.rule)
			r := ferry(t, nil, "copy", "-b", f.root, "--to-repo", proxy.Repo("far/release"), "--registry-retry-count", "2")
			if r.Code != 1 {
				t.Fatalf("want exit 1: %s", r)
			}
			for _, want := range []string{tc.want, proxy.Host, "far/release"} {
				if !strings.Contains(r.Stderr, want) {
					t.Errorf("error does not mention %q: %s", want, r.Stderr)
				}
			}
			if d, ok := tagsOf(t, dst, dst.Repo("far/release"))["v1"]; ok {
				t.Fatalf("the root tag was written (%s) by a failed copy", d)
			}
		})
	}
}

func TestCopySurvivesA429Storm(t *testing.T) {
	src := testregistry.NewDistribution(t)
	f := newExportFixture(t, src)
	dst := testregistry.NewDistribution(t)
	// The 429s may all fall on one request or one blob (which comes first
	// is the scheduler's choice): a request and a blob get one attempt more
	// than there are 429s (--registry-retry-count; with the default 5, five
	// of the six meeting one request or blob would fail the copy).
	const storm = 6
	proxy := testregistry.NewFaultProxy(t, dst,
		testregistry.Rule{Kind: testregistry.KindUpload, Fault: testregistry.FaultRetryAfter, Times: storm})
	repo := proxy.Repo("far/release")
	mustFerry(t, "copy", "-b", f.root, "--to-repo", repo, "--registry-retry-count", strconv.Itoa(storm+1))
	if hits := proxy.Hits(); hits[0] != storm {
		t.Fatalf("429s sent %v, want %d", hits, storm)
	}
	assertTags(t, tagsOf(t, dst, dst.Repo("far/release")), f.wantTags(t))
}

// smallBundle pushes, through ep, an image of two layers and a bundle
// locking it, and returns the bundle's REPO:TAG and the image's last layer.
func smallBundle(t *testing.T, ep *testregistry.Endpoint, env []string) (string, string) {
	t.Helper()
	img, err := fixtures.Image(500, 2, 4096)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	ref, _ := name.NewDigest(ep.Repo("src/app") + "@" + d.String())
	if err := remote.Write(ref, img, ep.RemoteOptions(t)...); err != nil {
		t.Fatal(err)
	}
	m, _ := img.Manifest()
	root := ep.Repo("src/bundle") + ":v1"
	if r := ferry(t, env, "push", "-b", root, "-f", bundleDir(t, ref)); r.Code != 0 {
		t.Fatalf("push: %s", r)
	}
	return root, m.Layers[len(m.Layers)-1].Digest.String()
}

func TestCopyFromASourceThatLostABlobNamesIt(t *testing.T) {
	src := testregistry.NewDistribution(t)
	proxy := testregistry.NewFaultProxy(t, src)
	root, layer := smallBundle(t, &proxy.Endpoint, nil)
	// The source loses the layer once the copy has been planned (resolving
	// never reads an image's layers): gone, or a dropped connection.
	// Gone, it is a layer the source no longer has (digest short); a
	// dropped connection names where it was read from.
	for _, tc := range []struct {
		fault testregistry.Rule
		names string
	}{
		{testregistry.Rule{Method: http.MethodGet, Kind: testregistry.KindBlob, Path: regexp.MustCompile(layer), Fault: testregistry.FaultStatus, Status: http.StatusNotFound},
			"source " + proxy.Host + "/src/app no longer has layer " + layer[:len("sha256:")+12] + " of image "},
		{testregistry.Rule{Method: http.MethodGet, Kind: testregistry.KindBlob, Path: regexp.MustCompile(layer), Fault: testregistry.FaultDrop},
			proxy.Host + "/src/app@" + layer},
	} {
		proxy.SetRules(tc.fault)
		dst := testregistry.NewDistribution(t)
		r := ferry(t, nil, "copy", "-b", root, "--to-repo", dst.Repo("far/release"), "--registry-retry-count", "1")
		if r.Code != 1 {
			t.Fatalf("want exit 1: %s", r)
		}
		for _, want := range []string{tc.names, dst.Repo("far/release")} {
			if !strings.Contains(r.Stderr, want) {
				t.Errorf("error does not name %s: %s", want, r.Stderr)
			}
		}
		if got := tagsOf(t, dst, dst.Repo("far/release")); len(got) != 0 {
			t.Fatalf("a failed copy wrote tags %v", got)
		}
	}
}

// dockerConfig writes a Docker config.json holding basic auth for each
// host, and returns the directory to give as DOCKER_CONFIG.
func dockerConfig(t *testing.T, auths map[string][2]string) string {
	t.Helper()
	cfg := map[string]map[string]map[string]string{"auths": {}}
	for host, up := range auths {
		cfg["auths"][host] = map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte(up[0] + ":" + up[1]))}
	}
	dir := t.TempDir()
	b, _ := json.Marshal(cfg)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestCopyBetweenRegistriesWithTheirOwnCredentials(t *testing.T) {
	src := testregistry.NewDistribution(t, testregistry.WithAuth("alice", "src-pass"))
	dst := testregistry.NewDistribution(t, testregistry.WithAuth("carol", "dst-pass"))
	root, _ := smallBundle(t, &src.Endpoint, []string{"FERRY_USERNAME=alice", "FERRY_PASSWORD=src-pass"})
	repo := dst.Repo("far/release")

	// Credentials for the source only: the destination refuses, and says so.
	onlySrc := dockerConfig(t, map[string][2]string{src.Host: {"alice", "src-pass"}})
	r := ferry(t, []string{"DOCKER_CONFIG=" + onlySrc}, "copy", "-b", root, "--to-repo", repo)
	if r.Code != 1 || !strings.Contains(r.Stderr, "registry "+dst.Host+" refused access") {
		t.Fatalf("want an auth error naming the destination registry: %s", r)
	}
	if got := tagsOf(t, dst, repo); len(got) != 0 {
		t.Fatalf("a refused copy wrote tags %v", got)
	}

	both := dockerConfig(t, map[string][2]string{src.Host: {"alice", "src-pass"}, dst.Host: {"carol", "dst-pass"}})
	r = ferry(t, []string{"DOCKER_CONFIG=" + both}, "copy", "-b", root, "--to-repo", repo)
	if r.Code != 0 || strings.Contains(r.Stdout+r.Stderr, "pass") {
		t.Fatalf("copy with a credential per registry: %s", r)
	}
	if got := tagsOf(t, dst, repo); got["v1"] == "" {
		t.Fatalf("root tag missing after the copy: %v", got)
	}
}

func TestCopyChainOfAirGapsNeedsNoAccessToTheFirstSide(t *testing.T) {
	a := testregistry.NewDistribution(t)
	f := newExportFixture(t, a)
	b := testregistry.NewDistribution(t)
	c := testregistry.NewDistribution(t)
	bRepo := b.Repo("gap1/release")
	mustFerry(t, "copy", "-b", f.root, "--to-repo", bRepo)
	a.Close() // the first side is out of reach from now on

	// B -> C by copy: images.yml still names A, so every image must be
	// found in B.
	cRepo := c.Repo("gap2/release")
	r := mustFerry(t, "copy", "-v", "-b", bRepo+":v1", "--to-repo", cRepo)
	if !strings.Contains(r.Stderr, "was relocated") || !strings.Contains(r.Stderr, bRepo) || strings.Contains(r.Stderr, "warning:") {
		t.Errorf("want one note that the images were found in %s, and no warning:\n%s", bRepo, r.Stderr)
	}
	assertTags(t, tagsOf(t, c, cRepo), f.wantTags(t))
	assertPulledFrom(t, f, cRepo)

	// B -> C by export and import: the same plan, the same result.
	archive := filepath.Join(t.TempDir(), "hop2.tar.zst")
	mustFerry(t, "export", "-b", bRepo+":v1", "-o", archive)
	viaTar := c.Repo("gap2/from-archive")
	mustFerry(t, "import", "-f", archive, "--to-repo", viaTar)
	assertTags(t, tagsOf(t, c, viaTar), f.wantTags(t))
}

func TestCopyOfAnImageAndOfALockFile(t *testing.T) {
	src := testregistry.NewDistribution(t)
	f := newExportFixture(t, src)
	dst := testregistry.NewDistribution(t)

	// -i: the index and its children, tagged as imgpkg tags a lock image.
	repo := dst.Repo("far/multi")
	mustFerry(t, "copy", "-i", f.index.String(), "--to-repo", repo)
	assertTags(t, tagsOf(t, dst, repo), map[string]string{"sha256-" + hexOf(f.index.DigestStr()) + ".imgpkg": f.index.DigestStr()})
	for _, c := range f.indexChildren {
		digestOf(t, dst, repo+"@"+c.String()) // fails the test when absent
	}

	// --lock: every image of an ImagesLock, no bundle, no locations image.
	l := lock.ImagesLock{APIVersion: lock.APIVersion, Kind: lock.KindImagesLock,
		Images: []lock.ImageRef{{Image: f.app1.String()}, {Image: f.app3.String()}}}
	path := filepath.Join(t.TempDir(), "images.yml")
	if err := l.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	repo = dst.Repo("far/locked")
	mustFerry(t, "copy", "--lock", path, "--to-repo", repo)
	assertTags(t, tagsOf(t, dst, repo), map[string]string{
		"sha256-" + hexOf(f.app1.DigestStr()) + ".imgpkg": f.app1.DigestStr(),
		"sha256-" + hexOf(f.app3.DigestStr()) + ".imgpkg": f.app3.DigestStr(),
	})
}
