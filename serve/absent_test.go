package serve_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/fixtures"
	"github.com/ferry-dev/ferry/internal/testregistry"
	"github.com/ferry-dev/ferry/relocate"
	"github.com/ferry-dev/ferry/serve"
)

// exportImage exports the image at ref into a new archive file, a delta
// when since is given.
func exportImage(t *testing.T, ref string, opts []remote.Option, since ...string) string {
	t.Helper()
	ctx := t.Context()
	plan, err := relocate.Resolve(ctx, relocate.Source{Image: ref}, relocate.Options{Remote: opts})
	if err != nil {
		t.Fatal(err)
	}
	eo := relocate.ExportOptions{Remote: opts}
	for _, p := range since {
		s, err := relocate.ReadSince(t.Context(), p, nil)
		if err != nil {
			t.Fatal(err)
		}
		eo.Since = append(eo.Since, s)
	}
	path := exportTo(t, ctx, plan, "archive.tar.zst", eo)
	return path
}

// waitChecked waits for VerifyAhead's summary.
func waitChecked(t *testing.T, rep *recorder) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); rep.count(false, "checked the archive's") == 0 && rep.count(true, "checked the archive's") == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the check ahead did not end")
		}
	}
}

// TestADeltaServesWhatItCarriesAndAnswers404ForWhatItLeftOut: v2 of an
// image adds a layer and a non-distributable (foreign) layer to v1's
// layers; its delta since v1's archive carries the manifest, the new
// config and the new layer, and leaves out v1's layers and the foreign
// one. Served, a left-out or skipped blob is unknown (404 BLOB_UNKNOWN,
// HEAD and GET), never "damaged" (500); what the delta carries is served
// and verified; checking ahead finds nothing wrong; and the server says,
// once, that the archive is a delta and why clients will get 404s.
func TestADeltaServesWhatItCarriesAndAnswers404ForWhatItLeftOut(t *testing.T) {
	reg := testregistry.NewGGCR(t)
	opts := []remote.Option{remote.WithContext(t.Context()), remote.WithNondistributable}
	base, err := fixtures.Image(40, 2, 8<<10)
	if err != nil {
		t.Fatal(err)
	}
	write := func(img v1.Image) string {
		d, _ := img.Digest()
		ref, _ := name.NewDigest(reg.Repo("src/app") + "@" + d.String())
		if err := remote.Write(ref, img, opts...); err != nil {
			t.Fatal(err)
		}
		return ref.String()
	}
	v1Arch := exportImage(t, write(base), opts)

	added, err := fixtures.NewLayer(42, 16<<10)
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := random.Layer(600, types.DockerForeignLayer)
	if err != nil {
		t.Fatal(err)
	}
	next, err := mutate.Append(base,
		mutate.Addendum{Layer: added, MediaType: types.OCIUncompressedLayer},
		mutate.Addendum{Layer: foreign, MediaType: types.DockerForeignLayer, URLs: []string{"https://example.invalid/foreign.tar.gz"}})
	if err != nil {
		t.Fatal(err)
	}
	delta := exportImage(t, write(next), opts, v1Arch)

	// What to expect, from the images themselves.
	baseLayers, _ := base.Layers()
	var leftOut []v1.Hash
	for _, l := range baseLayers {
		d, _ := l.Digest()
		leftOut = append(leftOut, d)
	}
	addedDigest, _ := added.Digest()
	foreignDigest, _ := foreign.Digest()
	nextDigest, _ := next.Digest()
	nextRaw, _ := next.RawManifest()
	nextCfg, _ := next.RawConfigFile()
	nextCfgDigest, _ := next.ConfigName()
	rc, _ := added.Compressed()
	addedBytes, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	if f := openFile(t, delta); f.Head().Delta == nil || len(f.Head().Delta.LeftOut) != len(leftOut) {
		t.Fatalf("the export is not the delta the test needs: %+v", f.Head().Delta)
	}

	for _, repo := range []string{"", "far/app"} {
		t.Run("repo="+repo, func(t *testing.T) {
			rep := &recorder{}
			r, err := serve.New(t.Context(), openFile(t, delta), serve.Options{Repository: repo, Reporter: rep})
			if err != nil {
				t.Fatal(err)
			}
			hs := httptest.NewServer(r)
			t.Cleanup(hs.Close)
			srv := hs.URL
			r.VerifyAhead()
			waitChecked(t, rep)
			if len(rep.warns) != 1 || !strings.Contains(rep.warns[0], "delta") || !strings.Contains(rep.warns[0], "2 of its configs and layers") ||
				!strings.Contains(rep.warns[0], "404") || !strings.Contains(rep.warns[0], filepath.Base(v1Arch)) {
				t.Errorf("warnings %q, want one saying the archive is a delta leaving out 2 blobs (404) held where %s went", rep.warns, filepath.Base(v1Arch))
			}
			if rep.count(false, "all match their digests") != 1 {
				t.Errorf("logs %q, want the check ahead to find every blob the delta carries whole", rep.logs)
			}
			if rep.count(false, "non-distributable") != 1 {
				t.Errorf("logs %q, want one line saying the non-distributable layer is not served", rep.logs)
			}

			path := "/v2/src/app/"
			if repo != "" {
				path = "/v2/" + repo + "/"
			}
			resp, body := do(t, http.MethodGet, srv+path+"manifests/"+nextDigest.String(), nil)
			if resp.StatusCode != 200 || !bytes.Equal(body, nextRaw) {
				t.Errorf("GET the manifest: %d, %d bytes, want 200 and its %d bytes", resp.StatusCode, len(body), len(nextRaw))
			}
			for _, d := range append(leftOut, foreignDigest) {
				for _, method := range []string{http.MethodHead, http.MethodGet} {
					resp, body := do(t, method, srv+path+"blobs/"+d.String(), nil)
					if method == http.MethodHead {
						// A HEAD answer has no body to hold the document.
						if resp.StatusCode != http.StatusNotFound {
							t.Errorf("HEAD %s: %d, want 404", d, resp.StatusCode)
						}
						continue
					}
					wantError(t, method+" "+d.String(), resp, body, http.StatusNotFound, "BLOB_UNKNOWN")
					if strings.Contains(string(body), "damaged") {
						t.Errorf("GET %s: %s, which calls the archive damaged", d, body)
					}
				}
			}
			for d, want := range map[v1.Hash][]byte{addedDigest: addedBytes, nextCfgDigest: nextCfg} {
				resp, body := do(t, http.MethodGet, srv+path+"blobs/"+d.String(), nil)
				if resp.StatusCode != 200 || !bytes.Equal(body, want) || sha256Of(body) != d {
					t.Errorf("GET %s, carried: %d, %d bytes, want 200 and %d bytes hashing to it", d, resp.StatusCode, len(body), len(want))
				}
			}
			if len(rep.warns) != 1 {
				t.Errorf("warnings after the requests: %q, want only the delta's", rep.warns)
			}
		})
	}
}
