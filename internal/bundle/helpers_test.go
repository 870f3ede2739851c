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

	"github.com/ferry-dev/ferry/fixtures/golden"
)

// copyGolden writes golden/bundle-basic to a temporary directory with the
// modes imgpkg pushed it with.
func copyGolden(t *testing.T) string {
	t.Helper()
	dir, err := golden.BundleBasic(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// readGolden returns a golden file.
func readGolden(t *testing.T, name string) []byte {
	t.Helper()
	data, err := golden.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// goldenImagesYML is the golden bundle's images.yml, a valid ImagesLock.
func goldenImagesYML(t *testing.T) []byte {
	t.Helper()
	return readGolden(t, "bundle-basic/.imgpkg/images.yml")
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
