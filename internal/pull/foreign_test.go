package pull

import (
	"archive/tar"
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
)

// A pull that fails once extraction began removes what it wrote, and only
// that: files another process put in the output directory meanwhile (a
// second pull into it, the user's) stay, with the directories holding
// them; it used to empty the whole directory. The files here appear while
// the pull downloads (a front of go-containerregistry's registry writes
// them when a blob is fetched, after the pull found the directory empty),
// and the layer's last entry is refused.
func TestFailedPullRemovesOnlyWhatItWrote(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	theirs := map[string]string{
		"theirs.txt":                  "not the pull's\n",
		"shared/theirs.txt":           "not the pull's either\n",
		".imgpkg/bundles/x/theirs.md": "nested\n",
	}
	var once sync.Once
	var armed atomic.Bool
	host := hookedRegistry(t, func(r *http.Request) {
		if !armed.Load() || r.Method != http.MethodGet || !strings.Contains(r.URL.Path, "/blobs/") {
			return
		}
		once.Do(func() {
			for name, content := range theirs {
				p := filepath.Join(dir, filepath.FromSlash(name))
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Error(err)
				}
				if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
					t.Error(err)
				}
			}
		})
	})
	ref := pushBundleTar(t, host+"/team/bad:v1", []tarEntry{
		{hdr: tar.Header{Name: "good.txt", Typeflag: tar.TypeReg, Mode: 0o644}, body: "good\n"},
		{hdr: tar.Header{Name: "shared/ours.txt", Typeflag: tar.TypeReg, Mode: 0o644}, body: "ours\n"},
		{hdr: tar.Header{Name: "own/deep/file.txt", Typeflag: tar.TypeReg, Mode: 0o644}, body: "ours\n"},
		{hdr: tar.Header{Name: ".imgpkg/images.yml", Typeflag: tar.TypeReg, Mode: 0o644}, body: "apiVersion: imgpkg.carvel.dev/v1alpha1\nkind: ImagesLock\nimages: []\n"},
		{hdr: tar.Header{Name: "escape", Typeflag: tar.TypeSymlink, Linkname: "../../../etc/passwd"}},
	}, nil)
	armed.Store(true)

	_, err := Pull(context.Background(), ref, dir, Options{Bundle: true})
	if err == nil || !strings.Contains(err.Error(), `"escape"`) {
		t.Fatalf("want an error naming the refused entry, got %v", err)
	}
	if strings.Contains(err.Error(), "cleaning up") {
		t.Errorf("the cleanup failed: %v", err)
	}
	if !strings.Contains(err.Error(), "did not write") {
		t.Errorf("the error %q does not say the pull left what it did not write", err)
	}
	var got []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			got = append(got, filepath.ToSlash(rel))
		}
		return err
	})
	var want []string
	for name := range theirs {
		want = append(want, name)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("after the failed pull, %s holds %v, want what the pull did not write, %v", dir, got, want)
	}
	for name, content := range theirs {
		if b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name))); err != nil || string(b) != content {
			t.Errorf("%s holds %q (%v), want %q", name, b, err, content)
		}
	}
	if _, err := os.Lstat(filepath.Join(dir, "own")); !os.IsNotExist(err) {
		t.Errorf("the directory the pull made for own/deep/file.txt is still there (%v)", err)
	}
}

// hookedRegistry serves go-containerregistry's registry on loopback, calling
// hook with each request before the registry answers it, and returns its
// host.
func hookedRegistry(t *testing.T, hook func(*http.Request)) string {
	t.Helper()
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hook(r)
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}
