// Package registry makes the requests of ferry's moves to a registry, and
// only those, over the OCI distribution API: blob and manifest checks, blob
// downloads, blob uploads and manifest PUTs.
//
// go-containerregistry's remote package does all of this too, and ferry
// uses it everywhere else (resolving, pulling, pushing bundles). Its remote
// package, though, spends requests and CPU a move does not need: every
// upload checks the blob again (HEAD) after the caller already did, sends
// it in three requests (POST, PATCH, PUT) where two do, and a manifest PUT
// does not say what digest the registry stored, which costs a HEAD more;
// every download is hashed by go-containerregistry and again by the archive
// writer that must verify it anyway. Here each blob is checked once, sent
// in two requests, each manifest written in one, and downloads come
// unverified for the caller to verify once. Authentication, scheme
// detection and error decoding stay go-containerregistry's (its transport
// package), so credentials and errors behave as everywhere else in ferry.
package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ferry-dev/ferry/internal/ctxio"
	"github.com/ferry-dev/ferry/internal/manifest"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Options configure a Client. The zero value is usable: the Docker config's
// credentials, go-containerregistry's default transport, three attempts per
// upload.
type Options struct {
	// Transport carries every request below authentication: TLS, timeouts
	// and the retries of requests that can be replayed. nil means
	// remote.DefaultTransport.
	Transport http.RoundTripper
	// Keychain gives each registry its credentials; nil means
	// authn.DefaultKeychain.
	Keychain authn.Keychain
	// UserAgent is sent with every request; "" means "ferry".
	UserAgent string
	// UploadAttempts is how many upload sessions a blob gets when one fails
	// part way (a dropped connection, a 5xx, a session the registry lost);
	// 0 means DefaultUploadAttempts. A blob's bytes cannot be replayed into
	// the same session (the registry may already hold part of them), so each
	// attempt opens a new one and reads the blob again from its source.
	UploadAttempts int
	// Backoff is the wait before the second upload attempt, doubled for each
	// further one; 0 means one second.
	Backoff time.Duration
	// ResumeWindow is how many of the last bytes of a streamed upload are
	// kept to resend after a failure (UploadStream); 0 means
	// DefaultResumeWindow.
	ResumeWindow int
	// Final, when set, reports errors a new upload attempt must not repeat:
	// a request the Transport already retried as often as it may (regopts
	// marks those), or a failure it deems permanent (a refused connection,
	// an unknown host). nil retries every connection failure.
	Final func(error) bool
}

// MaxBackoff caps one wait between upload attempts.
const MaxBackoff = time.Minute

// DefaultUploadAttempts is Options.UploadAttempts when it is zero.
const DefaultUploadAttempts = 3

// Client makes requests to registries. It authenticates once per
// repository and access (pull, push, push with mounts from another
// repository) and reuses that for every later request, over the pooled
// connections of Options.Transport. A Client is safe for concurrent use.
type Client struct {
	opts Options

	mu    sync.Mutex
	repos map[repoKey]*repoEntry
	pings map[string]*pingEntry
}

// pingEntry is one registry's answer to GET /v2/, shared by its
// repositories.
type pingEntry struct {
	done chan struct{}
	ch   *transport.Challenge
	err  error
}

type repoKey struct {
	repo  string
	push  bool
	mount string
}

// repoEntry lets concurrent callers wait for one authentication.
type repoEntry struct {
	done chan struct{}
	repo *Repo
	err  error
}

// New returns a Client.
func New(opts Options) *Client {
	if opts.Transport == nil {
		opts.Transport = remote.DefaultTransport
	}
	if opts.Keychain == nil {
		opts.Keychain = authn.DefaultKeychain
	}
	if opts.UserAgent == "" {
		opts.UserAgent = "ferry"
	}
	if opts.UploadAttempts <= 0 {
		opts.UploadAttempts = DefaultUploadAttempts
	}
	if opts.Backoff <= 0 {
		opts.Backoff = time.Second
	}
	if opts.ResumeWindow <= 0 {
		opts.ResumeWindow = DefaultResumeWindow
	}
	return &Client{opts: opts, repos: map[repoKey]*repoEntry{}, pings: map[string]*pingEntry{}}
}

// Access is what a Repo may do.
type Access struct {
	// Push asks for push access (pull is always included).
	Push bool
	// MountFrom is a repository of the same registry whose blobs uploads
	// may mount (pull access to it is asked for too).
	MountFrom *name.Repository
}

// Repo returns a client for one repository with the given access,
// authenticating on first use.
func (c *Client) Repo(ctx context.Context, repo name.Repository, access Access) (*Repo, error) {
	key := repoKey{repo: repo.Name(), push: access.Push}
	if access.MountFrom != nil {
		key.mount = access.MountFrom.Name()
	}
	c.mu.Lock()
	e, ok := c.repos[key]
	if !ok {
		e = &repoEntry{done: make(chan struct{})}
		c.repos[key] = e
	}
	c.mu.Unlock()
	if ok {
		select {
		case <-e.done:
			return e.repo, e.err
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
	e.repo, e.err = c.newRepo(ctx, repo, access)
	if e.err != nil {
		// A failed authentication is not remembered: the next caller tries
		// again (the context of this one may simply have ended).
		c.mu.Lock()
		delete(c.repos, key)
		c.mu.Unlock()
	}
	close(e.done)
	return e.repo, e.err
}

func (c *Client) newRepo(ctx context.Context, repo name.Repository, access Access) (*Repo, error) {
	auth, err := c.opts.Keychain.Resolve(repo)
	if err != nil {
		return nil, fmt.Errorf("credentials for %s: %w", repo, err)
	}
	if anonymous(auth) {
		// A registry that asks for no authentication (its /v2/ answers 200)
		// is asked once, not once per repository: every repository of it
		// shares one transport.
		ch, err := c.ping(ctx, repo.Registry)
		if err != nil {
			return nil, fmt.Errorf("authenticate to %s: %w", repo, err)
		}
		if ch.Scheme == "" {
			scheme := "https"
			if ch.Insecure {
				scheme = "http"
			}
			return &Repo{
				name:   repo,
				access: access,
				client: &http.Client{Transport: transport.NewUserAgent(c.opts.Transport, c.opts.UserAgent), CheckRedirect: redirectPolicy(access)},
				opts:   c.opts,
				scheme: scheme,
			}, nil
		}
	}
	scopes := []string{repo.Scope(transport.PullScope)}
	if access.Push {
		scopes[0] = repo.Scope(transport.PushScope)
	}
	if access.MountFrom != nil {
		scopes = append(scopes, access.MountFrom.Scope(transport.PullScope))
	}
	rt := transport.NewUserAgent(c.opts.Transport, c.opts.UserAgent)
	rt, err = transport.NewWithContext(ctx, repo.Registry, auth, rt, scopes)
	if err != nil {
		return nil, fmt.Errorf("authenticate to %s: %w", repo, err)
	}
	return &Repo{
		name:   repo,
		access: access,
		client: &http.Client{Transport: rt, CheckRedirect: redirectPolicy(access)},
		opts:   c.opts,
	}, nil
}

// maxRedirects is how many redirects a read may follow, as net/http's
// default policy.
const maxRedirects = 10

// checkRedirect follows redirects of reads (GET and HEAD) and refuses
// those of every other request.
//
// Registries redirect reads to where the content is: blob GETs and HEADs
// to storage on another host (distribution's S3 driver presigns both; the
// OCI distribution spec tells clients to expect it of blob GETs), and
// redirectors such as registry.k8s.io send every read, manifests included,
// to the registry that serves it. Following them is safe because no answer
// to a read is taken on trust: blob bytes are verified against their digest
// by the caller, a manifest against its digest and media type
// (GetManifest), a manifest HEAD must name a digest (ManifestDescriptor),
// and a blob HEAD must agree with the blob's size and digest (BlobExists).
//
// A write is another matter: net/http turns a PUT redirected with 302 or
// 303 into a GET, whose 200 would pass for the PUT's success while nothing
// was stored, and re-sends it elsewhere on 307 or 308. No registry
// redirects its writes (upload sessions move through the Location of a
// 202, not through redirects), so a redirected write is a misconfigured
// proxy or a login page: it is an error naming what was asked and where
// the registry pointed.
//
// A read from a registry ferry only reads (a source: any registry a
// bundle's lock names, which its author chooses) is not followed from a
// host outside to a loopback, private or link-local address, or to
// localhost, of another host (go-containerregistry's rule, which pull and
// push follow, against a registry that would make ferry send requests to
// services on the operator's machine or network and print their
// answers). A registry at such an address itself may redirect to its
// storage at another (an air-gapped registry and its MinIO, both by IP),
// and so may a repository ferry writes to (the destination, which the
// operator chose).
func redirectPolicy(access Access) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		err := checkRedirect(req, via)
		first := via[0]
		if err != nil || access.Push || first.Method != http.MethodGet && first.Method != http.MethodHead {
			return err
		}
		from, to := first.URL.Hostname(), req.URL.Hostname()
		if to != from && internalAddress(to) && !internalAddress(from) {
			return &answerError{fmt.Errorf("the registry redirected %s %s to %s, another host at a loopback, private or link-local address, which ferry does not follow from a registry outside them (name that storage by a host name)",
				first.Method, redacted(first.URL), redacted(req.URL))}
		}
		return nil
	}
}

// checkRedirect is the rule for every repository, see redirectPolicy.
func checkRedirect(req *http.Request, via []*http.Request) error {
	first := via[0]
	if first.Method == http.MethodGet || first.Method == http.MethodHead {
		if len(via) >= maxRedirects {
			return fmt.Errorf("stopped after %d redirects", maxRedirects)
		}
		return nil
	}
	status := "a redirect"
	if req.Response != nil {
		status = req.Response.Status
	}
	return redirectError(first, status, req.URL)
}

// internalAddress says whether host is localhost (or a name under
// .localhost, loopback by RFC 6761) or an IP address, in any form a
// resolver may read as one (127.1, 2130706433 and 0x7f.1 are 127.0.0.1 to
// inet_aton), that is loopback, private, link-local, shared (100.64/10,
// where clouds put metadata services) or unspecified.
func internalAddress(host string) bool {
	if n := strings.ToLower(strings.TrimSuffix(host, ".")); n == "localhost" || strings.HasSuffix(n, ".localhost") {
		return true
	}
	host, _, _ = strings.Cut(host, "%") // a zone, which the dialer ignores
	a, err := netip.ParseAddr(host)
	if err != nil {
		var ok bool
		if a, ok = legacyIPv4(host); !ok {
			return false
		}
	}
	a = a.Unmap()
	return a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() || a.IsUnspecified() || sharedSpace.Contains(a)
}

// sharedSpace is RFC 6598's shared address space (carrier-grade NAT),
// which netip does not call private; Alibaba Cloud's metadata service
// answers in it.
var sharedSpace = netip.MustParsePrefix("100.64.0.0/10")

// legacyIPv4 reads the forms inet_aton(3) takes: one to four numbers
// (decimal, 0 octal or 0x hexadecimal) separated by dots, each but the last
// a byte, the last filling the bytes left.
func legacyIPv4(s string) (netip.Addr, bool) {
	parts := strings.Split(s, ".")
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	var v uint64
	for i, p := range parts {
		n, err := strconv.ParseUint(p, 0, 32)
		if err != nil {
			return netip.Addr{}, false
		}
		bits := 8
		if i == len(parts)-1 {
			bits = 8 * (4 - i)
		}
		if n >= 1<<bits {
			return netip.Addr{}, false
		}
		v = v<<bits | n
	}
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true
}

// redirectError names a write the registry redirected to.
func redirectError(req *http.Request, status string, to *url.URL) error {
	where := "nowhere (no Location)"
	if to != nil {
		where = redacted(to)
	}
	return &answerError{fmt.Errorf("the registry answered %s %s with %s to %s: ferry follows redirects only of reads, never of a write",
		req.Method, redacted(req.URL), status, where)}
}

// redacted is u without what may carry a secret (user information, a
// presigned query) for messages.
func redacted(u *url.URL) string {
	v := *u
	v.User = nil
	if v.RawQuery != "" {
		v.RawQuery = "…"
	}
	return v.String()
}

// answerError is an answer of the registry that breaks the protocol (a
// redirected write, a blob claimed without being sent, a digest other than
// the one sent). A new attempt would get the same answer: uploads do not
// retry it.
type answerError struct{ err error }

func (e *answerError) Error() string { return e.err.Error() }
func (e *answerError) Unwrap() error { return e.err }

// retryAfterError is a 429 or 503 whose Retry-After said how long to wait
// before asking again.
type retryAfterError struct {
	err  error
	wait time.Duration
}

func (e *retryAfterError) Error() string {
	return fmt.Sprintf("%v (the registry asks to wait %s)", e.err, e.wait)
}
func (e *retryAfterError) Unwrap() error { return e.err }

// checkError is transport.CheckError for the answer to a write. It keeps
// the Retry-After of a 429 or 503 for the wait before a new attempt (the
// transport does not replay writes into an upload session, so their waits
// are Upload's), and names the Location of a redirect net/http did not
// follow.
func checkError(resp *http.Response, codes ...int) error {
	err := transport.CheckError(resp, codes...)
	if err == nil {
		return nil
	}
	if resp.StatusCode >= 300 && resp.StatusCode < 400 && resp.Request != nil {
		// A redirect net/http did not follow: a 307 of a request whose
		// body it cannot send again.
		loc, _ := resp.Location()
		return redirectError(resp.Request, resp.Status, loc)
	}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		if d, ok := ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
			return &retryAfterError{err: err, wait: d}
		}
	}
	return err
}

// ParseRetryAfter reads a Retry-After value, delay-seconds or an HTTP
// date, capped at MaxBackoff so that a registry cannot park a move for
// hours. A date in the past means "now".
func ParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		if secs >= int64(MaxBackoff/time.Second) {
			return MaxBackoff, true
		}
		return time.Duration(secs) * time.Second, true
	}
	at, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return min(max(at.Sub(now), 0), MaxBackoff), true
}

// checkDigest fails when the registry names, for a blob it says it
// stored, a digest other than d.
func checkDigest(resp *http.Response, d v1.Hash) error {
	if got := resp.Header.Get("Docker-Content-Digest"); got != "" && got != d.String() {
		return &answerError{fmt.Errorf("the registry says it stored digest %s, the blob sent has %s", got, d)}
	}
	return nil
}

// anonymous reports whether auth sends no credentials.
func anonymous(auth authn.Authenticator) bool {
	if auth == authn.Anonymous {
		return true
	}
	cfg, err := auth.Authorization()
	return err == nil && cfg != nil && *cfg == (authn.AuthConfig{})
}

// ping asks a registry, once, how it wants to be authenticated.
func (c *Client) ping(ctx context.Context, reg name.Registry) (*transport.Challenge, error) {
	key := reg.RegistryStr()
	c.mu.Lock()
	e, ok := c.pings[key]
	if !ok {
		e = &pingEntry{done: make(chan struct{})}
		c.pings[key] = e
	}
	c.mu.Unlock()
	if ok {
		select {
		case <-e.done:
			return e.ch, e.err
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
	e.ch, e.err = transport.Ping(ctx, reg, transport.NewUserAgent(c.opts.Transport, c.opts.UserAgent))
	if e.err != nil {
		c.mu.Lock()
		delete(c.pings, key)
		c.mu.Unlock()
	}
	close(e.done)
	return e.ch, e.err
}

// Repo makes requests to one repository.
type Repo struct {
	name   name.Repository
	access Access
	client *http.Client
	opts   Options
	// scheme is the URL scheme the registry's ping found, when this Repo
	// was built without go-containerregistry's transport, which finds it
	// itself otherwise.
	scheme string
}

// Name returns the repository.
func (r *Repo) Name() name.Repository { return r.name }

func (r *Repo) url(path string) *url.URL {
	scheme := r.scheme
	if scheme == "" {
		scheme = r.name.Registry.Scheme()
	}
	return &url.URL{Scheme: scheme, Host: r.name.RegistryStr(), Path: "/v2/" + r.name.RepositoryStr() + path}
}

func (r *Repo) do(ctx context.Context, method string, u *url.URL, body io.Reader, size int64, hdr http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if body != nil {
		req.ContentLength = size
	}
	return r.doRequest(req)
}

// doRequest sends req. A redirect refused (checkRedirect) comes without the
// *url.Error around it, which would name the redirect's target twice.
func (r *Repo) doRequest(req *http.Request) (*http.Response, error) {
	resp, err := r.client.Do(req)
	var ae *answerError
	if err != nil && errors.As(err, &ae) {
		return nil, ae
	}
	return resp, err
}

// drain lets the connection be reused.
func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}

// BlobExists reports whether the repository has blob d, of size bytes
// (HEAD); a negative size is not checked. A 200 counts only when the
// registry's answer agrees with the blob: its Content-Length is size, and
// its Docker-Content-Digest, when sent, is d; without a Content-Length the
// digest must be there to say so. An answer that contradicts the blob is
// an error naming what the registry answered rather than "absent": a
// registry that claims a digest with another size is broken or is not a
// registry (a proxy, a login page), and uploading into it would only hide
// that until something pulls the blob. One that says neither its size nor
// its digest is taken as absent, and the blob is sent.
func (r *Repo) BlobExists(ctx context.Context, d v1.Hash, size int64) (bool, error) {
	resp, err := r.do(ctx, http.MethodHead, r.url("/blobs/"+d.String()), nil, 0, nil)
	if err != nil {
		return false, fmt.Errorf("check blob %s@%s: %w", r.name, d, err)
	}
	defer drain(resp)
	switch resp.StatusCode {
	case http.StatusOK:
		present, err := blobAnswer(resp, d, size)
		if err != nil {
			return false, fmt.Errorf("check blob %s@%s: %w", r.name, d, err)
		}
		return present, nil
	case http.StatusNotFound:
		return false, nil
	}
	return false, fmt.Errorf("check blob %s@%s: %w", r.name, d, transport.CheckError(resp))
}

// blobAnswer checks a 200 to the HEAD of blob d, of size bytes: present
// when the answer's size (or, without a Content-Length, its digest) is the
// blob's. An answer that contradicts the blob is an error: the registry is
// broken, or no registry. One that says neither (some proxies and HTTP/2
// fronts drop Content-Length on HEAD) is taken as absent, so the blob is
// sent, and the upload's own answer is checked.
func blobAnswer(resp *http.Response, d v1.Hash, size int64) (bool, error) {
	got := resp.Header.Get("Docker-Content-Digest")
	switch {
	case got != "" && got != d.String():
		return false, fmt.Errorf("the registry answers 200 with Docker-Content-Digest %s", got)
	case resp.ContentLength < 0:
		return got != "", nil
	case size < 0 || resp.ContentLength == size:
		return true, nil
	}
	return false, fmt.Errorf("the registry answers 200 with Content-Length %d, the blob has %d bytes", resp.ContentLength, size)
}

// manifestAccept lists every manifest media type ferry carries.
var manifestAccept = strings.Join([]string{
	string(types.OCIManifestSchema1), string(types.OCIImageIndex),
	string(types.DockerManifestSchema2), string(types.DockerManifestList),
}, ", ")

// ManifestDescriptor is what a HEAD of a manifest says; nil means the
// repository has no such manifest or tag.
func (r *Repo) ManifestDescriptor(ctx context.Context, reference string) (*v1.Descriptor, error) {
	resp, err := r.do(ctx, http.MethodHead, r.url("/manifests/"+reference), nil, 0, http.Header{"Accept": {manifestAccept}})
	if err != nil {
		return nil, fmt.Errorf("check %s: %w", r.ref(reference), err)
	}
	defer drain(resp)
	if resp.StatusCode == http.StatusNotFound {
		return nil, nil
	}
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		return nil, fmt.Errorf("check %s: %w", r.ref(reference), err)
	}
	d, err := v1.NewHash(resp.Header.Get("Docker-Content-Digest"))
	if err != nil {
		return nil, fmt.Errorf("check %s: the registry's Docker-Content-Digest: %w", r.ref(reference), err)
	}
	return &v1.Descriptor{Digest: d, Size: resp.ContentLength, MediaType: types.MediaType(resp.Header.Get("Content-Type"))}, nil
}

// GetManifest fetches a manifest or index by tag or digest. It refuses,
// naming the size, one the registry says is larger than max before reading
// it, and reads at most max bytes of any. The digest returned is that of
// the bytes; it must be the one asked for, and the one the registry
// reports. Those refusals, and that of bytes the Content-Type contradicts,
// are UnusableManifest errors.
func (r *Repo) GetManifest(ctx context.Context, reference string, max int64) ([]byte, types.MediaType, v1.Hash, error) {
	ref := r.ref(reference)
	resp, err := r.do(ctx, http.MethodGet, r.url("/manifests/"+reference), nil, 0, http.Header{"Accept": {manifestAccept}})
	if err != nil {
		return nil, "", v1.Hash{}, fmt.Errorf("fetch %s: %w", ref, err)
	}
	defer drain(resp)
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		return nil, "", v1.Hash{}, fmt.Errorf("fetch %s: %w", ref, err)
	}
	if resp.ContentLength > max {
		return nil, "", v1.Hash{}, unusable(fmt.Errorf("fetch %s: the registry says it is %d bytes, more than the %d a manifest may have", ref, resp.ContentLength, max))
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, "", v1.Hash{}, fmt.Errorf("fetch %s: %w", ref, err)
	}
	if int64(len(raw)) > max {
		return nil, "", v1.Hash{}, unusable(fmt.Errorf("fetch %s: more than the %d bytes a manifest may have", ref, max))
	}
	sum := sha256.Sum256(raw)
	d := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
	if strings.HasPrefix(reference, "sha256:") && reference != d.String() {
		return nil, "", v1.Hash{}, unusable(fmt.Errorf("fetch %s: the registry served bytes with digest %s", ref, d))
	}
	if got := resp.Header.Get("Docker-Content-Digest"); got != "" && got != d.String() {
		return nil, "", v1.Hash{}, unusable(fmt.Errorf("fetch %s: the registry says digest %s, its bytes have %s", ref, got, d))
	}
	// The Content-Type is the registry's word, which decides how the
	// bytes are read (an image's blobs, or an index's children): it must
	// agree with the bytes.
	mt := types.MediaType(resp.Header.Get("Content-Type"))
	if err := manifest.CheckType(mt, raw); err != nil {
		return nil, "", v1.Hash{}, unusable(fmt.Errorf("fetch %s: the registry serves it as %s: %w", ref, mt, err))
	}
	return raw, mt, d, nil
}

// unusableManifest is GetManifest's refusal of what the registry served.
type unusableManifest struct{ err error }

func (e unusableManifest) Error() string { return e.err.Error() }
func (e unusableManifest) Unwrap() error { return e.err }

func unusable(err error) error { return unusableManifest{err} }

// UnusableManifest reports whether err is GetManifest's refusal of the
// manifest a registry served (larger than the limit, bytes that do not
// match the digest asked for or the one the registry names, a Content-Type
// the bytes contradict) rather than a failed request: work for which one
// manifest is not the whole (an inventory) can go on without it.
func UnusableManifest(err error) bool { return errors.As(err, new(unusableManifest)) }

// ref names reference (a tag or digest) of the repository in messages.
func (r *Repo) ref(reference string) string {
	if strings.Contains(reference, ":") {
		return r.name.Name() + "@" + reference
	}
	return r.name.Name() + ":" + reference
}

// PutManifest PUTs raw under reference (a tag, or the digest of raw) and
// returns the digest the registry says it stored; it fails if that is not
// the digest of raw, which would mean the registry rewrote the manifest.
//
// The OCI distribution spec's answer is 201 Created, which distribution and
// go-containerregistry's registry send with the Docker-Content-Digest. Some
// registries have answered 200 or 202: those count only with the digest
// of raw, and without it only once a HEAD of reference finds raw's digest
// there. A success that says nothing of what was stored (a proxy's page,
// a redirect turned into a GET) is not taken for one.
func (r *Repo) PutManifest(ctx context.Context, reference string, raw []byte, mt types.MediaType) (v1.Hash, error) {
	sum := sha256.Sum256(raw)
	want := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, r.url("/manifests/"+reference).String(), bytes.NewReader(raw))
	if err != nil {
		return v1.Hash{}, err
	}
	req.Header.Set("Content-Type", string(mt))
	resp, err := r.doRequest(req)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("put manifest %s: %w", r.ref(reference), err)
	}
	defer drain(resp)
	if err := checkError(resp, http.StatusOK, http.StatusCreated, http.StatusAccepted); err != nil {
		return v1.Hash{}, fmt.Errorf("put manifest %s: %w", r.ref(reference), err)
	}
	got := resp.Header.Get("Docker-Content-Digest")
	if got != "" && got != want.String() {
		return v1.Hash{}, fmt.Errorf("put manifest %s: the registry stored digest %s, the manifest's bytes have %s", r.ref(reference), got, want)
	}
	if got == "" && resp.StatusCode != http.StatusCreated {
		desc, err := r.ManifestDescriptor(ctx, reference)
		switch {
		case err != nil:
			return v1.Hash{}, fmt.Errorf("put manifest %s: the registry answered %s without a Docker-Content-Digest, and asking what it holds failed: %w", r.ref(reference), resp.Status, err)
		case desc == nil || desc.Digest != want:
			holds := "nothing"
			if desc != nil {
				holds = desc.Digest.String()
			}
			return v1.Hash{}, fmt.Errorf("put manifest %s: the registry answered %s without a Docker-Content-Digest, and holds %s there, not %s", r.ref(reference), resp.Status, holds, want)
		}
	}
	return want, nil
}

// GetBlob downloads blob d. The bytes are the registry's, unverified: the
// caller checks them against d. A redirect to storage is followed without
// the registry's credentials.
func (r *Repo) GetBlob(ctx context.Context, d v1.Hash) (io.ReadCloser, error) {
	resp, err := r.do(ctx, http.MethodGet, r.url("/blobs/"+d.String()), nil, 0, nil)
	if err != nil {
		return nil, fmt.Errorf("fetch blob %s@%s: %w", r.name, d, err)
	}
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		drain(resp)
		return nil, fmt.Errorf("fetch blob %s@%s: %w", r.name, d, err)
	}
	return resp.Body, nil
}

// GetBlobFrom downloads blob d, size bytes long, from byte offset on (a
// Range request), to go on with a download cut part way. A registry that
// ignores the range sends the whole blob, and one that refuses it is asked
// for the whole blob: the bytes before offset are then skipped here. The
// bytes are unverified, as GetBlob's.
//
// At offset == size nothing is left: a download cut after its last byte
// but before the end of its stream (a chunked response without its
// terminating chunk, an HTTP/2 stream reset) had all of it, and the reader
// returned is empty, with no request. An offset past size, or negative,
// is an error: whoever reads the blob already has more than it holds.
func (r *Repo) GetBlobFrom(ctx context.Context, d v1.Hash, size, offset int64) (io.ReadCloser, error) {
	switch {
	case offset < 0 || offset > size:
		return nil, fmt.Errorf("fetch blob %s@%s from byte %d: the blob has %d bytes", r.name, d, offset, size)
	case offset == size:
		return io.NopCloser(bytes.NewReader(nil)), nil
	case offset == 0:
		return r.GetBlob(ctx, d)
	}
	resp, err := r.do(ctx, http.MethodGet, r.url("/blobs/"+d.String()), nil, 0, http.Header{"Range": {fmt.Sprintf("bytes=%d-%d", offset, size-1)}})
	if err != nil {
		return nil, fmt.Errorf("fetch blob %s@%s from byte %d: %w", r.name, d, offset, err)
	}
	switch resp.StatusCode {
	case http.StatusPartialContent:
		var start int64
		if _, err := fmt.Sscanf(resp.Header.Get("Content-Range"), "bytes %d-", &start); err == nil && start == offset {
			return resp.Body, nil
		}
		drain(resp)
	case http.StatusOK:
		return skip(resp.Body, offset, r.name, d)
	default:
		drain(resp)
	}
	// The range was refused or answered wrong: the whole blob, then.
	rc, err := r.GetBlob(ctx, d)
	if err != nil {
		return nil, err
	}
	return skip(rc, offset, r.name, d)
}

// skip discards the first n bytes of rc.
func skip(rc io.ReadCloser, n int64, repo name.Repository, d v1.Hash) (io.ReadCloser, error) {
	if _, err := io.CopyN(io.Discard, rc, n); err != nil {
		rc.Close()
		return nil, fmt.Errorf("fetch blob %s@%s from byte %d: %w", repo, d, n, err)
	}
	return rc, nil
}

// Opener returns a fresh reader of a blob's bytes for each upload attempt.
type Opener func() (io.ReadCloser, error)

// SourceError marks a failure to read a blob from where an upload takes it
// (an archive, another registry), as opposed to a failure of the
// destination. Upload opens the source again in a new session unless the
// error is Permanent: a download cut part way may well succeed again, a
// damaged archive will not.
type SourceError struct{ Err error }

// Error is the source's error, as it is.
func (e *SourceError) Error() string { return e.Err.Error() }

// Unwrap gives the source's error to errors.Is and errors.As.
func (e *SourceError) Unwrap() error { return e.Err }

// permanentError is an error no new attempt can cure.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err, returned by a source, as one that reading the source
// again cannot cure (bytes that do not match their digest in an archive):
// Upload then stops at once. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

// IsPermanent reports whether err was marked with Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// Upload puts blob d of size bytes into the repository in two requests: a
// POST opening an upload session (which mounts the blob instead when the
// Repo has Access.MountFrom and the registry agrees), and a PUT of the
// whole blob from open(). It does not check first whether the repository
// has the blob: the caller did. It returns whether the blob was mounted.
//
// A failure on the way (a dropped connection, a 5xx, a lost session, a
// source cut part way) opens a new session and calls open again, up to
// Options.UploadAttempts times; an error of the source marked Permanent
// ends the upload at once. Errors of the source come wrapped in
// SourceError. The registry verifies the bytes against d before it stores
// them; a PUT answered otherwise than 201 with d as its
// Docker-Content-Digest counts only once a HEAD finds the blob
// (confirmStored).
func (r *Repo) Upload(ctx context.Context, d v1.Hash, size int64, open Opener, opts ...UploadOption) (mounted bool, err error) {
	var cfg uploadConfig
	for _, o := range opts {
		o(&cfg)
	}
	for attempt := 1; ; attempt++ {
		mounted, err = r.uploadOnce(ctx, d, size, open, cfg.openEarly)
		if err == nil || ctx.Err() != nil || attempt >= r.opts.UploadAttempts || !retryableUpload(err) {
			if err != nil {
				err = fmt.Errorf("upload blob %s to %s: %w", d, r.name, err)
			}
			return mounted, err
		}
		if r.opts.Final != nil && r.opts.Final(err) {
			return mounted, fmt.Errorf("upload blob %s to %s: %w", d, r.name, err)
		}
		if werr := r.opts.waitAfter(ctx, attempt, err); werr != nil {
			return false, fmt.Errorf("upload blob %s to %s: %w (after %v)", d, r.name, werr, err)
		}
		// The attempt may have stored the blob and lost only the answer:
		// a registry that commits slowly (distribution on S3 copies the
		// blob at the PUT) answers after the response-header timeout,
		// and sending the whole blob again would likely time out the
		// same way. One HEAD tells; a source that failed sent no blob.
		var se *SourceError
		if !errors.As(err, &se) {
			if ok, herr := r.BlobExists(ctx, d, size); herr == nil && ok {
				return false, nil
			}
		}
		if cfg.onRetry != nil {
			cfg.onRetry(attempt+1, r.opts.UploadAttempts, err)
		}
	}
}

// UploadOption changes one Upload.
type UploadOption func(*uploadConfig)

type uploadConfig struct {
	onRetry   func(attempt, attempts int, err error)
	openEarly bool
}

// OpenEarly has each attempt open its source at the same time as it opens
// the upload session, instead of once the session is open: for a source
// that is another server (a copy's source registry), whose first bytes
// take a round trip of their own. A source opened for a session that could
// not be opened is closed unread. It changes nothing for a Repo that mounts
// (Access.MountFrom): a mount needs no source.
func OpenEarly() UploadOption {
	return func(c *uploadConfig) { c.openEarly = true }
}

// OnRetry has f called before each new attempt of an upload, with the
// attempt's number, how many there may be, and why the last one failed: a
// caller can tell the user.
func OnRetry(f func(attempt, attempts int, err error)) UploadOption {
	return func(c *uploadConfig) { c.onRetry = f }
}

func (r *Repo) uploadOnce(ctx context.Context, d v1.Hash, size int64, open Opener, early bool) (bool, error) {
	u := r.url("/blobs/uploads/")
	if m := r.access.MountFrom; m != nil {
		u.RawQuery = url.Values{"mount": {d.String()}, "from": {m.RepositoryStr()}}.Encode()
		early = false
	}
	source := open
	if early {
		type opened struct {
			rc  io.ReadCloser
			err error
		}
		ch := make(chan opened, 1)
		go func() {
			rc, err := open()
			ch <- opened{rc, err}
		}()
		taken := false
		source = func() (io.ReadCloser, error) {
			taken = true
			o := <-ch
			return o.rc, o.err
		}
		defer func() {
			if !taken {
				if o := <-ch; o.rc != nil {
					o.rc.Close()
				}
			}
		}()
	}
	resp, err := r.do(ctx, http.MethodPost, u, nil, 0, nil)
	if err != nil {
		return false, err
	}
	switch resp.StatusCode {
	case http.StatusCreated:
		defer drain(resp)
		if r.access.MountFrom == nil {
			// 201 says the blob is there; only a mount, which was not
			// asked, may make it so without its bytes.
			return false, &answerError{fmt.Errorf("the registry answered %s to a POST that opens an upload session (no mount asked), as if it held the blob it was never sent", resp.Status)}
		}
		if err := checkDigest(resp, d); err != nil {
			return false, err
		}
		return true, nil
	case http.StatusAccepted:
		drain(resp)
	default:
		defer drain(resp)
		return false, checkError(resp)
	}
	loc, err := resp.Location()
	if err != nil {
		return false, fmt.Errorf("the registry opened an upload session without a usable Location: %w", err)
	}
	q := loc.Query()
	q.Set("digest", d.String())
	loc.RawQuery = q.Encode()

	rc, err := source()
	if err != nil {
		return false, &SourceError{err}
	}
	src := &ctxio.ErrReader{R: rc} // tells a failing source from a failing destination
	defer rc.Close()
	var answer *committed
	err = r.send(ctx, http.MethodPut, loc, src, size, http.Header{"Content-Type": {"application/octet-stream"}}, func(resp *http.Response) (err error) {
		answer, err = commitAnswer(resp, d)
		return err
	})
	// send returns once the transport is done with src: its error, and rc,
	// are the caller's again.
	if src.Err != nil {
		// What failed is the source; the request's own error only says
		// that its body ended early.
		return false, &SourceError{src.Err}
	}
	if err != nil {
		return false, err
	}
	return false, r.confirmStored(ctx, answer, d, size)
}

// committed is what the answer to the PUT that completes a blob's upload
// leaves to check: its status, and whether the registry named the blob.
type committed struct {
	status string
	named  bool // 201 with the blob's Docker-Content-Digest
}

// commitAnswer checks the answer to the PUT that completes the upload of
// blob d: a success (201, or the 202 and 204 some registries answer) that
// names no other digest.
func commitAnswer(resp *http.Response, d v1.Hash) (*committed, error) {
	if err := checkError(resp, http.StatusCreated, http.StatusNoContent, http.StatusAccepted); err != nil {
		return nil, err
	}
	if err := checkDigest(resp, d); err != nil {
		return nil, err
	}
	return &committed{status: resp.Status, named: resp.StatusCode == http.StatusCreated && resp.Header.Get("Docker-Content-Digest") != ""}, nil
}

// confirmStored makes sure that blob d, of size bytes, is stored once the
// PUT completing its upload was answered a. The OCI distribution spec's
// answer is 201 Created with the blob's Docker-Content-Digest, which
// distribution and go-containerregistry's registry send: that is taken as
// is. Any other success (202 or 204, or no digest) says nothing of what
// was stored, so a HEAD must find the blob: a front that answers without
// storing would otherwise let a manifest, and the user's tag, be written
// over blobs the registry lacks (one that does not check a manifest's
// blobs accepts it).
func (r *Repo) confirmStored(ctx context.Context, a *committed, d v1.Hash, size int64) error {
	if a.named {
		return nil
	}
	ok, err := r.BlobExists(ctx, d, size)
	switch {
	case err != nil:
		return fmt.Errorf("the registry answered %s to the PUT that completes the upload without saying it stored the blob, and asking whether it holds it failed: %w", a.status, err)
	case !ok:
		return &answerError{fmt.Errorf("the registry answered %s to the PUT that completes the upload, but does not hold blob %s in %s", a.status, d, r.name)}
	}
	return nil
}

// send makes a request with a body that net/http may go on reading after
// Do has returned (a registry that answers before reading it all), or read
// again (go-containerregistry's bearer transport resends a request that got
// a 401 to refresh its token). handle reads the response. send returns only
// once the transport has closed the body, so that the caller may then read
// the source's state, close it or read it again; a body read after it was
// closed fails, so a resend never sends stray bytes (the registry then
// fails the request, and the upload is retried).
func (r *Repo) send(ctx context.Context, method string, u *url.URL, body io.Reader, size int64, hdr http.Header, handle func(*http.Response) error) error {
	fb := &fencedBody{r: body, done: make(chan struct{})}
	resp, err := r.do(ctx, method, u, fb, size, hdr)
	if err == nil {
		err = handle(resp)
		// Closing the response before the request body is all sent makes
		// the transport drop the connection, which ends its write.
		drain(resp)
	}
	select {
	case <-fb.done:
	case <-ctx.Done():
		// The transport closes a request's body when its context ends.
		<-fb.done
	}
	return err
}

// ErrBodyClosed is what a request body read after its request ended gives
// (a transport resending a request whose body it already consumed).
var ErrBodyClosed = errors.New("request body read after its request ended")

// fencedBody serializes reads with Close and refuses reads after it.
type fencedBody struct {
	mu     sync.Mutex
	r      io.Reader
	closed bool
	done   chan struct{}
}

// Read implements io.Reader.
func (b *fencedBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, ErrBodyClosed
	}
	return b.r.Read(p)
}

// Close implements io.Closer; net/http calls it when it is done with the
// body.
func (b *fencedBody) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.closed {
		b.closed = true
		close(b.done)
	}
	return nil
}

// Mount asks the registry to mount blob d from the Repo's
// Access.MountFrom repository, and reports whether it did (201). A registry
// that declines opens an upload session instead, which is cancelled.
func (r *Repo) Mount(ctx context.Context, d v1.Hash) (bool, error) {
	m := r.access.MountFrom
	if m == nil {
		return false, fmt.Errorf("mount blob %s into %s: no repository to mount from", d, r.name)
	}
	u := r.url("/blobs/uploads/")
	u.RawQuery = url.Values{"mount": {d.String()}, "from": {m.RepositoryStr()}}.Encode()
	resp, err := r.do(ctx, http.MethodPost, u, nil, 0, nil)
	if err != nil {
		return false, fmt.Errorf("mount blob %s from %s into %s: %w", d, m, r.name, err)
	}
	defer drain(resp)
	switch resp.StatusCode {
	case http.StatusCreated:
		if err := checkDigest(resp, d); err != nil {
			return false, fmt.Errorf("mount blob %s from %s into %s: %w", d, m, r.name, err)
		}
		return true, nil
	case http.StatusAccepted:
		if loc, err := resp.Location(); err == nil {
			if del, err := r.do(ctx, http.MethodDelete, loc, nil, 0, nil); err == nil {
				drain(del)
			}
		}
		return false, nil
	}
	return false, fmt.Errorf("mount blob %s from %s into %s: %w", d, m, r.name, transport.CheckError(resp))
}

// retryableUpload reports whether a failed upload may succeed in a new
// session: a dropped connection or timeout, a 5xx or 429, or the registry
// saying the session or the bytes it got are wrong (after a drop, a session
// may hold part of a body). Callers rule out an ended context first:
// net/http's response-header timeout also matches
// context.DeadlineExceeded, and a registry that commits a large blob
// slowly (distribution on S3 copies it at the PUT) answers late with the
// command's context alive.
func retryableUpload(err error) bool {
	var ae *answerError
	if IsPermanent(err) || errors.As(err, &ae) || errors.Is(err, context.Canceled) {
		return false
	}
	var se *SourceError
	if errors.As(err, &se) {
		return true
	}
	var te *transport.Error
	if errors.As(err, &te) {
		switch {
		case te.StatusCode >= 500, te.StatusCode == http.StatusTooManyRequests,
			te.StatusCode == http.StatusRequestTimeout, te.StatusCode == http.StatusRequestedRangeNotSatisfiable:
			return true
		}
		for _, d := range te.Errors {
			switch d.Code {
			case transport.DigestInvalidErrorCode, transport.BlobUploadInvalidErrorCode,
				transport.BlobUploadUnknownErrorCode, transport.SizeInvalidErrorCode:
				return true
			}
		}
		return false
	}
	// Anything else is the connection (reset, cut, timed out, refused):
	// a few more attempts cost seconds and may carry a large upload over a
	// flaky link.
	return true
}

// DefaultResumeWindow is how much of a streamed blob UploadStream keeps to
// resend after a dropped connection: more than the data a connection can
// have in flight (socket buffers on both sides), so that the offset the
// registry reports after a drop is almost always within it.
const DefaultResumeWindow = 8 << 20

// UploadStream puts blob d of size bytes, read once from src, into the
// repository: a POST opening a session, one PATCH streaming the bytes, and
// a PUT committing them. It is for a source that cannot be read again (an
// archive arriving on a pipe). It keeps the last Options.ResumeWindow bytes
// it sent: when the PATCH fails part way, it asks the registry how many
// bytes the session holds (the OCI distribution API's upload status) and
// resumes from there, up to Options.UploadAttempts times, as long as those
// bytes are still in the window. An error reading src (wrapped in
// SourceError) ends the upload at once: src cannot be read again. The
// PUT's answer is confirmed as Upload's is.
func (r *Repo) UploadStream(ctx context.Context, d v1.Hash, size int64, src io.Reader) error {
	err := r.uploadStream(ctx, d, size, src)
	if err != nil {
		return fmt.Errorf("upload blob %s to %s: %w", d, r.name, err)
	}
	return nil
}

func (r *Repo) uploadStream(ctx context.Context, d v1.Hash, size int64, src io.Reader) error {
	loc, err := r.startSession(ctx)
	if err != nil {
		return err
	}
	body := &resumable{src: src, ring: make([]byte, min(int64(r.opts.ResumeWindow), max(size, 1)))}
	for attempt := 1; ; attempt++ {
		err := r.patch(ctx, loc, body, size)
		if err == nil {
			loc = body.next
			break
		}
		if body.err != nil {
			return &SourceError{body.err}
		}
		if ctx.Err() != nil || attempt >= r.opts.UploadAttempts || !retryableUpload(err) || (r.opts.Final != nil && r.opts.Final(err)) {
			return err
		}
		// Ask the session where it stands, and go on from there if the
		// window still holds what follows.
		status, offset, serr := r.settledStatus(ctx, loc, attempt, err)
		if serr != nil {
			return fmt.Errorf("%w; then the upload session could not be resumed: %v", err, serr)
		}
		if offset < body.windowStart() || offset > body.consumed {
			return fmt.Errorf("%w; the registry holds %d bytes of the blob and ferry can resend only from %d (a blob streamed from a pipe is not kept): run the import again, or import from a file",
				err, offset, body.windowStart())
		}
		body.rewind(offset)
		loc = status
	}
	q := loc.Query()
	q.Set("digest", d.String())
	loc.RawQuery = q.Encode()
	resp, err := r.do(ctx, http.MethodPut, loc, nil, 0, nil)
	if err == nil {
		var answer *committed
		answer, err = commitAnswer(resp, d)
		drain(resp)
		if err == nil {
			err = r.confirmStored(ctx, answer, d, size)
		}
	}
	var ae *answerError
	if err != nil && !errors.As(err, &ae) {
		// The transport replays this PUT (it has no body): if a first
		// one was stored but its answer lost, the replay finds no session.
		// The blob is what counts.
		if ok, herr := r.BlobExists(ctx, d, size); herr == nil && ok {
			return nil
		}
	}
	return err
}

// startSession opens an upload session and returns its location.
func (r *Repo) startSession(ctx context.Context) (*url.URL, error) {
	resp, err := r.do(ctx, http.MethodPost, r.url("/blobs/uploads/"), nil, 0, nil)
	if err != nil {
		return nil, err
	}
	defer drain(resp)
	if err := checkError(resp, http.StatusAccepted); err != nil {
		return nil, err
	}
	loc, err := resp.Location()
	if err != nil {
		return nil, fmt.Errorf("the registry opened an upload session without a usable Location: %w", err)
	}
	return loc, nil
}

// patch sends the rest of body, from its current offset, in one PATCH.
func (r *Repo) patch(ctx context.Context, loc *url.URL, body *resumable, size int64) error {
	from := body.pos
	hdr := http.Header{"Content-Type": {"application/octet-stream"}}
	if size > from {
		hdr.Set("Content-Range", fmt.Sprintf("%d-%d", from, size-1))
	}
	return r.send(ctx, http.MethodPatch, loc, io.LimitReader(body, size-from), size-from, hdr, func(resp *http.Response) error {
		if err := checkError(resp, http.StatusAccepted, http.StatusNoContent, http.StatusCreated); err != nil {
			return err
		}
		next, err := resp.Location()
		if err != nil {
			return fmt.Errorf("the registry answered a PATCH without a usable Location: %w", err)
		}
		body.next = next
		return nil
	})
}

// settledStatus waits as Upload does between attempts after failed, then
// asks where the session stands until two answers agree: the registry may
// still be storing what it received of the failed request when the client
// sees the failure, and resuming before it is done would interleave the
// two.
func (r *Repo) settledStatus(ctx context.Context, loc *url.URL, attempt int, failed error) (*url.URL, int64, error) {
	if err := r.opts.waitAfter(ctx, attempt, failed); err != nil {
		return nil, 0, err
	}
	next, offset, err := r.uploadStatus(ctx, loc)
	// Between two looks, a quarter of the backoff, and never less than the
	// few milliseconds a registry takes to store what it got.
	pause := max(r.opts.Backoff/4, 20*time.Millisecond)
	for range 10 {
		if err != nil {
			return nil, 0, err
		}
		if err := sleep(ctx, pause); err != nil {
			return nil, 0, err
		}
		again, o, err2 := r.uploadStatus(ctx, loc)
		if err2 == nil && o == offset {
			return next, offset, nil
		}
		next, offset, err = again, o, err2
	}
	return nil, 0, fmt.Errorf("the upload session's size kept changing (last %d bytes)", offset)
}

// wait sleeps before attempt+1: Backoff doubled per attempt, with up to 10%
// jitter so that parallel requests that failed together do not retry in
// lockstep.
func (o Options) wait(ctx context.Context, attempt int) error {
	return sleep(ctx, BackoffFor(o.Backoff, attempt))
}

// waitAfter sleeps before attempt+1 as wait does, or as long as the
// registry asked in the Retry-After of the answer that failed it, if that
// is longer (it is capped at MaxBackoff): coming back sooner only earns
// another refusal, and spends an attempt on it.
func (o Options) waitAfter(ctx context.Context, attempt int, failed error) error {
	d := BackoffFor(o.Backoff, attempt)
	var ra *retryAfterError
	if errors.As(failed, &ra) {
		d = max(d, ra.wait)
	}
	return sleep(ctx, d)
}

// BackoffFor is the wait after the given attempt when the first wait is
// base: base doubled per attempt, capped at MaxBackoff, plus up to 10%
// jitter. Every retry of ferry's waits so.
func BackoffFor(base time.Duration, attempt int) time.Duration {
	d := base
	for i := 1; i < attempt && d < MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, MaxBackoff)
	if d > 0 {
		d += time.Duration(rand.Int64N(int64(d)/10 + 1))
	}
	return d
}

// Reread runs read, which fetches something whole and checks it (a
// manifest, a config, a bundle's layer read in memory), again when it fails
// on a dropped connection (Transient): up to Options.UploadAttempts
// attempts in all, waiting as between upload attempts. The transport
// retries a request whose response never came; a connection cut after the
// response's headers, in the middle of its body, fails the read that was
// under way, and only its caller can start it over. An error
// Options.Final deems final (the transport already retried it as often as
// it may) is returned at once, so attempts never multiply. onRetry, when
// set, is called before each new attempt with its number, how many there
// may be, and why the last one failed.
func (c *Client) Reread(ctx context.Context, read func() error, onRetry func(attempt, attempts int, err error)) error {
	for attempt := 1; ; attempt++ {
		err := read()
		if err == nil || ctx.Err() != nil || attempt >= c.opts.UploadAttempts || !Transient(err) || (c.opts.Final != nil && c.opts.Final(err)) {
			return err
		}
		if onRetry != nil {
			onRetry(attempt+1, c.opts.UploadAttempts, err)
		}
		if werr := c.opts.wait(ctx, attempt); werr != nil {
			return fmt.Errorf("%w (after %v)", werr, err)
		}
	}
}

// Transient reports connection drops and timeouts, which a new attempt may
// cure. Refused connections and DNS failures are not: they mean the
// registry is not there, and the user should hear so at once. Callers rule
// out an expired context first: net/http's own timeouts also match
// context.DeadlineExceeded, so the error alone cannot tell them apart.
func Transient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	// A fault in bytes already read whole and checked (a truncated gzip
	// inside a layer whose digest matched) may wrap io.EOF too, but it is
	// in the content, not the connection: its reader marks it Permanent.
	if IsPermanent(err) {
		return false
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNABORTED) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// uploadStatus asks where an upload session stands: its next location
// and how many bytes it holds (the Range header, "0-<last byte>").
func (r *Repo) uploadStatus(ctx context.Context, loc *url.URL) (*url.URL, int64, error) {
	resp, err := r.do(ctx, http.MethodGet, loc, nil, 0, nil)
	if err != nil {
		return nil, 0, err
	}
	defer drain(resp)
	if err := transport.CheckError(resp, http.StatusNoContent, http.StatusOK); err != nil {
		return nil, 0, err
	}
	next, err := resp.Location()
	if err != nil {
		next = loc
	}
	var first, last int64
	if _, err := fmt.Sscanf(resp.Header.Get("Range"), "%d-%d", &first, &last); err != nil || first != 0 {
		return nil, 0, fmt.Errorf("upload status: Range %q", resp.Header.Get("Range"))
	}
	// "0-0" is what distribution says of an empty session too; resuming
	// from 0 is right then, and merely refused (a new attempt fails) for a
	// session that holds one byte.
	if last == 0 {
		return next, 0, nil
	}
	return next, last + 1, nil
}

// resumable is a PATCH body read once from src, whose last len(ring) bytes
// can be sent again from any offset in them.
type resumable struct {
	src      io.Reader
	ring     []byte
	consumed int64 // bytes read from src
	pos      int64 // the next byte Read returns
	err      error // the source's error
	next     *url.URL
}

func (b *resumable) windowStart() int64 { return max(0, b.consumed-int64(len(b.ring))) }

// rewind makes Read continue from offset, which must be in the window.
func (b *resumable) rewind(offset int64) { b.pos = offset }

// Read implements io.Reader.
func (b *resumable) Read(p []byte) (int, error) {
	if b.pos < b.consumed {
		// Resend from the window.
		n := int64(len(p))
		n = min(n, b.consumed-b.pos)
		at := b.pos % int64(len(b.ring))
		n = min(n, int64(len(b.ring))-at)
		copy(p, b.ring[at:at+n])
		b.pos += n
		return int(n), nil
	}
	if b.err != nil {
		return 0, b.err
	}
	n, err := b.src.Read(p)
	for k := 0; k < n; {
		at := (b.consumed + int64(k)) % int64(len(b.ring))
		k += copy(b.ring[at:], p[k:n])
	}
	b.consumed += int64(n)
	b.pos = b.consumed
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}
