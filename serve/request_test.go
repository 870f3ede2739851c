package serve_test

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/ferry-dev/ferry/serve"
)

// TestAnInvalidRangeIsIgnored: RFC 9110 (14.2) has a server ignore a Range
// header that is not a valid bytes ranges-specifier, or of another unit:
// the whole blob, 200. A valid one that no byte satisfies stays 416, with
// Content-Range: bytes */SIZE; a valid one beyond int64 is still valid.
func TestAnInvalidRangeIsIgnored(t *testing.T) {
	s := newSource(t)
	srv := startServer(t, s.archive, serve.Options{})
	d, blob := smallLayer(t, s)
	size := len(blob)
	url := srv.url + "/v2/src/app/blobs/" + d
	for _, h := range []string{
		"bytes=abc", "bytes=5-2", "bytes=", "bytes=-", "bytes=1-2,x", "bytes=1-2,5-3", "bytes=--5", "bytes=0x10-20",
		"bytes=1 -2", "bytes=1- 2", "items=0-5", "bytes 0-5", "bytes=+1-2", "bytes=-+2",
		"bytes=99999999999999999999-1",
	} {
		resp, body := do(t, http.MethodGet, url, map[string]string{"Range": h})
		if resp.StatusCode != http.StatusOK || !bytes.Equal(body, blob) || resp.Header.Get("Content-Range") != "" {
			t.Errorf("Range %q: %d, Content-Range %q, %d bytes (%.40q); want 200 and the whole %d-byte blob", h, resp.StatusCode, resp.Header.Get("Content-Range"), len(body), body, size)
		}
	}
	for h, want := range map[string][]byte{
		"Bytes=0-9":                        blob[:10],
		"bytes=2-4, ,":                     blob[2:5],
		"bytes= 1-2":                       blob[1:3],
		"bytes=0-99999999999999999999":     blob,
		"bytes=-99999999999999999999":      blob,
		fmt.Sprintf("bytes=%d-,3-3", size): blob[3:4], // the part beyond the end is dropped
		"bytes=-0,3-3":                     blob[3:4],
	} {
		resp, body := do(t, http.MethodGet, url, map[string]string{"Range": h})
		if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, want) {
			t.Errorf("Range %q: %d, %d bytes, the right ones %v; want 206 and %d bytes", h, resp.StatusCode, len(body), bytes.Equal(body, want), len(want))
		}
	}
	for _, h := range []string{fmt.Sprintf("bytes=%d-", size), fmt.Sprintf("bytes=%d-%d", size+5, size+9), "bytes=-0", "bytes=99999999999999999999-"} {
		resp, body := do(t, http.MethodGet, url, map[string]string{"Range": h})
		if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable || resp.Header.Get("Content-Range") != fmt.Sprintf("bytes */%d", size) {
			t.Errorf("Range %q: %d, Content-Range %q (%s); want 416 with bytes */%d", h, resp.StatusCode, resp.Header.Get("Content-Range"), strings.TrimSpace(string(body)), size)
		}
	}
}

// TestClientInputIsValidatedAndEchoedBounded: a repository name the spec
// does not allow (too long, or malformed) is NAME_INVALID (400), and no
// error document or request log line repeats more than a bounded, escaped
// part of what the client sent, however long.
func TestClientInputIsValidatedAndEchoedBounded(t *testing.T) {
	s := newSource(t)
	srv := startServer(t, s.archive, serve.Options{})
	long := strings.Repeat("a", 80<<10)
	for _, c := range []struct {
		method, path string
		status       int
		code         string
	}{
		{"GET", "/v2/" + strings.Repeat("a", 256) + "/manifests/v1", 400, "NAME_INVALID"},
		{"GET", "/v2/" + long + "/tags/list", 400, "NAME_INVALID"},
		{"HEAD", "/v2/" + long + "/blobs/" + s.bigDigest.String(), 400, ""},
		{"GET", "/v2/src/" + long + "/referrers/" + s.bigDigest.String(), 400, "NAME_INVALID"},
		{"GET", "/v2/Src/App/manifests/v1", 400, "NAME_INVALID"},
		{"GET", "/v2/src//app/manifests/v1", 400, "NAME_INVALID"},
		{"GET", "/v2/src/app./manifests/v1", 400, "NAME_INVALID"},
		{"GET", "/v2/src/app/manifests/" + long, 404, "MANIFEST_UNKNOWN"},
		{"GET", "/v2/src/app/manifests/%1b%5b2K" + long, 404, "MANIFEST_UNKNOWN"},
		{"GET", "/v2/src/app/blobs/sha256:" + long, 400, "DIGEST_INVALID"},
		{"GET", "/v2/src/app/referrers/sha256:" + long, 400, "DIGEST_INVALID"},
		{"GET", "/v2/" + long, 404, "UNSUPPORTED"},
		{"GET", "/v2/src/app/tags/list?n=" + long, 400, "PAGINATION_NUMBER_INVALID"},
		{"GET", "/v2/_catalog?n=" + long, 400, "PAGINATION_NUMBER_INVALID"},
		{strings.Repeat("X", 80<<10), "/v2/", 405, "UNSUPPORTED"},
	} {
		what := fmt.Sprintf("%.60s %.80s", c.method, c.path)
		resp, body := do(t, c.method, srv.url+c.path, nil)
		if c.code == "" {
			if resp.StatusCode != c.status {
				t.Errorf("%s: %d, want %d", what, resp.StatusCode, c.status)
			}
		} else {
			wantError(t, what, resp, body, c.status, c.code)
		}
		if len(body) > 1024 || bytes.Contains(body, []byte("\x1b")) || bytes.Contains(body, []byte(`\u001b[2K`)) {
			t.Errorf("%s: a body of %d bytes (%.300s): it repeats the request unbounded or unescaped", what, len(body), body)
		}
	}
	// A page size of many digits is a number; the Link header does not
	// repeat its digits.
	resp, _ := do(t, http.MethodGet, srv.url+"/v2/_catalog?n="+strings.Repeat("0", 80<<10)+"1", nil)
	if l := resp.Header.Get("Link"); resp.StatusCode != 200 || len(l) > 1024 || !strings.Contains(l, "&n=1>") {
		t.Errorf("catalog with n=000…1: %d, Link of %d bytes (%.200s); want 200, n=1", resp.StatusCode, len(l), l)
	}
	// Go's server passes a query's bytes as they came.
	do(t, http.MethodGet, srv.url+"/v2/_catalog?x=\u202e\xff", nil)

	srv.rep.mu.Lock()
	defer srv.rep.mu.Unlock()
	if len(srv.rep.logs) < 16 {
		t.Fatalf("%d request log lines, want one per request", len(srv.rep.logs))
	}
	for _, l := range srv.rep.logs {
		if len(l) > 1024 || strings.ContainsAny(l, "\x1b\n\u202e\ufffd") || !utf8.ValidString(l) {
			t.Errorf("request log line of %d bytes (%.300q): unbounded or unescaped", len(l), l)
		}
	}
}
