package serve_test

import (
	"net/http"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/internal/testregistry"
	"github.com/ferry-dev/ferry/relocate"
	"github.com/ferry-dev/ferry/serve"
)

// TestAnEmptyBlobIsSentWholeWhateverTheRange: an artifact with a
// zero-byte layer (as oras pushes an empty file). No range of it is
// satisfiable, and ServeContent answered a suffix range with a malformed
// 206 (Content-Range: bytes 0--1/0); a server may ignore a Range (RFC
// 9110, 14.2), and the empty blob is sent whole: 200 and no bytes.
func TestAnEmptyBlobIsSentWholeWhateverTheRange(t *testing.T) {
	ctx := t.Context()
	reg := testregistry.NewGGCR(t)
	opts := []remote.Option{remote.WithContext(ctx)}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img, err := mutate.Append(img, mutate.Addendum{Layer: static.NewLayer([]byte{}, "application/octet-stream")})
	if err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.NewDigest(reg.Repo("src/empty") + "@" + d.String())
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, opts...); err != nil {
		t.Fatal(err)
	}
	plan, err := relocate.Resolve(ctx, relocate.Source{Image: ref.String()}, relocate.Options{Remote: opts})
	if err != nil {
		t.Fatal(err)
	}
	path := exportTo(t, ctx, plan, "empty.tar.zst", relocate.ExportOptions{Remote: opts})
	srv := startServer(t, path, serve.Options{})
	emptyDigest := sha256Of(nil)
	url := srv.url + "/v2/src/empty/blobs/" + emptyDigest.String()
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		for _, rng := range []string{"", "bytes=-5", "bytes=0-", "bytes=0-0", "bytes=-5,-3", "bytes=-0"} {
			resp, body := do(t, method, url, map[string]string{"Range": rng})
			if resp.StatusCode != http.StatusOK || resp.ContentLength != 0 || len(body) != 0 || resp.Header.Get("Content-Range") != "" {
				t.Errorf("%s Range %q: %d, Content-Length %d, Content-Range %q, %d bytes; want 200 and nothing", method, rng, resp.StatusCode, resp.ContentLength, resp.Header.Get("Content-Range"), len(body))
			}
		}
	}
}
