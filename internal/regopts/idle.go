package regopts

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"time"
)

// idleTransport fails a response whose body stops flowing for longer than
// idle. ResponseHeaderTimeout only covers the wait for headers: a registry
// or network that stalls in the middle of a blob would otherwise hang an
// unattended export or copy for ever. Only time spent inside Read counts, so
// a consumer that pauses (a slow pipe, a destination taking its time) is
// never blamed on the registry.
type idleTransport struct {
	inner http.RoundTripper
	idle  time.Duration
}

// RoundTrip implements http.RoundTripper.
func (t idleTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancelCause(req.Context())
	resp, err := t.inner.RoundTrip(req.WithContext(ctx))
	if err != nil {
		cancel(nil)
		return nil, err
	}
	stalled := fmt.Errorf("no data from %s for %s (--registry-response-header-timeout)", req.URL.Host, t.idle)
	b := &idleBody{rc: resp.Body, ctx: ctx, cancel: cancel, idle: t.idle}
	b.timer = time.AfterFunc(t.idle, func() { cancel(stalled) })
	b.timer.Stop() // armed only while a Read waits
	resp.Body = b
	return resp, nil
}

// idleBody arms its timer for the length of each Read and cancels the
// request when it fires.
type idleBody struct {
	rc     io.ReadCloser
	ctx    context.Context
	cancel context.CancelCauseFunc
	idle   time.Duration
	timer  *time.Timer
	once   sync.Once
}

func (b *idleBody) Read(p []byte) (int, error) {
	b.timer.Reset(b.idle)
	n, err := b.rc.Read(p)
	b.timer.Stop()
	if err != nil && err != io.EOF {
		if cause := context.Cause(b.ctx); cause != nil && cause != context.Canceled {
			return n, cause
		}
	}
	return n, err
}

func (b *idleBody) Close() error {
	b.once.Do(func() { b.timer.Stop() })
	err := b.rc.Close()
	b.cancel(nil)
	return err
}

// writeDeadlineConn fails a write that cannot hand its bytes to the network
// for longer than idle: a registry that stops reading an upload would
// otherwise block it for ever. Only writes get a deadline; an idle pooled
// connection, which writes nothing, is never touched.
type writeDeadlineConn struct {
	net.Conn
	idle time.Duration
}

func (c *writeDeadlineConn) Write(p []byte) (int, error) {
	if err := c.SetWriteDeadline(time.Now().Add(c.idle)); err != nil {
		return 0, err
	}
	n, err := c.Conn.Write(p)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		return n, fmt.Errorf("registry %s took no data for %s (--registry-response-header-timeout): %w", c.RemoteAddr(), c.idle, err)
	}
	return n, err
}

// withWriteDeadlines wraps the connections dial makes.
func withWriteDeadlines(dial func(ctx context.Context, network, addr string) (net.Conn, error), idle time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &writeDeadlineConn{Conn: c, idle: idle}, nil
	}
}
