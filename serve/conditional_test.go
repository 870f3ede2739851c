package serve_test

import (
	"encoding/json"
	"net/http"
	"strconv"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

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
	_, body := do(t, http.MethodGet, srv.url+"/v2/far/release/manifests/sha256-"+s.bundleDigest.Hex+".image-locations.imgpkg", nil)
	var m v1.Manifest
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	small, smallBytes := smallLayer(t, s)
	// Checked and kept in memory.
	if resp, _ := do(t, http.MethodGet, srv.url+"/v2/far/release/blobs/"+small, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("GET of the small layer: %d", resp.StatusCode)
	}
	for what, b := range map[string]struct {
		d    string
		size int64
	}{
		"the locations image's config": {m.Config.Digest.String(), m.Config.Size},
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
