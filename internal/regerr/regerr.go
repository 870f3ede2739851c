// Package regerr classifies the errors go-containerregistry returns for
// registry responses, so that every command draws the same line between
// "there is no such thing" and "the registry failed".
package regerr

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// IsNotFound reports whether err is the registry saying that the manifest,
// tag or repository asked for does not exist: HTTP 404, or the error codes
// MANIFEST_UNKNOWN or NAME_UNKNOWN under another status (registries do not
// agree on the status; a HEAD has no body, so there only the status
// counts). Any other failure, authentication included, is not "not found":
// treating it so would make a lookup silently skip content.
func IsNotFound(err error) bool {
	var te *transport.Error
	if !errors.As(err, &te) {
		return false
	}
	if te.StatusCode == http.StatusNotFound {
		return true
	}
	for _, d := range te.Errors {
		if d.Code == transport.ManifestUnknownErrorCode || d.Code == transport.NameUnknownErrorCode {
			return true
		}
	}
	return false
}

// IsManifestNotFound reports whether err is IsNotFound about a manifest
// (or its repository), not about a blob.
func IsManifestNotFound(err error) bool {
	if !IsNotFound(err) {
		return false
	}
	if hasCode(err, transport.ManifestUnknownErrorCode) || hasCode(err, transport.NameUnknownErrorCode) {
		return true
	}
	var te *transport.Error
	errors.As(err, &te)
	if te.Request == nil {
		return false
	}
	asked := FirstRequest(te.Request)
	return asked.URL != nil && strings.Contains(asked.URL.Path, "/manifests/")
}

// FirstRequest returns the request that began req's chain of redirects
// (req itself when it follows none): what was asked for, where an error's
// request is where the registry's redirects led (storage, for a blob).
func FirstRequest(req *http.Request) *http.Request {
	for req.Response != nil && req.Response.Request != nil {
		req = req.Response.Request
	}
	return req
}

// NotFoundError is a registry's "not found" for a manifest, said in plain
// words: which of the repository, the tag or the digest is missing. It
// wraps the registry's answer, so errors.As still finds the
// *transport.Error.
type NotFoundError struct {
	// What is the kind of thing asked for ("bundle", "image"), and Ref
	// the reference asked for.
	What string
	Ref  name.Reference
	// LockedBy names what refers to Ref (a bundle, a lock file), if any.
	LockedBy string
	// Elsewhere names another place that was asked and has no such
	// manifest either (the repository a bundle was relocated to), if any.
	Elsewhere string
	Err       error
}

func (e *NotFoundError) Error() string {
	repo := e.Ref.Context()
	var why string
	switch {
	case hasCode(e.Err, transport.NameUnknownErrorCode):
		why = fmt.Sprintf("%s has no repository %s", repo.RegistryStr(), repo.RepositoryStr())
	case isDigest(e.Ref):
		why = "the repository has no manifest with that digest"
	default:
		why = fmt.Sprintf("the repository has no tag %s (ferry tag list -i %s lists them)", e.Ref.Identifier(), repo.Name())
	}
	head := e.What + " " + ShortRef(e.Ref)
	if e.LockedBy != "" {
		head += " (locked by " + fullDigest.ReplaceAllString(e.LockedBy, "sha256:$1") + ")"
	}
	if e.Elsewhere != "" {
		why += ", nor has " + e.Elsewhere
	}
	return head + " not found: " + why
}

// Unwrap returns the registry's answer.
func (e *NotFoundError) Unwrap() error { return e.Err }

// NotFound returns err as a *NotFoundError about ref if it is the
// registry saying the manifest does not exist (IsNotFound), else err.
func NotFound(what string, ref name.Reference, lockedBy string, err error) error {
	if !IsManifestNotFound(err) {
		return err
	}
	return &NotFoundError{What: what, Ref: ref, LockedBy: lockedBy, Err: err}
}

func hasCode(err error, code transport.ErrorCode) bool {
	var te *transport.Error
	if !errors.As(err, &te) {
		return false
	}
	for _, d := range te.Errors {
		if d.Code == code {
			return true
		}
	}
	return false
}

func isDigest(ref name.Reference) bool {
	_, ok := ref.(name.Digest)
	return ok
}

// ShortDigest abbreviates sha256:<64 hex> to its first 12 hex digits, as
// human messages write digests; --json and lock files carry them whole.
func ShortDigest(d string) string {
	if strings.HasPrefix(d, "sha256:") && len(d) > len("sha256:")+12 {
		return d[:len("sha256:")+12]
	}
	return d
}

// fullDigest is a sha256 digest written whole.
var fullDigest = regexp.MustCompile(`sha256:([0-9a-f]{12})[0-9a-f]{52}`)

// ShortRef is ref as a human message writes it: a digest reference's
// digest abbreviated (ShortDigest).
func ShortRef(ref name.Reference) string {
	if d, ok := ref.(name.Digest); ok {
		return d.Context().Name() + "@" + ShortDigest(d.DigestStr())
	}
	return ref.String()
}
