package testregistry

import (
	"bytes"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
)

// CutProxy forwards TCP connections to a plain-HTTP registry and, when
// armed, cuts the connection that carries a request starting with a given
// prefix ("PATCH /v2/", "PUT /v2/") once a given number of its bytes went
// through: the registry then holds part of the request body, as after a
// network failure in the middle of an upload. It works below HTTP, so
// nothing of the request is rewritten or buffered.
type CutProxy struct {
	Endpoint

	ln net.Listener

	mu     sync.Mutex
	prefix []byte
	after  int64
	armed  int
	cuts   int
}

// NewCutProxy starts a proxy to target, unarmed.
func NewCutProxy(t testing.TB, target *Registry) *CutProxy {
	t.Helper()
	if target.CACertPath != "" {
		t.Fatalf("testregistry: CutProxy reads requests in the clear; the target must not use TLS")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testregistry: %v", err)
	}
	p := &CutProxy{ln: ln}
	p.Endpoint = target.Endpoint
	p.Host = ln.Addr().String()
	p.URL = "http://" + p.Host
	backend := strings.TrimPrefix(target.URL, "http://")
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c, backend)
		}
	}()
	return p
}

// Arm makes the proxy cut the next n connections that carry a request
// starting with prefix, each after after bytes of that request.
func (p *CutProxy) Arm(prefix string, after int64, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.prefix, p.after, p.armed = []byte(prefix), after, n
}

// Cuts returns how many connections the proxy has cut.
func (p *CutProxy) Cuts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cuts
}

// take reports whether a request beginning with b must be cut, and after
// how many bytes.
func (p *CutProxy) take(b []byte) (int64, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.armed == 0 || !bytes.HasPrefix(b, p.prefix) {
		return 0, false
	}
	p.armed--
	p.cuts++
	return p.after, true
}

func (p *CutProxy) serve(c net.Conn, backend string) {
	s, err := net.Dial("tcp", backend)
	if err != nil {
		c.Close()
		return
	}
	go func() {
		_, _ = io.Copy(c, s)
		c.Close()
	}()
	buf := make([]byte, 32<<10)
	var sent, limit int64 = 0, -1
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if limit < 0 {
				// A request starts here only if the connection is new or
				// idle; requests of a kept-alive connection arrive one at
				// a time, so the first read of each starts with its line.
				if l, ok := p.take(buf[:n]); ok {
					limit, sent = l, 0
				}
			}
			if limit >= 0 {
				if sent+int64(n) > limit {
					_, _ = s.Write(buf[:limit-sent])
					s.Close()
					c.Close()
					return
				}
				sent += int64(n)
			}
			if _, werr := s.Write(buf[:n]); werr != nil {
				c.Close()
				return
			}
		}
		if err != nil {
			s.Close()
			return
		}
	}
}
