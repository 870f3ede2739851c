package relocate_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"

	"github.com/ferry-dev/ferry/internal/bundle"
	"github.com/ferry-dev/ferry/internal/registry"
	"github.com/ferry-dev/ferry/internal/testregistry"
	"github.com/ferry-dev/ferry/lock"
	"github.com/ferry-dev/ferry/relocate"
)

// impSource is the content the import tests carry: a root bundle locking
// two images that share a layer and a nested bundle, which locks a
// multi-platform index and the first image again. Every digest the tests
// expect is taken from these values, which the test built itself.
type impSource struct {
	reg  *testregistry.Registry // nil when reached through another endpoint
	ep   *testregistry.Endpoint
	opts []remote.Option

	app1, app2  v1.Image
	idx         v1.ImageIndex
	nested      v1.Image
	root        v1.Image
	app1Ref     string // as written in the locks
	app2Ref     string
	idxRef      string
	nestedRef   string
	rootTagRef  string // REPO:v1, as given with -b
	nestedLocks []string
	rootLocks   []string
}

// impNewSource pushes the source content to a fresh registry. bigLayer adds
// a layer above the in-memory spool limit to app2, so imports spool it to a
// file.
func impNewSource(t testing.TB, bigLayer int64) *impSource {
	t.Helper()
	reg := testregistry.NewGGCR(t)
	s := impNewSourceAt(t, &reg.Endpoint, bigLayer)
	s.reg = reg
	return s
}

// impNewSourceAt pushes the source content through ep (a registry, or a
// proxy in front of one); every reference names ep.
func impNewSourceAt(t testing.TB, ep *testregistry.Endpoint, bigLayer int64) *impSource {
	t.Helper()
	s := &impSource{ep: ep, opts: ep.RemoteOptions(t)}

	shared := impMust(random.Layer(3000, types.DockerLayer))
	s.app1 = impMust(mutate.AppendLayers(impMust(random.Image(1500, 1)), shared))
	layers := []v1.Layer{shared}
	if bigLayer > 0 {
		layers = append(layers, impMust(random.Layer(bigLayer, types.DockerLayer)))
	}
	s.app2 = impMust(mutate.AppendLayers(impMust(random.Image(2500, 1)), layers...))
	var adds []mutate.IndexAddendum
	for i, arch := range []string{"amd64", "arm64"} {
		adds = append(adds, mutate.IndexAddendum{
			Add:        impMust(random.Image(int64(700+i), 1)),
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}},
		})
	}
	s.idx = mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...)

	s.app1Ref = s.push(t, "src/app1", s.app1)
	s.app2Ref = s.push(t, "src/app2", s.app2)
	s.idxRef = s.push(t, "src/multi", s.idx)
	s.nestedLocks = []string{s.idxRef, s.app1Ref}
	s.nested, s.nestedRef = s.pushBundle(t, "src/nested", "", s.nestedLocks)
	s.rootLocks = []string{s.app1Ref, s.app2Ref, s.nestedRef}
	s.root, _ = s.pushBundle(t, "src/root", "v1", s.rootLocks)
	s.rootTagRef = ep.Repo("src/root") + ":v1"
	return s
}

func (s *impSource) push(t testing.TB, repo string, obj remote.Taggable) string {
	t.Helper()
	var d v1.Hash
	switch o := obj.(type) {
	case v1.Image:
		d = impMust(o.Digest())
	case v1.ImageIndex:
		d = impMust(o.Digest())
	}
	ref := impMust(name.NewDigest(s.ep.Repo(repo) + "@" + d.String()))
	var err error
	switch o := obj.(type) {
	case v1.Image:
		err = remote.Write(ref, o, s.opts...)
	case v1.ImageIndex:
		err = remote.WriteIndex(ref, o, s.opts...)
	}
	if err != nil {
		t.Fatal(err)
	}
	return ref.String()
}

// pushBundle builds a bundle locking images the way imgpkg does (the bundle
// package) and pushes it, tagged when tag is set.
func (s *impSource) pushBundle(t testing.TB, repo, tag string, images []string) (v1.Image, string) {
	return relocate.PushTestBundle(t, s.ep, s.opts, repo, tag, images)
}

// export writes the archive of the root bundle with the exporter.
func (s *impSource) export(t testing.TB) []byte {
	t.Helper()
	ctx := context.Background()
	p, err := relocate.Resolve(ctx, relocate.Source{Bundle: s.rootTagRef}, relocate.Options{Remote: s.opts})
	if err != nil {
		t.Fatalf("resolve %s: %v", s.rootTagRef, err)
	}
	var buf bytes.Buffer
	if _, err := relocate.Export(ctx, p, &buf, relocate.ExportOptions{Remote: s.opts, CreatedBy: "ferry import tests"}); err != nil {
		t.Fatalf("export %s: %v", s.rootTagRef, err)
	}
	return buf.Bytes()
}

// blobs returns every config and layer of the source, computed from the
// images the test built.
func (s *impSource) blobs(t testing.TB) map[v1.Hash]int64 {
	t.Helper()
	out := map[v1.Hash]int64{}
	imgs := []v1.Image{s.app1, s.app2, s.nested, s.root}
	for _, d := range impMust(s.idx.IndexManifest()).Manifests {
		imgs = append(imgs, impMust(s.idx.Image(d.Digest)))
	}
	for _, img := range imgs {
		m := impMust(img.Manifest())
		out[m.Config.Digest] = m.Config.Size
		for _, l := range m.Layers {
			out[l.Digest] = l.Size
		}
	}
	return out
}

// locationsDigest is the digest of the locations image for an
// ImageLocations built by hand from the refs a bundle locks.
func impLocationsDigest(t testing.TB, images []string, bundles ...string) v1.Hash {
	t.Helper()
	return impMust(impLocationsImage(t, images, bundles...).Digest())
}

// impLocationsImage is the locations image for an ImageLocations built by
// hand from the refs a bundle locks.
func impLocationsImage(t testing.TB, images []string, bundles ...string) v1.Image {
	t.Helper()
	isBundle := map[string]bool{}
	for _, b := range bundles {
		isBundle[b] = true
	}
	var l lock.ImageLocations
	for _, img := range images {
		l.Images = append(l.Images, lock.ImageLocation{Image: img, IsBundle: isBundle[img]})
	}
	img, err := bundle.LocationsImage(l)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// locationsBlobs are the configs and layers of the locations images of s's
// two bundles, which an import or a copy uploads besides s's own blobs.
func (s *impSource) locationsBlobs(t testing.TB) map[v1.Hash]int64 {
	t.Helper()
	out := map[v1.Hash]int64{}
	for _, img := range []v1.Image{impLocationsImage(t, s.rootLocks, s.nestedRef), impLocationsImage(t, s.nestedLocks)} {
		m := impMust(img.Manifest())
		out[m.Config.Digest] = m.Config.Size
		for _, l := range m.Layers {
			out[l.Digest] = l.Size
		}
	}
	return out
}

// wantTags is the complete tag set an import of s must leave, computed
// from the source values alone.
func (s *impSource) wantTags(t testing.TB) map[string]string {
	t.Helper()
	dig := func(d v1.Hash) string { return d.String() }
	tag := func(d v1.Hash) string { return "sha256-" + d.Hex + ".imgpkg" }
	app1, app2 := impMust(s.app1.Digest()), impMust(s.app2.Digest())
	idx, nested, root := impMust(s.idx.Digest()), impMust(s.nested.Digest()), impMust(s.root.Digest())
	rootLoc := impLocationsDigest(t, s.rootLocks, s.nestedRef)
	nestedLoc := impLocationsDigest(t, s.nestedLocks)
	return map[string]string{
		tag(app1):   dig(app1),
		tag(app2):   dig(app2),
		tag(idx):    dig(idx),
		tag(nested): dig(nested),
		tag(root):   dig(root),
		"sha256-" + root.Hex + ".image-locations.imgpkg": dig(rootLoc),
		tag(rootLoc): dig(rootLoc),
		"sha256-" + nested.Hex + ".image-locations.imgpkg": dig(nestedLoc),
		tag(nestedLoc): dig(nestedLoc),
		"v1":           dig(root),
	}
}

// impDest is a destination registry, optionally behind a fault proxy.
type impDest struct {
	reg   *testregistry.Registry
	proxy *testregistry.FaultProxy
	ep    *testregistry.Endpoint
	repo  name.Repository
}

func impNewDest(t testing.TB, withProxy bool) *impDest {
	t.Helper()
	d := &impDest{reg: testregistry.NewGGCR(t)}
	d.ep = &d.reg.Endpoint
	if withProxy {
		d.proxy = testregistry.NewFaultProxy(t, d.reg)
		d.ep = &d.proxy.Endpoint
	}
	d.repo = impMust(name.NewRepository(d.ep.Repo("dst/imported")))
	return d
}

// options are import options that reach the destination, with one quick
// retry so fault tests stay fast.
func (d *impDest) options(t testing.TB) relocate.ImportOptions {
	opts := append(d.ep.RemoteOptions(t),
		remote.WithRetryBackoff(remote.Backoff{Duration: 10 * time.Millisecond, Factor: 1, Steps: 2}))
	return relocate.ImportOptions{DestinationOptions: relocate.DestinationOptions{Remote: opts, Client: registry.New(d.ep.ClientOptions())}}
}

// tags returns every tag of the destination repository and its digest,
// read directly from the registry (not through the proxy).
func (d *impDest) tags(t testing.TB) map[string]string {
	t.Helper()
	repo := impMust(name.NewRepository(d.reg.Repo("dst/imported")))
	opts := d.reg.RemoteOptions(t)
	list, err := remote.List(repo, opts...)
	var terr *transport.Error
	if errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound {
		return map[string]string{}
	}
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, tg := range list {
		desc, err := remote.Head(repo.Tag(tg), opts...)
		if err != nil {
			t.Fatalf("head %s: %v", tg, err)
		}
		out[tg] = desc.Digest.String()
	}
	return out
}

// hasManifest reports whether the destination serves d by digest.
func (d *impDest) hasManifest(t testing.TB, h v1.Hash) bool {
	t.Helper()
	repo := impMust(name.NewRepository(d.reg.Repo("dst/imported")))
	_, err := remote.Head(repo.Digest(h.String()), d.reg.RemoteOptions(t)...)
	return err == nil
}

// hasBlob reports whether the destination holds blob h.
func (d *impDest) hasBlob(t testing.TB, h v1.Hash) bool {
	t.Helper()
	repo := impMust(name.NewRepository(d.reg.Repo("dst/imported")))
	l, err := remote.Layer(repo.Digest(h.String()), d.reg.RemoteOptions(t)...)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := l.Compressed()
	if err != nil {
		return false
	}
	defer rc.Close()
	// go-containerregistry checks the digest when the blob is read to
	// its end, so this also proves the stored bytes are the right ones.
	if _, err := io.Copy(io.Discard, rc); err != nil {
		t.Errorf("blob %s in the destination: %v", h, err)
		return false
	}
	return true
}

// uploads counts the blob upload requests the destination received.
func impUploads(c testregistry.Counts) int { return c.Get("", testregistry.KindUpload) }

// manifestPuts returns the references of the manifest PUTs, in order.
func impManifestPuts(reqs []testregistry.Request) []string {
	var out []string
	for _, r := range reqs {
		if r.Method == "PUT" && r.Kind == testregistry.KindManifest {
			out = append(out, r.Ref)
		}
	}
	return out
}

// impZstdToTar decompresses an archive into its plain tar.
func impZstdToTar(t testing.TB, archive []byte) []byte {
	t.Helper()
	dec, err := zstd.NewReader(bytes.NewReader(archive))
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	out, err := io.ReadAll(dec)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func impGzip(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

type impCountingReader struct {
	r io.Reader
	n int64
}

func (c *impCountingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// impRecorder is a progress.Reporter that keeps what it is told.
type impRecorder struct {
	mu      sync.Mutex
	started []string
	total   int64
	added   int64
	logs    []string
	done    int
}

func (r *impRecorder) Start(phase string, total int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.started = append(r.started, phase)
	if len(r.started) == 1 {
		// The bytes are the first phase's; a later one (the manifests and
		// tags of an import) counts none.
		r.total = total
	}
}

func (r *impRecorder) Add(n int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.added += n
}

func (r *impRecorder) Logf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.logs = append(r.logs, fmt.Sprintf(format, args...))
}

func (r *impRecorder) Warnf(format string, args ...any) { r.Logf("warning: "+format, args...) }

// warnings returns what was reported with Warnf, without its prefix.
func (r *impRecorder) warnings() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, l := range r.logs {
		if w, ok := strings.CutPrefix(l, "warning: "); ok {
			out = append(out, w)
		}
	}
	return out
}

func (r *impRecorder) Done() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.done++
}

func impMust[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// impDiffTags describes how got differs from want, or "" when equal.
func impDiffTags(got, want map[string]string) string {
	var diffs []string
	for k, w := range want {
		if g, ok := got[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("missing %s (want %s)", k, w))
		} else if g != w {
			diffs = append(diffs, fmt.Sprintf("%s -> %s, want %s", k, g, w))
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("unexpected %s -> %s", k, g))
		}
	}
	sort.Strings(diffs)
	return strings.Join(diffs, "\n")
}

// checkFirstMove asserts what a first import or copy of src into the empty
// dst leaves: exactly src's tags, every index child and blob, the root and
// its tag in the result, every blob and manifest counted as sent (the
// locations images' too; none present, none mounted) and every tag
// created. It returns the bytes of src's blobs sent.
func checkFirstMove(t *testing.T, src *impSource, dst *impDest, res *relocate.ImportResult) int64 {
	t.Helper()
	want := src.wantTags(t)
	if d := impDiffTags(dst.tags(t), want); d != "" {
		t.Errorf("destination tags differ:\n%s", d)
	}
	// Index children are there by digest (their index needs them) but
	// untagged, which the exact tag set above already checks.
	for _, c := range impMust(src.idx.IndexManifest()).Manifests {
		if !dst.hasManifest(t, c.Digest) {
			t.Errorf("index child %s missing from the destination", c.Digest)
		}
	}
	blobs := src.blobs(t)
	var total int64
	for d, size := range blobs {
		total += size
		if !dst.hasBlob(t, d) {
			t.Errorf("blob %s missing from the destination", d)
		}
	}
	root := impMust(src.root.Digest())
	if res.Root != dst.repo.Name()+"@"+root.String() || res.Tag != "v1" {
		t.Errorf("result root %s tag %q, want %s@%s and v1", res.Root, res.Tag, dst.repo.Name(), root)
	}
	locBlobs := src.locationsBlobs(t)
	locTotal := int64(0)
	for _, size := range locBlobs {
		locTotal += size
	}
	if res.BlobsUploaded != len(blobs)+len(locBlobs) || res.BytesUploaded != total+locTotal || res.BlobsPresent != 0 || res.BlobsMounted != 0 {
		t.Errorf("result: %d blobs sent (%d bytes), %d present, %d mounted; want %d (%d bytes), 0, 0",
			res.BlobsUploaded, res.BytesUploaded, res.BlobsPresent, res.BlobsMounted, len(blobs)+len(locBlobs), total+locTotal)
	}
	// Every manifest: those the tags name, and the index's children.
	manifests := map[string]bool{}
	for _, d := range want {
		manifests[d] = true
	}
	for _, c := range impMust(src.idx.IndexManifest()).Manifests {
		manifests[c.Digest.String()] = true
	}
	if res.ManifestsPushed != len(manifests) || res.ManifestsPresent != 0 {
		t.Errorf("result: %d manifests pushed, %d present; want %d, 0", res.ManifestsPushed, res.ManifestsPresent, len(manifests))
	}
	got := map[string]string{}
	for _, tr := range res.Tags {
		got[tr.Tag] = tr.Digest
		if tr.Action != relocate.TagCreate {
			t.Errorf("tag %s: action %s, want create in an empty repository", tr.Tag, tr.Action)
		}
	}
	if d := impDiffTags(got, want); d != "" {
		t.Errorf("result tags differ:\n%s", d)
	}
	return total
}

// impVia is a way an import reads an archive.
type impVia struct {
	name string
	open func([]byte) io.Reader
}

// impVias are the two ways an import reads an archive: from a file, at
// random through its seek table, and from a pipe, front to back.
var impVias = []impVia{
	{"file", func(b []byte) io.Reader { return bytes.NewReader(b) }},
	{"pipe", func(b []byte) io.Reader { return struct{ io.Reader }{bytes.NewReader(b)} }},
}

// impUploadFaults is how many blob data requests failUploads fails. They
// may all fall on one blob (which blob's PUT comes first is the
// scheduler's choice), so a client must give each blob at least
// impUploadFaults+1 attempts for an import or copy to succeed every time.
const impUploadFaults = 4

// failUploads makes the destination drop the first two blob data requests
// and refuse the next two with 503 (impUploadFaults in all): uploads a
// client must send again.
func (d *impDest) failUploads() {
	d.proxy.SetRules(
		testregistry.Rule{Method: http.MethodPut, Kind: testregistry.KindUpload, Fault: testregistry.FaultDrop, Times: 2},
		testregistry.Rule{Method: http.MethodPut, Kind: testregistry.KindUpload, Fault: testregistry.FaultStatus, Status: http.StatusServiceUnavailable, Times: impUploadFaults - 2},
	)
}

// assertRetriedUploads checks, after failUploads, that all four faults
// were met, that every blob of src arrived, that progress counted each
// byte once however often it was sent, and that the tags are an import's.
func (d *impDest) assertRetriedUploads(t *testing.T, src *impSource, rec *impRecorder) {
	t.Helper()
	if hits := d.proxy.Hits(); hits[0] != 2 || hits[1] != 2 {
		t.Fatalf("faults injected %v, want [2 2]", hits)
	}
	var total int64
	for dg, size := range src.blobs(t) {
		total += size
		if !d.hasBlob(t, dg) {
			t.Errorf("blob %s missing", dg)
		}
	}
	if rec.added != total {
		t.Errorf("progress added %d bytes over retried uploads, want exactly %d", rec.added, total)
	}
	if diff := impDiffTags(d.tags(t), src.wantTags(t)); diff != "" {
		t.Errorf("destination tags differ:\n%s", diff)
	}
}

// impRefuseLocationsTags refuses every PUT of a locations tag: a run fails
// after all blobs, manifests and sha256 tags went in.
var impRefuseLocationsTags = testregistry.Rule{
	Method: http.MethodPut,
	Kind:   testregistry.KindManifest,
	Path:   regexp.MustCompile(`/manifests/sha256-[0-9a-f]{64}\.image-locations\.imgpkg$`),
	Fault:  testregistry.FaultStatus,
	Status: http.StatusForbidden,
}
