package testregistry

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// A request is recorded when its handler returns, which can be after the
// client has read the response to its end; settle waits for that.
func TestSettleWaitsForHandlersStillRunning(t *testing.T) {
	rec := newRecorder()
	release := make(chan struct{})
	srv := httptest.NewServer(rec.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "5")
		_, _ = w.Write([]byte("hello"))
		http.NewResponseController(w).Flush()
		<-release // the handler's own clean-up, after the client has it all
	})))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/v2/team/app/blobs/sha256:00")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || string(body) != "hello" {
		t.Fatalf("body %q, %v", body, err)
	}
	if n := rec.counts().Total(); n != 0 {
		t.Fatalf("%d requests recorded while the handler runs, want 0", n)
	}
	go func() {
		time.Sleep(100 * time.Millisecond)
		close(release)
	}()
	rec.settle(10 * time.Second)
	if n := rec.counts().Get(http.MethodGet, KindBlob); n != 1 {
		t.Errorf("%d blob GETs recorded after settle, want 1", n)
	}

	// A handler that never returns does not hold settle past its timeout.
	stuck := make(chan struct{})
	srv2 := httptest.NewServer(rec.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusOK)
		http.NewResponseController(w).Flush()
		<-stuck
	})))
	defer srv2.Close()
	defer close(stuck) // before Close, which waits for the handler
	resp, err = http.Get(srv2.URL + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	start := time.Now()
	rec.settle(200 * time.Millisecond)
	if d := time.Since(start); d < 200*time.Millisecond || d > 5*time.Second {
		t.Errorf("settle with a handler stuck returned after %v, want its 200ms timeout", d)
	}
}
