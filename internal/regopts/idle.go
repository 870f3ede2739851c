package regopts

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"sync"
	"sync/atomic"
	"time"
)

// MinDocumentRate is the rate, in bytes a second, that a bounded document
// (anything but a blob's bytes: a manifest, a tag list or referrers page,
// a token, an error body) must keep up on average once the response-header
// timeout has passed since its body began: a registry trickling one byte
// every few seconds, never idle for the timeout, would otherwise hold
// ferry for hours on a 4 MiB manifest, or days on a tag list page. A
// document of size S thus has the timeout plus S/MinDocumentRate (a 4 MiB
// manifest 64 s, a 96 MiB tag list page 25 min), counting only the time
// spent waiting for it. A blob's body is held only to the idle rule: a
// slow link may carry a large layer at any rate.
const MinDocumentRate = 64 << 10

// idleTransport fails a response whose body stops flowing for longer than
// idle. ResponseHeaderTimeout only covers the wait for headers: a registry
// or network that stalls in the middle of a blob would otherwise hang an
// unattended export or copy for ever. Only time spent inside Read counts, so
// a consumer that pauses (a slow pipe, a destination taking its time) is
// never blamed on the registry. A body that is not a blob's must also
// keep up MinDocumentRate once idle has passed.
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
	b := &idleBody{rc: resp.Body, ctx: ctx, cancel: cancel, idle: t.idle,
		stalled: fmt.Errorf("no data from %s for %s (--registry-response-header-timeout)", req.URL.Host, t.idle)}
	if !blobBody(req, resp) {
		b.document = fmt.Sprintf("%s %s://%s%s", req.Method, req.URL.Scheme, req.URL.Host, req.URL.Path)
	}
	b.cause.Store(&b.stalled)
	b.timer = time.AfterFunc(t.idle, func() { cancel(*b.cause.Load()) })
	b.timer.Stop() // armed only while a Read waits
	resp.Body = b
	return resp, nil
}

// blobPath is the path of a blob's bytes in the distribution API.
var blobPath = regexp.MustCompile(`^/v2/.+/blobs/[^/]+$`)

// blobBody reports whether resp carries a blob's bytes: a 2xx answer to a
// GET of a blob, or of the storage a blob's GET was redirected to. What
// was asked for decides, not where the registry sent the client: a
// manifest's GET redirected to a blob's path is still a document's.
func blobBody(req *http.Request, resp *http.Response) bool {
	if req.Method != http.MethodGet || resp.StatusCode < 200 || resp.StatusCode > 299 {
		return false
	}
	return blobPath.MatchString(firstRequest(req).URL.Path)
}

// firstRequest returns the request that began req's chain of redirects
// (req itself when it follows none): net/http links each redirected
// request to the answer that caused it.
func firstRequest(req *http.Request) *http.Request {
	for req.Response != nil && req.Response.Request != nil {
		req = req.Response.Request
	}
	return req
}

// idleBody arms its timer for the length of each Read and cancels the
// request when it fires.
type idleBody struct {
	rc      io.ReadCloser
	ctx     context.Context
	cancel  context.CancelCauseFunc
	idle    time.Duration
	timer   *time.Timer
	once    sync.Once
	stalled error
	// cause is what the timer's firing means for the Read it was armed for.
	cause atomic.Pointer[error]

	// document names the request of a body that is not a blob's ("" for
	// a blob), held to MinDocumentRate once idle has passed.
	document string
	spent    time.Duration // inside Read
	read     int64
}

func (b *idleBody) Read(p []byte) (int, error) {
	wait, cause := b.idle, b.stalled
	if b.document != "" {
		left := b.idle + time.Duration(float64(b.read)/MinDocumentRate*float64(time.Second)) - b.spent
		if left < wait {
			slow := fmt.Errorf("%s: the registry sent %d bytes in %s, too slowly: a document must come within %s (--registry-response-header-timeout) and then at %d KiB/s at least", b.document, b.read, b.spent.Round(time.Millisecond), b.idle, MinDocumentRate>>10)
			if left <= 0 {
				b.cancel(slow)
				return 0, slow
			}
			wait, cause = left, slow
		}
	}
	b.cause.Store(&cause)
	start := time.Now()
	b.timer.Reset(wait)
	n, err := b.rc.Read(p)
	b.timer.Stop()
	b.spent += time.Since(start)
	b.read += int64(n)
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
