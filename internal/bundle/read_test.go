package bundle

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/ferry-dev/ferry/internal/safetar"
	"github.com/ferry-dev/ferry/lock"
)

func TestReadBuiltBundleFromRegistry(t *testing.T) {
	img, ref := pushAndPull(t, build(t, []string{copyGolden(t)}, BuildOptions{Bundle: true}), "golden/bundle")
	if got := digestOf(t, img); got != goldenManifest {
		t.Errorf("digest in the registry %s, want %s", got, goldenManifest)
	}
	isBundle, err := IsBundleImage(img)
	if err != nil || !isBundle {
		t.Errorf("IsBundleImage = %v, %v; want true", isBundle, err)
	}

	got, err := ReadImagesLock(img, ref.String())
	if err != nil {
		t.Fatal(err)
	}
	want, err := lock.ParseImagesLock(goldenImagesYML(t), "golden images.yml")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("images lock %+v, want %+v", got, want)
	}
	if len(got.Images) != 1 || got.Images[0].Image != "127.0.0.1:5900/src/app1@sha256:862fa98b7c02f30d6a7e5654cdc84c8ebecffd32e61f8e2861fa4f41d4da5edf" {
		t.Errorf("images %+v, want the one app1 image", got.Images)
	}

	// bundle.yml travels in the layer, as written (push only warns about
	// it; no command reads it from an image).
	data, ok, err := readLayerFile(img, ref.String(), BundleMetadataPath)
	if err != nil || !ok {
		t.Fatalf("%s in the layer: %v, %v", BundleMetadataPath, ok, err)
	}
	md, err := lock.ParseBundle(data, "bundle.yml of the layer")
	if err != nil {
		t.Fatal(err)
	}
	bundleYML := readGolden(t, "bundle-basic/.imgpkg/bundle.yml")
	wantMD, err := lock.ParseBundle(bundleYML, "golden bundle.yml")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(md, wantMD) || md.Metadata.Name != "golden-basic" {
		t.Errorf("bundle metadata %+v, want %+v", md, wantMD)
	}
}

func TestIsBundle(t *testing.T) {
	plain := build(t, []string{writeTree(t, [2]string{"a", "a"})}, BuildOptions{})
	if ok, err := IsBundleImage(plain); ok || err != nil {
		t.Errorf("IsBundleImage(plain) = %v, %v; want false", ok, err)
	}
	if IsBundle(nil) {
		t.Error("IsBundle(nil) = true")
	}
	// Only the key matters, as in imgpkg.
	cfg := &v1.ConfigFile{Config: v1.Config{Labels: map[string]string{LabelKey: "false"}}}
	if !IsBundle(cfg) {
		t.Error(`IsBundle with label value "false" = false, want true (the key decides)`)
	}
}

// layerImage is a one-layer image whose layer holds the given tar entries;
// a header with Typeflag TypeDir gets no content.
func layerImage(t *testing.T, files ...[2]string) v1.Image {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f[0], Mode: 0o600, Typeflag: tar.TypeReg, Size: int64(len(f[1]))}
		if f[1] == "/" {
			h.Typeflag, h.Size = tar.TypeDir, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			if _, err := tw.Write([]byte(f[1])); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestReadImagesLockAcceptsDotSlashNames(t *testing.T) {
	img := layerImage(t, [2]string{"./", "/"}, [2]string{"./.imgpkg/", "/"}, [2]string{"./.imgpkg/images.yml", string(goldenImagesYML(t))})
	got, err := ReadImagesLock(img, "reg/b@sha256:x")
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Images) != 1 {
		t.Errorf("%d images, want 1", len(got.Images))
	}
}

func TestReadImagesLockErrors(t *testing.T) {
	const source = "registry.example/team/bundle:v1"
	imagesYML := string(goldenImagesYML(t))
	twoLayers, err := random.Image(64, 2)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		img       v1.Image
		fragments []string
	}{
		{"two layers", twoLayers, []string{source, "exactly one layer", "2"}},
		{"no layers", empty.Image, []string{source, "exactly one layer", "0"}},
		{"no images.yml", layerImage(t, [2]string{"README", "x"}), []string{source, ImagesLockPath}},
		{"images.yml twice", layerImage(t, [2]string{".imgpkg/images.yml", imagesYML}, [2]string{"./.imgpkg/images.yml", imagesYML}), []string{source, "twice"}},
		{"images.yml a directory", layerImage(t, [2]string{".imgpkg/images.yml", "/"}), []string{source, "not a regular file"}},
		{"invalid images.yml", layerImage(t, [2]string{".imgpkg/images.yml", "kind: ImagesLock\n"}), []string{source, ImagesLockPath}},
		// Issue 13, item 3: the one cap of lock documents, from the tar
		// header, before reading (it was 64 MiB here, and nothing in pull).
		{"images.yml over the cap", layerImage(t, [2]string{".imgpkg/images.yml", imagesYML + "# " + strings.Repeat("x", lock.MaxDocumentSize-len(imagesYML)) + "\n"}),
			[]string{source, ImagesLockPath, fmt.Sprintf("%d bytes, more than the %d", lock.MaxDocumentSize+3, lock.MaxDocumentSize)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadImagesLock(tc.img, source)
			t.Log(err)
			wantErr(t, err, tc.fragments...)
			_, raw, err := ReadImagesLockKeep(tc.img, source)
			wantErr(t, err, tc.fragments...)
			if raw != nil {
				t.Error("ReadImagesLockKeep kept a layer it refused")
			}
		})
	}
}

// ReadImagesLockKeep keeps a small layer's bytes, exactly the blob the
// registry holds, and reads the lock from them; a larger layer is streamed
// and not kept.
func TestReadImagesLockKeep(t *testing.T) {
	small := build(t, []string{copyGolden(t)}, BuildOptions{Bundle: true})
	large := build(t, []string{bundleTree(t, [2]string{"zz-large.bin", string(incompressible(MaxKeptLayerSize + 1))})}, BuildOptions{Bundle: true})
	for _, tc := range []struct {
		name string
		img  v1.Image
		keep bool
	}{{"small", small, true}, {"large", large, false}} {
		t.Run(tc.name, func(t *testing.T) {
			img, ref := pushAndPull(t, tc.img, "keep/"+tc.name)
			want, err := ReadImagesLock(img, ref.String())
			if err != nil {
				t.Fatal(err)
			}
			got, raw, err := ReadImagesLockKeep(img, ref.String())
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("lock %+v, want %+v", got, want)
			}
			if !tc.keep {
				if raw != nil {
					t.Errorf("kept %d bytes of a layer over %d", len(raw), MaxKeptLayerSize)
				}
				return
			}
			layers, err := img.Layers()
			if err != nil {
				t.Fatal(err)
			}
			d, err := layers[0].Digest()
			if err != nil {
				t.Fatal(err)
			}
			if sha(raw) != d {
				t.Errorf("kept bytes have digest %s, the layer is %s", sha(raw), d)
			}
		})
	}
}

// incompressible returns n bytes gzip cannot shrink.
func incompressible(n int) []byte {
	b := make([]byte, n)
	x := uint64(88172645463325252)
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
	return b
}

// images.yml is the first file in a bundle's layer, but the reader must still
// read the layer to its end, or a corrupted blob would go unnoticed.
func TestReadImagesLockVerifiesTheWholeLayer(t *testing.T) {
	img := build(t, []string{bundleTree(t, [2]string{"zz-large.txt", strings.Repeat("payload ", 4096)})}, BuildOptions{Bundle: true})
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	layerDigest, err := layers[0].Digest()
	if err != nil {
		t.Fatal(err)
	}
	host := tamperingRegistry(t, map[string]bool{layerDigest.String(): true})
	ref, err := name.ParseReference(host + "/team/bundle:v1")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithContext(t.Context())); err != nil {
		t.Fatal(err)
	}
	pulled, err := remote.Image(ref, remote.WithContext(t.Context()))
	if err != nil {
		t.Fatal(err)
	}
	_, err = ReadImagesLock(pulled, ref.String())
	t.Log(err)
	wantErr(t, err, ref.String())
	// Kept whole (the layer is small), it is checked before it is read.
	_, raw, err := ReadImagesLockKeep(pulled, ref.String())
	wantErr(t, err, ref.String(), layerDigest.String())
	if raw != nil {
		t.Error("a tampered layer was kept")
	}
}

// A backslash in a layer's names is a separator for pull (internal/safetar,
// as imgpkg's pull: older imgpkg releases on Windows wrote such names), so
// export and copy read the lock pull extracts: a bundle whose only lock is
// `.imgpkg\images.yml` had its lock rewritten by pull while export said it
// had none. Both spellings at once are one name twice, which pull refuses
// too.
func TestReadImagesLockTakesBackslashesAsPullDoes(t *testing.T) {
	imagesYML := string(goldenImagesYML(t))
	entries := [][2]string{{`.imgpkg\`, "/"}, {`.imgpkg\images.yml`, imagesYML}, {`config\app.yml`, "a: 1\n"}}
	img := layerImage(t, entries...)
	got, err := ReadImagesLock(img, "reg/b@sha256:x")
	if err != nil {
		t.Fatal(err)
	}
	want, err := lock.ParseImagesLock([]byte(imagesYML), "golden images.yml")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("images lock %+v, want %+v", got, want)
	}
	// What pull extracts from the same layer is that file.
	out := t.TempDir()
	if err := safetar.Extract(context.Background(), bytes.NewReader(layerTar(t, img)), out, safetar.Options{}); err != nil {
		t.Fatal(err)
	}
	if data, err := os.ReadFile(filepath.Join(out, ".imgpkg", "images.yml")); err != nil || string(data) != imagesYML {
		t.Errorf("pull extracts .imgpkg/images.yml as %q, %v; want the lock read", data, err)
	}

	twice := layerImage(t, [2]string{".imgpkg/images.yml", imagesYML}, [2]string{`.imgpkg\images.yml`, imagesYML})
	_, err = ReadImagesLock(twice, "reg/b@sha256:x")
	wantErr(t, err, "twice")
	if err := safetar.Extract(context.Background(), bytes.NewReader(layerTar(t, twice)), t.TempDir(), safetar.Options{}); err == nil {
		t.Error("pull extracted a layer holding .imgpkg/images.yml twice")
	}
}

// layerTar is the uncompressed tar of img's only layer.
func layerTar(t *testing.T, img v1.Image) []byte {
	t.Helper()
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("%d layers, %v; want 1", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
