package testregistry

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Fault is what a FaultProxy does to a request that a Rule selects.
type Fault int

const (
	// FaultStatus answers Rule.Status (503 when zero) with a registry-style
	// JSON error body, without forwarding the request.
	FaultStatus Fault = iota + 1
	// FaultRetryAfter answers 429 Too Many Requests with a Retry-After header
	// of Rule.RetryAfter rounded up to whole seconds.
	FaultRetryAfter
	// FaultDrop takes over the connection and closes it without a response,
	// as a crashed server or a broken network does.
	FaultDrop
	// FaultStall waits Rule.Delay and then forwards the request. With a zero
	// Delay it waits until the client gives up (its context ends) or the
	// proxy closes, and forwards nothing: a hung registry.
	FaultStall
	// FaultLink forwards the request and replaces the Link header of the
	// response with Rule.Link, in which a "%d" becomes the number of
	// requests the rule has matched: a tag list whose pagination points
	// back to a page already served, or on to new pages for ever.
	FaultLink
	// FaultLateAnswer forwards the request at once and holds the answer's
	// headers Rule.Delay once the registry has handled it: a registry that
	// stored the blob (distribution on S3 copies it as the PUT commits)
	// but answers after the client stopped waiting.
	FaultLateAnswer
)

// Rule selects requests and says which fault they get. Zero-valued selectors
// match everything, so Rule{Fault: FaultDrop, Times: 1} drops the next
// request whatever it is.
type Rule struct {
	// Method matches the HTTP method exactly; empty matches any.
	Method string
	// Kind matches what the request addresses; empty matches any.
	Kind Kind
	// Path must match the URL path; nil matches any.
	Path *regexp.Regexp

	Fault      Fault
	Status     int           // FaultStatus
	RetryAfter time.Duration // FaultRetryAfter
	Delay      time.Duration // FaultStall
	Link       string        // FaultLink

	// Times is how many matching requests get the fault; after that the rule
	// lets requests through. Zero means every matching request.
	Times int
	// AfterUploads arms the rule only once the proxy has forwarded this many
	// completed blob uploads (see FaultProxy.Uploads), to make a registry
	// fail part way through a push.
	AfterUploads int
}

// FailAfterUploads returns a rule that answers 503 to every request once n
// blob uploads have completed through the proxy: a registry that dies in the
// middle of an import.
func FailAfterUploads(n int) Rule {
	return Rule{Fault: FaultStatus, Status: http.StatusServiceUnavailable, AfterUploads: n}
}

type activeRule struct {
	Rule
	hits int
}

// FaultProxy is a reverse proxy on loopback in front of a Registry that
// injects faults according to its rules, which tests may change while it
// runs. Its Endpoint carries the target's credentials and CA, and it serves
// TLS with the target's certificate when the target does, so a client
// configured for the proxy is configured exactly as for the registry.
type FaultProxy struct {
	Endpoint

	rec  *recorder
	srv  *httptest.Server
	rp   *httputil.ReverseProxy
	done chan struct{}
	once sync.Once

	mu      sync.Mutex
	rules   []*activeRule
	uploads int
}

// NewFaultProxy starts a proxy to target with the given rules installed.
func NewFaultProxy(t testing.TB, target *Registry, rules ...Rule) *FaultProxy {
	t.Helper()
	targetURL, err := url.Parse(target.URL)
	if err != nil {
		t.Fatalf("testregistry: parse target URL %s: %v", target.URL, err)
	}
	p := &FaultProxy{rec: newRecorder(), done: make(chan struct{})}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(targetURL)
			// The registry builds upload Location URLs from the Host it
			// sees; keeping the client's Host keeps later upload requests
			// going through the proxy instead of around it.
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
		},
		Transport:      target.Transport(),
		ModifyResponse: p.noteResponse,
		// The default handler logs to stderr; a failed forward is already
		// visible to the test as a 502.
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, _ error) {
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	p.SetRules(rules...)

	p.srv = httptest.NewUnstartedServer(p.rec.wrap(http.HandlerFunc(p.serve)))
	p.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	if target.srv.TLS != nil {
		// The target's certificate names every loopback address, so the
		// target's CA vouches for the proxy too.
		p.srv.TLS = target.srv.TLS.Clone()
		p.srv.StartTLS()
	} else {
		p.srv.Start()
	}
	t.Cleanup(p.Close)

	p.Endpoint = target.Endpoint
	p.URL = p.srv.URL
	p.Host = strings.TrimPrefix(strings.TrimPrefix(p.srv.URL, "https://"), "http://")
	return p
}

// SetRules replaces every rule, forgetting their hit counts. With no
// arguments it lets all requests through.
func (p *FaultProxy) SetRules(rules ...Rule) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = p.rules[:0]
	for _, r := range rules {
		p.rules = append(p.rules, &activeRule{Rule: r})
	}
}

// AddRule appends a rule; earlier rules take precedence when several match.
func (p *FaultProxy) AddRule(r Rule) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = append(p.rules, &activeRule{Rule: r})
}

// Hits returns how many faults each current rule has injected, in rule
// order.
func (p *FaultProxy) Hits() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	hits := make([]int, len(p.rules))
	for i, r := range p.rules {
		hits[i] = r.hits
	}
	return hits
}

// Uploads returns how many blob uploads the registry has completed through
// the proxy: upload requests answered 201 Created, that is a committing PUT,
// a monolithic POST or a cross-repository mount.
func (p *FaultProxy) Uploads() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.uploads
}

// Counts returns the requests the proxy has received (faulted or not) by
// method and kind, since it started or since the last ResetCounts.
func (p *FaultProxy) Counts() Counts { return p.rec.counts() }

// Requests returns every request the proxy has received, with the status
// the client saw (0 for a dropped connection).
func (p *FaultProxy) Requests() []Request { return p.rec.requests() }

// ResetCounts forgets the requests received so far.
func (p *FaultProxy) ResetCounts() { p.rec.reset() }

// Settle waits, at most 5 s, until every request the proxy has received is
// answered and recorded (see Registry.Settle).
func (p *FaultProxy) Settle() { p.rec.settle(5 * time.Second) }

// Close stops the proxy, ending stalled requests first so that it does not
// wait for them. It is safe to call more than once; t.Cleanup calls it too.
func (p *FaultProxy) Close() {
	p.once.Do(func() {
		close(p.done)
		p.srv.Close()
	})
}

// match returns the first armed rule selecting the request and charges it one
// hit (returning how many it has had), or nil when the request should pass.
func (p *FaultProxy) match(method string, kind Kind, path string) (*Rule, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.rules {
		switch {
		case r.Method != "" && r.Method != method,
			r.Kind != "" && r.Kind != kind,
			r.Path != nil && !r.Path.MatchString(path),
			r.Times > 0 && r.hits >= r.Times,
			p.uploads < r.AfterUploads:
			continue
		}
		r.hits++
		rule := r.Rule
		return &rule, r.hits
	}
	return nil, 0
}

func (p *FaultProxy) serve(w http.ResponseWriter, r *http.Request) {
	kind, _, _ := classify(r.URL.Path)
	rule, hits := p.match(r.Method, kind, r.URL.Path)
	if rule == nil {
		p.rp.ServeHTTP(w, r)
		return
	}
	switch rule.Fault {
	case FaultLink:
		link := rule.Link
		if strings.Contains(link, "%d") {
			link = strings.ReplaceAll(link, "%d", strconv.Itoa(hits))
		}
		p.rp.ServeHTTP(&linkWriter{ResponseWriter: w, link: link}, r)
	case FaultRetryAfter:
		secs := int((rule.RetryAfter + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		writeRegistryError(w, http.StatusTooManyRequests, "TOOMANYREQUESTS")
	case FaultDrop:
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			// Cannot happen over HTTP/1.1, which is all httptest serves;
			// a 502 is the nearest thing to a broken connection.
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		_ = conn.Close()
	case FaultLateAnswer:
		p.rp.ServeHTTP(&lateWriter{ResponseWriter: w, hold: func() { p.wait(r.Context(), rule.Delay) }}, r)
	case FaultStall:
		if !p.wait(r.Context(), rule.Delay) {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		p.rp.ServeHTTP(w, r)
	default:
		status := rule.Status
		if status == 0 {
			status = http.StatusServiceUnavailable
		}
		writeRegistryError(w, status, "UNAVAILABLE")
	}
}

// wait sleeps for d (forever when d is zero) and reports whether the request
// should still go ahead: false when its client left or the proxy is closing.
func (p *FaultProxy) wait(ctx context.Context, d time.Duration) bool {
	var timeout <-chan time.Time
	if d > 0 {
		timer := time.NewTimer(d)
		defer timer.Stop()
		timeout = timer.C
	}
	select {
	case <-timeout:
		return true
	case <-ctx.Done():
		return false
	case <-p.done:
		return false
	}
}

// noteResponse counts completed blob uploads for Rule.AfterUploads.
func (p *FaultProxy) noteResponse(resp *http.Response) error {
	if resp.StatusCode != http.StatusCreated {
		return nil
	}
	if kind, _, _ := classify(resp.Request.URL.Path); kind != KindUpload {
		return nil
	}
	p.mu.Lock()
	p.uploads++
	p.mu.Unlock()
	return nil
}

// writeRegistryError answers the way a registry does, so clients parse the
// injected error exactly as they would a real one.
func writeRegistryError(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, `{"errors":[{"code":"`+code+`","message":"testregistry: injected fault"}]}`)
}

// linkWriter sets the Link header once the reverse proxy has copied the
// registry's headers, just before they are sent.
type linkWriter struct {
	http.ResponseWriter
	link string
}

func (w *linkWriter) WriteHeader(code int) {
	w.Header().Set("Link", w.link)
	w.ResponseWriter.WriteHeader(code)
}

func (w *linkWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// lateWriter holds a response's headers until hold returns.
type lateWriter struct {
	http.ResponseWriter
	hold func()
	once sync.Once
}

func (w *lateWriter) WriteHeader(code int) {
	w.once.Do(w.hold)
	w.ResponseWriter.WriteHeader(code)
}

func (w *lateWriter) Write(b []byte) (int, error) {
	w.once.Do(w.hold)
	return w.ResponseWriter.Write(b)
}

func (w *lateWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
