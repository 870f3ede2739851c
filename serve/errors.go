package serve

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// regError is an error answered as the distribution spec's error document:
// {"errors":[{"code":…,"message":…}]}, with its HTTP status.
type regError struct {
	Status  int
	Code    string
	Message string
}

func (e *regError) write(w http.ResponseWriter) {
	type entry struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	body, _ := json.Marshal(struct {
		Errors []entry `json:"errors"`
	}{[]entry{{Code: e.Code, Message: e.Message}}})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(e.Status)
	w.Write(body)
}

func newError(status int, code, format string, args ...any) *regError {
	return &regError{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// The spec's error codes this server answers with.
const (
	codeBlobUnknown       = "BLOB_UNKNOWN"
	codeBlobUploadUnknown = "BLOB_UPLOAD_UNKNOWN"
	codeDigestInvalid     = "DIGEST_INVALID"
	codeManifestUnknown   = "MANIFEST_UNKNOWN"
	codeNameInvalid       = "NAME_INVALID"
	codeNameUnknown       = "NAME_UNKNOWN"
	codeUnauthorized      = "UNAUTHORIZED"
	codeUnsupported       = "UNSUPPORTED"
	// codePaginationInvalid is distribution's code for a bad n.
	codePaginationInvalid = "PAGINATION_NUMBER_INVALID"
	// codeUnknown is distribution's code for a server-side failure: here,
	// a damaged archive.
	codeUnknown = "UNKNOWN"
)
