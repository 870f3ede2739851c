package relocate_test

import (
	"bytes"
	"fmt"
	"reflect"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/fixtures/golden"
	"github.com/ferry-dev/ferry/internal/bundle"
	"github.com/ferry-dev/ferry/lock"
	"github.com/ferry-dev/ferry/relocate"
)

// imgpkg keys a bundle's images by digest and writes one locations entry
// per digest, so a lock naming the same image twice, as the same string or
// through a YAML alias, gets the locations document of a lock naming it
// once: the one imgpkg wrote for bundle-basic, whose lock names app1 once.
func TestBundleLocationsNamesARepeatedImageOnce(t *testing.T) {
	want, err := golden.ReadFile("image-locations.yml")
	if err != nil {
		t.Fatal(err)
	}
	head := "apiVersion: imgpkg.carvel.dev/v1alpha1\nkind: ImagesLock\nimages:\n"
	for name, doc := range map[string]string{
		"same string": head + fmt.Sprintf("- image: %s\n- image: %s\n", golden.App1Ref, golden.App1Ref),
		"yaml alias":  head + fmt.Sprintf("- &app1\n  image: %s\n- *app1\n", golden.App1Ref),
	} {
		t.Run(name, func(t *testing.T) {
			il, err := lock.ParseImagesLock([]byte(doc), "images.yml")
			if err != nil {
				t.Fatal(err)
			}
			if len(il.Images) != 2 {
				t.Fatalf("the lock holds %d entries, want the 2 this test is about", len(il.Images))
			}
			wantLocations(t, il, want)
		})
	}
}

// imgpkg rewrites every name of a bundle's images.yml to its fully
// qualified form as it reads it (lockconfig.NewImagesLockFromBytes:
// name.NewDigest(image).Name()) and keys the images by digest, so its
// locations document has one entry per digest, named in that form: a tag
// before the digest goes, "nginx" and "docker.io/library/nginx" become one
// "index.docker.io/library/nginx". golden/locations-normalised is what
// imgpkg wrote for such a lock; the locations image's digest depends on it.
func TestBundleLocationsNamesImagesAsImgpkgDoes(t *testing.T) {
	data, err := golden.ReadFile(golden.NormalisedLock)
	if err != nil {
		t.Fatal(err)
	}
	want, err := golden.ReadFile(golden.NormalisedLocationsFile)
	if err != nil {
		t.Fatal(err)
	}
	il, err := lock.ParseImagesLock(data, golden.NormalisedLock)
	if err != nil {
		t.Fatal(err)
	}
	locs := wantLocations(t, il, want)
	img, err := bundle.LocationsImage(locs)
	if err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if d.String() != golden.NormalisedLocations {
		t.Errorf("locations image %s, want imgpkg's %s", d, golden.NormalisedLocations)
	}
}

// Two different repositories holding the same digest get one entry, the
// name of the first in the lock. imgpkg also writes one entry per digest,
// but which name it keeps varies from run to run (golden/README.md), so
// ferry's choice is only required to be stable.
func TestBundleLocationsNamesADigestOnceByItsFirstName(t *testing.T) {
	d := golden.App1
	head := "apiVersion: imgpkg.carvel.dev/v1alpha1\nkind: ImagesLock\nimages:\n"
	doc := head + "- image: registry.example/b/mirror:v2@" + d + "\n- image: registry.example/a/app@" + d + "\n"
	il, err := lock.ParseImagesLock([]byte(doc), "images.yml")
	if err != nil {
		t.Fatal(err)
	}
	locs, err := relocate.BundleLocations(il, func(v1.Hash) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	want := []lock.ImageLocation{{Image: "registry.example/b/mirror@" + d, IsBundle: true}}
	if !reflect.DeepEqual(locs.Images, want) {
		t.Errorf("entries %+v, want %+v", locs.Images, want)
	}
}

// wantLocations checks that the locations document BundleLocations makes
// for il, no image a bundle, marshals to want, and returns it.
func wantLocations(t *testing.T, il *lock.ImagesLock, want []byte) lock.ImageLocations {
	t.Helper()
	locs, err := relocate.BundleLocations(il, func(v1.Hash) bool { return false })
	if err != nil {
		t.Fatal(err)
	}
	got, err := locs.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("image-locations.yml:\n%s\nwant (imgpkg's):\n%s", got, want)
	}
	return locs
}
