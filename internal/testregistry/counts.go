package testregistry

import (
	"bufio"
	"net"
	"net/http"
	"regexp"
	"sync"
	"time"
)

// Kind is what a registry API request addresses, derived from its path.
type Kind string

// The kinds of request of the OCI distribution API. Blob uploads (POST to
// start or mount, PATCH to send data, PUT to commit) are all KindUpload; the
// method tells them apart.
const (
	KindBase      Kind = "base"      // /v2/
	KindCatalog   Kind = "catalog"   // /v2/_catalog
	KindTags      Kind = "tags"      // /v2/<name>/tags/list
	KindManifest  Kind = "manifest"  // /v2/<name>/manifests/<reference>
	KindBlob      Kind = "blob"      // /v2/<name>/blobs/<digest>
	KindUpload    Kind = "upload"    // /v2/<name>/blobs/uploads/[<id>]
	KindReferrers Kind = "referrers" // /v2/<name>/referrers/<digest>
	KindOther     Kind = "other"     // anything else
)

// Request is one request a registry or proxy received.
type Request struct {
	// Method is the HTTP method.
	Method string
	// Kind is what the path addresses.
	Kind Kind
	// Repo is the repository path (no host); empty for base and catalog.
	Repo string
	// Ref is the tag or digest of a manifest, the digest of a blob or
	// referrers request, or the upload id (empty when starting an upload).
	Ref string
	// Path is the URL path as received.
	Path string
	// Status is the response status; 0 when the connection was dropped.
	Status int
}

// Call is a class of requests counted together.
type Call struct {
	Method string // HTTP method, as in Request
	Kind   Kind
}

// Counts tallies requests by method and kind.
type Counts map[Call]int

// Get returns how many requests had this method and kind; an empty method
// counts every method of that kind.
func (c Counts) Get(method string, kind Kind) int {
	if method != "" {
		return c[Call{Method: method, Kind: kind}]
	}
	n := 0
	for call, v := range c {
		if call.Kind == kind {
			n += v
		}
	}
	return n
}

// Total returns the number of requests of every kind.
func (c Counts) Total() int {
	n := 0
	for _, v := range c {
		n += v
	}
	return n
}

// Anchored at the end because repository names may themselves contain
// "blobs" or "manifests" as path components.
var (
	reBase      = regexp.MustCompile(`^/v2/?$`)
	reCatalog   = regexp.MustCompile(`^/v2/_catalog$`)
	reTags      = regexp.MustCompile(`^/v2/(.+)/tags/list$`)
	reManifest  = regexp.MustCompile(`^/v2/(.+)/manifests/([^/]+)$`)
	reUpload    = regexp.MustCompile(`^/v2/(.+)/blobs/uploads/?([^/]*)$`)
	reBlob      = regexp.MustCompile(`^/v2/(.+)/blobs/([^/]+)$`)
	reReferrers = regexp.MustCompile(`^/v2/(.+)/referrers/([^/]+)$`)
)

// classify names what a request path addresses.
func classify(path string) (kind Kind, repo, ref string) {
	switch {
	case reBase.MatchString(path):
		return KindBase, "", ""
	case reCatalog.MatchString(path):
		return KindCatalog, "", ""
	}
	for _, c := range []struct {
		re   *regexp.Regexp
		kind Kind
	}{
		{reTags, KindTags},
		{reManifest, KindManifest},
		{reUpload, KindUpload},
		{reBlob, KindBlob},
		{reReferrers, KindReferrers},
	} {
		if m := c.re.FindStringSubmatch(path); m != nil {
			if len(m) > 2 {
				ref = m[2]
			}
			return c.kind, m[1], ref
		}
	}
	return KindOther, "", ""
}

// recorder is instrumentation around a real handler: it notes each request
// and the status it got, and changes nothing about the exchange.
type recorder struct {
	mu  sync.Mutex
	log []Request
	// inflight counts handlers still running: a request is logged when its
	// handler returns, which can be a moment after the client read the
	// last byte of a large response.
	inflight int
	settled  *sync.Cond
}

func newRecorder() *recorder {
	rec := &recorder{}
	rec.settled = sync.NewCond(&rec.mu)
	return rec
}

func (rec *recorder) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		rec.mu.Lock()
		rec.inflight++
		rec.mu.Unlock()
		defer func() {
			kind, repo, ref := classify(r.URL.Path)
			rec.add(Request{
				Method: r.Method, Kind: kind, Repo: repo, Ref: ref,
				Path: r.URL.Path, Status: sw.result(),
			})
		}()
		h.ServeHTTP(sw, r)
	})
}

func (rec *recorder) add(r Request) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.log = append(rec.log, r)
	rec.inflight--
	if rec.inflight == 0 {
		rec.settled.Broadcast()
	}
}

// settle waits until no handler is running, or until timeout has passed
// (a handler a fault holds, say), so that counts taken after an operation
// returned include its last requests.
func (rec *recorder) settle(timeout time.Duration) {
	timedOut := false
	timer := time.AfterFunc(timeout, func() {
		rec.mu.Lock()
		timedOut = true
		rec.settled.Broadcast()
		rec.mu.Unlock()
	})
	defer timer.Stop()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for rec.inflight > 0 && !timedOut {
		rec.settled.Wait()
	}
}

func (rec *recorder) counts() Counts {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	c := Counts{}
	for _, r := range rec.log {
		c[Call{Method: r.Method, Kind: r.Kind}]++
	}
	return c
}

func (rec *recorder) requests() []Request {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]Request(nil), rec.log...)
}

func (rec *recorder) reset() {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.log = nil
}

// statusWriter remembers the status code. Unwrap lets
// http.ResponseController reach the underlying writer's Flush and Hijack.
type statusWriter struct {
	http.ResponseWriter
	status   int
	hijacked bool
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Hijack marks the exchange as having no response, which is what a dropped
// connection looks like to the client.
func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.hijacked = true
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// result is the status the client saw: net/http sends 200 for a handler
// that writes nothing.
func (w *statusWriter) result() int {
	if w.hijacked {
		return 0
	}
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}
