package regopts

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// silentHost listens on loopback, accepts every connection and never
// writes a byte: a wrong port, or a proxy that swallows TLS.
func silentHost(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// --registry-response-header-timeout bounds the TLS handshake too: with
// Go's own 10s, a host that accepts and never answers held every attempt
// 10s whatever the flag said. The same host is asked with a short and a
// ten times longer timeout: each wait follows its timeout (with the
// handshake's fixed 10s both took as long).
func TestTLSHandshakeWaitsTheResponseHeaderTimeout(t *testing.T) {
	host := silentHost(t)
	ref := host + "/x/y:v1"
	wait := func(timeout time.Duration) (time.Duration, error) {
		o := fast(1)
		o.ResponseHeaderTimeout = timeout
		start := time.Now()
		_, err := head(t, context.Background(), ref, o)
		return time.Since(start), err
	}
	short, err := wait(200 * time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "TLS handshake timeout") {
		t.Fatalf("HEAD from a silent host: %v, want a TLS handshake timeout", err)
	}
	long, _ := wait(2 * time.Second)
	if short*3 > long {
		t.Errorf("with a 200ms timeout the silent host held the request %s, with 2s %s: the handshake does not follow the flag", short, long)
	}

	// Said as an unreachable host is, with the flag to change.
	explained := Options{ResponseHeaderTimeout: 200 * time.Millisecond}.Explain(err, ref)
	if want := "cannot reach registry " + host + " for " + ref + ": no answer to the TLS handshake within 200ms (--registry-response-header-timeout)"; !strings.HasPrefix(explained.Error(), want) {
		t.Errorf("Explain = %q, want it to start %q", explained, want)
	}
	// One attempt is not "1 attempts".
	if strings.Contains(err.Error(), "1 attempts") || !strings.Contains(err.Error(), "gave up after 1 attempt)") {
		t.Errorf("error %q: want \"gave up after 1 attempt\"", err)
	}
}

// baseTransport digs the *http.Transport out of what transport builds.
func baseTransport(t *testing.T, rt http.RoundTripper) *http.Transport {
	t.Helper()
	for {
		switch r := rt.(type) {
		case *http.Transport:
			return r
		case cleartextTransport:
			rt = r.inner
		case limitTransport:
			rt = r.inner
		case *retryTransport:
			rt = r.inner
		case idleTransport:
			rt = r.inner
		default:
			t.Fatalf("unexpected %T in the transport", rt)
		}
	}
}

// The flag shortens the handshake's wait and never lengthens it: its 2m
// default for answers held a host that accepts and never answers TLS 2m
// per attempt, where Go's transport gives up after 10s.
func TestTLSHandshakeTimeoutOnlyShortened(t *testing.T) {
	for _, tc := range []struct{ flag, want time.Duration }{
		{0, 10 * time.Second},
		{2 * time.Second, 2 * time.Second},
		{5 * time.Minute, 10 * time.Second},
	} {
		rt, err := Options{ResponseHeaderTimeout: tc.flag}.transport()
		if err != nil {
			t.Fatal(err)
		}
		if got := baseTransport(t, rt).TLSHandshakeTimeout; got != tc.want {
			t.Errorf("--registry-response-header-timeout %s: TLS handshake timeout %s, want %s", tc.flag, got, tc.want)
		}
	}
}
