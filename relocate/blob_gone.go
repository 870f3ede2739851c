package relocate

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/ferry-dev/ferry/internal/regerr"
)

// sourceBlobGone is a blob its source registry says it does not have
// (HTTP 404, BLOB_UNKNOWN) although the image's manifest, read while
// planning, names it: the source changed, or never held it. Its message
// names the source, the blob and the image, digests short, and then what
// the run left undone.
type sourceBlobGone struct {
	b      Blob
	status int
	// then says what the run did not do, for the user (the archive was
	// not written, nothing was tagged).
	then string
	err  error
}

func (e *sourceBlobGone) Error() string {
	kind := "layer"
	if e.b.Config {
		kind = "config"
	}
	s := fmt.Sprintf("source %s no longer has %s %s of image %s (HTTP %d)",
		e.b.Source.Context().Name(), kind, regerr.ShortDigest(e.b.Digest.String()), shortRefDigest(e.b.Image), e.status)
	if e.then != "" {
		s += ": " + e.then
	}
	return s
}

// Unwrap returns the registry's answer.
func (e *sourceBlobGone) Unwrap() error { return e.err }

// blobGone returns err as a *sourceBlobGone about b, saying then, when
// it holds the source registry's "no such blob"; else nil.
func blobGone(b Blob, err error, then string) error {
	if g, ok := errors.AsType[*sourceBlobGone](err); ok {
		c := *g
		c.then = then
		return &c
	}
	var te *transport.Error
	if !errors.As(err, &te) || te.Request == nil {
		return nil
	}
	// A blob's GET redirected to storage that answers 404 is still a
	// blob's: what was asked for decides.
	if asked := regerr.FirstRequest(te.Request); asked.URL == nil || !strings.Contains(asked.URL.Path, "/blobs/") {
		return nil
	}
	unknown := te.StatusCode == http.StatusNotFound
	for _, d := range te.Errors {
		unknown = unknown || d.Code == transport.BlobUnknownErrorCode
	}
	if !unknown {
		return nil
	}
	return &sourceBlobGone{b: b, status: te.StatusCode, then: then, err: err}
}

// shortRefDigest is ref (REPO@sha256:<64 hex>) with its digest short.
func shortRefDigest(ref string) string {
	if i := strings.LastIndex(ref, "@"); i >= 0 {
		return ref[:i+1] + regerr.ShortDigest(ref[i+1:])
	}
	return ref
}
