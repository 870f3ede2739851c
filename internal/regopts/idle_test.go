package regopts

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferry-dev/ferry/internal/registry"
)

func TestStalledBodyFailsAfterTheIdleTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		w.Write([]byte(strings.Repeat("x", 100)))
		w.(http.Flusher).Flush()
		select { // then stall, as a broken network does
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)

	// The headers must come within the timeout: 1 s, for a loaded machine.
	rt, err := Options{ResponseHeaderTimeout: time.Second, RetryCount: 1}.transport()
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, srv.URL, nil)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	done := make(chan error, 1)
	go func() {
		_, err := io.ReadAll(resp.Body)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "no data from") {
			t.Fatalf("want a stall error, got %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("reading a stalled body did not fail")
	}
}

func TestSteadyBodyIsNotCutByTheIdleTimeout(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// 10 chunks, 150 ms apart: longer in total than the idle timeout,
		// but never idle for nearly that long, even on a loaded machine.
		for i := 0; i < 10; i++ {
			w.Write([]byte(strings.Repeat("y", 10)))
			w.(http.Flusher).Flush()
			time.Sleep(150 * time.Millisecond)
		}
	}))
	defer srv.Close()
	rt, _ := Options{ResponseHeaderTimeout: 1200 * time.Millisecond, RetryCount: 1}.transport()
	// A blob's bytes: a document would also be held to MinDocumentRate.
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v2/x/blobs/sha256:"+strings.Repeat("0", 64), nil)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || len(b) != 100 {
		t.Fatalf("read %d bytes, %v", len(b), err)
	}
}

func TestAPausingConsumerIsNotAStall(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(strings.Repeat("z", 64<<10)))
	}))
	defer srv.Close()
	// The headers must come within the timeout: 1 s, for a loaded machine.
	const timeout = time.Second
	rt, _ := Options{ResponseHeaderTimeout: timeout, RetryCount: 1}.transport()
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 1024)
	if _, err := resp.Body.Read(buf); err != nil {
		t.Fatal(err)
	}
	// The reader is busy elsewhere for longer than the timeout; the data is
	// all there, so the rest must still read.
	time.Sleep(3 * timeout)
	if _, err := io.ReadAll(resp.Body); err != nil {
		t.Fatalf("a pause of the consumer was taken for a stall: %v", err)
	}
}

func TestUploadToARegistryThatStopsReadingFails(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select { // read nothing of the body: the client's writes back up
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	rt, err := Options{ResponseHeaderTimeout: 500 * time.Millisecond, RetryCount: 1}.transport()
	if err != nil {
		t.Fatal(err)
	}
	body := strings.NewReader(strings.Repeat("u", 256<<20))
	req, _ := http.NewRequest(http.MethodPatch, srv.URL+"/v2/x/blobs/uploads/1", body)
	done := make(chan error, 1)
	go func() {
		resp, err := rt.RoundTrip(req)
		if resp != nil {
			resp.Body.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "took no data") {
			t.Fatalf("want a write stall error, got %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("an upload to a registry that stopped reading hung")
	}
}

// trickle is a real registry whose GET answers, for the paths match
// selects, come one byte every every: never idle for the timeout, but
// slower than any registry a user waits on.
func trickle(inner http.Handler, every time.Duration, match func(path string) bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || !match(r.URL.Path) {
			inner.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		inner.ServeHTTP(rec, r)
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		for _, c := range rec.Body.Bytes() {
			if _, err := w.Write([]byte{c}); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-time.After(every):
			case <-r.Context().Done():
				return
			}
		}
	})
}

// A manifest trickled one byte every 20 ms (its 400-odd bytes would take
// 8 s) fails once the timeout has passed, through go-containerregistry
// and through ferry's own client, naming the reference and saying the
// registry sent too slowly; a blob trickled longer than the timeout, but
// never idle for it, is read whole.
func TestTrickledDocumentFailsAfterTheTimeout(t *testing.T) {
	host := serve(t, trickle(quietRegistry(), 20*time.Millisecond, func(p string) bool { return strings.Contains(p, "/manifests/") }))
	ref := host + "/team/app:v1"
	pushRandom(t, ref)
	o := Options{ResponseHeaderTimeout: 300 * time.Millisecond, RetryCount: 1}
	ctx := context.Background()
	check := func(how string, err error) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), "team/app/manifests/v1") || !strings.Contains(err.Error(), "too slowly") {
			t.Errorf("%s: a manifest trickled one byte every 20 ms: %v; want an error naming it and saying the registry sent too slowly", how, err)
		}
	}
	start := time.Now()
	_, err := head(t, ctx, ref, o) // HEAD: no body, not trickled
	if err != nil {
		t.Fatal(err)
	}
	opts, err := o.RemoteOptions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = remote.Get(mustRef(t, ref), opts...)
	check("go-containerregistry", err)
	copts, err := o.ClientOptions()
	if err != nil {
		t.Fatal(err)
	}
	r, err := registry.New(copts).Repo(ctx, mustRef(t, ref).Context(), registry.Access{})
	if err != nil {
		t.Fatal(err)
	}
	_, _, _, err = r.GetManifest(ctx, "v1", MaxManifestSize)
	check("ferry", err)
	if err == nil || !strings.Contains(err.Error(), "team/app:v1") {
		t.Errorf("ferry's client: %v; want the reference named", err)
	}
	if d := time.Since(start); d > 6*time.Second {
		t.Errorf("two trickled manifests took %s to fail: read whole?", d)
	}

	// A blob trickled for longer than the timeout.
	blobHost := serve(t, trickle(quietRegistry(), 5*time.Millisecond, func(p string) bool { return strings.Contains(p, "/blobs/sha256:") }))
	// readsWhole pushes an image to host and reads its config, which
	// must take longer than the timeout and come whole.
	readsWhole := func(how, host string) {
		t.Helper()
		ref := mustRef(t, host+"/team/app:v1")
		pushRandom(t, ref.String())
		img, err := remote.Image(ref, opts...)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if _, err := img.RawConfigFile(); err != nil {
			t.Fatalf("a config %s one byte every 5 ms: %v", how, err)
		}
		if d := time.Since(start); d < o.ResponseHeaderTimeout {
			t.Fatalf("the config %s took %s, not longer than the timeout: the test exercised nothing", how, d)
		}
	}
	readsWhole("trickled", blobHost)

	// The same, the blob's GET redirected to storage elsewhere (as
	// distribution on S3 does), which trickles it.
	inner := quietRegistry()
	storage := serve(t, trickle(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.URL.Path = "/v2/team/app/blobs/" + strings.TrimPrefix(r.URL.Path, "/data/")
		inner.ServeHTTP(w, r)
	}), 5*time.Millisecond, func(p string) bool { return strings.HasPrefix(p, "/data/") }))
	front := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if i := strings.Index(r.URL.Path, "/blobs/sha256:"); i >= 0 && r.Method == http.MethodGet {
			http.Redirect(w, r, "http://"+storage+"/data/"+r.URL.Path[i+len("/blobs/"):], http.StatusTemporaryRedirect)
			return
		}
		inner.ServeHTTP(w, r)
	}))
	readsWhole("redirected to storage that trickles it", front)
}

func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
