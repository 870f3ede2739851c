package serve_test

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferry-dev/ferry/fixtures/golden"
	"github.com/ferry-dev/ferry/serve"
)

// goldenEntries returns the entries of imgpkg's golden tarball by name,
// read here with archive/tar.
func goldenEntries(t *testing.T) map[string][]byte {
	t.Helper()
	raw, err := golden.ReadFile("basic.imgpkg.tar")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(raw))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if out[hdr.Name], err = io.ReadAll(tr); err != nil {
			t.Fatal(err)
		}
	}
}

// app1Layer is the layer of golden.App1, as the golden tarball holds it:
// its digest, its entry's name, and its bytes (64 KiB and more, so that
// serve keeps it in the file, not in memory).
func app1Layer(t *testing.T, host string) (string, string, []byte) {
	t.Helper()
	img, err := remote.Image(mustRef(t, host+"/src/app1@"+golden.App1))
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil || len(m.Layers) != 1 {
		t.Fatalf("app1's manifest: %v, %v", m, err)
	}
	d := m.Layers[0].Digest
	entry := "sha256-" + d.Hex + ".tar.gz"
	b := goldenEntries(t)[entry]
	if len(b) <= 64<<10 {
		t.Fatalf("the golden tarball's %s holds %d bytes, want more than 64 KiB", entry, len(b))
	}
	return d.String(), entry, b
}

func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	ref, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

func TestAnImgpkgTarballIsServedInPlace(t *testing.T) {
	path, err := golden.WriteFile(t.TempDir(), "basic.imgpkg.tar")
	if err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, path, serve.Options{})

	// Under the repositories imgpkg found them in, with imgpkg's digests;
	// the bundle with its tag.
	for ref, want := range map[string]string{
		"/golden/basic:v1":               golden.Bundle,
		"/golden/basic@" + golden.Bundle: golden.Bundle,
		"/src/app1@" + golden.App1:       golden.App1,
	} {
		img, err := remote.Image(mustRef(t, srv.host+ref))
		if err != nil {
			t.Fatal(err)
		}
		if d, _ := img.Digest(); d.String() != want {
			t.Errorf("%s is %s, want %s", ref, d, want)
		}
		if err := checkImage(img); err != nil {
			t.Errorf("%s: %v", ref, err)
		}
	}

	// app1's layer, whole and by ranges, is the tarball's entry.
	d, _, layer := app1Layer(t, srv.host)
	blobURL := srv.url + "/v2/src/app1/blobs/" + d
	size := int64(len(layer))
	resp, body := do(t, http.MethodGet, blobURL, nil)
	if resp.StatusCode != 200 || !bytes.Equal(body, layer) {
		t.Fatalf("GET: %d, %d bytes, the entry's: %v", resp.StatusCode, len(body), bytes.Equal(body, layer))
	}
	for _, r := range [][2]int64{{0, 0}, {0, 511}, {1000, 40000}, {size - 1, size - 1}, {12345, size - 1}} {
		resp, body := do(t, http.MethodGet, blobURL, map[string]string{"Range": fmt.Sprintf("bytes=%d-%d", r[0], r[1])})
		if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, layer[r[0]:r[1]+1]) {
			t.Errorf("range %d-%d: %d, %d bytes, the right ones: %v", r[0], r[1], resp.StatusCode, len(body), bytes.Equal(body, layer[r[0]:r[1]+1]))
		}
	}
	if n := srv.rep.count(false, "verified blob "+d); n != 1 {
		t.Errorf("the layer was verified %d times, want once", n)
	}
}

func TestAnImgpkgTarballsRepoHasImgpkgsTags(t *testing.T) {
	path, err := golden.WriteFile(t.TempDir(), "basic.imgpkg.tar")
	if err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, path, serve.Options{Repository: "far/basic"})
	repo, _ := name.NewRepository(srv.host + "/far/basic")
	// What imgpkg wrote when it copied this bundle to a repository
	// (fixtures/golden/README.md).
	hexOf := func(d string) string { return d[len("sha256:"):] }
	want := map[string]string{
		"sha256-" + hexOf(golden.Bundle) + ".image-locations.imgpkg": golden.Locations,
		"sha256-" + hexOf(golden.Bundle) + ".imgpkg":                 golden.Bundle,
		"sha256-" + hexOf(golden.App1) + ".imgpkg":                   golden.App1,
		"sha256-" + hexOf(golden.Locations) + ".imgpkg":              golden.Locations,
		"v1": golden.Bundle,
	}
	tags, err := remote.List(repo)
	if err != nil {
		t.Fatal(err)
	}
	if len(tags) != len(want) {
		t.Errorf("tags %v, want %d", tags, len(want))
	}
	for _, tag := range tags {
		img, err := remote.Image(repo.Tag(tag))
		if err != nil {
			t.Fatal(err)
		}
		if d, _ := img.Digest(); d.String() != want[tag] {
			t.Errorf("%s is %s, want %s", tag, d, want[tag])
		}
		if err := checkImage(img); err != nil {
			t.Errorf("%s: %v", tag, err)
		}
	}
}

func TestADamagedImgpkgLayerIsRefusedNeverSent(t *testing.T) {
	raw, err := golden.ReadFile("basic.imgpkg.tar")
	if err != nil {
		t.Fatal(err)
	}
	path, err := golden.WriteFile(t.TempDir(), "basic.imgpkg.tar")
	if err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, path, serve.Options{})
	d, entry, layer := app1Layer(t, srv.host)
	at := bytes.Index(raw, []byte(entry))
	if at < 0 || !bytes.Equal(raw[at+512:at+512+len(layer)], layer) {
		t.Fatalf("the entry %s does not follow its header in the tarball", entry)
	}
	damaged := bytes.Clone(raw)
	damaged[at+512+3000] ^= 0x01
	bad := t.TempDir() + "/damaged.imgpkg.tar"
	if err := os.WriteFile(bad, damaged, 0o644); err != nil {
		t.Fatal(err)
	}
	badSrv := startServer(t, bad, serve.Options{})
	blobURL := badSrv.url + "/v2/src/app1/blobs/" + d
	for i, rng := range []string{"", "bytes=0-99", "bytes=5000-"} {
		resp, body := do(t, http.MethodGet, blobURL, map[string]string{"Range": rng})
		wantError(t, fmt.Sprintf("GET %d of the damaged layer", i), resp, body, http.StatusInternalServerError, "UNKNOWN")
		if bytes.Contains(body, layer[:64]) {
			t.Error("the error carries the layer's bytes")
		}
	}
	if n := badSrv.rep.count(true, d); n != 1 {
		t.Errorf("%d warnings name the damaged layer, want 1", n)
	}
	// The bundle is served.
	img, err := remote.Image(mustRef(t, badSrv.host+"/golden/basic:v1"))
	if err == nil {
		err = checkImage(img)
	}
	if err != nil {
		t.Errorf("the bundle: %v", err)
	}

	// A tarball changed after its layer was checked: a whole GET, hashed
	// again as it is sent, is cut short of its last byte.
	blobURL = srv.url + "/v2/src/app1/blobs/" + d
	if resp, body := do(t, http.MethodGet, blobURL, nil); resp.StatusCode != 200 || !bytes.Equal(body, layer) {
		t.Fatalf("GET before the change: %d", resp.StatusCode)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(damaged[at+512+3000:at+512+3001], int64(at+512+3000)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	resp, err := http.Get(blobURL)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil || int64(len(body)) >= int64(len(layer)) {
		t.Errorf("GET after the change: %d, %d of %d bytes, error %v; want the response cut short", resp.StatusCode, len(body), len(layer), err)
	}
	// A part of the layer has no check of its own: the whole layer is
	// read again before the last byte of the answer, which is cut short.
	for _, rng := range []string{"bytes=2900-3099", "bytes=0-99,2990-3010", "bytes=10000-10099"} {
		resp, body, err := fetch(t, blobURL, rng)
		if err == nil && resp.StatusCode == http.StatusPartialContent {
			t.Errorf("Range %s after the change: a whole 206 answer of %d bytes (only the layer's bytes: %v), want it cut short", rng, len(body), onlyBlobBytes(resp, body, layer))
		}
	}
}
