//go:build unix

package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServeADeltaAnswers404ForWhatItLeftOut: `ferry serve` of a delta
// (export --since the previous release's archive) says at start-up that it
// is a delta, serves every manifest and every blob it carries, and answers
// 404 BLOB_UNKNOWN for the blobs it left out, on HEAD and GET, so that a
// client (crane) fails at once on them instead of retrying a "damaged"
// 500; the bundle pulls (its layer is carried).
func TestServeADeltaAnswers404ForWhatItLeftOut(t *testing.T) {
	r := newReleases(t)
	delta := filepath.Join(t.TempDir(), "v2.tar.zst")
	mustFerry(t, "export", "-b", r.v2, "-o", delta, "--since", r.v1Arch)
	manifests := archiveManifests(t, r.v2Full)
	var leftOut, carried []string
	inDelta := archiveBlobs(t, delta)
	for d := range archiveBlobs(t, r.v2Full) {
		_, in := inDelta[d]
		switch {
		case manifests[d] && !in:
			t.Fatalf("the delta lacks manifest %s", d)
		case manifests[d]:
		case in:
			carried = append(carried, d)
		default:
			leftOut = append(leftOut, d)
		}
	}
	if len(leftOut) == 0 || len(carried) == 0 {
		t.Fatalf("the delta leaves out %d blobs and carries %d: the test proves nothing", len(leftOut), len(carried))
	}

	srv := startServe(t, delta, "--repo", "far/release", "-v")
	base := srv.url + "/v2/far/release/blobs/"
	for _, d := range leftOut {
		resp, err := http.Head(base + d)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("HEAD %s, left out: %d, want 404", d, resp.StatusCode)
		}
		resp, body, code := errorRequest(t, http.MethodGet, base+d)
		if resp.StatusCode != http.StatusNotFound || code != "BLOB_UNKNOWN" || strings.Contains(string(body), "damaged") {
			t.Errorf("GET %s, left out: %d %s, want 404 BLOB_UNKNOWN", d, resp.StatusCode, body)
		}
	}
	for _, d := range carried {
		if status, sum, _, err := getBlob(base+d, ""); err != nil || status != 200 || sum != d {
			t.Errorf("GET %s, carried: %d, body hashing to %s (%v)", d, status, sum, err)
		}
		// A Range that is not one is ignored: the whole blob.
		if status, sum, _, err := getBlob(base+d, "bytes=5-2"); err != nil || status != 200 || sum != d {
			t.Errorf("GET %s with Range bytes=5-2: %d, body hashing to %s (%v); want 200 and the whole blob", d, status, sum, err)
		}
	}
	if _, err := crane(t, "blob", srv.host+"/far/release@"+leftOut[0]); err == nil || !strings.Contains(err.Error(), "BLOB_UNKNOWN") {
		t.Errorf("crane blob of a left-out blob: %v, want BLOB_UNKNOWN", err)
	}
	out := filepath.Join(t.TempDir(), "pulled")
	mustFerry(t, "pull", "-b", srv.host+"/far/release:v2", "-o", out)
	if _, err := os.Stat(filepath.Join(out, ".imgpkg", "images.yml")); err != nil {
		t.Errorf("ferry pull of the served delta's bundle: %v", err)
	}

	// Long input is refused as such, and not repeated whole.
	resp, body, code := errorRequest(t, http.MethodGet, srv.url+"/v2/"+strings.Repeat("a", 80<<10)+"/tags/list")
	if resp.StatusCode != http.StatusBadRequest || code != "NAME_INVALID" || len(body) > 1024 {
		t.Errorf("GET of an 80 KiB repository name: %d, %d bytes (%.200s); want 400 NAME_INVALID, short", resp.StatusCode, len(body), body)
	}

	srv.stop(t)
	stderr := srv.stderr.String()
	if !strings.Contains(stderr, "warning: the archive is a delta") || !strings.Contains(stderr, "404 BLOB_UNKNOWN") || !strings.Contains(stderr, "v1.tar.zst") {
		t.Errorf("ferry serve did not say the archive is a delta whose left-out blobs get 404, held where v1.tar.zst went:\n%s", stderr)
	}
	// The test's own GET, and crane's one, without retries.
	if n := strings.Count(stderr, "GET /v2/far/release/blobs/"+leftOut[0]+" "); n != 2 {
		t.Errorf("%d GETs of the left-out blob %s logged, want 2: crane retried", n, leftOut[0])
	}
	if strings.Contains(stderr, "damaged") {
		t.Errorf("ferry serve called the delta damaged:\n%s", stderr)
	}
	for _, l := range strings.Split(stderr, "\n") {
		if len(l) > 2048 {
			t.Errorf("a log line of %d bytes: %.200s", len(l), l)
		}
	}
}

// errorRequest sends a request (with a body, which a write would carry)
// and returns the response, its body, and the code of the spec's error
// document it holds: "" unless it is one error, served as JSON.
func errorRequest(t *testing.T, method, url string) (*http.Response, []byte, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var doc struct {
		Errors []struct{ Code, Message string }
	}
	if json.Unmarshal(body, &doc) != nil || len(doc.Errors) != 1 || resp.Header.Get("Content-Type") != "application/json" {
		return resp, body, ""
	}
	return resp, body, doc.Errors[0].Code
}
