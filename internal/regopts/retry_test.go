package regopts

import (
	ferryregistry "github.com/ferry-dev/ferry/internal/registry"

	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// fast is the retry policy tests use unless they measure waits.
func fast(attempts int) Options {
	return Options{Anon: true, RetryCount: attempts, RetryBackoff: time.Millisecond}
}

func isManifest(method string) func(*http.Request) bool {
	return func(r *http.Request) bool {
		return r.Method == method && strings.Contains(r.URL.Path, "/manifests/")
	}
}

func status(code int) func(int, http.ResponseWriter, *http.Request) bool {
	return func(_ int, w http.ResponseWriter, r *http.Request) bool {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(code)
		return true
	}
}

// firstN applies inject to the first n matching requests only.
func firstN(n int, inject func(int, http.ResponseWriter, *http.Request) bool) func(int, http.ResponseWriter, *http.Request) bool {
	return func(i int, w http.ResponseWriter, r *http.Request) bool {
		return i <= n && inject(i, w, r)
	}
}

func TestTransientStatusRetriedUpToRetryCount(t *testing.T) {
	for _, code := range []int{http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusTooManyRequests} {
		t.Run(http.StatusText(code), func(t *testing.T) {
			f := &faults{next: quietRegistry(), match: isManifest(http.MethodHead), inject: status(code)}
			host := serve(t, f)
			pushRandom(t, host+"/app:v1")
			f.arm()

			_, err := head(t, context.Background(), host+"/app:v1", fast(3))
			var te *transport.Error
			if !errors.As(err, &te) || te.StatusCode != code {
				t.Fatalf("Head = %v, want the registry's %d", err, code)
			}
			if got := f.count(); got != 3 {
				t.Errorf("registry saw %d attempts, want RetryCount=3", got)
			}
		})
	}
}

func TestTransientStatusRecovers(t *testing.T) {
	f := &faults{next: quietRegistry(), match: isManifest(http.MethodHead), inject: firstN(2, status(http.StatusBadGateway))}
	host := serve(t, f)
	want := pushRandom(t, host+"/app:v1")
	f.arm()

	desc, err := head(t, context.Background(), host+"/app:v1", fast(3))
	if err != nil {
		t.Fatalf("Head after two 502s: %v", err)
	}
	if desc.Digest != want {
		t.Errorf("digest = %s, want %s", desc.Digest, want)
	}
	if got := f.count(); got != 3 {
		t.Errorf("registry saw %d attempts, want 3", got)
	}
}

func TestPermanentStatusNotRetried(t *testing.T) {
	f := &faults{next: quietRegistry(), match: isManifest(http.MethodHead), inject: status(http.StatusNotImplemented)}
	host := serve(t, f)
	pushRandom(t, host+"/app:v1")
	f.arm()

	if _, err := head(t, context.Background(), host+"/app:v1", fast(5)); err == nil {
		t.Fatal("Head succeeded through a 501")
	}
	if got := f.count(); got != 1 {
		t.Errorf("registry saw %d attempts of a 501, want 1", got)
	}
}

func TestDroppedConnectionsRetried(t *testing.T) {
	reset := func(_ int, w http.ResponseWriter, _ *http.Request) bool {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			panic(err)
		}
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // close with RST
		}
		_ = conn.Close()
		return true
	}
	f := &faults{next: quietRegistry(), match: isManifest(http.MethodHead), inject: firstN(2, reset)}
	host := serve(t, f)
	want := pushRandom(t, host+"/app:v1")
	f.arm()

	desc, err := head(t, context.Background(), host+"/app:v1", fast(3))
	if err != nil {
		t.Fatalf("Head after two dropped connections: %v", err)
	}
	if desc.Digest != want {
		t.Errorf("digest = %s, want %s", desc.Digest, want)
	}
	if got := f.count(); got != 3 {
		t.Errorf("registry saw %d attempts, want 3", got)
	}
}

// Uploads run inside go-containerregistry's own retry loop; the requests the
// transport already retried must not be retried again by it.
func TestUploadAttemptsDoNotMultiply(t *testing.T) {
	for _, tc := range []struct {
		name  string
		match func(*http.Request) bool
		write func(host string, opts []remote.Option) error
	}{
		{
			name:  "manifest PUT",
			match: isManifest(http.MethodPut),
			write: func(host string, opts []remote.Option) error {
				img, err := random.Image(256, 1)
				if err != nil {
					return err
				}
				ref, err := name.ParseReference(host + "/app:v1")
				if err != nil {
					return err
				}
				return remote.Write(ref, img, opts...)
			},
		},
		{
			name:  "blob PATCH",
			match: func(r *http.Request) bool { return r.Method == http.MethodPatch },
			write: func(host string, opts []remote.Option) error {
				l, err := random.Layer(1024, "application/octet-stream")
				if err != nil {
					return err
				}
				repo, err := name.NewRepository(host + "/app")
				if err != nil {
					return err
				}
				return remote.WriteLayer(repo, l, opts...)
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &faults{next: quietRegistry(), match: tc.match, inject: status(http.StatusServiceUnavailable)}
			host := serve(t, f)
			f.arm()
			opts, err := fast(3).RemoteOptions(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if err := tc.write(host, opts); err == nil {
				t.Fatal("write succeeded through permanent 503s")
			}
			if got := f.count(); got != 3 {
				t.Errorf("registry saw %d attempts, want RetryCount=3", got)
			}
		})
	}
}

func TestBlobUploadRetriedWithFullBody(t *testing.T) {
	f := &faults{next: quietRegistry(), match: func(r *http.Request) bool { return r.Method == http.MethodPatch },
		inject: firstN(1, status(http.StatusServiceUnavailable))}
	host := serve(t, f)
	f.arm()
	l, err := random.Layer(4096, "application/octet-stream")
	if err != nil {
		t.Fatal(err)
	}
	repo, err := name.NewRepository(host + "/app")
	if err != nil {
		t.Fatal(err)
	}
	opts, err := fast(3).RemoteOptions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteLayer(repo, l, opts...); err != nil {
		t.Fatalf("WriteLayer after one 503: %v", err)
	}
	if got := f.count(); got != 2 {
		t.Errorf("registry saw %d PATCHes, want 2", got)
	}
	// The registry verified the digest on commit; read it back and check
	// the bytes against our own hash of what we generated.
	rc, err := l.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	local, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(local)
	want := "sha256:" + hex.EncodeToString(sum[:])
	resp, err := http.Get("http://" + host + "/v2/app/blobs/" + want)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, local) {
		t.Errorf("GET blob %s = %d with %d bytes, want 200 with the %d uploaded bytes", want, resp.StatusCode, len(got), len(local))
	}
}

// The transport replays a body only when net/http can produce a fresh copy.
func TestOnlyReplayableBodiesRetried(t *testing.T) {
	payload := []byte("ferry blob payload, uploaded in one POST")
	sum := sha256.Sum256(payload)
	digest := "sha256:" + hex.EncodeToString(sum[:])

	for _, tc := range []struct {
		name      string
		body      io.Reader
		wantCode  int
		wantTries int
	}{
		{"replayable bytes.Reader", bytes.NewReader(payload), http.StatusCreated, 2},
		{"one-shot reader", io.NopCloser(bytes.NewReader(payload)), http.StatusServiceUnavailable, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &faults{next: quietRegistry(), match: func(r *http.Request) bool { return r.Method == http.MethodPost },
				inject: firstN(1, status(http.StatusServiceUnavailable))}
			host := serve(t, f)
			f.arm()
			rt, err := fast(3).transport()
			if err != nil {
				t.Fatal(err)
			}
			req, err := http.NewRequest(http.MethodPost, "http://"+host+"/v2/app/blobs/uploads/?digest="+digest, tc.body)
			if err != nil {
				t.Fatal(err)
			}
			req.ContentLength = int64(len(payload))
			resp, err := (&http.Client{Transport: rt}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.wantCode || f.count() != tc.wantTries {
				t.Errorf("got %d after %d attempts, want %d after %d", resp.StatusCode, f.count(), tc.wantCode, tc.wantTries)
			}
		})
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	for _, tc := range []struct {
		code  int
		value func() string
		min   time.Duration
	}{
		{http.StatusTooManyRequests, func() string { return "1" }, time.Second},
		// HTTP dates have whole seconds: 2s ahead is at least 1s ahead.
		{http.StatusServiceUnavailable, func() string { return time.Now().Add(2 * time.Second).UTC().Format(http.TimeFormat) }, time.Second},
	} {
		t.Run(http.StatusText(tc.code), func(t *testing.T) {
			t.Parallel()
			inject := func(_ int, w http.ResponseWriter, _ *http.Request) bool {
				w.Header().Set("Retry-After", tc.value())
				w.WriteHeader(tc.code)
				return true
			}
			f := &faults{next: quietRegistry(), match: isManifest(http.MethodHead), inject: firstN(1, inject)}
			host := serve(t, f)
			want := pushRandom(t, host+"/app:v1")
			f.arm()

			desc, err := head(t, context.Background(), host+"/app:v1", fast(3))
			if err != nil {
				t.Fatal(err)
			}
			if desc.Digest != want {
				t.Errorf("digest = %s, want %s", desc.Digest, want)
			}
			hits := f.times()
			if len(hits) != 2 {
				t.Fatalf("registry saw %d attempts, want 2", len(hits))
			}
			if gap := hits[1].Sub(hits[0]); gap < tc.min {
				t.Errorf("retried after %s, want at least the Retry-After of %s", gap, tc.min)
			}
		})
	}
}

func TestRetryWaitStopsWithContext(t *testing.T) {
	inject := func(_ int, w http.ResponseWriter, _ *http.Request) bool {
		w.Header().Set("Retry-After", "30")
		w.WriteHeader(http.StatusTooManyRequests)
		return true
	}
	f := &faults{next: quietRegistry(), match: isManifest(http.MethodHead), inject: inject}
	host := serve(t, f)
	pushRandom(t, host+"/app:v1")
	f.arm()

	// Long enough for the ping and the first HEAD on a loaded machine,
	// far shorter than the 30 s the registry asks to wait.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	_, err := head(t, ctx, host+"/app:v1", fast(3))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Head = %v, want context.DeadlineExceeded", err)
	}
	if elapsed := time.Since(start); elapsed > 15*time.Second {
		t.Errorf("Head took %s; the wait ignored the context", elapsed)
	}
	if got := f.count(); got != 1 {
		t.Errorf("registry saw %d attempts, want 1", got)
	}
}

func TestResponseHeaderTimeout(t *testing.T) {
	stall := func(_ int, _ http.ResponseWriter, r *http.Request) bool {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
		return true
	}
	f := &faults{next: quietRegistry(), match: isManifest(http.MethodHead), inject: stall}
	host := serve(t, f)
	pushRandom(t, host+"/app:v1")
	f.arm()

	o := fast(2)
	o.ResponseHeaderTimeout = time.Second
	start := time.Now()
	_, err := head(t, context.Background(), host+"/app:v1", o)
	if err == nil || !strings.Contains(err.Error(), "timeout awaiting response headers") {
		t.Fatalf("Head = %v, want a response header timeout", err)
	}
	if !strings.Contains(err.Error(), "after 2 attempts") {
		t.Errorf("error %q does not say how often it tried", err)
	}
	if elapsed := time.Since(start); elapsed > 9*time.Second {
		t.Errorf("Head took %s with a 1s header timeout", elapsed)
	}
	if got := f.count(); got != 2 {
		t.Errorf("registry saw %d attempts, want 2", got)
	}
}

func TestBackoffGrowsAndIsCapped(t *testing.T) {
	rt := &retryTransport{backoff: time.Second}
	for attempt, base := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 10: MaxRetryWait} {
		got := rt.backoffFor(attempt)
		if got < base || got > base+base/10 {
			t.Errorf("backoffFor(%d) = %s, want within [%s, %s]", attempt, got, base, base+base/10)
		}
	}
}

// TestClientUploadAttemptsDoNotMultiply: ferry's registry client opens a new
// session for a failed upload, but a request the transport already retried
// as often as it may is final: a POST answered 503 is sent RetryCount
// times, not RetryCount squared; a PUT with the body, which the transport
// cannot replay, is sent once per upload attempt.
func TestClientUploadAttemptsDoNotMultiply(t *testing.T) {
	for _, tc := range []struct {
		name  string
		match func(*http.Request) bool
	}{
		{"session POST", func(r *http.Request) bool { return r.Method == http.MethodPost }},
		{"blob PUT", func(r *http.Request) bool {
			return r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/blobs/uploads/")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &faults{next: quietRegistry(), match: tc.match, inject: status(http.StatusServiceUnavailable)}
			host := serve(t, f)
			f.arm()
			copts, err := fast(3).ClientOptions()
			if err != nil {
				t.Fatal(err)
			}
			copts.Backoff = time.Millisecond
			repo, err := name.NewRepository(host + "/app")
			if err != nil {
				t.Fatal(err)
			}
			r, err := ferryregistry.New(copts).Repo(context.Background(), repo, ferryregistry.Access{Push: true})
			if err != nil {
				t.Fatal(err)
			}
			blob := []byte("blob")
			sum := sha256.Sum256(blob)
			d := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
			_, err = r.Upload(context.Background(), d, int64(len(blob)), func() (io.ReadCloser, error) {
				return io.NopCloser(strings.NewReader(string(blob))), nil
			})
			if err == nil {
				t.Fatal("upload succeeded through permanent 503s")
			}
			if got := f.count(); got != 3 {
				t.Errorf("registry saw %d attempts, want RetryCount=3", got)
			}
		})
	}
}
