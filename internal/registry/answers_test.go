package registry_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/internal/registry"
	"github.com/ferry-dev/ferry/internal/testregistry"
)

// hooked is go-containerregistry's registry behind a middleware whose hook
// may answer a request in its place (returning true), as a misbehaving
// registry or a proxy in front of one does. It records every request.
type hooked struct {
	testregistry.Endpoint
	inner http.Handler

	mu   sync.Mutex
	hook func(w http.ResponseWriter, r *http.Request) bool
	seen []seenRequest
}

type seenRequest struct {
	method, path string
	at           time.Time
}

func newHooked(t *testing.T) *hooked {
	t.Helper()
	return newHookedOver(t, ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
}

// newHookedOver puts the hook in front of inner.
func newHookedOver(t *testing.T, inner http.Handler) *hooked {
	t.Helper()
	h := &hooked{inner: inner}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		h.seen = append(h.seen, seenRequest{r.Method, r.URL.Path, time.Now()})
		hook := h.hook
		h.mu.Unlock()
		if hook != nil && hook(w, r) {
			return
		}
		h.inner.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	h.Endpoint = testregistry.Endpoint{Host: u.Host, URL: srv.URL}
	return h
}

func (h *hooked) setHook(f func(w http.ResponseWriter, r *http.Request) bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.hook = f
}

// requests returns the requests seen so far whose method is method.
func (h *hooked) requests(method string) []seenRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []seenRequest
	for _, s := range h.seen {
		if s.method == method {
			out = append(out, s)
		}
	}
	return out
}

// rawTag asks the registry itself, past the hook, what a tag points to.
func (h *hooked) rawTag(repo, tag string) string {
	rec := httptest.NewRecorder()
	h.inner.ServeHTTP(rec, httptest.NewRequest(http.MethodHead, "/v2/"+repo+"/manifests/"+tag, nil))
	if rec.Code != http.StatusOK {
		return ""
	}
	return rec.Header().Get("Docker-Content-Digest")
}

// other is a server on another host that records what it is sent and
// answers 201, as a host a redirect would send a write to.
func other(t *testing.T) (*httptest.Server, func() []string) {
	t.Helper()
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		got = append(got, r.Method+" "+r.URL.Path)
		mu.Unlock()
		w.WriteHeader(http.StatusCreated)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), got...)
	}
}

// storedAnswering is a hook that has the registry store the PUTs match
// selects (it must answer 201), then answers status in its place, without
// its headers: a front that says nothing of what was stored.
func (h *hooked) storedAnswering(t *testing.T, match func(*http.Request) bool, status int) func(w http.ResponseWriter, r *http.Request) bool {
	return func(w http.ResponseWriter, req *http.Request) bool {
		if !match(req) {
			return false
		}
		rec := httptest.NewRecorder()
		h.inner.ServeHTTP(rec, req)
		if rec.Code != http.StatusCreated {
			t.Errorf("the registry answered %s %s %d", req.Method, req.URL.Path, rec.Code)
		}
		w.WriteHeader(status)
		return true
	}
}

func isManifestPUT(r *http.Request) bool {
	return r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/")
}

// A redirected write is refused, naming the status and where it pointed:
// net/http would turn a PUT answered 302 into a GET whose 200 passes for
// the PUT's success, and re-send one answered 307 to the other host.
func TestRedirectedWritesAreRefused(t *testing.T) {
	ctx := context.Background()
	elsewhere, sentElsewhere := other(t)
	for _, tc := range []struct {
		name   string
		status int
		to     func(r *http.Request) string
		want   string
	}{
		{"302 to a login page", http.StatusFound, func(*http.Request) string { return "/login" }, "/login"},
		{"307 to another host", http.StatusTemporaryRedirect, func(r *http.Request) string { return elsewhere.URL + r.URL.Path }, elsewhere.URL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := newHooked(t)
			r := repoOf(t, &reg.Endpoint, "team/app", registry.Access{Push: true})
			m := image(t, r, tc.name)
			reg.setHook(func(w http.ResponseWriter, req *http.Request) bool {
				switch {
				case isManifestPUT(req):
					http.Redirect(w, req, tc.to(req), tc.status)
					return true
				case req.URL.Path == "/login":
					w.Header().Set("Content-Type", "text/html")
					_, _ = io.WriteString(w, "<html>please log in</html>")
					return true
				}
				return false
			})
			_, err := r.PutManifest(ctx, "v1", m, types.OCIManifestSchema1)
			if err == nil || !strings.Contains(err.Error(), fmt.Sprint(tc.status)) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "v1") {
				t.Errorf("manifest PUT answered %d: %v; want an error naming the tag, the status and %s", tc.status, err, tc.want)
			}
			if got := reg.rawTag("team/app", "v1"); got != "" {
				t.Errorf("the registry holds v1 -> %s", got)
			}
			for _, s := range reg.requests(http.MethodGet) {
				if s.path == "/login" {
					t.Error("a GET followed the PUT's redirect")
				}
			}

			// A blob upload's PUT redirected: refused at once, not
			// retried in new sessions (the registry would redirect again).
			blob := []byte("a blob whose PUT is redirected: " + tc.name)
			reg.setHook(func(w http.ResponseWriter, req *http.Request) bool {
				if req.Method == http.MethodPut && strings.Contains(req.URL.Path, "/blobs/uploads/") {
					_, _ = io.Copy(io.Discard, req.Body)
					http.Redirect(w, req, tc.to(req), tc.status)
					return true
				}
				return req.URL.Path == "/login" && req.Method == http.MethodGet
			})
			posts := len(reg.requests(http.MethodPost))
			_, err = r.Upload(ctx, digestOf(blob), int64(len(blob)), opener(blob, nil))
			if err == nil || !strings.Contains(err.Error(), fmt.Sprint(tc.status)) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("blob PUT answered %d: %v; want an error naming the status and %s", tc.status, err, tc.want)
			}
			if n := len(reg.requests(http.MethodPost)) - posts; n != 1 {
				t.Errorf("%d upload sessions, want 1: a redirect is no reason to try again", n)
			}
		})
	}
	if got := sentElsewhere(); len(got) != 0 {
		t.Errorf("the other host was sent %v", got)
	}
}

// Reads follow redirects to another host: a registry's storage (blobs),
// or the registry a redirector sends every read to (registry.k8s.io sends
// manifest requests to Artifact Registry).
func TestReadsFollowRedirectsElsewhere(t *testing.T) {
	ctx := context.Background()
	reg := newHooked(t)
	storage := httptest.NewServer(reg.inner)
	t.Cleanup(storage.Close)
	r := repoOf(t, &reg.Endpoint, "team/app", registry.Access{Push: true})
	m := image(t, r, "redirected reads")
	d, err := r.PutManifest(ctx, "v1", m, types.OCIManifestSchema1)
	if err != nil {
		t.Fatal(err)
	}
	layer := []byte("layer redirected reads")
	reg.setHook(func(w http.ResponseWriter, req *http.Request) bool {
		if (req.Method == http.MethodGet || req.Method == http.MethodHead) && req.URL.Path != "/v2/" {
			http.Redirect(w, req, storage.URL+req.URL.Path, http.StatusTemporaryRedirect)
			return true
		}
		return false
	})
	if ok, err := r.BlobExists(ctx, digestOf(layer), int64(len(layer))); err != nil || !ok {
		t.Errorf("blob HEAD redirected to storage: %v, %v; want present", ok, err)
	}
	rc, err := r.GetBlob(ctx, digestOf(layer))
	if err != nil {
		t.Fatalf("blob GET redirected to storage: %v", err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, layer) {
		t.Errorf("blob GET redirected to storage: %q, %v; want %q", got, err, layer)
	}
	if raw, _, gd, err := r.GetManifest(ctx, "v1", 1<<20); err != nil || gd != d || !bytes.Equal(raw, m) {
		t.Errorf("manifest GET redirected: %s, %v; want %s", gd, err, d)
	}
	if desc, err := r.ManifestDescriptor(ctx, "v1"); err != nil || desc == nil || desc.Digest != d {
		t.Errorf("manifest HEAD redirected: %+v, %v; want %s", desc, err, d)
	}
	if len(reg.requests(http.MethodGet)) == 0 || len(reg.requests(http.MethodHead)) == 0 {
		t.Error("no read reached the redirecting registry: the test exercised nothing")
	}
}

// A 200 or 202 to a manifest PUT without a Docker-Content-Digest counts
// only once the registry is seen to hold the manifest.
func TestPutManifestConfirmsASuccessThatNamesNoDigest(t *testing.T) {
	ctx := context.Background()
	reg := newHooked(t)
	r := repoOf(t, &reg.Endpoint, "team/app", registry.Access{Push: true})
	m := image(t, r, "202")
	d := digestOf(m)
	// v3 holds another manifest.
	another := image(t, r, "another")
	od := digestOf(another)
	if _, err := r.PutManifest(ctx, "v3", another, types.OCIManifestSchema1); err != nil {
		t.Fatal(err)
	}

	// Answered 202 and dropped.
	reg.setHook(func(w http.ResponseWriter, req *http.Request) bool {
		if isManifestPUT(req) {
			_, _ = io.Copy(io.Discard, req.Body)
			w.WriteHeader(http.StatusAccepted)
			return true
		}
		return false
	})
	if _, err := r.PutManifest(ctx, "v1", m, types.OCIManifestSchema1); err == nil || !strings.Contains(err.Error(), "202") || !strings.Contains(err.Error(), "v1") {
		t.Errorf("manifest PUT answered 202 but not stored: %v; want an error naming the tag and the answer", err)
	}
	// The same over v3: the tag still names the other manifest.
	want := fmt.Sprintf("holds %s there, not %s", od, d)
	if got, err := r.PutManifest(ctx, "v3", m, types.OCIManifestSchema1); err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "v3") {
		t.Errorf("manifest PUT answered 202 over a tag holding another manifest: %s, %v; want an error naming the tag and %q", got, err, want)
	}
	if held := reg.rawTag("team/app", "v3"); held != od.String() {
		t.Errorf("v3 holds %s, want the other manifest %s still", held, od)
	}

	// Stored, answered 202 without the digest.
	reg.setHook(reg.storedAnswering(t, isManifestPUT, http.StatusAccepted))
	if got, err := r.PutManifest(ctx, "v2", m, types.OCIManifestSchema1); err != nil || got != d {
		t.Errorf("manifest PUT stored and answered 202: %s, %v; want %s", got, err, d)
	}
}

// A manifest PUT answered with a Docker-Content-Digest other than the
// manifest's is an error naming both: the registry stored something else
// (it rewrote the manifest, or a proxy answered for another request).
func TestPutManifestRefusesAnotherDigest(t *testing.T) {
	ctx := context.Background()
	reg := newHooked(t)
	r := repoOf(t, &reg.Endpoint, "team/app", registry.Access{Push: true})
	m := image(t, r, "rewritten")
	d := digestOf(m)
	claimed := digestOf([]byte("some other manifest"))
	// The registry stores the manifest; its answer, 201 as the spec has it,
	// names another digest.
	reg.setHook(func(w http.ResponseWriter, req *http.Request) bool {
		if !isManifestPUT(req) {
			return false
		}
		rec := httptest.NewRecorder()
		reg.inner.ServeHTTP(rec, req)
		if rec.Code != http.StatusCreated || rec.Header().Get("Docker-Content-Digest") != d.String() {
			t.Errorf("the registry answered the manifest PUT %d with digest %q", rec.Code, rec.Header().Get("Docker-Content-Digest"))
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.Header().Set("Docker-Content-Digest", claimed.String())
		w.WriteHeader(rec.Code)
		return true
	})
	for _, ref := range []string{"v1", d.String()} {
		want := fmt.Sprintf("the registry stored digest %s, the manifest's bytes have %s", claimed, d)
		if got, err := r.PutManifest(ctx, ref, m, types.OCIManifestSchema1); err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), ref) {
			t.Errorf("manifest PUT to %s answered with digest %s: %s, %v; want an error naming %s and %q", ref, claimed, got, err, ref, want)
		}
	}
}

// A blob HEAD's 200 counts only if it agrees with the blob.
func TestBlobExistsChecksTheAnswer(t *testing.T) {
	ctx := context.Background()
	reg := newHooked(t)
	r := repoOf(t, &reg.Endpoint, "team/app", registry.Access{Push: true})
	blob := []byte("a blob the registry holds")
	d := digestOf(blob)
	size := int64(len(blob))
	if _, err := r.Upload(ctx, d, size, opener(blob, nil)); err != nil {
		t.Fatal(err)
	}
	if ok, err := r.BlobExists(ctx, d, size); err != nil || !ok {
		t.Fatalf("an honest registry: %v, %v; want present", ok, err)
	}
	if ok, err := r.BlobExists(ctx, d, size+1); err == nil || ok || !strings.Contains(err.Error(), fmt.Sprintf("Content-Length %d, the blob has %d bytes", size, size+1)) {
		t.Errorf("asked for another size: %v, %v; want an error naming the registry's Content-Length", ok, err)
	}
	absent := digestOf([]byte("absent"))
	if ok, err := r.BlobExists(ctx, absent, 6); err != nil || ok {
		t.Errorf("an absent blob: %v, %v; want absent", ok, err)
	}

	for _, tc := range []struct {
		name   string
		header http.Header
		want   string
	}{
		{"wrong size", http.Header{"Content-Length": {"7"}}, "Content-Length 7, the blob has 6 bytes"},
		{"wrong digest", http.Header{"Content-Length": {"6"}, "Docker-Content-Digest": {d.String()}}, "Docker-Content-Digest " + d.String()},
	} {
		reg.setHook(func(w http.ResponseWriter, req *http.Request) bool {
			if req.Method != http.MethodHead {
				return false
			}
			for k, v := range tc.header {
				w.Header()[k] = v
			}
			w.WriteHeader(http.StatusOK)
			return true
		})
		ok, err := r.BlobExists(ctx, absent, 6)
		if err == nil || ok || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), absent.String()) {
			t.Errorf("%s: %v, %v; want an error naming the blob and %q", tc.name, ok, err, tc.want)
		}
	}

	// A 200 that says nothing of the blob (a front that drops
	// Content-Length on HEAD, or a registry that answers 200 to any HEAD)
	// does not vouch for it: the blob is sent.
	reg.setHook(func(w http.ResponseWriter, req *http.Request) bool {
		if req.Method != http.MethodHead {
			return false
		}
		w.WriteHeader(http.StatusOK)
		return true
	})
	for _, size := range []int64{6, -1} {
		if ok, err := r.BlobExists(ctx, absent, size); err != nil || ok {
			t.Errorf("a 200 with neither Content-Length nor Docker-Content-Digest, size %d: %v, %v; want absent", size, ok, err)
		}
	}

	// A registry that says the digest but not the size (Content-Length is
	// a SHOULD of the OCI distribution spec) is believed.
	reg.setHook(func(w http.ResponseWriter, req *http.Request) bool {
		if req.Method != http.MethodHead {
			return false
		}
		w.Header().Set("Docker-Content-Digest", absent.String())
		w.WriteHeader(http.StatusOK)
		return true
	})
	if ok, err := r.BlobExists(ctx, absent, 6); err != nil || !ok {
		t.Errorf("a 200 naming the digest without a Content-Length: %v, %v; want present", ok, err)
	}
}

// A 429 to an upload's write waits what its Retry-After asks, not the
// shorter backoff: the transport does not replay writes into an upload
// session, so the wait is the upload's.
func TestUploadWaitsAsRetryAfterAsks(t *testing.T) {
	for _, stream := range []bool{false, true} {
		method := http.MethodPut
		if stream {
			method = http.MethodPatch
		}
		t.Run(method, func(t *testing.T) {
			t.Parallel()
			// The CNCF distribution registry: go-containerregistry's does
			// not answer an upload session's status, which a stream asks
			// before it resumes.
			dist := testregistry.NewDistribution(t)
			target, err := url.Parse(dist.URL)
			if err != nil {
				t.Fatal(err)
			}
			reg := newHookedOver(t, &httputil.ReverseProxy{
				Rewrite: func(pr *httputil.ProxyRequest) {
					pr.SetURL(target)
					// distribution builds upload locations from the Host.
					pr.Out.Host = pr.In.Host
				},
			})
			var mu sync.Mutex
			refused := false
			reg.setHook(func(w http.ResponseWriter, req *http.Request) bool {
				mu.Lock()
				defer mu.Unlock()
				if req.Method != method || !strings.Contains(req.URL.Path, "/blobs/uploads/") || refused {
					return false
				}
				refused = true
				_, _ = io.Copy(io.Discard, req.Body)
				w.Header().Set("Retry-After", "2")
				w.WriteHeader(http.StatusTooManyRequests)
				return true
			})
			opts := reg.ClientOptions()
			opts.Backoff = 100 * time.Millisecond
			repo, _ := name.NewRepository(reg.Repo("team/app"))
			r, err := registry.New(opts).Repo(context.Background(), repo, registry.Access{Push: true})
			if err != nil {
				t.Fatal(err)
			}
			blob := bytes.Repeat([]byte("retry after "), 1000)
			d := digestOf(blob)
			if stream {
				err = r.UploadStream(context.Background(), d, int64(len(blob)), bytes.NewReader(blob))
			} else {
				_, err = r.Upload(context.Background(), d, int64(len(blob)), opener(blob, nil))
			}
			if err != nil {
				t.Fatalf("upload through one 429: %v", err)
			}
			// The request after the refused one (a new session's POST, or
			// the session's status) must come 2 s after it, not 100 ms.
			reg.mu.Lock()
			defer reg.mu.Unlock()
			for i, s := range reg.seen {
				if s.method == method {
					if i+1 >= len(reg.seen) {
						t.Fatal("nothing followed the refused request")
					}
					next := reg.seen[i+1]
					if gap := next.at.Sub(s.at); gap < 1900*time.Millisecond {
						t.Errorf("%s %s came %s after the 429 with Retry-After: 2", next.method, next.path, gap)
					}
					return
				}
			}
			t.Fatal("the refused request was never sent")
		})
	}
}

// A 201 to a POST that asked for no mount claims a blob never sent.
func TestUploadRefusesA201WithoutAMount(t *testing.T) {
	reg := newHooked(t)
	reg.setHook(func(w http.ResponseWriter, req *http.Request) bool {
		if req.Method == http.MethodPost && strings.HasSuffix(req.URL.Path, "/blobs/uploads/") {
			w.Header().Set("Location", "/v2/team/app/blobs/sha256:0")
			w.WriteHeader(http.StatusCreated)
			return true
		}
		return false
	})
	r := repoOf(t, &reg.Endpoint, "team/app", registry.Access{Push: true})
	blob := []byte("never sent")
	d := digestOf(blob)
	mounted, err := r.Upload(context.Background(), d, int64(len(blob)), opener(blob, nil))
	if err == nil || mounted || !strings.Contains(err.Error(), "201") || !strings.Contains(err.Error(), d.String()) {
		t.Errorf("POST answered 201 without a mount: mounted %v, %v; want an error naming the blob and the answer", mounted, err)
	}
	if n := len(reg.requests(http.MethodPost)); n != 1 {
		t.Errorf("%d sessions, want 1: the registry would answer the same", n)
	}
}

// A blob PUT answered 201 with another digest than the one sent fails,
// naming both.
func TestUploadRefusesAnotherDigest(t *testing.T) {
	reg := newHooked(t)
	zero := "sha256:" + strings.Repeat("0", 64)
	reg.setHook(func(w http.ResponseWriter, req *http.Request) bool {
		if req.Method == http.MethodPut && strings.Contains(req.URL.Path, "/blobs/uploads/") {
			_, _ = io.Copy(io.Discard, req.Body)
			w.Header().Set("Docker-Content-Digest", zero)
			w.WriteHeader(http.StatusCreated)
			return true
		}
		return false
	})
	r := repoOf(t, &reg.Endpoint, "team/app", registry.Access{Push: true})
	blob := []byte("stored under another digest")
	d := digestOf(blob)
	_, err := r.Upload(context.Background(), d, int64(len(blob)), opener(blob, nil))
	if err == nil || !strings.Contains(err.Error(), zero) || !strings.Contains(err.Error(), d.String()) {
		t.Errorf("PUT answered 201 with digest %s: %v; want an error naming both digests", zero, err)
	}
	if err := r.UploadStream(context.Background(), d, int64(len(blob)), bytes.NewReader(blob)); err == nil || !strings.Contains(err.Error(), zero) {
		t.Errorf("streamed, PUT answered 201 with digest %s: %v; want an error naming it", zero, err)
	}
	var target *registry.SourceError
	if errors.As(err, &target) {
		t.Errorf("the registry's answer reported as the source's: %v", err)
	}
}

// isBlobCommit reports whether r is the PUT that completes a blob upload.
func isBlobCommit(r *http.Request) bool {
	return r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/blobs/uploads/")
}

// A blob PUT answered otherwise than 201 with the blob's digest (202, 204,
// or 201 naming none) counts only once a HEAD finds the blob: a front
// that answers without storing fails the upload, naming the blob, the
// repository and the answer, without another session; one that stored it
// passes. A 201 with the digest is taken without a HEAD.
func TestUploadConfirmsACommitThatNamesNoBlob(t *testing.T) {
	ctx := context.Background()
	for _, status := range []int{http.StatusAccepted, http.StatusNoContent, http.StatusCreated} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			reg := newHooked(t)
			r := repoOf(t, &reg.Endpoint, "team/app", registry.Access{Push: true})
			// Answered status, without a digest, and dropped.
			reg.setHook(func(w http.ResponseWriter, req *http.Request) bool {
				if isBlobCommit(req) {
					_, _ = io.Copy(io.Discard, req.Body)
					w.WriteHeader(status)
					return true
				}
				return false
			})
			blob := []byte("answered but never stored")
			d := digestOf(blob)
			check := func(how string, err error) {
				t.Helper()
				if err == nil || !strings.Contains(err.Error(), d.String()) || !strings.Contains(err.Error(), "team/app") ||
					!strings.Contains(err.Error(), fmt.Sprint(status)) || !strings.Contains(err.Error(), "does not hold") {
					t.Errorf("%s, the PUT answered %d but not stored: %v; want an error naming the blob, the repository and the answer", how, status, err)
				}
			}
			_, err := r.Upload(ctx, d, int64(len(blob)), opener(blob, nil))
			check("uploaded", err)
			if n := len(reg.requests(http.MethodPost)); n != 1 {
				t.Errorf("%d sessions, want 1: the registry would answer the same", n)
			}
			check("streamed", r.UploadStream(ctx, d, int64(len(blob)), bytes.NewReader(blob)))

			// Stored, answered status without the digest.
			reg.setHook(reg.storedAnswering(t, isBlobCommit, status))
			for i, up := range []func(b []byte) error{
				func(b []byte) error { _, err := r.Upload(ctx, digestOf(b), int64(len(b)), opener(b, nil)); return err },
				func(b []byte) error { return r.UploadStream(ctx, digestOf(b), int64(len(b)), bytes.NewReader(b)) },
			} {
				if err := up(fmt.Appendf(nil, "stored, answered %d, %d", status, i)); err != nil {
					t.Errorf("blob PUT stored and answered %d: %v", status, err)
				}
			}
		})
	}

	// A 201 with the digest: no HEAD.
	reg := newHooked(t)
	r := repoOf(t, &reg.Endpoint, "team/app", registry.Access{Push: true})
	blob := []byte("stored and named")
	if _, err := r.Upload(ctx, digestOf(blob), int64(len(blob)), opener(blob, nil)); err != nil {
		t.Fatal(err)
	}
	if err := r.UploadStream(ctx, digestOf(blob), int64(len(blob)), bytes.NewReader(blob)); err != nil {
		t.Fatal(err)
	}
	if heads := reg.requests(http.MethodHead); len(heads) != 0 {
		t.Errorf("%d HEADs after uploads answered 201 with the digest, want none: %v", len(heads), heads)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in     string
		want   time.Duration
		wantOK bool
	}{
		{"0", 0, true},
		{"7", 7 * time.Second, true},
		{" 3 ", 3 * time.Second, true},
		{"3600", registry.MaxBackoff, true},
		{"99999999999999999", registry.MaxBackoff, true},
		{"Sat, 01 Mar 2025 12:00:10 GMT", 10 * time.Second, true},
		{"Sat, 01 Mar 2025 13:00:00 GMT", registry.MaxBackoff, true},
		{"Sat, 01 Mar 2025 11:00:00 GMT", 0, true},
		{"", 0, false},
		{"-5", 0, false},
		{"soon", 0, false},
		{"1.5", 0, false},
	} {
		got, ok := registry.ParseRetryAfter(tc.in, now)
		if got != tc.want || ok != tc.wantOK {
			t.Errorf("ParseRetryAfter(%q) = %s, %v; want %s, %v", tc.in, got, ok, tc.want, tc.wantOK)
		}
	}
}

// A read is not followed from a registry outside to another host at a
// loopback or private address, or localhost: any registry a lock names
// could otherwise reach the operator's own services through ferry. The
// registry is addressed by a name outside (a dialer takes it to the test
// server); nothing reaches the internal host, and the error names both
// ends. A registry at an internal address itself may redirect to another
// (an air-gapped registry and its storage by IP), and so may a repository
// ferry writes to (the destination, which the operator chose).
func TestReadsAreNotRedirectedToAnotherHostsInternalAddress(t *testing.T) {
	ctx := context.Background()
	elsewhere, sentElsewhere := other(t)
	_, otherPort, err := net.SplitHostPort(strings.TrimPrefix(elsewhere.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	reg := newHooked(t)
	_, port, err := net.SplitHostPort(reg.Host)
	if err != nil {
		t.Fatal(err)
	}
	opts := reg.ClientOptions()
	tr := reg.Transport()
	dial := (&net.Dialer{}).DialContext
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if strings.HasPrefix(addr, "registry.example:") {
			addr = reg.Host
		}
		return dial(ctx, network, addr)
	}
	opts.Transport = tr
	repoAt := func(host string, access registry.Access) *registry.Repo {
		t.Helper()
		repo, err := name.NewRepository(host+":"+port+"/team/app", name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		r, err := registry.New(opts).Repo(ctx, repo, access)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	var to string
	reg.setHook(func(w http.ResponseWriter, req *http.Request) bool {
		if req.Method == http.MethodGet && strings.Contains(req.URL.Path, "/blobs/") {
			http.Redirect(w, req, "http://"+to+req.URL.Path, http.StatusTemporaryRedirect)
			return true
		}
		return false
	})
	d := digestOf([]byte("anything"))
	for _, internal := range []string{"127.0.0.1:" + otherPort, "localhost:" + otherPort} {
		to = internal
		_, err := repoAt("registry.example", registry.Access{}).GetBlob(ctx, d)
		if err == nil || !strings.Contains(err.Error(), "registry.example:"+port) || !strings.Contains(err.Error(), internal) || !strings.Contains(err.Error(), "loopback, private or link-local") {
			t.Errorf("blob GET redirected from registry.example to %s: %v; want it refused, naming both", internal, err)
		}
		if got := sentElsewhere(); len(got) != 0 {
			t.Fatalf("the internal host received %v", got)
		}
	}
	to = "127.0.0.1:" + otherPort
	for what, r := range map[string]*registry.Repo{
		"from a registry at localhost": repoAt("localhost", registry.Access{}),
		"from a destination":           repoAt("registry.example", registry.Access{Push: true}),
	} {
		rc, err := r.GetBlob(ctx, d)
		if err == nil {
			rc.Close()
		}
		if err != nil && strings.Contains(err.Error(), "loopback, private or link-local") {
			t.Errorf("%s: %v; want the redirect followed", what, err)
		}
	}
	if got := sentElsewhere(); len(got) != 2 {
		t.Errorf("the storage received %v, want the two redirects followed", got)
	}
}
