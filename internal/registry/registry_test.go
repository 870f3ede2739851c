package registry_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/internal/registry"
	"github.com/ferry-dev/ferry/internal/testregistry"
)

func digestOf(b []byte) v1.Hash {
	s := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(s[:])}
}

func opener(b []byte, opened *atomic.Int32) registry.Opener {
	return func() (io.ReadCloser, error) {
		if opened != nil {
			opened.Add(1)
		}
		return io.NopCloser(bytes.NewReader(b)), nil
	}
}

func repoOf(t *testing.T, ep *testregistry.Endpoint, path string, access registry.Access) *registry.Repo {
	t.Helper()
	repo, err := name.NewRepository(ep.Repo(path))
	if err != nil {
		t.Fatal(err)
	}
	r, err := registry.New(ep.ClientOptions()).Repo(context.Background(), repo, access)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestUploadIsTwoRequests(t *testing.T) {
	reg := testregistry.NewDistribution(t)
	r := repoOf(t, &reg.Endpoint, "team/app", registry.Access{Push: true})
	blob := bytes.Repeat([]byte("ferry "), 100000)
	d := digestOf(blob)
	ctx := context.Background()

	if ok, err := r.BlobExists(ctx, d, int64(len(blob))); err != nil || ok {
		t.Fatalf("before upload: exists %v, %v", ok, err)
	}
	reg.ResetCounts()
	mounted, err := r.Upload(ctx, d, int64(len(blob)), opener(blob, nil))
	if err != nil || mounted {
		t.Fatalf("upload: mounted %v, %v", mounted, err)
	}
	c := reg.Counts()
	if c.Get(http.MethodPost, testregistry.KindUpload) != 1 || c.Get(http.MethodPut, testregistry.KindUpload) != 1 || c.Total() != 2 {
		t.Errorf("upload made %v requests, want one POST and one PUT", c)
	}
	if ok, err := r.BlobExists(ctx, d, int64(len(blob))); err != nil || !ok {
		t.Fatalf("after upload: exists %v, %v", ok, err)
	}
	rc, err := r.GetBlob(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, blob) {
		t.Errorf("downloaded %d bytes (%v), want the %d uploaded", len(got), err, len(blob))
	}
	if _, err := r.GetBlob(ctx, digestOf([]byte("absent"))); err == nil {
		t.Error("GetBlob of an absent blob: no error")
	}
}

func TestUploadMountsWithinARegistry(t *testing.T) {
	reg := testregistry.NewDistribution(t)
	src := repoOf(t, &reg.Endpoint, "src/app", registry.Access{Push: true})
	blob := []byte("a layer that already sits in src/app")
	d := digestOf(blob)
	ctx := context.Background()
	if _, err := src.Upload(ctx, d, int64(len(blob)), opener(blob, nil)); err != nil {
		t.Fatal(err)
	}
	from := src.Name()
	dst := repoOf(t, &reg.Endpoint, "dst/app", registry.Access{Push: true, MountFrom: &from})
	var opened atomic.Int32
	mounted, err := dst.Upload(ctx, d, int64(len(blob)), opener(blob, &opened))
	if err != nil || !mounted || opened.Load() != 0 {
		t.Fatalf("mounted %v, source opened %d times, %v; want a mount that reads nothing", mounted, opened.Load(), err)
	}
	if ok, err := dst.BlobExists(ctx, d, int64(len(blob))); err != nil || !ok {
		t.Fatalf("mounted blob: exists %v, %v", ok, err)
	}
}

// image pushes a config and a layer and returns an image manifest naming
// them.
func image(t *testing.T, r *registry.Repo, seed string) []byte {
	t.Helper()
	ctx := context.Background()
	layer := []byte("layer " + seed)
	config := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	for _, b := range [][]byte{layer, config} {
		if _, err := r.Upload(ctx, digestOf(b), int64(len(b)), opener(b, nil)); err != nil {
			t.Fatal(err)
		}
	}
	m, err := json.Marshal(v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		Config:        v1.Descriptor{MediaType: types.OCIConfigJSON, Size: int64(len(config)), Digest: digestOf(config)},
		Layers:        []v1.Descriptor{{MediaType: types.OCILayer, Size: int64(len(layer)), Digest: digestOf(layer)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestPutManifestByTagInOneRequest(t *testing.T) {
	reg := testregistry.NewDistribution(t)
	r := repoOf(t, &reg.Endpoint, "team/app", registry.Access{Push: true})
	ctx := context.Background()
	m := image(t, r, "one")
	reg.ResetCounts()
	d, err := r.PutManifest(ctx, "sha256-x.imgpkg", m, types.OCIManifestSchema1)
	if err != nil {
		t.Fatal(err)
	}
	if want := digestOf(m); d != want {
		t.Errorf("PutManifest returned %s, the manifest's digest is %s", d, want)
	}
	if c := reg.Counts(); c.Total() != 1 {
		t.Errorf("a manifest PUT by tag took %v requests, want 1", c)
	}
	for _, ref := range []string{"sha256-x.imgpkg", d.String()} {
		desc, err := r.ManifestDescriptor(ctx, ref)
		if err != nil || desc == nil || desc.Digest != d || desc.Size != int64(len(m)) {
			t.Errorf("HEAD %s: %+v, %v; want %s (%d bytes)", ref, desc, err, d, len(m))
		}
	}
	if desc, err := r.ManifestDescriptor(ctx, "absent"); desc != nil || err != nil {
		t.Errorf("HEAD of an absent tag: %+v, %v; want nil, nil", desc, err)
	}
	// The registry refuses a manifest whose blobs it does not have: the
	// property that lets an import tag as it PUTs.
	var bad v1.Manifest
	if err := json.Unmarshal(m, &bad); err != nil {
		t.Fatal(err)
	}
	bad.Layers[0].Digest = digestOf([]byte("never uploaded"))
	raw, _ := json.Marshal(bad)
	if _, err := r.PutManifest(ctx, "broken", raw, types.OCIManifestSchema1); err == nil || !strings.Contains(err.Error(), "broken") {
		t.Errorf("manifest naming a missing blob: %v, want an error naming the tag", err)
	}
}

func TestUploadRetriesInANewSession(t *testing.T) {
	reg := testregistry.NewDistribution(t)
	proxy := testregistry.NewFaultProxy(t, reg, testregistry.Rule{Method: http.MethodPut, Kind: testregistry.KindUpload, Fault: testregistry.FaultDrop, Times: 1})
	r := repoOf(t, &proxy.Endpoint, "team/app", registry.Access{Push: true})
	blob := bytes.Repeat([]byte("x"), 1<<20)
	var opened atomic.Int32
	if _, err := r.Upload(context.Background(), digestOf(blob), int64(len(blob)), opener(blob, &opened)); err != nil {
		t.Fatalf("upload through one dropped PUT: %v", err)
	}
	if n := proxy.Counts().Get(http.MethodPost, testregistry.KindUpload); n != 2 || opened.Load() != 2 {
		t.Errorf("%d sessions opened, source read %d times; want 2 and 2", n, opened.Load())
	}
}

func TestUploadGivesUp(t *testing.T) {
	reg := testregistry.NewDistribution(t)
	proxy := testregistry.NewFaultProxy(t, reg, testregistry.Rule{Method: http.MethodPut, Kind: testregistry.KindUpload, Fault: testregistry.FaultStatus, Status: http.StatusInternalServerError})
	r := repoOf(t, &proxy.Endpoint, "team/app", registry.Access{Push: true})
	blob := []byte("blob")
	d := digestOf(blob)
	_, err := r.Upload(context.Background(), d, int64(len(blob)), opener(blob, nil))
	if err == nil || !strings.Contains(err.Error(), d.String()) {
		t.Fatalf("upload into a failing registry: %v, want an error naming %s", err, d)
	}
	if n := proxy.Counts().Get(http.MethodPut, testregistry.KindUpload); n != registry.DefaultUploadAttempts {
		t.Errorf("%d PUTs, want %d attempts", n, registry.DefaultUploadAttempts)
	}
}

type failingReader struct {
	n         int
	permanent bool
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 && f.permanent {
		return 0, registry.Permanent(errors.New("archive entry blobs/sha256/x: checksum mismatch"))
	}
	if f.n <= 0 {
		return 0, io.ErrUnexpectedEOF
	}
	k := min(len(p), f.n)
	f.n -= k
	return k, nil
}

func TestUploadStopsOnASourceError(t *testing.T) {
	reg := testregistry.NewDistribution(t)
	r := repoOf(t, &reg.Endpoint, "team/app", registry.Access{Push: true})
	var opened atomic.Int32
	open := func() (io.ReadCloser, error) {
		opened.Add(1)
		return io.NopCloser(&failingReader{n: 100000, permanent: true}), nil
	}
	_, err := r.Upload(context.Background(), digestOf([]byte("whatever")), 200000, open)
	var se *registry.SourceError
	if !errors.As(err, &se) || !registry.IsPermanent(err) || !strings.Contains(err.Error(), "checksum mismatch") {
		t.Fatalf("upload from a failing source: %v, want a permanent SourceError with its message", err)
	}
	if opened.Load() != 1 {
		t.Errorf("source opened %d times, want 1: a new session cannot cure the source", opened.Load())
	}
	if n := reg.Counts().Get(http.MethodPost, testregistry.KindUpload); n != 1 {
		t.Errorf("%d upload sessions, want 1", n)
	}
}

func TestUploadOpensACutSourceAgain(t *testing.T) {
	reg := testregistry.NewDistribution(t)
	r := repoOf(t, &reg.Endpoint, "team/app", registry.Access{Push: true})
	blob := bytes.Repeat([]byte("y"), 200000)
	var opened atomic.Int32
	open := func() (io.ReadCloser, error) {
		if opened.Add(1) == 1 {
			return io.NopCloser(&failingReader{n: 100000}), nil
		}
		return io.NopCloser(bytes.NewReader(blob)), nil
	}
	if _, err := r.Upload(context.Background(), digestOf(blob), int64(len(blob)), open); err != nil {
		t.Fatalf("upload whose source is cut once: %v", err)
	}
	if opened.Load() != 2 {
		t.Errorf("source opened %d times, want 2", opened.Load())
	}
}

func TestAuthAndTLS(t *testing.T) {
	reg := testregistry.NewDistribution(t, testregistry.WithAuth("alice", "s3cret"), testregistry.WithTLS())
	r := repoOf(t, &reg.Endpoint, "team/app", registry.Access{Push: true})
	blob := []byte("over TLS, with basic auth")
	if _, err := r.Upload(context.Background(), digestOf(blob), int64(len(blob)), opener(blob, nil)); err != nil {
		t.Fatal(err)
	}
	// The wrong password is refused.
	ep := reg.Endpoint
	ep.Password = "wrong"
	repo, _ := name.NewRepository(ep.Repo("team/app"))
	bad, err := registry.New(ep.ClientOptions()).Repo(context.Background(), repo, registry.Access{Push: true})
	if err == nil {
		_, err = bad.BlobExists(context.Background(), digestOf(blob), int64(len(blob)))
	}
	if err == nil {
		t.Error("wrong password: no error")
	}
	// And so is a client that does not trust the registry's CA.
	opts := reg.ClientOptions()
	opts.Transport = http.DefaultTransport
	untrusting, err := registry.New(opts).Repo(context.Background(), repo, registry.Access{})
	if err == nil {
		_, err = untrusting.BlobExists(context.Background(), digestOf(blob), int64(len(blob)))
	}
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("untrusted CA: %v, want a certificate error", err)
	}
}

func TestUploadStreamIsThreeRequests(t *testing.T) {
	reg := testregistry.NewDistribution(t)
	r := repoOf(t, &reg.Endpoint, "team/app", registry.Access{Push: true})
	blob := bytes.Repeat([]byte("stream "), 300000)
	d := digestOf(blob)
	reg.ResetCounts()
	if err := r.UploadStream(context.Background(), d, int64(len(blob)), bytes.NewReader(blob)); err != nil {
		t.Fatal(err)
	}
	c := reg.Counts()
	if c.Get(http.MethodPost, testregistry.KindUpload) != 1 || c.Get(http.MethodPatch, testregistry.KindUpload) != 1 ||
		c.Get(http.MethodPut, testregistry.KindUpload) != 1 || c.Total() != 3 {
		t.Errorf("streamed upload made %v, want POST, PATCH, PUT", c)
	}
	if ok, err := r.BlobExists(context.Background(), d, int64(len(blob))); err != nil || !ok {
		t.Fatalf("exists %v, %v", ok, err)
	}
}

func TestUploadStreamResumesWhereTheRegistryStopped(t *testing.T) {
	// The filesystem driver keeps what arrived of a cut request, as
	// production storage does; the in-memory one drops it.
	reg := testregistry.NewDistribution(t, testregistry.WithFilesystem(t.TempDir()))
	proxy := testregistry.NewCutProxy(t, reg)
	r := repoOf(t, &proxy.Endpoint, "team/app", registry.Access{Push: true})
	blob := make([]byte, 6<<20)
	for i := range blob {
		blob[i] = byte(i * 7 / 3)
	}
	d := digestOf(blob)
	// The PATCH is cut after 3 MiB of it: well inside the window.
	proxy.Arm("PATCH /v2/", 3<<20, 1)
	reads := &countingReader{r: bytes.NewReader(blob)}
	if err := r.UploadStream(context.Background(), d, int64(len(blob)), reads); err != nil {
		t.Fatalf("upload through a cut PATCH: %v", err)
	}
	if proxy.Cuts() != 1 {
		t.Fatalf("the proxy cut %d connections, want 1", proxy.Cuts())
	}
	if reads.n != int64(len(blob)) {
		t.Errorf("read %d bytes of the source, want each of the %d once", reads.n, len(blob))
	}
	c := reg.Counts()
	if n := c.Get(http.MethodPost, testregistry.KindUpload); n != 1 {
		t.Errorf("%d upload sessions, want 1 resumed session", n)
	}
	if n := c.Get(http.MethodPatch, testregistry.KindUpload); n != 2 {
		t.Errorf("%d PATCHes, want the cut one and the one that resumed it", n)
	}
	resp, err := reg.Client().Get(reg.URL + "/v2/team/app/blobs/" + d.String())
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(got, blob) {
		t.Errorf("the registry holds %d bytes that differ from the %d sent", len(got), len(blob))
	}
}

func TestUploadStreamSaysWhyItCannotResume(t *testing.T) {
	// The in-memory driver drops what arrived of a cut request: the session
	// holds 0 bytes, and with a 1 MiB window the first 2 MiB are gone.
	reg := testregistry.NewDistribution(t)
	proxy := testregistry.NewCutProxy(t, reg)
	opts := proxy.ClientOptions()
	opts.ResumeWindow = 1 << 20
	repo, _ := name.NewRepository(proxy.Repo("team/app"))
	r, err := registry.New(opts).Repo(context.Background(), repo, registry.Access{Push: true})
	if err != nil {
		t.Fatal(err)
	}
	blob := make([]byte, 6<<20)
	d := digestOf(blob)
	proxy.Arm("PATCH /v2/", 3<<20, 1)
	err = r.UploadStream(context.Background(), d, int64(len(blob)), bytes.NewReader(blob))
	if err == nil || !strings.Contains(err.Error(), d.String()) || !strings.Contains(err.Error(), "holds 0 bytes") {
		t.Fatalf("upload that cannot resume: %v, want an error naming the blob and what the registry holds", err)
	}
	if n := reg.Counts().Get(http.MethodPut, testregistry.KindUpload); n != 0 {
		t.Errorf("%d PUTs: nothing may be committed", n)
	}
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func TestAnonymousRegistryIsPingedOnce(t *testing.T) {
	reg := testregistry.NewDistribution(t)
	c := registry.New(reg.ClientOptions())
	reg.ResetCounts()
	for _, path := range []string{"a/one", "a/two", "b/three"} {
		repo, _ := name.NewRepository(reg.Repo(path))
		r, err := c.Repo(context.Background(), repo, registry.Access{Push: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.BlobExists(context.Background(), digestOf([]byte(path)), int64(len(path))); err != nil {
			t.Fatal(err)
		}
	}
	if n := reg.Counts().Get(http.MethodGet, testregistry.KindBase); n != 1 {
		t.Errorf("%d pings for three repositories of a registry without auth, want 1", n)
	}
	// With credentials, each repository authenticates through
	// go-containerregistry's transport (tokens are per repository), which
	// pings for itself; the shortcut never sends a request without them.
	authed := testregistry.NewDistribution(t, testregistry.WithAuth("alice", "pw"))
	c = registry.New(authed.ClientOptions())
	authed.ResetCounts()
	defer func() {
		if n := authed.Counts().Get(http.MethodGet, testregistry.KindBase); n != 2 {
			t.Errorf("%d pings for two repositories of a registry with auth, want one each", n)
		}
	}()
	for _, path := range []string{"a/one", "a/two"} {
		repo, _ := name.NewRepository(authed.Repo(path))
		r, err := c.Repo(context.Background(), repo, registry.Access{Push: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.BlobExists(context.Background(), digestOf([]byte(path)), int64(len(path))); err != nil {
			t.Fatalf("with credentials: %v", err)
		}
	}
}

func TestGetBlobFrom(t *testing.T) {
	for name, reg := range map[string]*testregistry.Registry{
		"distribution": testregistry.NewDistribution(t),
		"ggcr":         testregistry.NewGGCR(t),
	} {
		t.Run(name, func(t *testing.T) {
			r := repoOf(t, &reg.Endpoint, "team/app", registry.Access{Push: true})
			blob := bytes.Repeat([]byte("0123456789"), 100000)
			d := digestOf(blob)
			if _, err := r.Upload(context.Background(), d, int64(len(blob)), opener(blob, nil)); err != nil {
				t.Fatal(err)
			}
			// At the blob's end nothing is left to read (a download cut
			// after its last byte): nothing is asked of the registry.
			for _, off := range []int64{0, 1, 654321, int64(len(blob)) - 1, int64(len(blob))} {
				reg.ResetCounts()
				rc, err := r.GetBlobFrom(context.Background(), d, int64(len(blob)), off)
				if err != nil {
					t.Fatalf("from %d: %v", off, err)
				}
				got, err := io.ReadAll(rc)
				rc.Close()
				if err != nil || !bytes.Equal(got, blob[off:]) {
					t.Errorf("from %d: %d bytes (%v), want the %d after it", off, len(got), err, len(blob)-int(off))
				}
				if n := reg.Counts().Total(); off == int64(len(blob)) && n != 0 {
					t.Errorf("from the end: %d requests, want none", n)
				}
			}
			for _, off := range []int64{int64(len(blob)) + 1, -1} {
				if rc, err := r.GetBlobFrom(context.Background(), d, int64(len(blob)), off); err == nil || !strings.Contains(err.Error(), d.String()) {
					if rc != nil {
						rc.Close()
					}
					t.Errorf("from %d of %d bytes: %v, want an error naming the blob", off, len(blob), err)
				}
			}
		})
	}
}

// With OpenEarly the source is opened while the session's POST is still
// unanswered (a copy's GET at the source overlaps the POST at the
// destination); without it, only once the session is open. A source opened
// for a session that failed is closed, and a mount opens nothing.
func TestUploadOpenEarlyOpensTheSourceBesideThePOST(t *testing.T) {
	reg := testregistry.NewDistribution(t)
	// Every session's POST is held long enough for the early open to come
	// first.
	proxy := testregistry.NewFaultProxy(t, reg, testregistry.Rule{Method: http.MethodPost, Kind: testregistry.KindUpload, Fault: testregistry.FaultStall, Delay: 300 * time.Millisecond})
	r := repoOf(t, &proxy.Endpoint, "team/app", registry.Access{Push: true})
	ctx := context.Background()
	for _, early := range []bool{false, true} {
		blob := []byte(fmt.Sprintf("a blob uploaded with OpenEarly %v", early))
		var postsAtOpen atomic.Int32
		postsAtOpen.Store(-1)
		open := func() (io.ReadCloser, error) {
			postsAtOpen.Store(int32(proxy.Counts().Get(http.MethodPost, testregistry.KindUpload)))
			return io.NopCloser(bytes.NewReader(blob)), nil
		}
		proxy.ResetCounts()
		var opts []registry.UploadOption
		if early {
			opts = append(opts, registry.OpenEarly())
		}
		if _, err := r.Upload(ctx, digestOf(blob), int64(len(blob)), open, opts...); err != nil {
			t.Fatalf("early %v: %v", early, err)
		}
		want := int32(1) // the POST answered first
		if early {
			want = 0
		}
		if got := postsAtOpen.Load(); got != want {
			t.Errorf("early %v: the source was opened with %d session POSTs answered, want %d", early, got, want)
		}
	}

	// A session refused: the source opened early is closed, unread.
	proxy.SetRules(testregistry.Rule{Method: http.MethodPost, Kind: testregistry.KindUpload, Fault: testregistry.FaultStatus, Status: http.StatusForbidden})
	blob := []byte("a blob whose session is refused")
	var closed atomic.Int32
	open := func() (io.ReadCloser, error) {
		return &closeCounter{Reader: bytes.NewReader(blob), closed: &closed}, nil
	}
	if _, err := r.Upload(ctx, digestOf(blob), int64(len(blob)), open, registry.OpenEarly()); err == nil {
		t.Fatal("upload succeeded through a refused session")
	}
	if closed.Load() != 1 {
		t.Errorf("source closed %d times after a refused session, want once", closed.Load())
	}

	// A mount needs no source, early or not.
	proxy.SetRules()
	src := repoOf(t, &proxy.Endpoint, "src/app", registry.Access{Push: true})
	blob = []byte("a layer that sits in src/app")
	if _, err := src.Upload(ctx, digestOf(blob), int64(len(blob)), opener(blob, nil)); err != nil {
		t.Fatal(err)
	}
	from := src.Name()
	dst := repoOf(t, &proxy.Endpoint, "dst/app", registry.Access{Push: true, MountFrom: &from})
	var opened atomic.Int32
	mounted, err := dst.Upload(ctx, digestOf(blob), int64(len(blob)), opener(blob, &opened), registry.OpenEarly())
	if err != nil || !mounted || opened.Load() != 0 {
		t.Errorf("mounted %v, source opened %d times, %v; want a mount that opens nothing", mounted, opened.Load(), err)
	}
}

// closeCounter counts its Close calls.
type closeCounter struct {
	io.Reader
	closed *atomic.Int32
}

func (c *closeCounter) Close() error {
	c.closed.Add(1)
	return nil
}

// A registry that stored the blob but answered after the response-header
// timeout: the retry finds the blob with one HEAD and sends it no second
// time.
func TestUploadAnsweredLateIsFoundStoredBeforeSendingAgain(t *testing.T) {
	// Every other request must be answered within the timeout: 1.5 s, for
	// a loaded machine. The late answer comes well after it (the proxy
	// stops holding it when the client gives up).
	const timeout = 1500 * time.Millisecond
	reg := testregistry.NewDistribution(t)
	proxy := testregistry.NewFaultProxy(t, reg, testregistry.Rule{Method: http.MethodPut, Kind: testregistry.KindUpload, Fault: testregistry.FaultLateAnswer, Delay: 4 * timeout, Times: 1})
	opts := proxy.Endpoint.ClientOptions()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.ResponseHeaderTimeout = timeout
	opts.Transport = tr
	repo, err := name.NewRepository(proxy.Repo("team/app"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := registry.New(opts).Repo(context.Background(), repo, registry.Access{Push: true})
	if err != nil {
		t.Fatal(err)
	}
	blob := bytes.Repeat([]byte("late "), 10000)
	d := digestOf(blob)
	var opened atomic.Int32
	if _, err := r.Upload(context.Background(), d, int64(len(blob)), opener(blob, &opened)); err != nil {
		t.Fatalf("upload answered late: %v", err)
	}
	if n := opened.Load(); n != 1 {
		t.Errorf("the blob was sent %d times, want once: the retry should have found it stored", n)
	}
	c := proxy.Counts()
	if puts := c.Get(http.MethodPut, testregistry.KindUpload); puts != 1 {
		t.Errorf("%d upload PUTs, want 1", puts)
	}
	if ok, err := r.BlobExists(context.Background(), d, int64(len(blob))); err != nil || !ok {
		t.Errorf("after the upload: exists %v, %v", ok, err)
	}
}
