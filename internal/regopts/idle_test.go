package regopts

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
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

	rt, err := Options{ResponseHeaderTimeout: 300 * time.Millisecond, RetryCount: 1}.transport()
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
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
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
	rt, _ := Options{ResponseHeaderTimeout: 200 * time.Millisecond, RetryCount: 1}.transport()
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
	time.Sleep(600 * time.Millisecond)
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
