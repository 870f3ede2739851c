package serve_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/serve"
)

// TestAnInvalidRangeIsIgnored: RFC 9110 (14.2) has a server ignore a Range
// header that is not a valid bytes ranges-specifier, or of another unit:
// the whole blob, 200. A valid one that no byte satisfies stays 416, with
// Content-Range: bytes */SIZE; a valid one beyond int64 is still valid.
func TestAnInvalidRangeIsIgnored(t *testing.T) {
	s := newSource(t)
	srv := startServer(t, s.archive, serve.Options{})
	layers, _ := s.app.Layers()
	d, _ := layers[0].Digest()
	rc, _ := layers[0].Compressed()
	blob, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	size := len(blob)
	url := srv.url + "/v2/src/app/blobs/" + d.String()
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
