package e2e

import (
	"archive/tar"
	"bytes"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/ferry-dev/ferry/fixtures"
	"github.com/ferry-dev/ferry/fixtures/golden"
	"github.com/ferry-dev/ferry/internal/testregistry"
)

// goldenBundleDir writes fixtures/golden/bundle-basic into a temp dir with
// the modes imgpkg saw when it pushed it.
func goldenBundleDir(t *testing.T) string {
	t.Helper()
	dir, err := golden.BundleBasic(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// seedImage pushes a generated image to ref and returns its digest reference.
func seedImage(t *testing.T, reg *testregistry.Registry, repo string, seed uint64) name.Digest {
	t.Helper()
	img, err := fixtures.Image(seed, 2, 4096)
	if err != nil {
		t.Fatal(err)
	}
	return seed2(t, reg, repo, img)
}

func seed2(t *testing.T, reg *testregistry.Registry, repo string, img v1.Image) name.Digest {
	t.Helper()
	ref, err := name.NewTag(reg.Repo(repo) + ":seed")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, reg.RemoteOptions(t)...); err != nil {
		t.Fatalf("seeding %s: %v", ref, err)
	}
	d, _ := img.Digest()
	return ref.Context().Digest(d.String())
}

// bundleDir writes a bundle directory locking refs.
func bundleDir(t *testing.T, refs ...name.Digest) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "bundle")
	var s []string
	for _, r := range refs {
		s = append(s, r.String())
	}
	if err := fixtures.WriteBundleDir(dir, s); err != nil {
		t.Fatal(err)
	}
	return dir
}

// digestOf asks the registry which digest ref points at.
func digestOf(t *testing.T, reg *testregistry.Registry, ref string) string {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Head(r, reg.RemoteOptions(t)...)
	if err != nil {
		t.Fatalf("HEAD %s: %v", ref, err)
	}
	return desc.Digest.String()
}

// maliciousBundle builds a bundle image whose layer holds the given tar
// entries, bypassing ferry's own (safe) builder.
func maliciousBundle(t *testing.T, entries []tar.Header) v1.Image {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range entries {
		h := h
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write(bytes.Repeat([]byte("x"), int(h.Size)))
		}
	}
	tw.Close()
	b := buf.Bytes()
	layer, err := tarball.LayerFromReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := img.ConfigFile()
	cfg = cfg.DeepCopy()
	cfg.Config.Labels = map[string]string{"dev.carvel.imgpkg.bundle": "true"}
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return img
}
