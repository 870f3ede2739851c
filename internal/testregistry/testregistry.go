// Package testregistry starts real container registries in-process, on
// loopback, for tests: go-containerregistry's pkg/registry for fast unit tests
// and the CNCF distribution registry for end-to-end tests that must see what a
// production registry does (htpasswd auth, TLS, manifest validation). A
// FaultProxy in front of either one injects the network failures that retry
// and resume logic must survive.
//
// Everything is torn down with t.Cleanup; nothing listens beyond the test.
package testregistry

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	"github.com/google/go-containerregistry/pkg/authn"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sirupsen/logrus"

	"github.com/ferry-dev/ferry/internal/registry"
	"golang.org/x/crypto/bcrypt"

	// Drivers and the access controller register themselves by name in
	// init; the configuration below refers to them by those names.
	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
)

// Option configures a registry started by NewGGCR or NewDistribution.
type Option func(*options)

type options struct {
	user, password string
	tls            bool
	dir            string
	foreignURLs    []string
	noMounts       bool
}

// WithAuth requires HTTP basic auth with this user and password, checked by
// distribution's htpasswd access controller against a bcrypt htpasswd file.
// Only NewDistribution supports it: go-containerregistry's registry has no
// auth, and a hand-written auth layer would not test anything real.
func WithAuth(user, password string) Option {
	return func(o *options) { o.user, o.password = user, password }
}

// WithTLS serves HTTPS with a server certificate for 127.0.0.1, ::1 and
// localhost, signed by a CA generated for this registry alone, so a client
// trusts it only when given Endpoint.CACertPath (or RemoteOptions).
func WithTLS() Option {
	return func(o *options) { o.tls = true }
}

// WithFilesystem stores content under dir instead of in memory. For
// NewDistribution it selects the filesystem storage driver (rootdirectory
// dir), so a second registry on the same dir sees the same content. For
// NewGGCR only blobs go to disk (manifests stay in memory), which keeps large
// benchmark layers out of the test's heap.
func WithFilesystem(dir string) Option {
	return func(o *options) { o.dir = dir }
}

// WithForeignLayerURLs lets NewDistribution accept manifests whose layers
// carry URLs matching any of these regular expressions. distribution rejects
// every layer URL by default, which would make non-distributable layers
// unpushable. go-containerregistry's registry accepts them anyway, so NewGGCR
// ignores this option.
func WithForeignLayerURLs(allow ...string) Option {
	return func(o *options) { o.foreignURLs = append(o.foreignURLs, allow...) }
}

// WithoutMounts makes the registry ignore cross-repository mount requests
// (POST /v2/NAME/blobs/uploads/?mount=DIGEST&from=REPO): it opens an
// upload session instead (202 and a Location), as the OCI distribution
// spec lets a registry do, and as one does that does not mount across
// repositories or that will not let this client read the source. Neither
// registry has a setting for it: the parameters are taken off the request
// before the registry sees it (the recorded request keeps them).
func WithoutMounts() Option {
	return func(o *options) { o.noMounts = true }
}

// withoutMounts is the handler WithoutMounts puts in front of h.
func withoutMounts(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if q := r.URL.Query(); r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/blobs/uploads/") && q.Has("mount") {
			q.Del("mount")
			q.Del("from")
			r = r.Clone(r.Context())
			r.URL.RawQuery = q.Encode()
			r.RequestURI = r.URL.RequestURI()
		}
		h.ServeHTTP(w, r)
	})
}

func collect(opts []Option) options {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// Endpoint is where a test reaches a registry (or a FaultProxy in front of
// one) and the credentials it needs to do so.
type Endpoint struct {
	// Host is "127.0.0.1:PORT", the registry part of references.
	Host string
	// URL is "http://127.0.0.1:PORT" or "https://127.0.0.1:PORT".
	URL string
	// CACertPath is a PEM file holding the CA that signed the server
	// certificate; empty without WithTLS.
	CACertPath string
	// Username and Password are the WithAuth credentials; empty without it.
	Username, Password string

	roots *x509.CertPool
}

// Repo returns the repository reference Host + "/" + path.
func (e *Endpoint) Repo(path string) string {
	return e.Host + "/" + strings.TrimPrefix(path, "/")
}

// CertPool returns a pool holding only the generated CA, or nil without TLS.
func (e *Endpoint) CertPool() *x509.CertPool { return e.roots }

// Transport returns a fresh HTTP transport, based on go-containerregistry's
// remote.DefaultTransport, that trusts the generated CA when there is one.
func (e *Endpoint) Transport() *http.Transport {
	var t *http.Transport
	if dt, ok := remote.DefaultTransport.(*http.Transport); ok {
		t = dt.Clone()
	} else {
		t = http.DefaultTransport.(*http.Transport).Clone()
	}
	if e.roots != nil {
		t.TLSClientConfig = &tls.Config{RootCAs: e.roots, MinVersion: tls.VersionTLS12}
	}
	return t
}

// Client returns an http.Client using Transport, for tests that speak the
// registry API directly. It does not add credentials.
func (e *Endpoint) Client() *http.Client {
	return &http.Client{Transport: e.Transport()}
}

// Authenticator returns basic auth with the WithAuth credentials, or
// anonymous access without them.
func (e *Endpoint) Authenticator() authn.Authenticator {
	if e.Username == "" && e.Password == "" {
		return authn.Anonymous
	}
	return &authn.Basic{Username: e.Username, Password: e.Password}
}

// RemoteOptions returns go-containerregistry remote options that reach this
// endpoint: its credentials, a transport trusting its CA and t's context, so
// that tests can seed and inspect content directly. The context ends before
// cleanup functions run, so do not use these options inside t.Cleanup.
func (e *Endpoint) RemoteOptions(t testing.TB) []remote.Option {
	return []remote.Option{
		remote.WithAuth(e.Authenticator()),
		remote.WithTransport(e.Transport()),
		remote.WithContext(t.Context()),
	}
}

// ClientOptions returns the options of a registry.Client that reaches this
// endpoint: its credentials, a transport trusting its CA, and no waiting
// between upload attempts.
func (e *Endpoint) ClientOptions() registry.Options {
	return registry.Options{
		Transport: e.Transport(),
		Keychain:  fixedKeychain{e.Authenticator()},
		Backoff:   time.Millisecond,
	}
}

// fixedKeychain gives every registry the same credentials.
type fixedKeychain struct{ auth authn.Authenticator }

// Resolve implements authn.Keychain.
func (k fixedKeychain) Resolve(authn.Resource) (authn.Authenticator, error) { return k.auth, nil }

// Registry is a registry running in-process on loopback for one test.
type Registry struct {
	Endpoint

	rec      *recorder
	srv      *httptest.Server
	closeApp func()
	once     sync.Once
}

// Counts returns how many requests of each method and kind the registry has
// received since it started or since the last ResetCounts.
func (r *Registry) Counts() Counts { return r.rec.counts() }

// Requests returns every request the registry has received, in the order
// they completed, since it started or since the last ResetCounts.
func (r *Registry) Requests() []Request { return r.rec.requests() }

// Settle waits, at most 5 s, until every request the registry has
// received is answered and recorded. A request is recorded when its handler
// returns, which may be a moment after the client read a large response to
// its end: a test that counts exact requests right after an operation calls
// Settle first.
func (r *Registry) Settle() { r.rec.settle(5 * time.Second) }

// Writes lists the requests received for repo that could change it
// (anything but GET and HEAD), as "METHOD PATH": what a test that expects
// nothing written there checks is empty.
func (r *Registry) Writes(repo string) []string {
	var out []string
	for _, q := range r.Requests() {
		if q.Repo == repo && q.Method != http.MethodGet && q.Method != http.MethodHead {
			out = append(out, q.Method+" "+q.Path)
		}
	}
	return out
}

// ResetCounts forgets the requests received so far, so a test can count only
// those of the step it checks (seeding content first, say).
func (r *Registry) ResetCounts() { r.rec.reset() }

// Close stops the registry before the test ends, for tests of a registry that
// goes away. It is safe to call more than once; t.Cleanup calls it too.
func (r *Registry) Close() {
	r.once.Do(func() {
		r.srv.Close()
		if r.closeApp != nil {
			r.closeApp()
		}
	})
}

// NewGGCR starts go-containerregistry's pkg/registry on loopback.
func NewGGCR(t testing.TB, opts ...Option) *Registry {
	t.Helper()
	o := collect(opts)
	if o.user != "" || o.password != "" {
		t.Fatalf("testregistry: WithAuth needs NewDistribution; go-containerregistry's registry has no auth")
	}
	regOpts := []ggcrregistry.Option{ggcrregistry.Logger(log.New(io.Discard, "", 0))}
	if o.dir != "" {
		regOpts = append(regOpts, ggcrregistry.WithBlobHandler(ggcrregistry.NewDiskBlobHandler(o.dir)))
	}
	return start(t, o, ggcrregistry.New(regOpts...), nil)
}

// NewDistribution starts the CNCF distribution registry (v3) on loopback,
// storing content in memory unless WithFilesystem is given. Deletes are
// enabled and redirects to storage disabled, as in a typical deployment.
//
// distribution logs through logrus's standard logger, which it does not let
// an embedder replace per instance; NewDistribution therefore silences that
// process-wide logger so test output stays readable.
func NewDistribution(t testing.TB, opts ...Option) *Registry {
	t.Helper()
	o := collect(opts)

	logrus.SetOutput(io.Discard)
	logrus.SetLevel(logrus.PanicLevel)

	cfg := &configuration.Configuration{}
	cfg.Storage = configuration.Storage{}
	if o.dir != "" {
		cfg.Storage["filesystem"] = configuration.Parameters{"rootdirectory": o.dir}
	} else {
		cfg.Storage["inmemory"] = configuration.Parameters{}
	}
	cfg.Storage["delete"] = configuration.Parameters{"enabled": true}
	cfg.Storage["redirect"] = configuration.Parameters{"disable": true}
	// The purger runs a goroutine for the life of the app and only matters
	// for uploads abandoned for days.
	cfg.Storage["maintenance"] = configuration.Parameters{
		"uploadpurging": map[any]any{"enabled": false},
	}
	// An explicit secret avoids the "no secret configured" warning path.
	cfg.HTTP.Secret = randomHex(t, 16)
	if len(o.foreignURLs) > 0 {
		cfg.Validation.Manifests.URLs.Allow = append([]string(nil), o.foreignURLs...)
	}
	if o.user != "" || o.password != "" {
		cfg.Auth = configuration.Auth{"htpasswd": configuration.Parameters{
			"realm": "ferry-test",
			"path":  writeHtpasswd(t, o.user, o.password),
		}}
	}

	app := handlers.NewApp(context.Background(), cfg)
	return start(t, o, app, func() { _ = app.Shutdown() })
}

// start serves h on loopback, behind a request recorder, and registers its
// teardown.
func start(t testing.TB, o options, h http.Handler, closeApp func()) *Registry {
	t.Helper()
	rec := newRecorder()
	if o.noMounts {
		h = withoutMounts(h)
	}
	srv := httptest.NewUnstartedServer(rec.wrap(h))
	// A client that rejects our certificate makes the server log a TLS
	// handshake error; that is the expected outcome of such tests.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)

	r := &Registry{rec: rec, srv: srv, closeApp: closeApp}
	if o.tls {
		ca, err := newCA()
		if err != nil {
			t.Fatalf("testregistry: %v", err)
		}
		cert, err := ca.serverCert()
		if err != nil {
			t.Fatalf("testregistry: %v", err)
		}
		path := filepath.Join(t.TempDir(), "ca.pem")
		if err := os.WriteFile(path, ca.pem, 0o600); err != nil {
			t.Fatalf("testregistry: write CA %s: %v", path, err)
		}
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		srv.StartTLS()
		r.CACertPath = path
		r.roots = ca.pool()
	} else {
		srv.Start()
	}
	t.Cleanup(r.Close)

	r.URL = srv.URL
	r.Host = strings.TrimPrefix(strings.TrimPrefix(srv.URL, "https://"), "http://")
	r.Username, r.Password = o.user, o.password
	return r
}

// writeHtpasswd writes a one-user htpasswd file. MinCost keeps each auth
// check fast; the cost factor is not what these tests are about.
func writeHtpasswd(t testing.TB, user, password string) string {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatalf("testregistry: hash password: %v", err)
	}
	path := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(path, fmt.Appendf(nil, "%s:%s\n", user, hash), 0o600); err != nil {
		t.Fatalf("testregistry: write htpasswd %s: %v", path, err)
	}
	return path
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("testregistry: random secret: %v", err)
	}
	return hex.EncodeToString(b)
}
