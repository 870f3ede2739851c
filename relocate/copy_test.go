package relocate_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferry-dev/ferry/internal/registry"
	"github.com/ferry-dev/ferry/internal/regopts"
	"github.com/ferry-dev/ferry/internal/testregistry"
	"github.com/ferry-dev/ferry/lock"
	"github.com/ferry-dev/ferry/relocate"
)

// cpPlan resolves the source's root bundle.
func cpPlan(t testing.TB, src *impSource) *relocate.Plan {
	t.Helper()
	p, err := relocate.Resolve(context.Background(), relocate.Source{Bundle: src.rootTagRef}, relocate.Options{Remote: src.opts})
	if err != nil {
		t.Fatalf("resolve %s: %v", src.rootTagRef, err)
	}
	return p
}

// cpOptions are copy options reaching both sides (loopback registries
// without auth need nothing else), with quick retries.
func cpOptions(t testing.TB, d *impDest) relocate.CopyOptions {
	io := d.options(t)
	return relocate.CopyOptions{DestinationOptions: relocate.DestinationOptions{Remote: io.Remote, Client: io.Client}}
}

// cpMounts counts the cross-repository mounts a registry completed: a
// mount is a POST to the upload endpoint answered 201 Created at once,
// where a plain upload's POST gets 202 Accepted.
func cpMounts(reqs []testregistry.Request) int {
	n := 0
	for _, r := range reqs {
		if r.Method == http.MethodPost && r.Kind == testregistry.KindUpload && r.Status == http.StatusCreated {
			n++
		}
	}
	return n
}

// cpBlobGets counts the GETs of blob d a registry served.
func cpBlobGets(reqs []testregistry.Request, d v1.Hash) int {
	n := 0
	for _, r := range reqs {
		if r.Method == http.MethodGet && r.Kind == testregistry.KindBlob && r.Ref == d.String() {
			n++
		}
	}
	return n
}

func TestCopyRecreatesTheImgpkgRepositoryInAnotherRegistry(t *testing.T) {
	src := impNewSource(t, 0)
	p := cpPlan(t, src)
	dst := impNewDest(t, false)

	rec := &impRecorder{}
	opts := cpOptions(t, dst)
	opts.Reporter = rec
	opts.LockOutput = filepath.Join(t.TempDir(), "bundle.lock.yml")
	res, err := relocate.Copy(context.Background(), p, dst.repo, opts)
	if err != nil {
		t.Fatal(err)
	}

	total := checkFirstMove(t, src, dst, res)
	puts := impManifestPuts(dst.reg.Requests())
	if len(puts) == 0 || puts[len(puts)-1] != "v1" {
		t.Errorf("last manifest PUT is not the root tag v1: %v", puts)
	}
	// Across registries nothing can be mounted, and no mount is asked for.
	for _, r := range dst.reg.Requests() {
		if r.Method == http.MethodPost && r.Kind == testregistry.KindUpload && r.Status != http.StatusAccepted {
			t.Errorf("upload POST answered %d, want 202 (a plain upload)", r.Status)
		}
	}
	bl, err := lock.ReadBundleLock(opts.LockOutput)
	if err != nil {
		t.Fatal(err)
	}
	if bl.Bundle.Image != res.Root || bl.Bundle.Tag != "v1" {
		t.Errorf("lock output names %s tag %q, want %s and v1", bl.Bundle.Image, bl.Bundle.Tag, res.Root)
	}
	if !slices.Equal(rec.started, []string{"copy", "copy: writing manifests and tags"}) || rec.total != total || rec.added != total || rec.done != 2 {
		t.Errorf("progress: started %v total %d added %d done %d; want [copy, copy: writing manifests and tags] %d %d 2",
			rec.started, rec.total, rec.added, rec.done, total, total)
	}
}

func TestCopyWithinOneRegistryMountsEveryBlob(t *testing.T) {
	reg := testregistry.NewDistribution(t)
	src := impNewSourceAt(t, &reg.Endpoint, 0)
	src.reg = reg
	p := cpPlan(t, src)
	dst := &impDest{reg: reg, ep: &reg.Endpoint, repo: impMust(name.NewRepository(reg.Repo("dst/imported")))}
	reg.ResetCounts()

	res, err := relocate.Copy(context.Background(), p, dst.repo, cpOptions(t, dst))
	if err != nil {
		t.Fatal(err)
	}
	blobs := src.blobs(t)
	reqs := reg.Requests()
	if n := cpMounts(reqs); n != len(blobs) {
		t.Errorf("%d blobs mounted, want all %d", n, len(blobs))
	}
	// The only bytes sent are the two locations images' configs and
	// layers, which are new content; no blob of the source is read.
	if n := reg.Counts().Get(http.MethodPut, testregistry.KindUpload); n != 4 {
		t.Errorf("%d blobs sent, want 4 (the locations images' configs and layers)", n)
	}
	if n := reg.Counts().Get(http.MethodGet, testregistry.KindBlob); n != 0 {
		t.Errorf("a copy within one registry read %d blobs", n)
	}
	// Uploaded counts what was sent, mounted what was not: apart.
	var mountedBytes, sentBytes int64
	for _, n := range blobs {
		mountedBytes += n
	}
	for _, n := range src.locationsBlobs(t) {
		sentBytes += n
	}
	if sent := len(src.locationsBlobs(t)); res.BlobsMounted != len(blobs) || res.BlobsUploaded != sent ||
		res.BytesMounted != mountedBytes || res.BytesUploaded != sentBytes {
		t.Errorf("result: %d mounted (%d bytes), %d sent (%d bytes); want %d (%d bytes) and %d (%d bytes)",
			res.BlobsMounted, res.BytesMounted, res.BlobsUploaded, res.BytesUploaded, len(blobs), mountedBytes, sent, sentBytes)
	}
	if d := impDiffTags(dst.tags(t), src.wantTags(t)); d != "" {
		t.Errorf("destination tags differ:\n%s", d)
	}
	for d := range blobs {
		if !dst.hasBlob(t, d) {
			t.Errorf("blob %s missing from the destination", d)
		}
	}
}

// A dry run within one registry says what the copy does: it would mount
// every blob of the source, not upload it, and it mounts or sends nothing.
func TestCopyDryRunWithinOneRegistryPredictsTheMounts(t *testing.T) {
	reg := testregistry.NewDistribution(t)
	src := impNewSourceAt(t, &reg.Endpoint, 0)
	src.reg = reg
	p := cpPlan(t, src)
	dst := &impDest{reg: reg, ep: &reg.Endpoint, repo: impMust(name.NewRepository(reg.Repo("dst/imported")))}
	reg.ResetCounts()
	opts := cpOptions(t, dst)
	opts.DryRun = true
	res, err := relocate.Copy(context.Background(), p, dst.repo, opts)
	if err != nil {
		t.Fatal(err)
	}
	blobs := src.blobs(t)
	var size int64
	for _, n := range blobs {
		size += n
	}
	if res.BlobsMounted != len(blobs) || res.BytesMounted != size || res.BlobsUploaded != 0 || res.BytesUploaded != 0 {
		t.Errorf("dry run: %d to mount (%d bytes), %d to upload (%d bytes); want %d (%d bytes) to mount, none to upload",
			res.BlobsMounted, res.BytesMounted, res.BlobsUploaded, res.BytesUploaded, len(blobs), size)
	}
	if n := cpMounts(reg.Requests()); n != 0 || impUploads(reg.Counts()) != 0 {
		t.Errorf("a dry run mounted %d blobs, uploaded %d", n, impUploads(reg.Counts()))
	}
}

func TestCopyAgainSendsNothingAndKeepsTheTags(t *testing.T) {
	src := impNewSource(t, 0)
	p := cpPlan(t, src)
	dst := impNewDest(t, false)
	ctx := context.Background()
	if _, err := relocate.Copy(ctx, p, dst.repo, cpOptions(t, dst)); err != nil {
		t.Fatal(err)
	}
	dst.reg.ResetCounts()
	src.reg.ResetCounts()

	res, err := relocate.Copy(ctx, p, dst.repo, cpOptions(t, dst))
	if err != nil {
		t.Fatal(err)
	}
	c := dst.reg.Counts()
	if n := impUploads(c); n != 0 {
		t.Errorf("second copy made %d upload requests, want 0", n)
	}
	if n := c.Get(http.MethodPut, testregistry.KindManifest); n != 0 {
		t.Errorf("second copy made %d manifest PUTs, want 0", n)
	}
	if n := src.reg.Counts().Get(http.MethodGet, testregistry.KindBlob); n != 0 {
		t.Errorf("second copy read %d blobs from the source, want 0", n)
	}
	// The locations images' config and layer count as present too.
	if blobs := len(src.blobs(t)) + len(src.locationsBlobs(t)); res.BlobsUploaded != 0 || res.BlobsPresent != blobs {
		t.Errorf("second copy: %d sent, %d present; want 0 and %d", res.BlobsUploaded, res.BlobsPresent, blobs)
	}
	for _, tr := range res.Tags {
		if tr.Action != relocate.TagUnchanged {
			t.Errorf("second copy: tag %+v, want unchanged", tr)
		}
	}
	if d := impDiffTags(dst.tags(t), src.wantTags(t)); d != "" {
		t.Errorf("destination tags differ:\n%s", d)
	}
}

func TestCopyDryRunChangesNothing(t *testing.T) {
	src := impNewSource(t, 0)
	p := cpPlan(t, src)
	dst := impNewDest(t, false)
	opts := cpOptions(t, dst)
	opts.DryRun = true
	res, err := relocate.Copy(context.Background(), p, dst.repo, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !res.DryRun || res.BlobsUploaded != len(src.blobs(t)) {
		t.Errorf("dry run: %+v", res)
	}
	// Locks are known from the plan, so even the locations images' digests
	// are reported, as a real copy would write them.
	got := map[string]string{}
	for _, tr := range res.Tags {
		got[tr.Tag] = tr.Digest
	}
	if d := impDiffTags(got, src.wantTags(t)); d != "" {
		t.Errorf("dry run tags differ:\n%s", d)
	}
	if len(dst.tags(t)) != 0 || impUploads(dst.reg.Counts()) != 0 || dst.reg.Counts().Get(http.MethodPut, testregistry.KindManifest) != 0 {
		t.Errorf("dry run changed the destination")
	}
	if strings.Contains(res.Repository, "@") {
		t.Errorf("repository %q", res.Repository)
	}
}

// cpCutProxy is a loopback reverse proxy in front of a registry that cuts
// the first cuts downloads of blob digest half way: the response promises
// the whole blob, then the connection closes, as when a source registry
// goes away during a copy.
type cpCutProxy struct {
	testregistry.Endpoint
	mu   sync.Mutex
	cuts map[string]int // by the end of the path: how many GETs to cut
	// atEnd cuts after the last byte instead, the body sent chunked
	// (no Content-Length), before its terminating chunk.
	atEnd bool
}

func newCutProxy(t testing.TB, target *testregistry.Registry) *cpCutProxy {
	t.Helper()
	p := &cpCutProxy{cuts: map[string]int{}}
	// The headers and the half of the body sent reach the client before
	// the cut, however small the body: the client sees a response cut
	// part way, not a connection closed before it.
	p.Endpoint = serveModifyingProxy(t, target, -1, func(resp *http.Response) error {
		if req := resp.Request; req.Method != http.MethodGet || !p.take(req.URL.Path) {
			return nil
		}
		left := resp.ContentLength / 2
		if p.atEnd {
			left = resp.ContentLength
			resp.ContentLength = -1
			resp.Header.Del("Content-Length")
		}
		resp.Body = &cpCutBody{rc: resp.Body, left: left}
		return nil
	})
	return p
}

// serveModifyingProxy starts a loopback reverse proxy in front of target
// whose responses pass through modify, flushed as httputil.ReverseProxy's
// FlushInterval says, and returns its endpoint.
func serveModifyingProxy(t testing.TB, target *testregistry.Registry, flush time.Duration, modify func(*http.Response) error) testregistry.Endpoint {
	t.Helper()
	u := impMust(url.Parse(target.URL))
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Host = pr.In.Host
		},
		ModifyResponse: modify,
		FlushInterval:  flush,
		ErrorLog:       log.New(io.Discard, "", 0),
	}
	srv := httptest.NewServer(rp)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	t.Cleanup(srv.Close)
	return testregistry.Endpoint{URL: srv.URL, Host: strings.TrimPrefix(srv.URL, "http://")}
}

// cut arms the proxy to cut the next n downloads of d.
func (p *cpCutProxy) cut(d v1.Hash, n int) { p.cutPath("/blobs/"+d.String(), n) }

// cutPath arms the proxy to cut, half way through their bodies, the next
// n GETs whose path ends with suffix ("/manifests/v1", "/blobs/<digest>").
func (p *cpCutProxy) cutPath(suffix string, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cuts[suffix] = n
}

// take reports whether the GET of path must be cut, and counts the cut.
func (p *cpCutProxy) take(path string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for suffix, n := range p.cuts {
		if n > 0 && strings.HasSuffix(path, suffix) {
			p.cuts[suffix] = n - 1
			return true
		}
	}
	return false
}

// left returns how many armed cuts were not made.
func (p *cpCutProxy) left() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, c := range p.cuts {
		n += c
	}
	return n
}

// cpCutBody returns left bytes, then fails, which makes the reverse proxy
// abort the response mid-body.
type cpCutBody struct {
	rc   io.ReadCloser
	left int64
}

func (b *cpCutBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, errors.New("cut")
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	if err == io.EOF && b.left <= 0 {
		// Cut at the end: the failure comes with the next read, not a
		// clean end of the body.
		err = nil
	}
	return n, err
}

func (b *cpCutBody) Close() error { return b.rc.Close() }

func TestCopyStartsABlobAgainWhenTheSourceCutsIt(t *testing.T) {
	// Once with go-containerregistry's own transport into its registry, once
	// with ferry's retrying transport into the CNCF registry, which keeps
	// what part of a request body arrived.
	t.Run("ggcr", func(t *testing.T) {
		dst := impNewDest(t, false)
		cpCutAndCopy(t, dst, cpOptions(t, dst).Remote)
	})
	t.Run("ferry transport into distribution", func(t *testing.T) {
		reg := testregistry.NewDistribution(t)
		dst := &impDest{reg: reg, ep: &reg.Endpoint, repo: impMust(name.NewRepository(reg.Repo("dst/imported")))}
		ropts, err := regopts.Options{RetryBackoff: 10 * time.Millisecond}.RemoteOptions(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		cpCutAndCopy(t, dst, ropts)
	})
}

// cpCutAndCopy copies a source whose biggest layer is cut part way on its
// first two downloads, and checks the copy completes from a third.
func cpCutAndCopy(t *testing.T, dst *impDest, remoteOpts []remote.Option) {
	reg := testregistry.NewGGCR(t)
	proxy := newCutProxy(t, reg)
	src := impNewSourceAt(t, &proxy.Endpoint, 2<<20)
	p := cpPlan(t, src)

	// The 2 MiB layer of app2 is cut twice; the third download succeeds.
	m := impMust(src.app2.Manifest())
	big := m.Layers[len(m.Layers)-1]
	proxy.cut(big.Digest, 2)
	reg.ResetCounts()

	rec := &impRecorder{}
	opts := relocate.CopyOptions{DestinationOptions: relocate.DestinationOptions{Remote: remoteOpts, Reporter: rec}}
	if _, err := relocate.Copy(context.Background(), p, dst.repo, opts); err != nil {
		t.Fatal(err)
	}
	reg.Settle()
	if n := cpBlobGets(reg.Requests(), big.Digest); n != 3 {
		t.Errorf("the cut blob was downloaded %d times, want 3 (two cut, one whole)", n)
	}
	if !dst.hasBlob(t, big.Digest) {
		t.Errorf("blob %s missing from the destination", big.Digest)
	}
	var total int64
	for _, size := range src.blobs(t) {
		total += size
	}
	if rec.added != total {
		t.Errorf("progress added %d bytes over restarted blobs, want exactly %d", rec.added, total)
	}
	warned := false
	for _, l := range rec.logs {
		warned = warned || (strings.HasPrefix(l, "warning:") && strings.Contains(l, big.Digest.String()))
	}
	if !warned {
		t.Errorf("no warning names the restarted blob %s: %v", big.Digest, rec.logs)
	}
	if d := impDiffTags(dst.tags(t), src.wantTags(t)); d != "" {
		t.Errorf("destination tags differ:\n%s", d)
	}
}

func TestCopyGivesUpOnABlobTheSourceKeepsCutting(t *testing.T) {
	reg := testregistry.NewGGCR(t)
	proxy := newCutProxy(t, reg)
	src := impNewSourceAt(t, &proxy.Endpoint, 2<<20)
	p := cpPlan(t, src)
	dst := impNewDest(t, false)
	m := impMust(src.app2.Manifest())
	big := m.Layers[len(m.Layers)-1]
	proxy.cut(big.Digest, 100)

	opts := cpOptions(t, dst)
	copts := dst.ep.ClientOptions()
	copts.UploadAttempts = 2
	opts.Client = registry.New(copts)
	_, err := relocate.Copy(context.Background(), p, dst.repo, opts)
	if err == nil {
		t.Fatal("copy succeeded with a blob the source always cuts")
	}
	for _, want := range []string{big.Digest.String(), proxy.Host, dst.repo.String(), "part way"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %q: %v", want, err)
		}
	}
	if tags := dst.tags(t); len(tags) != 0 {
		t.Errorf("a failed copy wrote tags: %v", tags)
	}
}

func TestCopyFromASourceThatWentAwayNamesItAndTagsNothing(t *testing.T) {
	src := impNewSource(t, 0)
	p := cpPlan(t, src)
	dst := impNewDest(t, false)
	src.reg.Close() // after planning, before any blob is read

	_, err := relocate.Copy(context.Background(), p, dst.repo, cpOptions(t, dst))
	if err == nil {
		t.Fatal("copy succeeded from a registry that is gone")
	}
	for _, want := range []string{src.reg.Host, dst.repo.String(), "copy blob"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %q: %v", want, err)
		}
	}
	if tags := dst.tags(t); len(tags) != 0 {
		t.Errorf("a failed copy wrote tags: %v", tags)
	}
}

func TestCopyMovesAnExistingRootTagOnlyWhenEverythingIsThere(t *testing.T) {
	src := impNewSource(t, 0)
	p := cpPlan(t, src)
	dst := impNewDest(t, true)
	// v1 already names another image at the destination.
	old := impMust(src.app1.Digest())
	if err := remote.Write(dst.repo.Tag("v1"), src.app1, dst.reg.RemoteOptions(t)...); err != nil {
		t.Fatal(err)
	}

	// A destination that refuses the last locations tag: the copy fails
	// after every blob and manifest is in, and v1 must not have moved.
	dst.proxy.SetRules(testregistry.Rule{Method: http.MethodPut, Kind: testregistry.KindManifest,
		Path: regexp.MustCompile(`image-locations`), Fault: testregistry.FaultStatus, Status: http.StatusForbidden})
	if _, err := relocate.Copy(context.Background(), p, dst.repo, cpOptions(t, dst)); err == nil {
		t.Fatal("copy succeeded although a tag was refused")
	}
	if got := dst.tags(t)["v1"]; got != old.String() {
		t.Fatalf("a failed copy moved v1 to %s", got)
	}

	dst.proxy.SetRules()
	res, err := relocate.Copy(context.Background(), p, dst.repo, cpOptions(t, dst))
	if err != nil {
		t.Fatal(err)
	}
	root := impMust(src.root.Digest())
	last := res.Tags[len(res.Tags)-1]
	if last.Tag != "v1" || last.Action != relocate.TagMove || last.Previous != old.String() || last.Digest != root.String() {
		t.Errorf("root tag result %+v, want v1 moved from %s to %s", last, old, root)
	}
	if d := impDiffTags(dst.tags(t), src.wantTags(t)); d != "" {
		t.Errorf("destination tags differ:\n%s", d)
	}
}

func TestCopyFromARelocatedBundleNeedsNoAccessToTheFirstSide(t *testing.T) {
	src := impNewSource(t, 0) // side A
	b := impNewDest(t, false) // side B
	ctx := context.Background()
	if _, err := relocate.Copy(ctx, cpPlan(t, src), b.repo, cpOptions(t, b)); err != nil {
		t.Fatal(err)
	}
	src.reg.Close()

	// From B, whose images.yml still names A.
	rec := &impRecorder{}
	p, err := relocate.Resolve(ctx, relocate.Source{Bundle: b.repo.String() + ":v1"}, relocate.Options{Remote: b.reg.RemoteOptions(t), Reporter: rec})
	if err != nil {
		t.Fatalf("resolve from the relocated repository: %v", err)
	}
	for _, im := range p.Images {
		if im.Source.Context().String() != b.repo.String() {
			t.Errorf("image %s resolved at %s, want it in %s", im.OriginalRef, im.Source, b.repo)
		}
	}
	for _, bl := range p.Blobs {
		if bl.Source.Context().String() != b.repo.String() {
			t.Errorf("blob %s to be read from %s, want %s", bl.Digest, bl.Source, b.repo)
		}
	}
	var found, warned int
	for _, l := range rec.logs {
		if strings.Contains(l, "was relocated") && strings.Contains(l, b.repo.String()) {
			found++
		}
		if strings.HasPrefix(l, "warning:") {
			warned++
		}
	}
	if found != 1 || warned != 0 {
		t.Errorf("want one line saying the images were found in %s and no warning: %v", b.repo, rec.logs)
	}

	c := impNewDest(t, false) // side C
	if _, err := relocate.Copy(ctx, p, c.repo, cpOptions(t, c)); err != nil {
		t.Fatal(err)
	}
	// images.yml (and so the locations images) still name A: C's tags are
	// exactly those a copy from A gives.
	if d := impDiffTags(c.tags(t), src.wantTags(t)); d != "" {
		t.Errorf("tags at the third registry differ:\n%s", d)
	}
}

func TestResolveSaysWhenARelocatedBundleImageIsOnlyAtItsOriginalReference(t *testing.T) {
	src := impNewSource(t, 0)
	b := impNewDest(t, false)
	ctx := context.Background()
	if _, err := relocate.Copy(ctx, cpPlan(t, src), b.repo, cpOptions(t, b)); err != nil {
		t.Fatal(err)
	}
	// app2 goes missing from B; A still has it.
	app2 := impMust(src.app2.Digest())
	if err := remote.Delete(b.repo.Digest(app2.String()), b.reg.RemoteOptions(t)...); err != nil {
		t.Fatal(err)
	}

	rec := &impRecorder{}
	p, err := relocate.Resolve(ctx, relocate.Source{Bundle: b.repo.String() + ":v1"}, relocate.Options{Remote: b.reg.RemoteOptions(t), Reporter: rec})
	if err != nil {
		t.Fatal(err)
	}
	var warnings []string
	for _, l := range rec.logs {
		if strings.HasPrefix(l, "warning:") {
			warnings = append(warnings, l)
		}
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], src.app2Ref) || !strings.Contains(warnings[0], b.repo.String()) {
		t.Errorf("want one warning naming %s and %s: %v", src.app2Ref, b.repo, warnings)
	}
	for _, im := range p.Images {
		want := b.repo.String()
		if im.Digest == app2 {
			want = impMust(name.ParseReference(src.app2Ref)).Context().String()
		}
		if im.Source.Context().String() != want {
			t.Errorf("image %s resolved at %s, want %s", im.OriginalRef, im.Source, want)
		}
	}

	// Without A as well, the error says both places were tried.
	src.reg.Close()
	_, err = relocate.Resolve(ctx, relocate.Source{Bundle: b.repo.String() + ":v1"}, relocate.Options{Remote: b.reg.RemoteOptions(t)})
	if err == nil || !strings.Contains(err.Error(), "relocated to") || !strings.Contains(err.Error(), src.app2Ref) {
		t.Errorf("want an error naming %s and the relocated repository: %v", src.app2Ref, err)
	}
}

func TestResolveOfABundleNeverRelocatedSaysNothing(t *testing.T) {
	src := impNewSource(t, 0)
	rec := &impRecorder{}
	p, err := relocate.Resolve(context.Background(), relocate.Source{Bundle: src.rootTagRef}, relocate.Options{Remote: src.opts, Reporter: rec})
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.logs) != 0 {
		t.Errorf("resolving a bundle at its first home reported %v", rec.logs)
	}
	for _, im := range p.Images {
		if im.OriginalRef != im.Source.String() && im.Role != "bundle" {
			t.Errorf("image %s resolved at %s", im.OriginalRef, im.Source)
		}
	}
}

func TestCopyRetriesUploadsTheDestinationDroppedOrRefused(t *testing.T) {
	src := impNewSource(t, 2<<20)
	p := cpPlan(t, src)
	dst := impNewDest(t, true)
	dst.failUploads()
	// Enough attempts for one blob to meet every fault, whatever the
	// default: with fewer, the copy fails whenever the faults bunch on a blob.
	ro := regopts.Options{RetryBackoff: 10 * time.Millisecond, RetryCount: impUploadFaults + 1}
	ropts, err := ro.RemoteOptions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	copts, err := ro.ClientOptions()
	if err != nil {
		t.Fatal(err)
	}
	rec := &impRecorder{}
	if _, err := relocate.Copy(context.Background(), p, dst.repo, relocate.CopyOptions{DestinationOptions: relocate.DestinationOptions{Remote: ropts, Client: registry.New(copts), Reporter: rec}}); err != nil {
		t.Fatal(err)
	}
	dst.assertRetriedUploads(t, src, rec)
}

// TestExportResumesADownloadCutPartWay: a registry (or a proxy before it)
// that drops a download part way, as one may do to a connection the writer
// kept waiting, does not fail the export: the rest of the blob is fetched
// from where it stopped, and the archive is the one a clean export writes.
func TestExportResumesADownloadCutPartWay(t *testing.T) {
	reg := testregistry.NewGGCR(t)
	proxy := newCutProxy(t, reg)
	src := impNewSourceAt(t, &proxy.Endpoint, 6<<20)
	p := cpPlan(t, src)
	clean := src.export(t)

	m := impMust(src.app2.Manifest())
	big := m.Layers[len(m.Layers)-1]
	proxy.cut(big.Digest, 2)
	var buf bytes.Buffer
	if _, err := relocate.Export(context.Background(), p, &buf, relocate.ExportOptions{Remote: src.opts, CreatedBy: "ferry import tests"}); err != nil {
		t.Fatalf("export through two cut downloads: %v", err)
	}
	if !bytes.Equal(buf.Bytes(), clean) {
		t.Error("the resumed export differs from a clean one")
	}
	if left := proxy.left(); left != 0 {
		t.Fatalf("%d cuts left: the export never read the blob through the proxy", left)
	}
}
