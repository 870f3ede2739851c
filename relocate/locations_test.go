package relocate_test

import (
	"bytes"
	"fmt"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/fixtures/golden"
	"github.com/ferry-dev/ferry/lock"
	"github.com/ferry-dev/ferry/relocate"
)

// imgpkg keys the images it copies by their reference (DigestRef+":"+Tag,
// the tag empty for lock images) and writes one locations entry per key, so
// a lock naming the same image twice, as the same string or through a YAML
// alias, gets the locations document of a lock naming it once: the one
// imgpkg wrote for bundle-basic, whose lock names app1 once.
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
		})
	}
}
