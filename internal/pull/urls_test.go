package pull

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// A bundle whose one layer lists URLs: go-containerregistry fetches a
// layer the registry lacks from those URLs on any host given by name
// (localhost here), so a bundle's author could make the puller's machine
// send requests to its own services, whatever the layer's media type. Pull
// takes the layer from the registry only: the registry lacking it (a
// front answers 404 for it), the pull fails naming it and the URL's host
// hears nothing; the registry holding it, the pull succeeds, still without
// a request to the URL.
func TestPullTakesALayerFromTheRegistryOnly(t *testing.T) {
	for _, mt := range []types.MediaType{types.DockerForeignLayer, types.DockerLayer} {
		t.Run(string(mt), func(t *testing.T) { pullWithLayerURLs(t, mt) })
	}
}

func pullWithLayerURLs(t *testing.T, mt types.MediaType) {
	var heard atomic.Int32
	victim := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		heard.Add(1)
		_, _ = io.WriteString(w, "an internal service")
	}))
	t.Cleanup(victim.Close)

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	lock := "apiVersion: imgpkg.carvel.dev/v1alpha1\nkind: ImagesLock\nimages: []\n"
	if err := tw.WriteHeader(&tar.Header{Name: ".imgpkg/images.yml", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(lock))}); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(tw, lock); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	layer, err := tarball.LayerFromReader(bytes.NewReader(buf.Bytes()), tarball.WithMediaType(mt))
	if err != nil {
		t.Fatal(err)
	}
	d, err := layer.Digest()
	if err != nil {
		t.Fatal(err)
	}
	var hide atomic.Bool
	inner := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hide.Load() && r.Method != http.MethodPost && r.Method != http.MethodPatch && r.Method != http.MethodPut && strings.HasSuffix(r.URL.Path, "/blobs/"+d.String()) {
			http.Error(w, `{"errors":[{"code":"BLOB_UNKNOWN"}]}`, http.StatusNotFound)
			return
		}
		inner.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")

	url := strings.Replace(victim.URL, "127.0.0.1", "localhost", 1) + "/admin?reboot=1"
	img, err := mutate.Append(empty.Image, mutate.Addendum{Layer: layer, URLs: []string{url}, MediaType: mt})
	if err != nil {
		t.Fatal(err)
	}
	img = labelBundle(t, img)
	ref, err := name.ParseReference(host + "/team/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	// The bytes as a distributable layer, which the writer uploads (it
	// leaves a foreign one out).
	rc, err := layer.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteLayer(ref.Context(), static.NewLayer(b, types.DockerLayer)); err != nil {
		t.Fatal(err)
	}

	hide.Store(true)
	_, err = Pull(context.Background(), ref, filepath.Join(t.TempDir(), "out"), Options{Bundle: true})
	if err == nil || !strings.Contains(err.Error(), d.String()) {
		t.Errorf("pull of a layer the registry lacks: %v; want an error naming %s", err, d)
	}
	if n := heard.Load(); n != 0 {
		t.Fatalf("the layer's URL received %d requests", n)
	}

	hide.Store(false)
	out := filepath.Join(t.TempDir(), "out")
	if _, err := Pull(context.Background(), ref, out, Options{Bundle: true}); err != nil {
		t.Fatalf("pull of a layer the registry holds: %v", err)
	}
	if got, err := os.ReadFile(filepath.Join(out, ".imgpkg", "images.yml")); err != nil || !strings.Contains(string(got), "kind: ImagesLock") {
		t.Errorf("images.yml %q, %v; want the bundle's lock", got, err)
	}
	if n := heard.Load(); n != 0 {
		t.Errorf("the layer's URL received %d requests", n)
	}
}
