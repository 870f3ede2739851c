package pull

import (
	"bytes"
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferry-dev/ferry/fixtures"
	"github.com/ferry-dev/ferry/internal/bundle"
)

// tamper serves a real registry, but answers GETs of one blob with other
// bytes of the same length: a corrupting proxy or a compromised mirror.
type tamper struct {
	h      http.Handler
	digest string
}

func (t *tamper) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/blobs/"+t.digest) {
		t.h.ServeHTTP(w, r)
		return
	}
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, r)
	body := rec.Body.Bytes()
	if len(body) > 20 {
		body[len(body)-20] ^= 0xff
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	w.Write(body)
}

func pushBundle(t *testing.T, host string) (name.Reference, v1.Hash) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "b")
	if err := fixtures.WriteBundleDir(dir, nil); err != nil {
		t.Fatal(err)
	}
	img, err := bundle.Build(context.Background(), []string{dir}, bundle.BuildOptions{Bundle: true})
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	ref, _ := name.ParseReference(host + "/b:v1")
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	d, _ := layers[0].Digest()
	return ref, d
}

func TestPullRefusesALayerThatDoesNotMatchItsDigest(t *testing.T) {
	tp := &tamper{h: registry.New(registry.Logger(log.New(io.Discard, "", 0)))}
	srv := httptest.NewServer(tp)
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	ref, layer := pushBundle(t, host)
	tp.digest = layer.String()

	out := filepath.Join(t.TempDir(), "out")
	_, err := Pull(context.Background(), ref, out, Options{Bundle: true})
	if err == nil || !strings.Contains(err.Error(), layer.String()) {
		t.Fatalf("want an error naming layer %s, got %v", layer, err)
	}
	if left, _ := os.ReadDir(out); len(left) != 0 {
		t.Fatalf("a tampered layer was extracted: %d entries", len(left))
	}
}

func TestOverwriteKeepsFilesWhenThePullFails(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	out := t.TempDir()
	mine := filepath.Join(out, "mine.txt")
	os.WriteFile(mine, []byte("keep me"), 0o644)

	missing, _ := name.ParseReference(host + "/nothing:v1")
	if _, err := Pull(context.Background(), missing, out, Options{Bundle: true, Overwrite: true}); err == nil {
		t.Fatal("pull of a missing bundle succeeded")
	}
	if b, err := os.ReadFile(mine); err != nil || !bytes.Equal(b, []byte("keep me")) {
		t.Fatalf("the user's file was lost by a failed --overwrite pull: %v", err)
	}

	// And a successful one replaces the contents.
	ref, _ := pushBundle(t, host)
	if _, err := Pull(context.Background(), ref, out, Options{Bundle: true, Overwrite: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(mine); !os.IsNotExist(err) {
		t.Fatal("--overwrite kept the old contents")
	}
	if _, err := os.Stat(filepath.Join(out, ".imgpkg", "images.yml")); err != nil {
		t.Fatal(err)
	}
}

func TestFailedPullLeavesNoDirectoryItCreated(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	ref, _ := pushBundle(t, host)
	out := filepath.Join(t.TempDir(), "new")
	// A bundle pulled as a plain image is refused.
	if _, err := Pull(context.Background(), ref, out, Options{Bundle: false}); err == nil || !strings.Contains(err.Error(), "use -b") {
		t.Fatalf("want a refusal suggesting -b, got %v", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("the failed pull left %s behind (%v)", out, err)
	}
}
