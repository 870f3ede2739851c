package bundle

import (
	"reflect"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/lock"
)

// What imgpkg v0.43 wrote as the locations image of golden/bundle-basic
// (golden/README.md).
const (
	goldenLocationsManifest = "sha256:cce953720aff40c0411f7d3729b1e643ef6b577109fcfa6a7f486166b231ef4b"
	goldenLocationsConfig   = "sha256:8b1c8f7f8efc69608eaa7cf9956eb455901f5623db8375040ec8813028d28522"
	goldenLocationsLayer    = "sha256:23e0ec783538ea6baada57f0731c551fc306c20dad55a951dd83ea7fbe2718be"
	goldenApp1              = "127.0.0.1:5900/src/app1@sha256:862fa98b7c02f30d6a7e5654cdc84c8ebecffd32e61f8e2861fa4f41d4da5edf"
)

func goldenLocations() lock.ImageLocations {
	return lock.ImageLocations{Images: []lock.ImageLocation{{Image: goldenApp1, IsBundle: false}}}
}

func TestLocationsImageMatchesImgpkgGolden(t *testing.T) {
	img, err := LocationsImage(goldenLocations())
	if err != nil {
		t.Fatal(err)
	}
	if got := digestOf(t, img); got != goldenLocationsManifest {
		t.Errorf("manifest digest %s, want %s", got, goldenLocationsManifest)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.MediaType != types.DockerManifestSchema2 {
		t.Errorf("manifest media type %s, want Docker schema2", m.MediaType)
	}
	if m.Config.Digest.String() != goldenLocationsConfig || m.Config.Size != 273 {
		t.Errorf("config %s (%d bytes), want %s (273 bytes)", m.Config.Digest, m.Config.Size, goldenLocationsConfig)
	}
	if len(m.Layers) != 1 || m.Layers[0].Digest.String() != goldenLocationsLayer || m.Layers[0].Size != 297 || m.Layers[0].MediaType != types.DockerLayer {
		t.Errorf("layers %+v, want one docker layer %s of 297 bytes", m.Layers, goldenLocationsLayer)
	}

	want := readGolden(t, "image-locations.yml")
	entries, _ := layerEntries(t, img)
	wantEntries := []tarEntry{
		{name: ".", mode: 0o700, typ: '5'},
		{name: LocationsPath, mode: 0o600, typ: '0', content: string(want)},
	}
	if !reflect.DeepEqual(entries, wantEntries) {
		t.Errorf("layer entries %+v, want %+v", entries, wantEntries)
	}
}

func TestLocationsRoundTripThroughRegistry(t *testing.T) {
	in := lock.ImageLocations{Images: []lock.ImageLocation{
		{Image: "registry.example/b@sha256:" + hex64('b'), IsBundle: true},
		{Image: goldenApp1},
	}}
	img, err := LocationsImage(in)
	if err != nil {
		t.Fatal(err)
	}
	pulled, ref := pushAndPull(t, img, "dest/repo")
	if got, want := digestOf(t, pulled), digestOf(t, img); got != want {
		t.Errorf("digest in the registry %s, want %s", got, want)
	}
	if isBundle, err := IsBundleImage(pulled); isBundle || err != nil {
		t.Errorf("IsBundleImage(locations image) = %v, %v; want false", isBundle, err)
	}
	got, err := ReadLocations(pulled, ref.String())
	if err != nil {
		t.Fatal(err)
	}
	// Marshal sorts by image, so the round trip comes back sorted.
	want := &lock.ImageLocations{APIVersion: lock.APIVersion, Kind: lock.KindImageLocations,
		Images: []lock.ImageLocation{in.Images[1], in.Images[0]}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ReadLocations = %+v, want %+v", got, want)
	}
}

func hex64(c byte) string {
	b := make([]byte, 64)
	for i := range b {
		b[i] = c
	}
	return string(b)
}

func TestLocationsImageErrors(t *testing.T) {
	_, err := LocationsImage(lock.ImageLocations{Images: []lock.ImageLocation{{Image: "nginx:latest"}}})
	wantErr(t, err, "locations image", "nginx:latest")
}

func TestReadLocationsErrors(t *testing.T) {
	const source = "dest/repo:sha256-abc.image-locations.imgpkg"
	plain := build(t, []string{writeTree(t, [2]string{"a", "a"})}, BuildOptions{})
	_, err := ReadLocations(plain, source)
	wantErr(t, err, source, LocationsPath)

	bad := layerImage(t, [2]string{LocationsPath, "apiVersion: imgpkg.carvel.dev/v1alpha1\nkind: ImagesLock\n"})
	_, err = ReadLocations(bad, source)
	wantErr(t, err, source, LocationsPath)
}
