package regopts

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
)

// MaxManifestSize bounds a manifest or index a registry sends: what
// distribution accepts on push (4 MiB) and what a ferry archive holds
// (archive.DefaultMaxManifestSize). go-containerregistry reads up to
// 100 MiB of a manifest before checking it, for every one of the
// concurrent requests an export makes.
const MaxManifestSize = 4 << 20

var manifestPath = regexp.MustCompile(`^/v2/.+/manifests/[^/]+$`)

// limitTransport refuses the body of a manifest GET above MaxManifestSize:
// at once when Content-Length declares more, and as soon as more arrives
// when it does not.
type limitTransport struct {
	inner http.RoundTripper
}

// RoundTrip implements http.RoundTripper.
func (t limitTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.inner.RoundTrip(req)
	if err != nil || req.Method != http.MethodGet || resp.StatusCode != http.StatusOK || !manifestPath.MatchString(req.URL.Path) {
		return resp, err
	}
	if resp.ContentLength > MaxManifestSize {
		resp.Body.Close()
		return nil, tooLarge(req, fmt.Sprintf("declares %d bytes", resp.ContentLength))
	}
	resp.Body = &limitBody{rc: resp.Body, left: MaxManifestSize, req: req}
	return resp, nil
}

func tooLarge(req *http.Request, what string) error {
	return fmt.Errorf("manifest %s://%s%s %s; a manifest may have at most %d", req.URL.Scheme, req.URL.Host, req.URL.Path, what, MaxManifestSize)
}

// limitBody fails a read that goes past its limit.
type limitBody struct {
	rc   io.ReadCloser
	left int64
	req  *http.Request
}

func (b *limitBody) Read(p []byte) (int, error) {
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		return 0, tooLarge(b.req, "sends more than that")
	}
	return n, err
}

func (b *limitBody) Close() error { return b.rc.Close() }
