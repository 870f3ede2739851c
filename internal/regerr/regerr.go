// Package regerr classifies the errors go-containerregistry returns for
// registry responses, so that every command draws the same line between
// "there is no such thing" and "the registry failed".
package regerr

import (
	"errors"
	"net/http"

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
