//go:build unix

package e2e

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/klauspost/compress/zstd"

	"github.com/ferry-dev/ferry/fixtures"
	"github.com/ferry-dev/ferry/fixtures/golden"
	"github.com/ferry-dev/ferry/internal/testregistry"
	"github.com/ferry-dev/ferry/lock"
)

// serving is a `ferry serve` process.
type serving struct {
	*started
	host string // 127.0.0.1:PORT
	url  string
}

// startServe runs `ferry serve ARCHIVE --addr 127.0.0.1:0 --json args…` and
// waits for the line that says where it listens. The test's cleanup stops
// it with SIGTERM, which must end it cleanly (exit 0).
func startServe(t *testing.T, archive string, args ...string) *serving {
	t.Helper()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p := startFerry(t, t.TempDir(), pw, append([]string{"serve", archive, "--addr", "127.0.0.1:0", "--json"}, args...)...)
	pw.Close()
	t.Cleanup(func() { pr.Close() })
	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(pr).ReadString('\n')
		line <- l
	}()
	var start struct{ URL, Host string }
	select {
	case l := <-line:
		if err := json.Unmarshal([]byte(l), &start); err != nil || start.Host == "" {
			t.Fatalf("ferry serve's first line %q: %v\n%s", l, err, p.stderr.String())
		}
	case <-time.After(2 * time.Minute):
		t.Fatalf("ferry serve did not say where it listens:\n%s", p.stderr.String())
	}
	s := &serving{started: p, host: start.Host, url: start.URL}
	t.Cleanup(func() { s.stop(t) })
	return s
}

// stop ends the server with SIGTERM and checks that it exits 0, saying so.
func (s *serving) stop(t *testing.T) { t.Helper(); s.stopWith(t, 0) }

// stopWith ends the server with SIGTERM and checks that it exits code.
func (s *serving) stopWith(t *testing.T, code int) {
	t.Helper()
	select {
	case <-s.exited:
		return
	default:
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	ws := s.wait(t, time.Minute)
	if ws.Signaled() || ws.ExitStatus() != code {
		t.Errorf("ferry serve after SIGTERM: %v, want exit %d:\n%s", ws, code, s.stderr.String())
	}
}

// sha256Hex is the hex sha256 of b.
func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// pullImage reads the image at ref with go-containerregistry's client and
// checks the manifest, the config and every layer against their digests,
// computed here.
func pullImage(t *testing.T, ref name.Reference, want string) {
	t.Helper()
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
	raw, err := img.RawManifest()
	if err != nil || "sha256:"+sha256Hex(raw) != want {
		t.Fatalf("pull %s: manifest hashes to sha256:%s, want %s (%v)", ref, sha256Hex(raw), want, err)
	}
	m, _ := img.Manifest()
	cfg, err := img.RawConfigFile()
	if err != nil || "sha256:"+sha256Hex(cfg) != m.Config.Digest.String() {
		t.Errorf("pull %s: config: %v", ref, err)
	}
	for _, l := range m.Layers {
		layer, err := img.LayerByDigest(l.Digest)
		if err != nil {
			t.Fatal(err)
		}
		rc, err := layer.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || "sha256:"+sha256Hex(b) != l.Digest.String() {
			t.Errorf("pull %s: layer %s: %v", ref, l.Digest, err)
		}
	}
}

// pullManifest pulls the image or index at ref with go-containerregistry's
// client and checks every byte against its digest: an image as pullImage
// does, an index and each image it lists.
func pullManifest(t *testing.T, ref name.Reference, want string) {
	t.Helper()
	desc, err := remote.Get(ref)
	if err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
	if !desc.MediaType.IsIndex() {
		pullImage(t, ref, want)
		return
	}
	if "sha256:"+sha256Hex(desc.Manifest) != want {
		t.Fatalf("pull %s: index hashes to sha256:%s, want %s", ref, sha256Hex(desc.Manifest), want)
	}
	idx, err := desc.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range m.Manifests {
		pullManifest(t, ref.Context().Digest(c.Digest.String()), c.Digest.String())
	}
}

// cranePull pulls ref (REPO@DIGEST) with crane into an OCI layout and
// checks that every file it wrote hashes to its name and that the
// manifest is among them; it returns the blobs written.
func cranePull(t *testing.T, ref name.Digest) map[string]bool {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "layout")
	if _, err := crane(t, "pull", "--format", "oci", ref.String(), dir); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "blobs", "sha256", "*"))
	got := map[string]bool{}
	for _, p := range files {
		b, _ := os.ReadFile(p)
		if sha256Hex(b) != filepath.Base(p) {
			t.Errorf("crane pull %s wrote %s, which hashes to %s", ref, p, sha256Hex(b))
		}
		got["sha256:"+filepath.Base(p)] = true
	}
	if !got[ref.DigestStr()] {
		t.Errorf("crane pull %s wrote no %s (%v)", ref, ref.DigestStr(), got)
	}
	return got
}

var (
	craneOnce sync.Once
	craneBin  string
	craneErr  error
)

// crane builds go-containerregistry's crane from the module's source, once.
func crane(t *testing.T, args ...string) (string, error) {
	t.Helper()
	craneOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ferry-e2e-crane-")
		if err != nil {
			craneErr = err
			return
		}
		craneBin = filepath.Join(dir, "crane")
		build := exec.Command("go", "build", "-o", craneBin, "github.com/google/go-containerregistry/cmd/crane")
		build.Dir = repoRoot(t)
		if out, err := build.CombinedOutput(); err != nil {
			craneErr = fmt.Errorf("building crane: %v\n%s", err, out)
		}
	})
	if craneErr != nil {
		t.Fatal(craneErr)
	}
	cmd := exec.Command(craneBin, args...)
	home := t.TempDir()
	cmd.Env = []string{"HOME=" + home, "DOCKER_CONFIG=" + filepath.Join(home, ".docker"), "PATH=" + os.Getenv("PATH")}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("crane %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

func mustTag(t *testing.T, s string) name.Tag {
	t.Helper()
	tag, err := name.NewTag(s)
	if err != nil {
		t.Fatal(err)
	}
	return tag
}

// repoPath is the repository path of a reference, without its registry.
func repoPath(ref name.Reference) string { return ref.Context().RepositoryStr() }

func TestServeMirrorsEveryImageByTagAndDigest(t *testing.T) {
	f, archive := exported(t)
	srv := startServe(t, archive, "-v")
	at := func(ref name.Digest) name.Digest {
		return mustDigest(t, srv.host+"/"+repoPath(ref)+"@"+ref.DigestStr())
	}

	// Each image by digest under its original repository, every byte
	// checked; the index and its children; the bundles.
	for _, ref := range []name.Digest{f.app1, f.app2, f.app3, f.inner} {
		pullImage(t, at(ref), ref.DigestStr())
	}
	idx, err := remote.Index(at(f.index))
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := idx.Digest(); d.String() != f.index.DigestStr() {
		t.Errorf("index is %s, want %s", d, f.index.DigestStr())
	}
	for _, c := range f.indexChildren {
		pullImage(t, at(f.index).Context().Digest(c.String()), c.String())
	}
	// The root by its original tag.
	root := srv.host + "/src/root:v1"
	tag, _ := name.NewTag(root)
	pullImage(t, tag, f.rootDigest)

	// crane, built from go-containerregistry's module.
	if out, err := crane(t, "digest", root); err != nil || strings.TrimSpace(out) != f.rootDigest {
		t.Errorf("crane digest %s: %q %v, want %s", root, out, err, f.rootDigest)
	}
	if out, err := crane(t, "ls", srv.host+"/src/root"); err != nil || strings.TrimSpace(out) != "v1" {
		t.Errorf("crane ls: %q %v", out, err)
	}
	out, err := crane(t, "catalog", srv.host)
	if got := strings.Fields(out); err != nil || strings.Join(got, ",") != "src/app1,src/app2,src/app3,src/inner,src/multi,src/root" {
		t.Errorf("crane catalog: %q %v", out, err)
	}
	app1 := at(f.app1)
	if out, err := crane(t, "manifest", app1.String()); err != nil || "sha256:"+sha256Hex([]byte(out)) != f.app1.DigestStr() {
		t.Errorf("crane manifest %s: %v", app1, err)
	}
	// crane pull of the index into an OCI layout: every file it wrote
	// hashes to its name, and every manifest and blob is there.
	got := cranePull(t, at(f.index))
	if len(got) != 1+2*3 {
		t.Errorf("crane pull of the index wrote %d blobs (%v), want the index and its two images (manifest, config, layer each)", len(got), got)
	}
	for _, c := range f.indexChildren {
		if !got[c.String()] {
			t.Errorf("crane pull of the index lacks %s", c)
		}
	}

	// Unknown tags and repositories are the spec's errors.
	if _, err := crane(t, "digest", srv.host+"/src/root:v2"); err == nil || !strings.Contains(err.Error(), "MANIFEST_UNKNOWN") {
		t.Errorf("an unknown tag: %v", err)
	}
	// -v logs one line per request.
	if s := srv.stderr.String(); !strings.Contains(s, "GET /v2/src/root/manifests/v1 200") {
		t.Errorf("-v request log lacks the tag's GET:\n%s", s)
	}
}

// exportedFrom is exported, keeping the source registry.
func exportedFrom(t *testing.T) (*exportFixture, string, *testregistry.Registry) {
	t.Helper()
	src := testregistry.NewDistribution(t)
	f := newExportFixture(t, src)
	archive := filepath.Join(t.TempDir(), "release.tar.zst")
	mustFerry(t, "export", "-b", f.root, "-o", archive)
	return f, archive, src
}

func TestServeRepoIsWhatAnImportWrites(t *testing.T) {
	// The source registry is gone: everything comes from the archive.
	f, archive, src := exportedFrom(t)
	want := f.wantTags(t)
	src.Close()
	srv := startServe(t, archive, "--repo", "far/release")
	repo := srv.host + "/far/release"

	// Exactly the tags an import writes, computed independently.
	assertTags(t, servedTags(t, repo), want)
	// Each tag's image (or index, with its images) pulled whole, every
	// byte checked; and crane pulls every manifest by digest.
	digests := map[string]bool{}
	for tag, d := range want {
		pullManifest(t, mustTag(t, repo+":"+tag), d)
		digests[d] = true
	}
	for d := range digests {
		cranePull(t, mustDigest(t, repo+"@"+d))
	}

	// ferry pull finds every image in the one repository, through the
	// locations image, and rewrites images.yml to it.
	assertPulledFrom(t, f, repo)

	// ferry copy from the served archive gives the tags ferry import
	// gives.
	dst := testregistry.NewDistribution(t)
	mustFerry(t, "copy", "-b", repo+":v1", "--to-repo", dst.Repo("copied"))
	mustFerry(t, "import", "-f", archive, "--to-repo", dst.Repo("imported"))
	imported := tagsOf(t, dst, dst.Repo("imported"))
	assertTags(t, imported, want)
	assertTags(t, tagsOf(t, dst, dst.Repo("copied")), imported)
}

// servedTags lists the tags of the repository repo (HOST/PATH) with the
// digest each names, through go-containerregistry's client.
func servedTags(t *testing.T, repo string) map[string]string {
	t.Helper()
	r, err := name.NewRepository(repo)
	if err != nil {
		t.Fatal(err)
	}
	list, err := remote.List(r)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, tg := range list {
		desc, err := remote.Head(r.Tag(tg))
		if err != nil {
			t.Fatal(err)
		}
		got[tg] = desc.Digest.String()
	}
	return got
}

// bigImageArchive exports an image of one random layer of size bytes and
// returns the archive and the layer.
func bigImageArchive(t *testing.T, size int64) (string, *fixtures.Layer, name.Digest) {
	t.Helper()
	reg := testregistry.NewDistribution(t, testregistry.WithFilesystem(t.TempDir()))
	layer, err := fixtures.NewLayer(uint64(size), size)
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	ref := seed2(t, reg, "big/image", img)
	archive := filepath.Join(t.TempDir(), "big.tar.zst")
	mustFerry(t, "export", "-i", ref.String(), "-o", archive)
	reg.Close()
	return archive, layer, ref
}

// layerBytes returns n bytes of layer from off, from the fixture itself.
func layerBytes(t *testing.T, layer *fixtures.Layer, off, n int64) []byte {
	t.Helper()
	rc, _ := layer.Compressed()
	defer rc.Close()
	if _, err := io.CopyN(io.Discard, rc, off); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(rc, b); err != nil {
		t.Fatal(err)
	}
	return b
}

// getBlob GETs a blob (a range of it when rng is set) and returns the
// status and the sha256 of the body, streamed.
func getBlob(url, rng string) (int, string, int64, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, "", 0, err
	}
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", 0, err
	}
	defer resp.Body.Close()
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	return resp.StatusCode, "sha256:" + hex.EncodeToString(h.Sum(nil)), n, err
}

// pullConcurrently GETs a blob clients times at once, checking each, and
// returns the server's peak RSS.
func pullConcurrently(t *testing.T, archive string, ref name.Digest, layer *fixtures.Layer, clients int) int64 {
	t.Helper()
	srv := startServe(t, archive)
	d, _ := layer.Digest()
	url := srv.url + "/v2/" + repoPath(ref) + "/blobs/" + d.String()
	size, _ := layer.Size()
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, got, n, err := getBlob(url, "")
			if err != nil || status != 200 || got != d.String() || n != size {
				t.Errorf("client %d: %d, %d bytes hashing to %s: %v", i, status, n, got, err)
			}
		}()
	}
	wg.Wait()
	rss := peakRSS(srv.cmd.Process.Pid)
	srv.stop(t)
	return rss
}

func TestServeRangesAndConcurrentPullsOfALargeLayerStayFlat(t *testing.T) {
	const clients = 4
	big := int64(192 << 20)
	small := int64(1 << 20)
	bigArchive, bigLayer, bigRef := bigImageArchive(t, big)
	smallArchive, smallLayer, smallRef := bigImageArchive(t, small)

	// Ranges, checked against the fixture's own bytes, from a server that
	// has verified nothing yet: the first request waits for the check.
	srv := startServe(t, bigArchive)
	d, _ := bigLayer.Digest()
	url := srv.url + "/v2/" + repoPath(bigRef) + "/blobs/" + d.String()
	for _, r := range [][2]int64{{0, 1000}, {4<<20 - 700, 4<<20 + 700}, {big/2 + 3, big/2 + (9 << 20)}, {big - 10, big - 1}} {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", r[0], r[1]))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := layerBytes(t, bigLayer, r[0], r[1]-r[0]+1)
		if err != nil || resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, want) {
			t.Errorf("range %d-%d: %d, %d bytes, the right ones: %v (%v)", r[0], r[1], resp.StatusCode, len(body), bytes.Equal(body, want), err)
		}
	}
	srv.stop(t)

	// Peak memory with clients pulling a large layer at once, against the
	// same with a small layer: what the server holds must not grow with
	// the layer.
	bigRSS := pullConcurrently(t, bigArchive, bigRef, bigLayer, clients)
	smallRSS := pullConcurrently(t, smallArchive, smallRef, smallLayer, clients)
	t.Logf("peak RSS of ferry serve, %d clients: %d MiB for a %d MiB layer, %d MiB for a %d MiB layer", clients, bigRSS>>20, big>>20, smallRSS>>20, small>>20)
	if bigRSS < 0 || smallRSS < 0 {
		t.Fatal("this platform does not report peak RSS")
	}
	// What serve holds by design for a download is one stream: a zstd
	// decoder whose window is one frame of the archive (4 MiB), and what
	// the answer needs of the frame under way, held until the frame is
	// checked (4 MiB at most), where the small layer's frames are 1 MiB.
	// Go's heap may grow to twice what is live before it collects
	// (GOGC=100): four frames per client bound the difference (64 MiB
	// here), a third of the layer, which one copy of it held in memory
	// would break (36 MiB measured). A binary built with the race
	// detector (CI's) keeps shadow memory beside the heap (122 MiB
	// measured), so the bound is three times as large, still below what
	// one copy of the layer would cost in such a build (the layer and its
	// shadow). Four clients, not more, keep it so.
	const frame = 4 << 20
	bound := int64(clients * 4 * frame)
	if raceEnabled {
		bound *= 3
	}
	if bigRSS > smallRSS+bound {
		t.Errorf("pulling the %d MiB layer took %d MiB of memory, the %d MiB one %d MiB: more than %d MiB more, memory grows with the layer", big>>20, bigRSS>>20, small>>20, smallRSS>>20, bound>>20)
	}
}

func TestServeRefusesWritesAndUnknownRoutes(t *testing.T) {
	_, archive := exported(t)
	srv := startServe(t, archive)
	for _, c := range []struct {
		method, path string
		status       int
		code         string
	}{
		{"POST", "/v2/src/app1/blobs/uploads/", 405, "UNSUPPORTED"},
		{"PATCH", "/v2/src/app1/blobs/uploads/x", 405, "UNSUPPORTED"},
		{"PUT", "/v2/src/app1/blobs/uploads/x?digest=sha256:" + strings.Repeat("0", 64), 405, "UNSUPPORTED"},
		{"PUT", "/v2/src/root/manifests/v2", 405, "UNSUPPORTED"},
		{"DELETE", "/v2/src/root/manifests/v1", 405, "UNSUPPORTED"},
		{"DELETE", "/v2/src/app1/blobs/sha256:" + strings.Repeat("0", 64), 405, "UNSUPPORTED"},
		{"GET", "/v2/src/root/nothing/here", 404, "UNSUPPORTED"},
		{"GET", "/index.html", 404, "UNSUPPORTED"},
		{"GET", "/v2/src/root/blobs/uploads/x", 404, "BLOB_UPLOAD_UNKNOWN"},
		{"GET", "/v2/no/such/repo/tags/list", 404, "NAME_UNKNOWN"},
	} {
		resp, body, code := errorRequest(t, c.method, srv.url+c.path)
		if resp.StatusCode != c.status || code != c.code {
			t.Errorf("%s %s: %d %q %s, want %d with code %s", c.method, c.path, resp.StatusCode, resp.Header.Get("Content-Type"), body, c.status, c.code)
		}
	}
	// A push with a real client fails and names the refusal.
	ref, _ := name.NewTag(srv.host + "/src/root:pushed")
	if err := remote.Write(ref, empty.Image); err == nil || !strings.Contains(err.Error(), "UNSUPPORTED") {
		t.Errorf("a push: %v", err)
	}
}

func TestServeRefusesACorruptedBlob(t *testing.T) {
	f, archive, src := exportedFrom(t)
	// app3's layer is 4 KiB of random bytes, which zstd stores as they
	// are: flip one of them in the file.
	img, err := remote.Image(f.app3, src.RemoteOptions(t)...)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := img.Manifest()
	ld := m.Layers[0].Digest
	l, _ := img.LayerByDigest(ld)
	rc, _ := l.Compressed()
	layer, _ := io.ReadAll(rc)
	rc.Close()
	data, _ := os.ReadFile(archive)
	at := bytes.Index(data, layer[1000:1100])
	if at < 0 {
		t.Fatal("app3's layer is not stored as is in the archive")
	}
	data[at+50] ^= 0x04
	os.WriteFile(archive, data, 0o644)

	srv := startServe(t, archive)
	url := srv.url + "/v2/src/app3/blobs/" + ld.String()
	for range 2 {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusInternalServerError || !strings.Contains(string(body), `"UNKNOWN"`) || bytes.Contains(body, layer[:100]) {
			t.Errorf("GET of the corrupted layer: %d %s", resp.StatusCode, body)
		}
	}
	if _, err := crane(t, "blob", srv.host+"/src/app3@"+ld.String()); err == nil {
		t.Error("crane blob of the corrupted layer succeeded")
	}
	// The rest is served.
	pullImage(t, mustDigest(t, srv.host+"/src/app1@"+f.app1.DigestStr()), f.app1.DigestStr())
	if !strings.Contains(srv.stderr.String(), ld.String()) {
		t.Errorf("ferry serve did not warn about %s:\n%s", ld, srv.stderr.String())
	}
	srv.stopWith(t, 1) // a damaged blob is an error
}

func TestServeRefusesAnArchiveWithoutASeekTable(t *testing.T) {
	_, archive := exported(t)
	data, _ := os.ReadFile(archive)
	dec, _ := zstd.NewReader(nil)
	plain, err := dec.DecodeAll(data, nil)
	dec.Close()
	if err != nil {
		t.Fatal(err)
	}
	tarFile := filepath.Join(t.TempDir(), "release.tar")
	os.WriteFile(tarFile, plain, 0o644)
	r := ferry(t, nil, "serve", tarFile, "--addr", "127.0.0.1:0")
	if r.Code != 1 || !strings.Contains(r.Stderr, "no seek table") || !strings.Contains(r.Stderr, "ferry import") {
		t.Errorf("serving a plain tar: %s", r)
	}
}

func TestServeUsageAndExposure(t *testing.T) {
	_, archive := exported(t)
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"serve"}, 2, "give one archive"},
		{[]string{"serve", "-", "--addr", "127.0.0.1:0"}, 2, "standard input"},
		{[]string{"serve", archive, "--repo", "Not/Valid"}, 2, "repository name"},
		{[]string{"serve", archive, "--tls-cert", "x.pem"}, 2, "--tls-key"},
		// Never listens: the address is checked first. A flag is
		// missing: a usage error.
		{[]string{"serve", archive, "--addr", "0.0.0.0:0"}, 2, "--insecure"},
	} {
		r := ferry(t, nil, c.args...)
		if r.Code != c.code || !strings.Contains(r.Stderr, c.want) {
			t.Errorf("ferry %s: %s\nwant exit %d mentioning %q", strings.Join(c.args, " "), r, c.code, c.want)
		}
	}
}

func TestServeOverTLSWithBasicAuth(t *testing.T) {
	f, archive := exported(t)
	files := testregistry.NewServerFiles(t)
	htpasswd := testregistry.WriteHtpasswd(t, "alice", "s3cret")
	srv := startServe(t, archive, "--repo", "far/release", "--tls-cert", files.Cert, "--tls-key", files.Key, "--htpasswd", htpasswd)
	if !strings.HasPrefix(srv.url, "https://") {
		t.Fatalf("url %s", srv.url)
	}
	repo := srv.host + "/far/release"
	env := []string{"FERRY_USERNAME=alice", "FERRY_PASSWORD=s3cret"}
	out := filepath.Join(t.TempDir(), "out")
	if r := ferry(t, env, "pull", "-b", repo+":v1", "-o", out, "--registry-ca-cert-path", files.CA); r.Code != 0 {
		t.Fatalf("pull over TLS with credentials: %s", r)
	}
	l, err := lock.ReadImagesLock(filepath.Join(out, ".imgpkg", "images.yml"))
	if err != nil || l.Images[0].Image != repo+"@"+f.app1.DigestStr() {
		t.Errorf("images.yml %+v %v", l, err)
	}
	if r := ferry(t, nil, "pull", "-b", repo+":v1", "-o", filepath.Join(t.TempDir(), "x"), "--registry-ca-cert-path", files.CA); r.Code == 0 {
		t.Error("a pull without credentials succeeded")
	}
}

func TestServeAnImgpkgTarball(t *testing.T) {
	tarball, err := golden.WriteFile(t.TempDir(), "basic.imgpkg.tar")
	if err != nil {
		t.Fatal(err)
	}

	// As a mirror: each image under the repository imgpkg found it in,
	// with imgpkg's digests, the bundle with its tag.
	srv := startServe(t, tarball)
	pullImage(t, mustTag(t, srv.host+"/golden/basic:v1"), golden.Bundle)
	for _, ref := range []string{"/golden/basic@" + golden.Bundle, "/src/app1@" + golden.App1} {
		d := mustDigest(t, srv.host+ref)
		pullImage(t, d, d.DigestStr())
		cranePull(t, d)
	}

	// With --repo: exactly the tags and digests imgpkg wrote when it
	// copied the bundle to a repository, each pulled whole.
	srv = startServe(t, tarball, "--repo", "far/basic")
	repo := srv.host + "/far/basic"
	want := goldenImgpkgTags()
	assertTags(t, servedTags(t, repo), want)
	for tag, d := range want {
		pullImage(t, mustTag(t, repo+":"+tag), d)
		cranePull(t, mustDigest(t, repo+"@"+d))
	}
	// ferry copy from the served tarball writes imgpkg's tags, as an
	// import of the tarball does; ferry pull finds the image through the
	// locations image.
	dst := testregistry.NewDistribution(t)
	mustFerry(t, "copy", "-b", repo+":v1", "--to-repo", dst.Repo("copied"))
	assertTags(t, tagsOf(t, dst, dst.Repo("copied")), want)
	out := filepath.Join(t.TempDir(), "out")
	mustFerry(t, "pull", "-b", repo+":v1", "-o", out)
	l, err := lock.ReadImagesLock(filepath.Join(out, ".imgpkg", "images.yml"))
	if err != nil || len(l.Images) != 1 || l.Images[0].Image != repo+"@"+golden.App1 {
		t.Fatalf("pulled images.yml %+v, %v", l, err)
	}
}

func TestServeRefusesACorruptedLayerOfAnImgpkgTarball(t *testing.T) {
	gold, err := golden.ReadFile("basic.imgpkg.tar")
	if err != nil {
		t.Fatal(err)
	}
	// app1's layer, changed in place: the tarball opens, the layer is
	// refused.
	ld := "sha256:d80eb356500be32958af853fd06a73013a823068a43d79a986a7571a3fc982b7"
	at := bytes.Index(gold, []byte("sha256-"+hexOf(ld)+".tar.gz"))
	if at < 0 {
		t.Fatalf("golden tarball has no entry for %s", ld)
	}
	// The entry's bytes follow its 512-byte header: checked here, so that
	// the byte flipped below is the layer's, not the padding's.
	tr := tar.NewReader(bytes.NewReader(gold[at:]))
	h, err := tr.Next()
	if err != nil || h.Size <= 1000 || "sha256:"+sha256Hex(gold[at+512:at+512+int(h.Size)]) != ld {
		t.Fatalf("the entry of %s does not follow its header in the golden tarball (%v)", ld, err)
	}
	bad := bytes.Clone(gold)
	bad[at+512+1000] ^= 0xff
	path := filepath.Join(t.TempDir(), "bad.imgpkg.tar")
	if err := os.WriteFile(path, bad, 0o644); err != nil {
		t.Fatal(err)
	}

	srv := startServe(t, path)
	for _, rng := range []string{"", "bytes=0-99", "bytes=2000-"} {
		status, _, n, err := getBlob(srv.url+"/v2/src/app1/blobs/"+ld, rng)
		if err != nil || status != http.StatusInternalServerError || n > 1000 {
			t.Errorf("GET %q of the corrupted layer: %d, %d bytes, %v", rng, status, n, err)
		}
	}
	if _, err := crane(t, "blob", srv.host+"/src/app1@"+ld); err == nil {
		t.Error("crane blob of the corrupted layer succeeded")
	}
	// The bundle, whose blobs are intact, is served.
	pullImage(t, mustTag(t, srv.host+"/golden/basic:v1"), golden.Bundle)
	if !strings.Contains(srv.stderr.String(), ld) {
		t.Errorf("ferry serve did not warn about %s:\n%s", ld, srv.stderr.String())
	}
	srv.stopWith(t, 1) // a damaged blob is an error
}

// serve reads what import reads from a file, split volumes included: the
// volumes of a split export are served in place, not joined, and a
// missing volume is refused at start-up, naming it.
func TestServeReadsSplitVolumes(t *testing.T) {
	src := testregistry.NewDistribution(t)
	f := newExportFixture(t, src)
	dir := t.TempDir()
	split := filepath.Join(dir, "release.tar.zst")
	mustFerry(t, "export", "-b", f.root, "-o", split, "--split-size", "8000")
	vols, err := filepath.Glob(split + ".0*")
	if err != nil || len(vols) < 3 {
		t.Fatalf("the split export wrote %d volumes (%v), want 3 or more", len(vols), err)
	}
	if _, err := os.Stat(split); !os.IsNotExist(err) {
		t.Fatalf("a split export left %s: %v", split, err)
	}

	srv := startServe(t, split)
	at := func(ref name.Digest) name.Digest {
		return mustDigest(t, srv.host+"/"+repoPath(ref)+"@"+ref.DigestStr())
	}
	for _, ref := range []name.Digest{f.app1, f.app2, f.app3, f.inner} {
		pullImage(t, at(ref), ref.DigestStr())
	}
	pullImage(t, mustTag(t, srv.host+"/src/root:v1"), f.rootDigest)
	srv.stop(t)

	// A volume missing from the middle: refused before serving, named.
	if err := os.Rename(vols[1], vols[1]+".away"); err != nil {
		t.Fatal(err)
	}
	r := ferry(t, nil, "serve", split, "--addr", "127.0.0.1:0")
	if r.Code == 0 || !strings.Contains(r.Stderr, filepath.Ext(vols[1])) || !strings.Contains(r.Stderr, "missing") {
		t.Errorf("serve with volume %s missing: exit %d, want a refusal naming it:\n%s", filepath.Base(vols[1]), r.Code, r.Stderr)
	}
}
