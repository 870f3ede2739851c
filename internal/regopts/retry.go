package regopts

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/ferry-dev/ferry/internal/registry"
)

// retryTransport retries transient failures of requests it can replay.
//
// go-containerregistry's transport retry is not used for this because it
// sleeps without watching the request's context, ignores Retry-After, and
// re-sends the same *http.Request, whose body the first attempt consumed.
type retryTransport struct {
	inner    http.RoundTripper
	attempts int
	backoff  time.Duration
}

// handledKey marks, in the context of the requests retryTransport sends, that
// the transport owns their retries. The mark travels to go-containerregistry
// errors through transport.Error.Request, which is how the predicate above
// the transport knows not to retry them again.
type handledKey struct{}

// exhaustedError is a transient network error that retryTransport already
// retried as often as it was allowed to.
type exhaustedError struct {
	attempts int
	err      error
}

func (e *exhaustedError) Error() string {
	if e.attempts == 1 {
		return fmt.Sprintf("%v (gave up after 1 attempt)", e.err)
	}
	return fmt.Sprintf("%v (gave up after %d attempts)", e.err, e.attempts)
}

func (e *exhaustedError) Unwrap() error { return e.err }

// RoundTrip implements http.RoundTripper.
func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !replayable(req) {
		// A streamed body is gone after the first attempt; the caller
		// (go-containerregistry's upload retry) must restart from the source.
		return t.inner.RoundTrip(req)
	}
	ctx := context.WithValue(req.Context(), handledKey{}, true)
	for attempt := 1; ; attempt++ {
		r := req.Clone(ctx)
		if attempt > 1 && req.GetBody != nil {
			body, err := req.GetBody()
			if err != nil {
				return nil, fmt.Errorf("%s %s: replay request body: %w", req.Method, urlForError(req), err)
			}
			r.Body = body
		}
		resp, err := t.inner.RoundTrip(r)
		wait, again := t.shouldRetry(ctx, resp, err, attempt)
		if !again {
			return resp, err
		}
		if attempt >= t.attempts {
			if err != nil {
				return nil, &exhaustedError{attempts: attempt, err: err}
			}
			// The caller sees the registry's own error response; its
			// Request carries handledKey, so nothing above retries it.
			return resp, nil
		}
		if resp != nil {
			discard(resp)
		}
		if err := sleep(ctx, wait); err != nil {
			return nil, fmt.Errorf("%s %s: waiting to retry after attempt %d: %w", req.Method, urlForError(req), attempt, err)
		}
	}
}

// shouldRetry decides whether an attempt's outcome is transient and, if so,
// how long to wait before the next one.
func (t *retryTransport) shouldRetry(ctx context.Context, resp *http.Response, err error, attempt int) (time.Duration, bool) {
	if ctx.Err() != nil {
		return 0, false
	}
	if err != nil {
		return t.backoffFor(attempt), transientNetError(err)
	}
	if !retryableStatus(resp.StatusCode) {
		return 0, false
	}
	wait := t.backoffFor(attempt)
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		if ra, ok := registry.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok && ra > wait {
			wait = ra
		}
	}
	return wait, true
}

// backoffFor is the wait after the given attempt, as every retry of ferry
// waits (registry.BackoffFor): jitter keeps parallel uploads that failed
// together from retrying in lockstep.
func (t *retryTransport) backoffFor(attempt int) time.Duration {
	return registry.BackoffFor(t.backoff, attempt)
}

// replayable reports whether req can be sent again: it has no body, or
// net/http knows how to produce a fresh copy of it, and it does not write
// into a blob upload session.
func replayable(req *http.Request) bool {
	if writesUploadSession(req) {
		return false
	}
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
}

// writesUploadSession reports whether req sends blob data into an upload
// session (a PATCH, or a PUT with a body). The registry may already hold
// part of the bytes of a failed attempt, and answers a resend into the same
// session with 416; only a new session, which go-containerregistry's upload
// retry opens from the layer, can repeat it.
func writesUploadSession(req *http.Request) bool {
	if req.URL == nil || !strings.Contains(req.URL.Path, "/blobs/uploads/") {
		return false
	}
	hasBody := req.Body != nil && req.Body != http.NoBody && req.ContentLength != 0
	return req.Method == http.MethodPatch || (req.Method == http.MethodPut && hasBody)
}

// retryableStatus is 408, 429 and every 5xx except those that say the
// request itself is unsupported.
func retryableStatus(code int) bool {
	switch code {
	case http.StatusRequestTimeout, http.StatusTooManyRequests:
		return true
	case http.StatusNotImplemented, http.StatusHTTPVersionNotSupported:
		return false
	}
	return code >= 500 && code <= 599
}

// transientNetError is registry.Transient: the transport, the upload
// retries and the rereads of a cut response agree on what a retry may cure.
func transientNetError(err error) bool { return registry.Transient(err) }

// retryableAboveTransport is the predicate go-containerregistry's own retry
// loops use. They only ever see failures retryTransport did not handle:
// streamed uploads and anything it could not replay.
func retryableAboveTransport(err error) bool {
	// An expired context and net/http's timeouts look alike here; this loop
	// sleeps without watching the context, so it must not retry either.
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var ex *exhaustedError
	if errors.As(err, &ex) {
		return false
	}
	var te *transport.Error
	if errors.As(err, &te) {
		if te.Request != nil && te.Request.Context().Value(handledKey{}) != nil {
			return false
		}
		return retryableStatus(te.StatusCode) || te.Temporary()
	}
	return transientNetError(err)
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// discard drains a little of a failed response so its connection can be
// reused, then closes it.
func discard(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
}

// urlForError names a request's target without its query, which for blob
// storage redirects can hold signed credentials.
func urlForError(req *http.Request) string {
	return req.URL.Scheme + "://" + req.URL.Host + req.URL.Path
}

// finalForUpload is registry.Options.Final: an upload attempt must not be
// repeated after a request the transport already retried as often as it
// may, nor after a connection failure it does not retry either (refused,
// unknown host): the user hears so at once, as from every other request.
// Failures the transport cannot retry (a request body cut part way, or one
// the transport read after its request ended) are left to the upload,
// which opens a new session; so are the source's own.
func finalForUpload(err error) bool {
	var se *registry.SourceError
	if errors.As(err, &se) || errors.Is(err, registry.ErrBodyClosed) {
		return false
	}
	var ex *exhaustedError
	if errors.As(err, &ex) {
		return true
	}
	var te *transport.Error
	if errors.As(err, &te) {
		return te.Request != nil && te.Request.Context().Value(handledKey{}) != nil && retryableStatus(te.StatusCode)
	}
	return !transientNetError(err) && !errors.Is(err, context.Canceled)
}
