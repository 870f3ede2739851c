package regopts

import (
	"context"
	"net"
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
	explained := Explain(err, ref)
	if want := "cannot reach registry " + host + " for " + ref + ": no answer to the TLS handshake within --registry-response-header-timeout"; !strings.HasPrefix(explained.Error(), want) {
		t.Errorf("Explain = %q, want it to start %q", explained, want)
	}
	// One attempt is not "1 attempts".
	if strings.Contains(err.Error(), "1 attempts") || !strings.Contains(err.Error(), "gave up after 1 attempt)") {
		t.Errorf("error %q: want \"gave up after 1 attempt\"", err)
	}
}
