package pull

import (
	"archive/tar"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// images.yml swapped for a symbolic link after the extraction (here while
// the pull asks for the bundle's image-locations image) is not rewritten
// through the link: the file it leads to, outside the output directory,
// stays as it was, and the pull fails saying why.
func TestPullDoesNotRewriteImagesYMLThroughALink(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "out")
	outside := filepath.Join(parent, "outside.yml")
	if err := os.WriteFile(outside, []byte("mine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	host := hookedRegistry(t, func(r *http.Request) {
		if !strings.Contains(r.URL.Path, "image-locations") {
			return
		}
		once.Do(func() {
			lockPath := filepath.Join(dir, ".imgpkg", "images.yml")
			if err := os.Remove(lockPath); err != nil {
				t.Error(err)
			}
			if err := os.Symlink(outside, lockPath); err != nil {
				t.Error(err)
			}
		})
	})
	ref := pushBundleTar(t, host+"/team/b:v1", []tarEntry{
		{hdr: tar.Header{Name: ".imgpkg/images.yml", Typeflag: tar.TypeReg, Mode: 0o644}, body: "apiVersion: imgpkg.carvel.dev/v1alpha1\nkind: ImagesLock\nimages: []\n"},
	}, nil)
	_, err := Pull(context.Background(), ref, dir, Options{Bundle: true})
	if err == nil || !strings.Contains(err.Error(), "images.yml") {
		t.Errorf("pull with images.yml swapped for a link: %v, want an error naming it", err)
	}
	if b, err := os.ReadFile(outside); err != nil || string(b) != "mine\n" {
		t.Errorf("the file the link led to holds %q (%v), want it untouched", b, err)
	}
}
