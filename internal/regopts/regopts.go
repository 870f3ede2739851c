// Package regopts turns ferry's registry flags into go-containerregistry
// options, so that every command authenticates, verifies TLS and retries in
// the same way, and explains registry failures to the user in the same words.
package regopts

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferry-dev/ferry/internal/registry"
)

const (
	// DefaultRetryCount is the number of attempts made when Options.RetryCount
	// is zero; it matches imgpkg's --registry-retry-count default.
	DefaultRetryCount = 5

	// DefaultRetryBackoff is the wait before the second attempt when
	// Options.RetryBackoff is zero; later waits double, up to MaxRetryWait.
	DefaultRetryBackoff = time.Second

	// MaxRetryWait caps a single wait between attempts, including one asked
	// for by a registry's Retry-After header, so that a misbehaving registry
	// cannot park an import for hours.
	MaxRetryWait = registry.MaxBackoff

	// DefaultResponseHeaderTimeout applies when Options.ResponseHeaderTimeout
	// is zero. It is generous on purpose: a registry only answers a blob
	// upload's final PUT once it has hashed and moved the blob, which on
	// object-storage backends takes tens of seconds for multi-GiB layers, and
	// a false timeout there would throw away the whole upload.
	DefaultResponseHeaderTimeout = 2 * time.Minute

	// DefaultUserAgent is sent when Options.UserAgent is empty.
	DefaultUserAgent = "ferry"
)

// Options are the registry access settings shared by every ferry command.
// The zero value is usable: Docker config credentials, verified TLS and the
// default retry policy. cmd/ferry fills it from flags and FERRY_* variables.
type Options struct {
	// Username and Password are explicit basic credentials
	// (--registry-username/--registry-password, FERRY_USERNAME/FERRY_PASSWORD).
	// They go to the registries in CredentialHosts, or to every registry
	// when it is empty (as imgpkg does).
	Username, Password string
	// CredentialHosts limits the explicit credentials (Username/Password or
	// Token) to these registries (host[:port]); any other registry gets the
	// Docker config's. nil means every registry; an empty non-nil slice,
	// none. A bundle's images.yml may name any host, so sending a password
	// to every registry would hand it to whoever wrote the lock. A registry
	// that gets them also passes them to the token service its
	// WWW-Authenticate challenge names (go-containerregistry's token flow),
	// which may be another host; go-containerregistry refuses a realm at a
	// private, loopback or link-local IP other than the registry's own
	// host:port (TestTokenRealms).
	CredentialHosts []string
	// CredentialsFrom names where Username and Password (or Token) came
	// from, as the user gave them ("--registry-username",
	// "FERRY_USERNAME"), for messages only; empty means the flag.
	CredentialsFrom string
	// Token is an explicit bearer token (--registry-token, FERRY_TOKEN),
	// sent as is instead of running the registry's token exchange.
	Token string
	// Anon disables credentials entirely, including the Docker config.
	Anon bool
	// Insecure allows plain HTTP and skips TLS certificate verification.
	// Without it, plain HTTP goes to loopback registries only (see
	// cleartextTransport).
	Insecure bool
	// CACertPaths are PEM files whose certificates are trusted in addition
	// to the system pool.
	CACertPaths []string
	// RetryCount is the number of attempts (not retries) made for a request
	// that fails transiently; 0 means DefaultRetryCount, 1 disables retries.
	RetryCount int
	// RetryBackoff is the wait before the second attempt, doubled for each
	// further one; 0 means DefaultRetryBackoff.
	RetryBackoff time.Duration
	// ResponseHeaderTimeout bounds the wait for a registry's response headers
	// once a request has been sent, and for its side of a TLS handshake; 0
	// means DefaultResponseHeaderTimeout and a negative value disables the
	// limit (the handshake keeps Go's 10s).
	ResponseHeaderTimeout time.Duration
	// UserAgent is sent with every request (go-containerregistry appends its
	// own version); empty means DefaultUserAgent.
	UserAgent string
}

// Validate reports contradictory or incomplete settings. Its messages never
// contain the credentials themselves.
func (o Options) Validate() error {
	switch {
	case o.Username != "" && o.Password == "":
		return errors.New("registry username given without a password (set --registry-password or FERRY_PASSWORD)")
	case o.Password != "" && o.Username == "":
		return errors.New("registry password given without a username (set --registry-username or FERRY_USERNAME)")
	case o.Token != "" && o.Username != "":
		return errors.New("give either a registry username and password or a registry token, not both")
	case o.Anon && (o.Username != "" || o.Token != ""):
		return errors.New("--registry-anon cannot be combined with registry credentials")
	case (o.Username != "" || o.Token != "") && o.CredentialHosts != nil && len(o.CredentialHosts) == 0:
		return errors.New("registry credentials given, but no registry to send them to: " +
			"name it with --registry-credential-host HOST (or * for every registry)")
	case o.RetryCount < 0:
		return fmt.Errorf("registry retry count must not be negative, got %d", o.RetryCount)
	case o.RetryBackoff < 0:
		return fmt.Errorf("registry retry backoff must not be negative, got %s", o.RetryBackoff)
	}
	return nil
}

// Check is Validate and, besides, reads the CA certificate files, so that
// a setting that cannot work is reported before any registry is asked: a
// CACertPaths file that holds no PEM certificate fails here as it would on
// the first request.
func (o Options) Check() error {
	if err := o.Validate(); err != nil {
		return err
	}
	_, err := o.tlsConfig()
	return err
}

// NameOptions are the options to parse references with: weak validation,
// as imgpkg and docker accept, and name.Insecure when plain HTTP is allowed
// so that go-containerregistry falls back to it for any host.
func (o Options) NameOptions() []name.Option {
	opts := []name.Option{name.WeakValidation}
	if o.Insecure {
		opts = append(opts, name.Insecure)
	}
	return opts
}

// Keychain resolves credentials: none when Anon, the explicit ones for the
// CredentialHosts (every registry when empty) when given, otherwise the
// Docker config and credential helpers.
// Invalid options yield a keychain whose Resolve fails with Validate's error,
// so a misconfiguration surfaces on first use instead of falling back silently.
func (o Options) Keychain() authn.Keychain {
	if err := o.Validate(); err != nil {
		return errKeychain{err: err}
	}
	switch {
	case o.Anon:
		return fixedKeychain{auth: authn.Anonymous}
	case o.Token != "":
		return o.scoped(&authn.Bearer{Token: o.Token})
	case o.Username != "":
		return o.scoped(&authn.Basic{Username: o.Username, Password: o.Password})
	default:
		return helperKeychain{inner: authn.DefaultKeychain}
	}
}

// scoped gives auth to CredentialHosts (or to every registry when there are
// none) and the Docker config's credentials to the rest.
func (o Options) scoped(auth authn.Authenticator) authn.Keychain {
	if o.CredentialHosts == nil {
		return fixedKeychain{auth: auth}
	}
	hosts := make(map[string]bool, len(o.CredentialHosts))
	for _, h := range o.CredentialHosts {
		hosts[h] = true
	}
	return hostKeychain{hosts: hosts, auth: auth, others: helperKeychain{inner: authn.DefaultKeychain}}
}

// hostKeychain answers its hosts with auth and defers the others.
type hostKeychain struct {
	hosts  map[string]bool
	auth   authn.Authenticator
	others authn.Keychain
}

// Resolve implements authn.Keychain.
func (k hostKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	if k.hosts[r.RegistryStr()] {
		return k.auth, nil
	}
	return k.others.Resolve(r)
}

// fixedKeychain answers every registry with the same authenticator.
type fixedKeychain struct{ auth authn.Authenticator }

// Resolve implements authn.Keychain.
func (k fixedKeychain) Resolve(authn.Resource) (authn.Authenticator, error) { return k.auth, nil }

// errKeychain reports invalid options at resolution time.
type errKeychain struct{ err error }

// Resolve implements authn.Keychain.
func (k errKeychain) Resolve(authn.Resource) (authn.Authenticator, error) { return nil, k.err }

// RemoteOptions returns the go-containerregistry options every remote call of
// a command should use: credentials, the TLS- and timeout-configured
// transport with ferry's retry policy, ctx and the user agent.
//
// Requests whose body can be replayed are retried by ferry's transport, which
// honours Retry-After and ctx. go-containerregistry's own retry is left to
// the one case the transport cannot handle: a streamed blob upload, which it
// restarts from the layer; it is told to skip everything the transport has
// already retried, so attempts never multiply.
func (o Options) RemoteOptions(ctx context.Context) ([]remote.Option, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	rt, err := o.transport()
	if err != nil {
		return nil, err
	}
	ua := o.UserAgent
	if ua == "" {
		ua = DefaultUserAgent
	}
	return []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(o.Keychain()),
		remote.WithTransport(rt),
		remote.WithUserAgent(ua),
		remote.WithRetryBackoff(remote.Backoff{
			Duration: o.retryBackoff(),
			Factor:   2,
			Jitter:   0.1,
			Steps:    o.retryCount(),
			Cap:      MaxRetryWait,
		}),
		remote.WithRetryPredicate(retryableAboveTransport),
		// No status codes: statuses are retried below, by ferry's transport,
		// or above, by the predicate for streamed uploads.
		remote.WithRetryStatusCodes(),
	}, nil
}

// ClientOptions returns the options of a registry.Client that reaches
// registries exactly as RemoteOptions do: the same credentials, TLS,
// timeouts and retrying transport, and as many upload attempts as requests
// get.
func (o Options) ClientOptions() (registry.Options, error) {
	if err := o.Validate(); err != nil {
		return registry.Options{}, err
	}
	rt, err := o.transport()
	if err != nil {
		return registry.Options{}, err
	}
	ua := o.UserAgent
	if ua == "" {
		ua = DefaultUserAgent
	}
	return registry.Options{
		Transport:      rt,
		Keychain:       o.Keychain(),
		UserAgent:      ua,
		UploadAttempts: o.retryCount(),
		Backoff:        o.retryBackoff(),
		Final:          finalForUpload,
	}, nil
}

func (o Options) retryCount() int {
	if o.RetryCount == 0 {
		return DefaultRetryCount
	}
	return o.RetryCount
}

func (o Options) retryBackoff() time.Duration {
	if o.RetryBackoff == 0 {
		return DefaultRetryBackoff
	}
	return o.RetryBackoff
}

// transport builds the HTTP stack below go-containerregistry's auth layer:
// a clone of remote.DefaultTransport (proxy from the environment,
// keep-alives, HTTP/2) with ferry's TLS and timeout settings, wrapped in the
// retrying RoundTripper and the manifest size limit.
func (o Options) transport() (http.RoundTripper, error) {
	tlsConfig, err := o.tlsConfig()
	if err != nil {
		return nil, err
	}
	var base *http.Transport
	if t, ok := remote.DefaultTransport.(*http.Transport); ok {
		base = t.Clone()
	} else {
		base = http.DefaultTransport.(*http.Transport).Clone()
	}
	base.TLSClientConfig = tlsConfig
	base.MaxResponseHeaderBytes = MaxResponseHeaderBytes
	switch {
	case o.ResponseHeaderTimeout == 0:
		base.ResponseHeaderTimeout = DefaultResponseHeaderTimeout
	case o.ResponseHeaderTimeout > 0:
		base.ResponseHeaderTimeout = o.ResponseHeaderTimeout
	}
	if t := base.ResponseHeaderTimeout; t > 0 && (base.TLSHandshakeTimeout <= 0 || t < base.TLSHandshakeTimeout) {
		// The handshake is the registry's first answer too: with Go's
		// own 10s, a host that accepts and never answers held every
		// attempt 10s whatever the flag said (65s where 2s was asked).
		// Only ever shortened: the 2m default for answers would hold a
		// silent host 2m per attempt.
		base.TLSHandshakeTimeout = t
	}
	var inner http.RoundTripper = base
	if base.ResponseHeaderTimeout > 0 {
		inner = idleTransport{inner: base, idle: base.ResponseHeaderTimeout}
		dial := base.DialContext
		if dial == nil {
			dial = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
		}
		base.DialContext = withWriteDeadlines(dial, base.ResponseHeaderTimeout)
	}
	// Outside the retries: a manifest too large is not worth asking for
	// again.
	var rt http.RoundTripper = limitTransport{inner: &retryTransport{
		inner:    inner,
		attempts: o.retryCount(),
		backoff:  o.retryBackoff(),
	}}
	if !o.Insecure {
		rt = cleartextTransport{inner: rt}
	}
	return rt, nil
}

func (o Options) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.Insecure {
		// The user asked for it with --registry-insecure; never a default.
		cfg.InsecureSkipVerify = true
	}
	if len(o.CACertPaths) == 0 {
		return cfg, nil
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		// No system pool (some minimal containers): trust only the given CAs.
		pool = x509.NewCertPool()
	}
	for _, p := range o.CACertPaths {
		pem, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("registry CA certificate: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("registry CA certificate %s: no PEM-encoded certificate found", p)
		}
	}
	cfg.RootCAs = pool
	return cfg, nil
}
