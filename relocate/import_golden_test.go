package relocate_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/archive"
	"github.com/ferry-dev/ferry/fixtures/golden"
	"github.com/ferry-dev/ferry/internal/bundle"
	"github.com/ferry-dev/ferry/lock"
	"github.com/ferry-dev/ferry/relocate"
)

// The golden figures below are those imgpkg v0.43 wrote when it copied the
// bundle-basic bundle to a repository (fixtures/golden/README.md).
const (
	goldenBundle    = "sha256:1dd1fe82d28c36e0cd1a72e97295ba91f1c9b705249fecbd9a99a84668c09922"
	goldenApp1      = "sha256:862fa98b7c02f30d6a7e5654cdc84c8ebecffd32e61f8e2861fa4f41d4da5edf"
	goldenLocations = "sha256:cce953720aff40c0411f7d3729b1e643ef6b577109fcfa6a7f486166b231ef4b"
	goldenApp1Ref   = "127.0.0.1:5900/src/app1@" + goldenApp1
)

// impGoldenArchive builds a ferry archive holding the bundle and app1
// image imgpkg itself wrote into basic.imgpkg.tar (its own tar format:
// manifest.json with raw manifests and configs, then each layer as
// sha256-<hex>.tar.gz), written with the archive Writer.
func impGoldenArchive(t *testing.T) []byte {
	t.Helper()
	f, err := golden.Open("basic.imgpkg.tar")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	type raw struct {
		MediaType types.MediaType
		Digest    v1.Hash
		Raw       string
	}
	var images []struct {
		Image struct {
			Config   raw
			Manifest raw
			Tag      string
		}
	}
	layers := map[v1.Hash][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case h.Name == "manifest.json":
			if err := json.Unmarshal(b, &images); err != nil {
				t.Fatal(err)
			}
		case strings.HasPrefix(h.Name, "sha256-") && strings.HasSuffix(h.Name, ".tar.gz"):
			hex := strings.TrimSuffix(strings.TrimPrefix(h.Name, "sha256-"), ".tar.gz")
			layers[v1.Hash{Algorithm: "sha256", Hex: hex}] = b
		}
	}
	if len(images) != 2 {
		t.Fatalf("basic.imgpkg.tar holds %d images, expected the bundle and app1", len(images))
	}

	var entries []archive.Entry
	manifests := map[v1.Hash][]byte{}
	configs := map[v1.Hash][]byte{}
	for _, img := range images {
		m := img.Image.Manifest
		manifests[m.Digest] = []byte(m.Raw)
		configs[img.Image.Config.Digest] = []byte(img.Image.Config.Raw)
		e := archive.Entry{
			Descriptor:  v1.Descriptor{MediaType: m.MediaType, Digest: m.Digest, Size: int64(len(m.Raw))},
			Role:        archive.RoleImage,
			OriginalRef: goldenApp1Ref,
		}
		if m.Digest.String() == goldenBundle {
			e.Role, e.OriginalRef, e.Tag = archive.RoleBundle, "127.0.0.1:5900/golden/basic:v1", img.Image.Tag
		}
		entries = append(entries, e)
	}
	index, err := archive.BuildIndex(entries, archive.IndexOptions{CreatedBy: "ferry import golden test"})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, err := archive.NewWriter(&buf, archive.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteHeader(index, manifests); err != nil {
		t.Fatal(err)
	}
	for _, set := range []map[v1.Hash][]byte{configs, layers} {
		for d, b := range set {
			if err := w.WriteBlob(d, int64(len(b)), bytes.NewReader(b)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestImportGoldenBundleGivesImgpkgsTagsAndLocationsImage(t *testing.T) {
	arch := impGoldenArchive(t)
	dst := impNewDest(t, false)
	res, err := relocate.Import(context.Background(), bytes.NewReader(arch), dst.repo, dst.options(t))
	if err != nil {
		t.Fatal(err)
	}
	hexOf := func(d string) string { return strings.TrimPrefix(d, "sha256:") }
	want := map[string]string{
		"sha256-" + hexOf(goldenBundle) + ".image-locations.imgpkg": goldenLocations,
		"sha256-" + hexOf(goldenBundle) + ".imgpkg":                 goldenBundle,
		"sha256-" + hexOf(goldenApp1) + ".imgpkg":                   goldenApp1,
		"sha256-" + hexOf(goldenLocations) + ".imgpkg":              goldenLocations,
		"v1": goldenBundle,
	}
	if d := impDiffTags(dst.tags(t), want); d != "" {
		t.Errorf("tags differ from those imgpkg wrote:\n%s", d)
	}
	if res.Root != dst.repo.Name()+"@"+goldenBundle {
		t.Errorf("root %s, want %s@%s", res.Root, dst.repo.Name(), goldenBundle)
	}

	// The same digest from the ImageLocations written by hand, as in the
	// golden image-locations.yml, through the bundle package alone.
	img, err := bundle.LocationsImage(lock.ImageLocations{Images: []lock.ImageLocation{{Image: goldenApp1Ref, IsBundle: false}}})
	if err != nil {
		t.Fatal(err)
	}
	if d := impMust(img.Digest()).String(); d != goldenLocations {
		t.Errorf("hand-built locations image %s, imgpkg's is %s", d, goldenLocations)
	}
}
