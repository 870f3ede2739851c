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

// MaxTagPageSize bounds one page of a tag list: a million tags of the
// longest names imgpkg writes (sha256-<hex>.imgpkg, 78 bytes) fit in one.
// go-containerregistry decodes a page whole, whatever its size.
const MaxTagPageSize = 96 << 20

// MaxResponseHeaderBytes bounds the headers of one answer (net/http's
// default is 10 MiB). A registry's headers take a few KiB; a Link header
// of megabytes, one page after another, is a registry filling memory.
const MaxResponseHeaderBytes = 1 << 20

// bodyLimit is a kind of response whose body is bounded.
type bodyLimit struct {
	path *regexp.Regexp
	what string // "manifest", "tag list page"
	max  int64
}

var bodyLimits = []bodyLimit{
	{regexp.MustCompile(`^/v2/.+/manifests/[^/]+$`), "manifest", MaxManifestSize},
	{regexp.MustCompile(`^/v2/.+/tags/list$`), "tag list page", MaxTagPageSize},
}

// limitTransport refuses the body of a manifest GET above MaxManifestSize,
// and of a tag list page above MaxTagPageSize: at once when
// Content-Length declares more, and as soon as more arrives when it does
// not.
type limitTransport struct {
	inner http.RoundTripper
}

// RoundTrip implements http.RoundTripper.
func (t limitTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.inner.RoundTrip(req)
	if err != nil || req.Method != http.MethodGet || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	// What was asked for decides, not where a redirect led: a manifest
	// served from another path is bounded as a manifest.
	asked := firstRequest(req).URL.Path
	for _, l := range bodyLimits {
		if !l.path.MatchString(asked) {
			continue
		}
		if resp.ContentLength > l.max {
			resp.Body.Close()
			return nil, l.tooLarge(req, fmt.Sprintf("declares %d bytes", resp.ContentLength))
		}
		resp.Body = &limitBody{rc: resp.Body, left: l.max, req: req, limit: l}
		break
	}
	return resp, nil
}

func (l bodyLimit) tooLarge(req *http.Request, what string) error {
	return fmt.Errorf("%s %s://%s%s %s; a %s may have at most %d", l.what, req.URL.Scheme, req.URL.Host, req.URL.Path, what, l.what, l.max)
}

// limitBody fails a read that goes past its limit.
type limitBody struct {
	rc    io.ReadCloser
	left  int64
	req   *http.Request
	limit bodyLimit
}

func (b *limitBody) Read(p []byte) (int, error) {
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		return 0, b.limit.tooLarge(b.req, "sends more than that")
	}
	return n, err
}

func (b *limitBody) Close() error { return b.rc.Close() }
