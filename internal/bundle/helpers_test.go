package bundle

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// goldenDir is /work/shared/golden seen from this package: the repository
// root's sibling "shared".
const goldenDir = "../../../shared/golden"

// goldenModes are the modes imgpkg saw when it pushed golden/bundle-basic
// (golden/README.md); the shared copy is read-only, so tests copy and chmod.
var goldenModes = map[string]os.FileMode{
	".": 0o755, ".imgpkg": 0o755, ".imgpkg/bundle.yml": 0o644, ".imgpkg/images.yml": 0o644,
	"README.txt": 0o644, "config": 0o755, "config/app.yml": 0o644, "config/nested": 0o755,
	"config/nested/private.txt": 0o600, "config/run.sh": 0o755,
}

// copyGolden copies golden/bundle-basic to a temporary directory with the
// modes imgpkg pushed it with.
func copyGolden(t *testing.T) string {
	t.Helper()
	src := filepath.Join(goldenDir, "bundle-basic")
	dst := filepath.Join(t.TempDir(), "bundle-basic")
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	for rel, mode := range goldenModes {
		if err := os.Chmod(filepath.Join(dst, filepath.FromSlash(rel)), mode); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// goldenImagesYML is the golden bundle's images.yml, a valid ImagesLock.
func goldenImagesYML(t *testing.T) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(goldenDir, "bundle-basic", ".imgpkg", "images.yml"))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// writeTree creates files (path → content; a path ending in "/" is a
// directory) under a new temporary directory, in the order given.
func writeTree(t *testing.T, files ...[2]string) string {
	t.Helper()
	root := t.TempDir()
	for _, f := range files {
		p := filepath.Join(root, filepath.FromSlash(f[0]))
		if strings.HasSuffix(f[0], "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f[1]), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// bundleTree is a minimal valid bundle directory plus the extra files given.
func bundleTree(t *testing.T, extra ...[2]string) string {
	t.Helper()
	files := append([][2]string{{".imgpkg/images.yml", string(goldenImagesYML(t))}}, extra...)
	return writeTree(t, files...)
}

func build(t *testing.T, dirs []string, opts BuildOptions) Image {
	t.Helper()
	img, err := Build(context.Background(), dirs, opts)
	if err != nil {
		t.Fatalf("Build(%v): %v", dirs, err)
	}
	t.Cleanup(func() { _ = img.Close() })
	return img
}

func digestOf(t *testing.T, img v1.Image) string {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// tarEntry is what a test checks about one entry of a layer.
type tarEntry struct {
	name    string
	mode    int64
	typ     byte
	content string
}

// layerEntries reads the single layer of img back as tar entries.
func layerEntries(t *testing.T, img v1.Image) ([]tarEntry, []*tar.Header) {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 1 {
		t.Fatalf("got %d layers, want 1", len(layers))
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var entries []tarEntry
	var headers []*tar.Header
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return entries, headers
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, tarEntry{name: h.Name, mode: h.Mode, typ: h.Typeflag, content: string(data)})
		headers = append(headers, h)
	}
}

// wantErr fails unless err is non-nil and mentions every fragment.
func wantErr(t *testing.T, err error, fragments ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one mentioning %q", fragments)
	}
	for _, f := range fragments {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("error %q does not mention %q", err, f)
		}
	}
}
