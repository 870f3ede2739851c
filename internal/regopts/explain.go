package regopts

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Explain turns the registry failures users can fix themselves (refused
// credentials, an untrusted certificate, an unreachable host) into a message
// saying what to do. ref is the reference or repository the operation
// concerned, as the user wrote it. The original error stays wrapped, so
// errors.Is and errors.As keep working; other errors are returned unchanged.
func Explain(err error, ref string) error {
	var done *explainedError
	if err == nil || errors.As(err, &done) {
		// Several layers may call Explain on the way up; say it once.
		return err
	}
	host := registryHost(ref, err)
	about := ""
	if ref != "" {
		about = " for " + ref
	}
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
		hint = fmt.Sprintf("cannot verify the TLS certificate of registry %s%s: "+
			"if it is signed by a private CA, trust that CA with --registry-ca-cert-path FILE, "+
			"or skip verification with --registry-insecure (unsafe)", host, about)
	case isAuthError(err):
		hint = fmt.Sprintf("registry %s refused access%s: "+
			"give (or correct) credentials with --registry-username and --registry-password "+
			"(or FERRY_USERNAME and FERRY_PASSWORD), a token with --registry-token (or FERRY_TOKEN), "+
			"or run \"docker login %s\"", host, about, host)
	case errors.Is(err, syscall.ECONNREFUSED):
		hint = fmt.Sprintf("cannot reach registry %s%s: connection refused", host, about)
	case isDNSError(err):
		hint = fmt.Sprintf("cannot reach registry %s%s: its host name does not resolve", host, about)
	case strings.Contains(err.Error(), "net/http: TLS handshake timeout"):
		// A host that accepts connections and never answers (net/http
		// gives no error type to test).
		// Go's own limit of 10s, or the flag when shorter: which one
		// fired is not known here.
		hint = fmt.Sprintf("cannot reach registry %s%s: no answer to the TLS handshake within 10s (or --registry-response-header-timeout, when shorter)", host, about)
	case strings.Contains(err.Error(), "net/http: timeout awaiting response headers"):
		hint = fmt.Sprintf("cannot reach registry %s%s: no response within --registry-response-header-timeout", host, about)
	default:
		return err
	}
	return &explainedError{hint: hint, err: err}
}

// explainedError is a registry failure with advice in front of it.
type explainedError struct {
	hint string
	err  error
}

func (e *explainedError) Error() string { return e.hint + ": " + e.err.Error() }

func (e *explainedError) Unwrap() error { return e.err }

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

// registryHost names the registry that failed: the failed request's host
// when the error carries it (the host of the first request, when the
// registry redirected it to storage), else ref's.
func registryHost(ref string, err error) string {
	// The failing request's host comes first: a move touches several
	// registries, and the one that refused may not be the one in ref.
	var te *transport.Error
	if errors.As(err, &te) && te.Request != nil && te.Request.URL != nil {
		first := te.Request
		// Response is the redirect that led to a request, whose own
		// Request is the one redirected.
		for first.Response != nil && first.Response.Request != nil && first.Response.Request.URL != nil {
			first = first.Response.Request
		}
		return first.URL.Host
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
