package regopts

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/ferry-dev/ferry/internal/regerr"
)

// Explain turns the registry failures users can fix themselves (refused
// credentials, an untrusted certificate, an unreachable host) into a message
// saying what to do, given the options the failed operation used (which
// registries got the explicit credentials, the timeouts). ref is the
// reference or repository the operation concerned, as the user wrote it.
// The original error stays wrapped, so errors.Is and errors.As keep working;
// other errors are returned unchanged. The result's Hint and Cause give its
// two parts apart (see Explained).
func (o Options) Explain(err error, ref string) error {
	var done *explainedError
	if err == nil || errors.As(err, &done) {
		// Several layers may call Explain on the way up; say it once.
		return err
	}
	host := registryHost(ref, err)
	about := o.aboutWhat(ref, err)
	var hint string
	switch storage := redirectedTo(err); {
	case storage != "" && isAuthError(err):
		// Credentials for the registry would change nothing: the storage
		// it redirected to (a signed URL, S3's or GCS's behind a
		// registry) judges the URL alone.
		hint = fmt.Sprintf("registry %s redirected the download%s to its storage %s, which refused it: "+
			"the storage's signed URL may have expired (is this host's clock right?), "+
			"or the storage does not accept it; the registry's credentials are not at fault", host, about, storage)
	case isCertificateError(err):
		hint = certificateHint(err, host, about)
	case isAuthError(err):
		hint = fmt.Sprintf("registry %s refused access%s: %s", host, about, o.authHint(host))
	case errors.Is(err, syscall.ECONNREFUSED):
		hint = fmt.Sprintf("cannot reach registry %s%s: connection refused", host, about)
	case isDNSError(err):
		hint = fmt.Sprintf("cannot reach registry %s%s: its host name does not resolve", host, about)
	case strings.Contains(err.Error(), "net/http: TLS handshake timeout"):
		// A host that accepts connections and never answers (net/http
		// gives no error type to test). The transport shortens Go's
		// 10s to the response header timeout when that is shorter.
		limit, why := 10*time.Second, "Go's limit"
		if t := o.responseHeaderTimeout(); t > 0 && t < limit {
			limit, why = t, "--registry-response-header-timeout"
		}
		hint = fmt.Sprintf("cannot reach registry %s%s: no answer to the TLS handshake within %s (%s)", host, about, limit, why)
	case strings.Contains(err.Error(), "net/http: timeout awaiting response headers"):
		hint = fmt.Sprintf("cannot reach registry %s%s: no response within %s (--registry-response-header-timeout)", host, about, o.responseHeaderTimeout())
	default:
		return err
	}
	return &explainedError{hint: hint, err: err}
}

// responseHeaderTimeout is the limit the transport applies to a
// registry's answers; 0 when there is none.
func (o Options) responseHeaderTimeout() time.Duration {
	switch {
	case o.ResponseHeaderTimeout == 0:
		return DefaultResponseHeaderTimeout
	case o.ResponseHeaderTimeout < 0:
		return 0
	}
	return o.ResponseHeaderTimeout
}

// explicitFor reports whether the explicit credentials (a username and
// password, or a token) go to host.
func (o Options) explicitFor(host string) bool {
	if o.Anon || (o.Username == "" && o.Token == "") {
		return false
	}
	return o.CredentialHosts == nil || slices.Contains(o.CredentialHosts, host)
}

// credentialFlag names where the explicit credentials came from, as the
// user gave them.
func (o Options) credentialFlag() string {
	switch {
	case o.CredentialsFrom != "":
		return o.CredentialsFrom
	case o.Token != "":
		return "--registry-token"
	}
	return "--registry-username"
}

// authHint says which credentials host refused (or that there were none),
// where they came from, and what would change that. It never quotes a
// password or a token.
func (o Options) authHint(host string) string {
	switch {
	case o.Anon:
		return "--registry-anon sends no credentials; drop it to use the Docker config's, or give --registry-username/--registry-password"
	case o.explicitFor(host) && o.Token != "":
		return fmt.Sprintf("it refused the token given by %s: correct it, or give --registry-username/--registry-password instead", o.credentialFlag())
	case o.explicitFor(host):
		return fmt.Sprintf("it refused the credentials given by %s (%s): correct --registry-username/--registry-password", o.credentialFlag(), o.Username)
	}
	var parts []string
	if o.Username != "" || o.Token != "" {
		flags := "--registry-username/--registry-password go"
		if o.Token != "" {
			flags = "--registry-token goes"
		}
		parts = append(parts, fmt.Sprintf("%s only to %s; add --registry-credential-host %s (or '*')",
			flags, strings.Join(o.CredentialHosts, ", "), host))
	}
	cfg := loadDockerConfig()
	switch helper := cfg.helper(host); {
	case helper != "":
		parts = append(parts, fmt.Sprintf("it refused the credentials of credential helper %s (%s): run \"docker login %s\"", helper, cfg.path, host))
	case cfg.has(host):
		parts = append(parts, fmt.Sprintf("it refused the credentials for %s in %s: run \"docker login %s\"", host, cfg.path, host))
	case len(parts) == 0:
		parts = append(parts, fmt.Sprintf("no credentials found for %s (docker login %s, or --registry-username/--registry-password, or --registry-token)", host, host))
	}
	return strings.Join(parts, "; ")
}

// Explained is what Explain's errors offer besides Error (the hint, then
// the whole chain of the failure, on one line): the hint alone, for a
// person, and the failure it explains.
type Explained interface {
	error
	// Hint says what failed, where, and what to do.
	Hint() string
	// Cause is the innermost error of the failure that says something on
	// its own (a registry's error response, a certificate's, a network
	// operation's), without the URLs and operations wrapped around it.
	Cause() error
}

// explainedError is a registry failure with advice in front of it.
type explainedError struct {
	hint string
	err  error
}

func (e *explainedError) Error() string { return e.hint + ": " + e.err.Error() }

func (e *explainedError) Unwrap() error { return e.err }

// Hint implements Explained.
func (e *explainedError) Hint() string { return e.hint }

// Cause implements Explained.
func (e *explainedError) Cause() error { return innermost(e.err) }

// innermost follows err's chain to the first error that says something on
// its own, or to its end.
func innermost(err error) error {
	for {
		switch err.(type) {
		case *transport.Error, *tls.CertificateVerificationError, x509.UnknownAuthorityError,
			x509.HostnameError, x509.CertificateInvalidError, *net.OpError, *net.DNSError:
			return err
		}
		next := errors.Unwrap(err)
		if next == nil {
			// Attempts joined (https, then plain http on loopback, as
			// go-containerregistry's ping gathers them in a slice
			// type of its own): the first is the one asked for.
			next = firstJoined(err)
		}
		if next == nil {
			return err
		}
		err = next
	}
}

// firstJoined is the first of the errors err joins (errors.Join, or a
// slice of errors such as go-containerregistry's multierrs), nil when it
// joins none.
func firstJoined(err error) error {
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		if errs := joined.Unwrap(); len(errs) > 0 {
			return errs[0]
		}
		return nil
	}
	v := reflect.ValueOf(err)
	if v.Kind() == reflect.Slice && v.Len() > 0 {
		if first, ok := v.Index(0).Interface().(error); ok {
			return first
		}
	}
	return nil
}

// certificateHint says why a registry's certificate was refused: expired
// (or not yet valid), issued for other names, or signed by an authority
// this host does not trust.
func certificateHint(err error, host, about string) string {
	var (
		ierr x509.CertificateInvalidError
		herr x509.HostnameError
	)
	switch {
	case errors.As(err, &ierr) && ierr.Reason == x509.Expired && ierr.Cert != nil:
		now := time.Now()
		if now.Before(ierr.Cert.NotBefore) {
			return fmt.Sprintf("the TLS certificate of registry %s%s is not valid before %s: check the server's certificate or this host's clock",
				host, about, ierr.Cert.NotBefore.UTC().Format(time.RFC3339))
		}
		return fmt.Sprintf("the TLS certificate of registry %s%s expired on %s: check the server's certificate or this host's clock",
			host, about, ierr.Cert.NotAfter.UTC().Format(time.RFC3339))
	case errors.As(err, &herr) && herr.Certificate != nil:
		names := slices.Clone(herr.Certificate.DNSNames)
		for _, ip := range herr.Certificate.IPAddresses {
			names = append(names, ip.String())
		}
		if len(names) == 0 && herr.Certificate.Subject.CommonName != "" {
			names = append(names, herr.Certificate.Subject.CommonName)
		}
		return fmt.Sprintf("the TLS certificate of registry %s%s is for %s, not %s: reach the registry by a name it is issued for, or fix the server's certificate",
			host, about, strings.Join(names, ", "), hostOnly(host))
	}
	return fmt.Sprintf("cannot verify the TLS certificate of registry %s%s: "+
		"if it is signed by a private CA, trust that CA with --registry-ca-cert-path FILE, "+
		"or skip verification with --registry-insecure (unsafe)", host, about)
}

// hostOnly is host without its port.
func hostOnly(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		return h
	}
	return host
}

func isCertificateError(err error) bool {
	var (
		verr *tls.CertificateVerificationError
		uerr x509.UnknownAuthorityError
		herr x509.HostnameError
		ierr x509.CertificateInvalidError
	)
	if errors.As(err, &verr) || errors.As(err, &uerr) || errors.As(err, &herr) || errors.As(err, &ierr) {
		return true
	}
	// Some layers flatten errors into strings; x509 messages are recognisable.
	msg := err.Error()
	return strings.Contains(msg, "x509: ") || strings.Contains(msg, "tls: failed to verify certificate")
}

func isAuthError(err error) bool {
	var te *transport.Error
	if !errors.As(err, &te) {
		return false
	}
	if te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden {
		return true
	}
	for _, d := range te.Errors {
		if d.Code == transport.UnauthorizedErrorCode || d.Code == transport.DeniedErrorCode {
			return true
		}
	}
	return false
}

func isDNSError(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de)
}

// redirectedTo returns the host a registry redirected the failed request
// to (its blob storage), "" when the request was not redirected.
func redirectedTo(err error) string {
	var te *transport.Error
	if !errors.As(err, &te) || te.Request == nil || te.Request.URL == nil || te.Request.Response == nil {
		return ""
	}
	return te.Request.URL.Host
}

// aboutWhat says what a failure concerned: ref, or, where the failing
// request asked for something of another repository (an image a bundle's
// lock names, on another registry), that, reached through ref, so that the
// user learns which image needs the credentials or the certificate.
func (o Options) aboutWhat(ref string, err error) string {
	if ref == "" {
		return ""
	}
	asked, ok := requested(err)
	if !ok || o.names(ref, asked.repo) {
		return " for " + ref
	}
	return " for " + asked.what + " (reached through " + ref + ")"
}

// request is what a failed request asked for.
type request struct {
	repo string // HOST/REPO
	what string // HOST/REPO@DIGEST, HOST/REPO:TAG, or "blob DIGEST of HOST/REPO"
}

// requested is what err's first request asked for: a manifest or a blob
// of a repository. ok is false when the request was for something else (a
// token, the /v2/ ping) or there is none.
func requested(err error) (_ request, ok bool) {
	var te *transport.Error
	if !errors.As(err, &te) || te.Request == nil {
		return request{}, false
	}
	first := regerr.FirstRequest(te.Request)
	if first.URL == nil {
		return request{}, false
	}
	p, ok := strings.CutPrefix(first.URL.Path, "/v2/")
	if !ok {
		return request{}, false
	}
	for _, kind := range []string{"/manifests/", "/blobs/"} {
		// The last: a repository's own path may hold "blobs".
		i := strings.LastIndex(p, kind)
		if i <= 0 {
			continue
		}
		repo, id := first.URL.Host+"/"+p[:i], p[i+len(kind):]
		switch {
		case id == "" || strings.Contains(id, "/"):
			continue
		case kind == "/blobs/":
			return request{repo: repo, what: "blob " + id + " of " + repo}, true
		case strings.Contains(id, ":"):
			return request{repo: repo, what: repo + "@" + id}, true
		default:
			return request{repo: repo, what: repo + ":" + id}, true
		}
	}
	return request{}, false
}

// names reports whether one of ref's words ("bundle HOST/REPO:TAG") is a
// reference into repo (HOST/REPO as requested), parsed as the command
// parsed it, so that "me/app" is index.docker.io/me/app and a mirror's
// longer host is another registry.
func (o Options) names(ref, repo string) bool {
	for _, word := range strings.Fields(ref) {
		word = strings.Trim(word, "(),")
		var r name.Repository
		if parsed, err := name.ParseReference(word, o.NameOptions()...); err == nil {
			r = parsed.Context()
		} else if parsed, err := name.NewRepository(word, o.NameOptions()...); err == nil {
			r = parsed
		} else {
			continue
		}
		if r.RegistryStr()+"/"+r.RepositoryStr() == repo {
			return true
		}
	}
	return false
}

// registryHost names the registry that failed: the failed request's host
// when the error carries it (the host of the first request, when the
// registry redirected it to storage), else ref's.
func registryHost(ref string, err error) string {
	// The failing request's host comes first: a move touches several
	// registries, and the one that refused may not be the one in ref.
	var te *transport.Error
	if errors.As(err, &te) && te.Request != nil {
		if first := regerr.FirstRequest(te.Request); first.URL != nil {
			return first.URL.Host
		}
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		if u, perr := url.Parse(ue.URL); perr == nil && u.Host != "" {
			return u.Host
		}
	}
	if ref != "" {
		if r, perr := name.ParseReference(ref, name.WeakValidation); perr == nil {
			return r.Context().RegistryStr()
		}
		if r, perr := name.NewRepository(ref, name.WeakValidation); perr == nil {
			return r.RegistryStr()
		}
		return ref
	}
	return "(unknown)"
}
