package serve_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/internal/bundle"
	"github.com/ferry-dev/ferry/internal/testregistry"
	"github.com/ferry-dev/ferry/relocate"
	"github.com/ferry-dev/ferry/serve"
)

func TestManifestsByTagAndDigest(t *testing.T) {
	s := newSource(t)
	srv := startServer(t, s.archive, serve.Options{})
	appDigest, _ := s.app.Digest()
	appRaw, _ := s.app.RawManifest()
	appMT, _ := s.app.MediaType()
	for _, c := range []struct{ path, digest string }{
		{"/v2/src/bundle/manifests/v1", s.bundleDigest.String()},
		{"/v2/src/bundle/manifests/" + s.bundleDigest.String(), s.bundleDigest.String()},
		{"/v2/src/app/manifests/" + appDigest.String(), appDigest.String()},
	} {
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			resp, body := do(t, method, srv.url+c.path, nil)
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Docker-Content-Digest") != c.digest {
				t.Fatalf("%s %s: %d, digest %q, want 200 and %s", method, c.path, resp.StatusCode, resp.Header.Get("Docker-Content-Digest"), c.digest)
			}
			if method == http.MethodHead {
				if len(body) != 0 {
					t.Errorf("HEAD %s sent a body", c.path)
				}
				continue
			}
			if got := sha256Of(body).String(); got != c.digest || resp.ContentLength != int64(len(body)) {
				t.Errorf("GET %s: body hashes to %s (%d bytes, Content-Length %d), want %s", c.path, got, len(body), resp.ContentLength, c.digest)
			}
		}
	}
	resp, body := do(t, http.MethodGet, srv.url+"/v2/src/app/manifests/"+appDigest.String(), nil)
	if !bytes.Equal(body, appRaw) || resp.Header.Get("Content-Type") != string(appMT) {
		t.Errorf("app manifest: Content-Type %q, want %s; same bytes as pushed: %v", resp.Header.Get("Content-Type"), appMT, bytes.Equal(body, appRaw))
	}

	for _, c := range []struct {
		path   string
		status int
		code   string
	}{
		{"/v2/src/bundle/manifests/v2", 404, "MANIFEST_UNKNOWN"},
		{"/v2/src/app/manifests/v1", 404, "MANIFEST_UNKNOWN"}, // the tag is the bundle's repository's
		{"/v2/src/app/manifests/" + s.bundleDigest.String(), 404, "MANIFEST_UNKNOWN"},
		{"/v2/src/app/manifests/sha256:abc", 400, "DIGEST_INVALID"},
		{"/v2/src/nothing/manifests/v1", 404, "NAME_UNKNOWN"},
		{"/v2/Src/App/manifests/v1", 400, "NAME_INVALID"},
	} {
		resp, body := do(t, http.MethodGet, srv.url+c.path, nil)
		wantError(t, "GET "+c.path, resp, body, c.status, c.code)
	}
}

func TestBlobsWholeAndByRange(t *testing.T) {
	s := newSource(t)
	srv := startServer(t, s.archive, serve.Options{})
	blobURL := srv.url + "/v2/src/app/blobs/" + s.bigDigest.String()
	size := int64(len(s.big))

	resp, body := do(t, http.MethodHead, blobURL, nil)
	if resp.StatusCode != 200 || resp.ContentLength != size || resp.Header.Get("Docker-Content-Digest") != s.bigDigest.String() || len(body) != 0 {
		t.Fatalf("HEAD: %d, Content-Length %d, digest %q; want 200, %d, %s", resp.StatusCode, resp.ContentLength, resp.Header.Get("Docker-Content-Digest"), size, s.bigDigest)
	}
	if srv.rep.count(false, "verified blob") != 0 {
		t.Error("a HEAD read the blob")
	}
	resp, body = do(t, http.MethodGet, blobURL, nil)
	if resp.StatusCode != 200 || !bytes.Equal(body, s.big) {
		t.Fatalf("GET: %d, %d bytes, equal to the layer: %v", resp.StatusCode, len(body), bytes.Equal(body, s.big))
	}

	// The blob's bytes start 512 bytes into its first 4 MiB frame: these
	// ranges start and end on both sides of frame boundaries.
	frame := int64(4 << 20)
	for _, r := range [][2]int64{
		{0, 0}, {0, 99}, {frame - 512 - 1, frame - 512}, {frame - 512, frame - 512},
		{frame - 600, 2*frame - 400}, {2*frame - 512, size - 1}, {size - 1, size - 1}, {12345, 12345 + 3<<20},
	} {
		resp, body := do(t, http.MethodGet, blobURL, map[string]string{"Range": fmt.Sprintf("bytes=%d-%d", r[0], r[1])})
		want := s.big[r[0] : r[1]+1]
		cr := fmt.Sprintf("bytes %d-%d/%d", r[0], r[1], size)
		if resp.StatusCode != http.StatusPartialContent || resp.Header.Get("Content-Range") != cr || !bytes.Equal(body, want) {
			t.Errorf("range %d-%d: %d, Content-Range %q (want %q), %d bytes, the right ones: %v", r[0], r[1], resp.StatusCode, resp.Header.Get("Content-Range"), cr, len(body), bytes.Equal(body, want))
		}
	}
	// Open-ended and suffix ranges.
	for spec, want := range map[string][]byte{
		fmt.Sprintf("bytes=%d-", size-5000): s.big[size-5000:],
		"bytes=-777":                        s.big[size-777:],
	} {
		resp, body := do(t, http.MethodGet, blobURL, map[string]string{"Range": spec})
		if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, want) {
			t.Errorf("%s: %d, %d bytes, the right ones: %v", spec, resp.StatusCode, len(body), bytes.Equal(body, want))
		}
	}
	// Two ranges at once: a multipart answer, each part right.
	resp, body = do(t, http.MethodGet, blobURL, map[string]string{"Range": "bytes=10-19,5000000-5000009"})
	_, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if resp.StatusCode != http.StatusPartialContent || err != nil {
		t.Fatalf("two ranges: %d, %q: %v", resp.StatusCode, resp.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	for _, want := range [][]byte{s.big[10:20], s.big[5000000:5000010]} {
		p, err := mr.NextPart()
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(p)
		if !bytes.Equal(got, want) {
			t.Errorf("part %s: %x, want %x", p.Header.Get("Content-Range"), got, want)
		}
	}
	resp, _ = do(t, http.MethodGet, blobURL, map[string]string{"Range": fmt.Sprintf("bytes=%d-", size)})
	if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable || resp.Header.Get("Content-Range") != fmt.Sprintf("bytes */%d", size) {
		t.Errorf("range past the end: %d, Content-Range %q", resp.StatusCode, resp.Header.Get("Content-Range"))
	}
	if n := srv.rep.count(false, "verified blob "+s.bigDigest.String()); n != 1 {
		t.Errorf("the blob was verified %d times, want once", n)
	}

	for _, c := range []struct {
		path   string
		status int
		code   string
	}{
		{"/v2/src/app/blobs/" + sha256Of([]byte("nope")).String(), 404, "BLOB_UNKNOWN"},
		{"/v2/src/bundle/blobs/" + s.bigDigest.String(), 404, "BLOB_UNKNOWN"}, // not the bundle's
		{"/v2/src/app/blobs/sha256:xyz", 400, "DIGEST_INVALID"},
	} {
		resp, body := do(t, http.MethodGet, srv.url+c.path, nil)
		wantError(t, "GET "+c.path, resp, body, c.status, c.code)
	}
}

func TestConcurrentFirstRequestsShareOneVerification(t *testing.T) {
	s := newSource(t)
	srv := startServer(t, s.archive, serve.Options{Streams: 3})
	blobURL := srv.url + "/v2/src/app/blobs/" + s.bigDigest.String()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := map[string]string{}
			if i%2 == 1 {
				h["Range"] = "bytes=4000000-"
			}
			resp, body, err := tryDo(t.Context(), http.MethodGet, blobURL, h)
			if err != nil {
				t.Errorf("request %d: %v", i, err)
				return
			}
			want := s.big
			if i%2 == 1 {
				want = s.big[4000000:]
			}
			if resp.StatusCode/100 != 2 || !bytes.Equal(body, want) {
				t.Errorf("request %d: %d, %d bytes, the right ones: %v", i, resp.StatusCode, len(body), bytes.Equal(body, want))
			}
		}()
	}
	wg.Wait()
	if n := srv.rep.count(false, "verified blob "+s.bigDigest.String()); n != 1 {
		t.Errorf("8 concurrent first requests verified the blob %d times, want once", n)
	}
}

// damagedCopy copies the source's archive with one byte of the big
// layer flipped: the layer is random, so zstd stores it as is and its
// bytes can be found in the file.
func damagedCopy(t *testing.T, s *source) string {
	t.Helper()
	data, err := os.ReadFile(s.archive)
	if err != nil {
		t.Fatal(err)
	}
	at := bytes.Index(data, s.big[6<<20:6<<20+64])
	if at < 0 {
		t.Fatal("the big layer's bytes are not in the archive as they are")
	}
	data[at+10] ^= 0x01
	path := t.TempDir() + "/damaged.tar.zst"
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestADamagedBlobIsRefusedNeverSent(t *testing.T) {
	s := newSource(t)
	srv := startServer(t, damagedCopy(t, s), serve.Options{})
	blobURL := srv.url + "/v2/src/app/blobs/" + s.bigDigest.String()
	for i, rng := range []string{"", "bytes=0-99", ""} {
		resp, body := do(t, http.MethodGet, blobURL, map[string]string{"Range": rng})
		wantError(t, fmt.Sprintf("GET %d of the damaged blob", i), resp, body, http.StatusInternalServerError, "UNKNOWN")
		if resp.Header.Get("ETag") != "" || resp.Header.Get("Docker-Content-Digest") != "" {
			t.Errorf("GET %d of the damaged blob: ETag %q, Docker-Content-Digest %q; an error carries neither", i, resp.Header.Get("ETag"), resp.Header.Get("Docker-Content-Digest"))
		}
		if bytes.Contains(body, s.big[:64]) {
			t.Error("the error carries the blob's bytes")
		}
	}
	resp, body := do(t, http.MethodHead, blobURL, nil)
	if resp.StatusCode != http.StatusInternalServerError || len(body) != 0 {
		t.Errorf("HEAD of a blob known damaged: %d", resp.StatusCode)
	}
	// The log counts no body for a HEAD: none was sent.
	if n := srv.rep.count(false, " HEAD /v2/src/app/blobs/"+s.bigDigest.String()+" 500 0 bytes "); n != 1 {
		t.Errorf("%d log lines say the HEAD sent 0 bytes, want 1", n)
	}
	if n := srv.rep.count(true, s.bigDigest.String()); n != 1 {
		t.Errorf("%d warnings name the damaged blob, want 1 (it is read once)", n)
	}
	// A client pulling the image gets an error, never the image.
	ref, _ := name.ParseReference(srv.host + "/" + strings.TrimPrefix(s.appRef[strings.Index(s.appRef, "/"):], "/"))
	img, err := remote.Image(ref)
	if err == nil {
		err = checkImage(img)
	}
	if err == nil {
		t.Error("pulling the image with a damaged layer succeeded")
	}
	// The other blobs are served.
	m, _ := s.app.Manifest()
	resp, body = do(t, http.MethodGet, srv.url+"/v2/src/app/blobs/"+m.Layers[0].Digest.String(), nil)
	if resp.StatusCode != 200 || sha256Of(body) != m.Layers[0].Digest {
		t.Errorf("the small layer: %d", resp.StatusCode)
	}
}

func TestWritesAndUnknownRoutesAreRefused(t *testing.T) {
	s := newSource(t)
	srv := startServer(t, s.archive, serve.Options{})
	d := s.bigDigest.String()
	for _, c := range []struct{ method, path string }{
		{"POST", "/v2/src/app/blobs/uploads/"},
		{"POST", "/v2/src/app/blobs/uploads/?digest=" + d},
		{"POST", "/v2/new/repo/blobs/uploads/?mount=" + d + "&from=src/app"},
		{"PATCH", "/v2/src/app/blobs/uploads/some-session"},
		{"PUT", "/v2/src/app/blobs/uploads/some-session?digest=" + d},
		{"DELETE", "/v2/src/app/blobs/uploads/some-session"},
		{"PUT", "/v2/src/app/manifests/latest"},
		{"DELETE", "/v2/src/app/manifests/" + d},
		{"DELETE", "/v2/src/app/blobs/" + d},
		{"OPTIONS", "/v2/"},
		{"OPTIONS", "/v2"},
	} {
		resp, body := do(t, c.method, srv.url+c.path, nil)
		wantError(t, c.method+" "+c.path, resp, body, http.StatusMethodNotAllowed, "UNSUPPORTED")
		if resp.Header.Get("Allow") != "GET, HEAD" {
			t.Errorf("%s %s: Allow %q", c.method, c.path, resp.Header.Get("Allow"))
		}
	}
	// An unknown route is 404 whatever the method.
	for _, c := range []struct{ method, path string }{
		{"PUT", "/foo"},
		{"DELETE", "/v2/src/app"},
		{"POST", "/v2/src/app/whatever/x"},
	} {
		resp, body := do(t, c.method, srv.url+c.path, nil)
		wantError(t, c.method+" "+c.path, resp, body, http.StatusNotFound, "UNSUPPORTED")
		if a := resp.Header.Get("Allow"); a != "" {
			t.Errorf("%s %s: Allow %q", c.method, c.path, a)
		}
	}
	for _, c := range []struct {
		path   string
		status int
		code   string
	}{
		{"/", 404, "UNSUPPORTED"},
		{"/v1/_ping", 404, "UNSUPPORTED"},
		{"/v2/src/app", 404, "UNSUPPORTED"},
		{"/v2/src/app/whatever/x", 404, "UNSUPPORTED"},
		{"/v2/src/app/blobs/uploads/some-session", 404, "BLOB_UPLOAD_UNKNOWN"},
	} {
		resp, body := do(t, http.MethodGet, srv.url+c.path, nil)
		wantError(t, "GET "+c.path, resp, body, c.status, c.code)
	}
	resp, body := do(t, http.MethodGet, srv.url+"/v2/", nil)
	if resp.StatusCode != 200 || resp.Header.Get("Docker-Distribution-API-Version") != "registry/2.0" || string(body) != "{}" {
		t.Errorf("GET /v2/: %d %q %s", resp.StatusCode, resp.Header.Get("Docker-Distribution-API-Version"), body)
	}
}

// pages follows n/last pagination from path, returning every page.
func pages(t *testing.T, base, path, field string) [][]string {
	t.Helper()
	var out [][]string
	for path != "" {
		resp, body := do(t, http.MethodGet, base+path, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
		}
		var doc map[string]json.RawMessage
		var list []string
		if err := json.Unmarshal(body, &doc); err != nil || json.Unmarshal(doc[field], &list) != nil || list == nil {
			t.Fatalf("GET %s: %s: want a list %q", path, body, field)
		}
		out = append(out, list)
		path = ""
		if link := resp.Header.Get("Link"); link != "" {
			if !strings.HasPrefix(link, "<") || !strings.HasSuffix(link, `>; rel="next"`) {
				t.Fatalf("Link %q", link)
			}
			path = strings.TrimSuffix(strings.TrimPrefix(link, "<"), `>; rel="next"`)
		}
	}
	return out
}

func TestTagsAndCatalogPaginate(t *testing.T) {
	s := newSource(t)
	srv := startServer(t, s.archive, serve.Options{Repository: "far/release"})
	all := pages(t, srv.url, "/v2/far/release/tags/list", "tags")
	if len(all) != 1 {
		t.Fatalf("without n: %d pages", len(all))
	}
	tags := all[0]
	if !sort.StringsAreSorted(tags) || len(tags) < 5 {
		t.Fatalf("tags %v: want at least 5, sorted", tags)
	}
	for _, n := range []int{1, 2, 3, len(tags), len(tags) + 1} {
		var joined []string
		ps := pages(t, srv.url, fmt.Sprintf("/v2/far/release/tags/list?n=%d", n), "tags")
		for i, p := range ps {
			if len(p) > n || (i < len(ps)-1 && len(p) != n) {
				t.Errorf("n=%d: page %d has %d tags", n, i, len(p))
			}
			joined = append(joined, p...)
		}
		if strings.Join(joined, ",") != strings.Join(tags, ",") {
			t.Errorf("n=%d: pages give %v, want %v", n, joined, tags)
		}
	}
	if p := pages(t, srv.url, "/v2/far/release/tags/list?last="+tags[len(tags)-2], "tags"); len(p[0]) != 1 || p[0][0] != tags[len(tags)-1] {
		t.Errorf("after the last but one: %v", p)
	}
	if p := pages(t, srv.url, "/v2/far/release/tags/list?n=0", "tags"); len(p) != 1 || len(p[0]) != 0 {
		t.Errorf("n=0: %v, want one empty page", p)
	}
	resp, body := do(t, http.MethodGet, srv.url+"/v2/far/release/tags/list?n=-1", nil)
	wantError(t, "n=-1", resp, body, http.StatusBadRequest, "PAGINATION_NUMBER_INVALID")
	if p := pages(t, srv.url, "/v2/_catalog", "repositories"); len(p) != 1 || strings.Join(p[0], ",") != "far/release" {
		t.Errorf("catalog with --repo: %v", p)
	}

	mirror := startServer(t, s.archive, serve.Options{})
	var repos []string
	for _, p := range pages(t, mirror.url, "/v2/_catalog?n=1", "repositories") {
		repos = append(repos, p...)
	}
	if strings.Join(repos, ",") != "src/app,src/bundle" {
		t.Errorf("catalog of the mirror, a page at a time: %v", repos)
	}
	if p := pages(t, mirror.url, "/v2/src/bundle/tags/list", "tags"); strings.Join(p[0], ",") != "v1" {
		t.Errorf("the mirror's bundle tags: %v, want [v1]", p[0])
	}
	if p := pages(t, mirror.url, "/v2/src/app/tags/list", "tags"); len(p[0]) != 0 {
		t.Errorf("the mirror's app tags: %v, want none (it was locked by digest)", p[0])
	}
}

func TestReferrersOfTheArchive(t *testing.T) {
	s := newSource(t)
	for _, repo := range []string{"", "far/release"} {
		srv := startServer(t, s.archive, serve.Options{Repository: repo})
		path := "src/app"
		if repo != "" {
			path = repo
		}
		appDigest, _ := s.app.Digest()
		sbomDigest, _ := s.sbom.Digest()
		for _, c := range []struct {
			query  string
			want   []v1.Hash
			filter bool
		}{
			{"", []v1.Hash{sbomDigest}, false},
			{"?artifactType=" + url.QueryEscape(s.sbomType), []v1.Hash{sbomDigest}, true},
			{"?artifactType=application/other", nil, true},
		} {
			resp, body := do(t, http.MethodGet, srv.url+"/v2/"+path+"/referrers/"+appDigest.String()+c.query, nil)
			var idx v1.IndexManifest
			if err := json.Unmarshal(body, &idx); err != nil || resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/vnd.oci.image.index.v1+json" {
				t.Fatalf("%s referrers%s: %d %q %s", path, c.query, resp.StatusCode, resp.Header.Get("Content-Type"), body)
			}
			var got []v1.Hash
			for _, m := range idx.Manifests {
				got = append(got, m.Digest)
				if m.ArtifactType != s.sbomType {
					t.Errorf("referrer %s: artifactType %q, want %s", m.Digest, m.ArtifactType, s.sbomType)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(c.want) || (resp.Header.Get("OCI-Filters-Applied") == "artifactType") != c.filter {
				t.Errorf("%s referrers%s: %v (filter header %q), want %v", path, c.query, got, resp.Header.Get("OCI-Filters-Applied"), c.want)
			}
		}
		// An image without referrers has an empty list, not an error.
		resp, body := do(t, http.MethodGet, srv.url+"/v2/"+path+"/referrers/"+sbomDigest.String(), nil)
		if resp.StatusCode != 200 || !strings.Contains(string(body), `"manifests":[]`) {
			t.Errorf("referrers of the SBOM: %d %s", resp.StatusCode, body)
		}
		// go-containerregistry's client finds it through the API.
		ref, _ := name.NewDigest(srv.host + "/" + path + "@" + appDigest.String())
		idx, err := remote.Referrers(ref)
		if err != nil {
			t.Fatal(err)
		}
		im, _ := idx.IndexManifest()
		if len(im.Manifests) != 1 || im.Manifests[0].Digest != sbomDigest {
			t.Errorf("remote.Referrers: %+v", im.Manifests)
		}
	}
}

func TestRepoServesTheImportTagsAndLocationsImages(t *testing.T) {
	s := newSource(t)
	srv := startServer(t, s.archive, serve.Options{Repository: "far/release"})
	repo, _ := name.NewRepository(srv.host + "/far/release")
	img, err := remote.Image(repo.Tag("v1"))
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := img.Digest(); d != s.bundleDigest {
		t.Errorf("far/release:v1 is %s, want the bundle %s", d, s.bundleDigest)
	}
	// Every image by its .imgpkg tag and by digest, each blob checked.
	appDigest, _ := s.app.Digest()
	for _, d := range []v1.Hash{s.bundleDigest, appDigest} {
		for _, ref := range []name.Reference{repo.Tag("sha256-" + d.Hex + ".imgpkg"), repo.Digest(d.String())} {
			img, err := remote.Image(ref)
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := img.Digest(); got != d {
				t.Errorf("%s is %s", ref, got)
			}
			if err := checkImage(img); err != nil {
				t.Errorf("%s: %v", ref, err)
			}
		}
	}
	// The locations image, built from the bundle's images.yml as imgpkg
	// builds it, names the image at its original reference.
	loc, err := remote.Image(repo.Tag("sha256-" + s.bundleDigest.Hex + ".image-locations.imgpkg"))
	if err != nil {
		t.Fatal(err)
	}
	if err := checkImage(loc); err != nil {
		t.Fatal(err)
	}
	locs, err := bundle.ReadLocations(loc, "locations image")
	if err != nil || len(locs.Images) != 1 || locs.Images[0].Image != s.appRef || locs.Images[0].IsBundle {
		t.Errorf("locations %+v, %v; want %s only", locs, err, s.appRef)
	}
	ld, _ := loc.Digest()
	if got, err := remote.Head(repo.Tag("sha256-" + ld.Hex + ".imgpkg")); err != nil || got.Digest != ld {
		t.Errorf("the locations image's own tag: %v %v", got, err)
	}
}

// checkImage reads img's config and layers from the server and checks each
// against its digest.
func checkImage(img v1.Image) error {
	m, err := img.Manifest()
	if err != nil {
		return err
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return err
	}
	if d := sha256Of(cfg); d != m.Config.Digest {
		return fmt.Errorf("config hashes to %s, want %s", d, m.Config.Digest)
	}
	for _, desc := range m.Layers {
		l, err := img.LayerByDigest(desc.Digest)
		if err != nil {
			return err
		}
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return err
		}
		if d := sha256Of(b); d != desc.Digest || int64(len(b)) != desc.Size {
			return fmt.Errorf("layer %s: %d bytes hashing to %s", desc.Digest, len(b), d)
		}
	}
	return nil
}

func TestAStalledClientIsDroppedAndFreesItsStream(t *testing.T) {
	s := newSource(t)
	// The stall timeout is 1 s: the second client, which reads, must not
	// be taken for stalled when a loaded machine pauses it.
	srv := startServer(t, s.archive, serve.Options{Streams: 1, StallTimeout: time.Second})
	path := "/v2/src/app/blobs/" + s.bigDigest.String()
	// A client that asks for the 9 MiB layer and never reads past the
	// header: more than the socket buffers hold, so the one stream is
	// stuck with it. The header comes once it holds the stream.
	stalled, conn := holdStream(t, srv.host, path)

	// Another client gets the blob once the stalled one is dropped.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.url+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("the second client: %v", err)
	}
	body := readAll(t, resp)
	if resp.StatusCode != 200 || !bytes.Equal(body, s.big) {
		t.Fatalf("the second client: %d, %d bytes", resp.StatusCode, len(body))
	}
	// The stalled client's response was cut short: reading now, it gets
	// what was in the socket buffers, not the blob.
	conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, _ := io.Copy(io.Discard, stalled.Body)
	if n >= int64(len(s.big)) {
		t.Errorf("the stalled client got %d bytes, the whole blob", n)
	}
}

// TestVerifyAheadFindsDamageBeforeAnyClient: checking ahead, the server
// reads every config and layer once by itself, and a damaged blob is
// reported, and refused even to a HEAD, before any client asked for it.
func TestVerifyAheadFindsDamageBeforeAnyClient(t *testing.T) {
	s := newSource(t)
	path := damagedCopy(t, s)
	rep := &recorder{}
	f := openFile(t, path)
	reg, err := serve.New(t.Context(), f, serve.Options{Reporter: rep})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(reg)
	t.Cleanup(srv.Close)
	reg.VerifyAhead()
	for deadline := time.Now().Add(time.Minute); rep.count(true, "checked the archive's") == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the check ahead did not end")
		}
	}
	if n := rep.count(true, s.bigDigest.String()); n != 1 {
		t.Errorf("%d warnings name the damaged blob, want 1", n)
	}
	if n := rep.count(true, "1 damaged"); n != 1 {
		t.Errorf("the summary does not count one damaged blob: %v", rep.warns)
	}
	for _, b := range f.Head().Blobs {
		if b.Digest == s.bigDigest {
			continue
		}
		if n := rep.count(false, "verified blob "+b.Digest.String()); n != 1 {
			t.Errorf("blob %s verified %d times, want once", b.Digest, n)
		}
	}
	resp, _ := do(t, http.MethodHead, srv.URL+"/v2/src/app/blobs/"+s.bigDigest.String(), nil)
	if resp.StatusCode != http.StatusInternalServerError {
		t.Errorf("HEAD of the blob found damaged ahead: %d, want 500", resp.StatusCode)
	}
}

// TestVerifyAheadLeavesOutWhatTheArchiveDoesNotHold: a layer the export
// left out (non-distributable) is listed by the head but is not in the
// archive; checking ahead passes it over rather than calling it damaged.
func TestVerifyAheadLeavesOutWhatTheArchiveDoesNotHold(t *testing.T) {
	ctx := t.Context()
	reg := testregistry.NewGGCR(t)
	opts := []remote.Option{remote.WithContext(ctx), remote.WithNondistributable}
	fl, err := random.Layer(600, types.DockerForeignLayer)
	if err != nil {
		t.Fatal(err)
	}
	base, err := random.Image(300, 1)
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.Append(base, mutate.Addendum{Layer: fl, MediaType: types.DockerForeignLayer, URLs: []string{"https://example.invalid/foreign.tar.gz"}})
	if err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	ref, _ := name.NewDigest(reg.Repo("src/win") + "@" + d.String())
	if err := remote.Write(ref, img, opts...); err != nil {
		t.Fatal(err)
	}
	plan, err := relocate.Resolve(ctx, relocate.Source{Image: ref.String()}, relocate.Options{Remote: opts})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Skipped) != 1 {
		t.Fatalf("%d layers skipped, want the foreign one", len(plan.Skipped))
	}
	path := exportTo(t, ctx, plan, "win.tar.zst", relocate.ExportOptions{Remote: opts})

	rep := &recorder{}
	r, err := serve.New(ctx, openFile(t, path), serve.Options{Reporter: rep})
	if err != nil {
		t.Fatal(err)
	}
	r.VerifyAhead()
	for deadline := time.Now().Add(time.Minute); rep.count(false, "checked the archive's") == 0 && rep.count(true, "checked the archive's") == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the check ahead did not end")
		}
	}
	if len(rep.warns) != 0 {
		t.Errorf("warnings: %q", rep.warns)
	}
	if n := rep.count(false, "all match their digests"); n != 1 {
		t.Errorf("logs %q, want the check to say all match", rep.logs)
	}
}
