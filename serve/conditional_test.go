package serve_test

import (
	"net/http"
	"strconv"
	"testing"

	"github.com/ferry-dev/ferry/serve"
)

// TestAHeadWithARangeIsAnsweredAsAPlainHead: HEAD with a Range of a blob
// answers like a GET without one (200, the whole size, no Content-Range),
// whether the blob was built for the view (the locations image's config),
// is small and kept in memory once checked, or is read from the archive:
// it answered 206 for the first two and 200 for the last.
func TestAHeadWithARangeIsAnsweredAsAPlainHead(t *testing.T) {
	s := newSource(t)
	srv := startServer(t, s.archive, serve.Options{Repository: "far/release"})
	config, small, smallBytes := viewBlobs(t, s, srv)
	for what, b := range map[string]struct {
		d    string
		size int64
	}{
		"the locations image's config": {config.Digest.String(), config.Size},
		"a small layer":                {small, int64(len(smallBytes))},
		"a large layer":                {s.bigDigest.String(), int64(len(s.big))},
	} {
		for _, rng := range []string{"bytes=0-9", "bytes=-5", "bytes=1-2,4-5", "bytes=99999999-"} {
			resp, _ := do(t, http.MethodHead, srv.url+"/v2/far/release/blobs/"+b.d, map[string]string{"Range": rng})
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Length") != strconv.FormatInt(b.size, 10) || resp.Header.Get("Content-Range") != "" {
				t.Errorf("HEAD of %s with Range %s: %d, Content-Length %s, Content-Range %q; want 200, %d and none", what, rng, resp.StatusCode, resp.Header.Get("Content-Length"), resp.Header.Get("Content-Range"), b.size)
			}
		}
	}
}

// TestRangeAndPreconditionFailuresAreErrorDocuments: a Range no byte of
// the blob satisfies gets 416 and an If-Match that does not name the
// blob's ETag 412, as the spec's error document (ServeContent answered
// them text/plain, and octet-stream with no body), decided before the
// blob is checked (a 416 waited for a full check first) and whichever
// way the blob is served. RFC 9110's order holds: If-Match, then
// If-None-Match, then Range, which an If-Range other than the ETag
// drops.
func TestRangeAndPreconditionFailuresAreErrorDocuments(t *testing.T) {
	s := newSource(t)
	srv := startServer(t, s.archive, serve.Options{Repository: "far/release"})
	config, small, smallBytes := viewBlobs(t, s, srv)
	blobs := []struct {
		what, d string
		size    int64
	}{
		{"a large layer not checked yet", s.bigDigest.String(), int64(len(s.big))},
		{"the locations image's config", config.Digest.String(), config.Size},
		{"a small layer kept in memory", small, int64(len(smallBytes))},
	}
	for i, b := range blobs {
		url := srv.url + "/v2/far/release/blobs/" + b.d
		etag := `"` + b.d + `"`
		for _, rng := range []string{"bytes=99999999-", "bytes=-0"} {
			resp, body := do(t, http.MethodGet, url, map[string]string{"Range": rng})
			wantError(t, b.what+" Range "+rng, resp, body, http.StatusRequestedRangeNotSatisfiable, "UNSUPPORTED")
			if cr := resp.Header.Get("Content-Range"); cr != "bytes */"+strconv.FormatInt(b.size, 10) {
				t.Errorf("%s Range %s: Content-Range %q, want bytes */%d", b.what, rng, cr, b.size)
			}
		}
		if i == 0 && srv.rep.count(false, "verified blob "+b.d) != 0 {
			t.Errorf("%s: checked for a 416", b.what)
		}
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			resp, body := do(t, method, url, map[string]string{"If-Match": `"other", W/` + etag})
			if method == http.MethodGet {
				wantError(t, b.what+" If-Match another ETag", resp, body, http.StatusPreconditionFailed, "UNSUPPORTED")
			} else if resp.StatusCode != http.StatusPreconditionFailed {
				t.Errorf("HEAD of %s with If-Match another ETag: %d, want 412", b.what, resp.StatusCode)
			}
		}
		if i == 0 && srv.rep.count(false, "verified blob "+b.d) != 0 {
			t.Errorf("%s: checked for a 412", b.what)
		}
		for _, c := range []struct {
			what   string
			header map[string]string
			status int
			length int64
		}{
			{"If-Match its ETag", map[string]string{"If-Match": `"other" , ` + etag, "Range": "bytes=0-9"}, http.StatusPartialContent, 10},
			{"If-Match *", map[string]string{"If-Match": "*", "Range": "bytes=-0"}, http.StatusRequestedRangeNotSatisfiable, -1},
			{"If-None-Match its ETag before Range", map[string]string{"If-None-Match": etag, "Range": "bytes=99999999-"}, http.StatusNotModified, 0},
			{"If-Match another ETag before If-None-Match", map[string]string{"If-Match": `"other"`, "If-None-Match": etag}, http.StatusPreconditionFailed, -1},
			{"If-Range another ETag", map[string]string{"If-Range": `"other"`, "Range": "bytes=99999999-"}, http.StatusOK, b.size},
			{"If-Range a date", map[string]string{"If-Range": "Wed, 21 Oct 2015 07:28:00 GMT", "Range": "bytes=0-9"}, http.StatusOK, b.size},
			{"If-Range its ETag", map[string]string{"If-Range": etag, "Range": "bytes=99999999-"}, http.StatusRequestedRangeNotSatisfiable, -1},
			{"If-Range its ETag, satisfiable", map[string]string{"If-Range": etag, "Range": "bytes=0-9"}, http.StatusPartialContent, 10},
		} {
			resp, body := do(t, http.MethodGet, url, c.header)
			if resp.StatusCode != c.status || (c.length >= 0 && int64(len(body)) != c.length) {
				t.Errorf("%s, %s: %d with %d bytes, want %d (%d bytes)", b.what, c.what, resp.StatusCode, len(body), c.status, c.length)
			}
		}
	}
}

// TestIfMatchInAnyFieldIsMet: If-Match may come in several fields, one
// list (RFC 9110 5.3); the blob's ETag in the second is met, whichever
// way the blob is served.
func TestIfMatchInAnyFieldIsMet(t *testing.T) {
	s := newSource(t)
	srv := startServer(t, s.archive, serve.Options{})
	small, _ := smallLayer(t, s)
	for _, d := range []string{s.bigDigest.String(), small, small} { // the small layer kept in memory the second time
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.url+"/v2/src/app/blobs/"+d, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Add("If-Match", `"other"`)
		req.Header.Add("If-Match", `"`+d+`"`)
		req.Header.Set("Range", "bytes=0-9")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusPartialContent {
			t.Errorf("%s with its ETag in a second If-Match: %d, want 206", d, resp.StatusCode)
		}
	}
}

// TestAHeadOfADamagedBlobNotCheckedYetAnswersItsSize: a HEAD reads
// nothing and starts no check (README, serve): with --lazy, a damaged
// blob answers HEAD 200 and its size until a GET checks it; from then on
// every request for it, HEAD included, gets 500.
func TestAHeadOfADamagedBlobNotCheckedYetAnswersItsSize(t *testing.T) {
	s := newSource(t)
	srv := startServer(t, damagedCopy(t, s), serve.Options{})
	url := srv.url + "/v2/src/app/blobs/" + s.bigDigest.String()
	if resp, _ := do(t, http.MethodHead, url, nil); resp.StatusCode != http.StatusOK || resp.ContentLength != int64(len(s.big)) {
		t.Errorf("HEAD before any GET: %d, Content-Length %d, want 200 and %d", resp.StatusCode, resp.ContentLength, len(s.big))
	}
	resp, body := do(t, http.MethodGet, url, nil)
	wantError(t, "GET", resp, body, http.StatusInternalServerError, "UNKNOWN")
	if resp, _ := do(t, http.MethodHead, url, nil); resp.StatusCode != http.StatusInternalServerError {
		t.Errorf("HEAD after the GET: %d, want 500", resp.StatusCode)
	}
}
