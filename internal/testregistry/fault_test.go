package testregistry_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferry-dev/ferry/internal/testregistry"
)

// get issues one request on a fresh connection. Keep-alives are off so that
// net/http never silently retries a request on a reused connection the proxy
// dropped, which would hide the drop.
func get(t *testing.T, ep *testregistry.FaultProxy, method, path string) (*http.Response, error) {
	t.Helper()
	tr := ep.Transport()
	tr.DisableKeepAlives = true
	req, err := http.NewRequestWithContext(t.Context(), method, ep.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	return resp, err
}

func statuses(t *testing.T, p *testregistry.FaultProxy, method, path string, n int) []int {
	t.Helper()
	var got []int
	for range n {
		resp, err := get(t, p, method, path)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		got = append(got, resp.StatusCode)
	}
	return got
}

func TestFaultStatusNTimes(t *testing.T) {
	t.Parallel()
	reg := testregistry.NewGGCR(t)
	p := testregistry.NewFaultProxy(t, reg, testregistry.Rule{
		Method: http.MethodGet, Kind: testregistry.KindBase,
		Fault: testregistry.FaultStatus, Status: http.StatusInternalServerError, Times: 2,
	})
	got := statuses(t, p, http.MethodGet, "/v2/", 3)
	if want := []int{500, 500, 200}; !slices.Equal(got, want) {
		t.Errorf("statuses = %v, want %v", got, want)
	}
	if hits := p.Hits(); !slices.Equal(hits, []int{2}) {
		t.Errorf("Hits = %v, want [2]", hits)
	}
	// A request is counted once its handler returns, maybe after its
	// client read the answer.
	p.Settle()
	reg.Settle()
	if n := reg.Counts().Get(http.MethodGet, testregistry.KindBase); n != 1 {
		t.Errorf("registry saw %d GET /v2/, want 1 (faulted requests must not be forwarded)", n)
	}
	if n := p.Counts().Get(http.MethodGet, testregistry.KindBase); n != 3 {
		t.Errorf("proxy saw %d GET /v2/, want 3", n)
	}
}

// FaultLink forwards the request (the registry answers it) and sets the
// Link header, numbering it by the rule's hits.
func TestFaultLink(t *testing.T) {
	t.Parallel()
	reg := testregistry.NewGGCR(t)
	p := testregistry.NewFaultProxy(t, reg, testregistry.Rule{
		Method: http.MethodGet, Kind: testregistry.KindBase,
		Fault: testregistry.FaultLink, Link: `</v2/?page=%d>; rel="next"`,
	})
	for i := 1; i <= 2; i++ {
		resp, err := get(t, p, http.MethodGet, "/v2/")
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf(`</v2/?page=%d>; rel="next"`, i); resp.StatusCode != http.StatusOK || resp.Header.Get("Link") != want {
			t.Errorf("request %d: status %d, Link %q; want 200 and %q", i, resp.StatusCode, resp.Header.Get("Link"), want)
		}
	}
	reg.Settle()
	if n := reg.Counts().Get(http.MethodGet, testregistry.KindBase); n != 2 {
		t.Errorf("registry saw %d GET /v2/, want 2 (forwarded)", n)
	}
}

func TestFaultRetryAfter(t *testing.T) {
	t.Parallel()
	reg := testregistry.NewGGCR(t)
	p := testregistry.NewFaultProxy(t, reg, testregistry.Rule{
		Fault: testregistry.FaultRetryAfter, RetryAfter: 1500 * time.Millisecond, Times: 1,
	})
	resp, err := get(t, p, http.MethodGet, "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("status = %d, want 429", resp.StatusCode)
	}
	if got := resp.Header.Get("Retry-After"); got != "2" {
		t.Errorf("Retry-After = %q, want %q (1.5s rounded up)", got, "2")
	}
	if got := statuses(t, p, http.MethodGet, "/v2/", 1); got[0] != http.StatusOK {
		t.Errorf("after the rule ran out: %d, want 200", got[0])
	}
}

func TestFaultDrop(t *testing.T) {
	t.Parallel()
	reg := testregistry.NewGGCR(t)
	p := testregistry.NewFaultProxy(t, reg, testregistry.Rule{Fault: testregistry.FaultDrop, Times: 1})
	resp, err := get(t, p, http.MethodGet, "/v2/")
	if err == nil {
		t.Fatalf("dropped request got a response: %d", resp.StatusCode)
	}
	if !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "reset") {
		t.Errorf("dropped request: %v, want EOF or connection reset", err)
	}
	if got := statuses(t, p, http.MethodGet, "/v2/", 1); got[0] != http.StatusOK {
		t.Errorf("after the drop: %d, want 200", got[0])
	}
	// The dropped request's handler returns (and is logged) after its
	// client saw the connection close, possibly after the next request:
	// wait for both, and take them in either order.
	p.Settle()
	reqs := p.Requests()
	statuses := map[int]int{}
	for _, r := range reqs {
		statuses[r.Status]++
	}
	if len(reqs) != 2 || statuses[0] != 1 || statuses[http.StatusOK] != 1 {
		t.Errorf("proxy log = %+v, want a dropped (status 0) request and a 200", reqs)
	}
	reg.Settle()
	if n := reg.Counts().Total(); n != 1 {
		t.Errorf("registry saw %d requests, want 1", n)
	}
}

func TestFaultStall(t *testing.T) {
	t.Parallel()
	reg := testregistry.NewGGCR(t)
	const delay = 200 * time.Millisecond
	p := testregistry.NewFaultProxy(t, reg, testregistry.Rule{Fault: testregistry.FaultStall, Delay: delay, Times: 1})
	start := time.Now()
	got := statuses(t, p, http.MethodGet, "/v2/", 1)
	if elapsed := time.Since(start); elapsed < delay {
		t.Errorf("stalled request answered after %v, want at least %v", elapsed, delay)
	}
	if got[0] != http.StatusOK {
		t.Errorf("stalled request: %d, want 200 once forwarded", got[0])
	}
}

func TestFaultStallUntilClientGivesUp(t *testing.T) {
	t.Parallel()
	reg := testregistry.NewGGCR(t)
	p := testregistry.NewFaultProxy(t, reg, testregistry.Rule{Fault: testregistry.FaultStall})
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+"/v2/", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := p.Client().Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("hung registry answered %d", resp.StatusCode)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error = %v, want the client's deadline", err)
	}
	if n := reg.Counts().Total(); n != 0 {
		t.Errorf("registry saw %d requests, want 0", n)
	}
}

func TestFaultProxyCloseEndsStalls(t *testing.T) {
	t.Parallel()
	reg := testregistry.NewGGCR(t)
	p := testregistry.NewFaultProxy(t, reg, testregistry.Rule{Fault: testregistry.FaultStall})
	done := make(chan error, 1)
	go func() {
		resp, err := p.Client().Get(p.URL + "/v2/")
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	for deadline := time.Now().Add(5 * time.Second); !slices.Equal(p.Hits(), []int{1}); {
		if time.Now().After(deadline) {
			t.Fatal("request never reached the proxy")
		}
		time.Sleep(5 * time.Millisecond)
	}
	closed := make(chan struct{})
	go func() { p.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close waited for a stalled request")
	}
	<-done
}

func TestFaultMatching(t *testing.T) {
	t.Parallel()
	reg := testregistry.NewGGCR(t)
	// 418 cannot come from the registry, so it marks the injected fault.
	p := testregistry.NewFaultProxy(t, reg, testregistry.Rule{
		Method: http.MethodPut, Kind: testregistry.KindManifest,
		Path:  regexp.MustCompile(`^/v2/only/`),
		Fault: testregistry.FaultStatus, Status: http.StatusTeapot,
	})
	for _, tc := range []struct {
		method, path string
		faulted      bool
	}{
		{http.MethodPut, "/v2/only/app/manifests/v1", true},
		{http.MethodPut, "/v2/only/other/manifests/v2", true},
		{http.MethodGet, "/v2/only/app/manifests/v1", false},
		{http.MethodPut, "/v2/elsewhere/manifests/v1", false},
		{http.MethodPut, "/v2/only/app/blobs/uploads/x", false},
	} {
		resp, err := get(t, p, tc.method, tc.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := resp.StatusCode == http.StatusTeapot; got != tc.faulted {
			t.Errorf("%s %s: status %d, faulted = %v, want %v", tc.method, tc.path, resp.StatusCode, got, tc.faulted)
		}
	}
	if hits := p.Hits(); !slices.Equal(hits, []int{2}) {
		t.Errorf("Hits = %v, want [2]", hits)
	}

	// Rules change while the proxy runs.
	p.SetRules()
	if resp, err := get(t, p, http.MethodPut, "/v2/only/app/manifests/v1"); err != nil || resp.StatusCode == http.StatusTeapot {
		t.Errorf("after SetRules(): %v, %v; want the registry's own answer", resp, err)
	}
	p.AddRule(testregistry.Rule{Kind: testregistry.KindTags, Fault: testregistry.FaultStatus, Status: http.StatusTeapot, Times: 1})
	if got := statuses(t, p, http.MethodGet, "/v2/x/tags/list", 2); got[0] != http.StatusTeapot || got[1] == http.StatusTeapot {
		t.Errorf("after AddRule: statuses %v, want 418 once", got)
	}
}

// TestFailAfterUploads runs a push through the proxy to a distribution
// registry with TLS and auth, as the end-to-end fault tests will.
func TestFailAfterUploads(t *testing.T) {
	t.Parallel()
	reg := testregistry.NewDistribution(t, testregistry.WithTLS(), testregistry.WithAuth("carol", "pw"))
	p := testregistry.NewFaultProxy(t, reg, testregistry.FailAfterUploads(2))
	if p.CACertPath != reg.CACertPath || p.Username != "carol" || !strings.HasPrefix(p.URL, "https://") {
		t.Fatalf("proxy endpoint %+v does not carry the registry's TLS and credentials", p.Endpoint)
	}
	img := randomImage(t, 3) // four blobs with the config
	ref := p.Repo("mid/app:v1")
	opts := append(p.RemoteOptions(t), remote.WithJobs(1), noRetry)

	err := push(t, ref, img, opts...)
	if statusOf(err) != http.StatusServiceUnavailable {
		t.Fatalf("push through a registry failing after 2 uploads: %v, want a 503", err)
	}
	if n := p.Uploads(); n != 2 {
		t.Errorf("proxy forwarded %d completed uploads, want 2", n)
	}
	reg.Settle()
	c := reg.Counts()
	if n := c.Get(http.MethodPut, testregistry.KindUpload); n != 2 {
		t.Errorf("registry committed %d uploads, want 2", n)
	}
	if n := c.Get(http.MethodPut, testregistry.KindManifest); n != 0 {
		t.Errorf("registry received %d manifest PUTs, want none", n)
	}

	// Heal the registry; the re-run completes, every request still going
	// through the proxy (upload Locations name the proxy, not the registry).
	p.SetRules()
	p.Settle()
	p.ResetCounts()
	reg.ResetCounts()
	if err := push(t, ref, img, opts...); err != nil {
		t.Fatalf("push after healing: %v", err)
	}
	p.Settle()
	reg.Settle()
	for _, kind := range []testregistry.Kind{testregistry.KindUpload, testregistry.KindManifest} {
		for _, method := range []string{http.MethodPost, http.MethodPatch, http.MethodPut} {
			if pc, rc := p.Counts().Get(method, kind), reg.Counts().Get(method, kind); pc != rc {
				t.Errorf("%s %s: proxy saw %d, registry %d; requests bypassed the proxy", method, kind, pc, rc)
			}
		}
	}
	if got, want := pullDigest(t, reg.Repo("mid/app:v1"), reg.RemoteOptions(t)...), manifestDigest(t, img); got != want {
		t.Errorf("pulled %s, want %s", got, want)
	}
}
