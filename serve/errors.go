package serve

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"unicode/utf8"
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
	codeTooManyRequests   = "TOOMANYREQUESTS"
	// codePaginationInvalid is distribution's code for a bad n.
	codePaginationInvalid = "PAGINATION_NUMBER_INVALID"
	// codeUnknown is distribution's code for a server-side failure: here,
	// a damaged archive.
	codeUnknown = "UNKNOWN"
)

// echoMax bounds how much of what a client sent (a path, a tag, a query
// parameter, a method) an error document or a request log line repeats,
// so that a long request cannot make the server echo it whole.
const echoMax = 256

// echoed returns client input s for an error message: at most echoMax
// bytes of it, quoted with Go's escapes, and its length when cut.
func echoed(s string) string {
	p, cut := clip(s)
	return strconv.Quote(p) + cut
}

// logged returns client input s for the request log: at most echoMax
// bytes of it, as they are when they are printable ASCII (a request path
// usually is: Go's server escapes it) and quoted otherwise, and its length
// when cut.
func logged(s string) string {
	p, cut := clip(s)
	for i := 0; i < len(p); i++ {
		if p[i] <= ' ' || p[i] >= 0x7f {
			return strconv.Quote(p) + cut
		}
	}
	return p + cut
}

// clip returns the first echoMax bytes of s (cut between runes) and, when
// that is not all of s, a note of its length.
func clip(s string) (string, string) {
	if len(s) <= echoMax {
		return s, ""
	}
	n := echoMax
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n], fmt.Sprintf("… (%d bytes)", len(s))
}
