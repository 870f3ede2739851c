package pull

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferry-dev/ferry/fixtures/golden"
	"github.com/ferry-dev/ferry/internal/bundle"
	"github.com/ferry-dev/ferry/internal/testregistry"
	"github.com/ferry-dev/ferry/lock"
	"github.com/ferry-dev/ferry/tags"
)

// imgpkg's pull -r reads isBundle for each lock image from the locations
// image, comparing its names with the lock's after rewriting those to their
// fully qualified form (ImageRefs.MarkAsBundle over the names
// lockconfig.NewImagesLockFromBytes normalised), and fetches nothing for an
// image the locations image says is not a bundle. Here the lock says
// "nginx@D", "docker.io/library/nginx@D" and "…/app:v1@D", the locations
// image (imgpkg's own, golden/locations-normalised) "index.docker.io/…" and
// "…/app@D", and none of the images is in the bundle's repository: ferry
// used to compare the raw strings, miss every entry, and fail fetching the
// images' configs.
//
// An older ferry wrote the lock's names into the locations image as the
// lock spells them: those are normalised too, and still match.
func TestPullRecursiveMatchesLocationsByNormalisedName(t *testing.T) {
	lockYML, err := golden.ReadFile(golden.NormalisedLock)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("imgpkg", func(t *testing.T) {
		data, err := golden.ReadFile(golden.NormalisedLocationsFile)
		if err != nil {
			t.Fatal(err)
		}
		locs, err := lock.ParseImageLocations(data, golden.NormalisedLocationsFile)
		if err != nil {
			t.Fatal(err)
		}
		pullMatchesLocations(t, lockYML, *locs)
	})
	t.Run("older ferry, names as in the lock", func(t *testing.T) {
		il, err := lock.ParseImagesLock(lockYML, golden.NormalisedLock)
		if err != nil {
			t.Fatal(err)
		}
		locs := lock.ImageLocations{APIVersion: lock.APIVersion, Kind: lock.KindImageLocations}
		raw := 0
		for _, im := range il.Images {
			locs.Images = append(locs.Images, lock.ImageLocation{Image: im.Image})
			if d, err := name.NewDigest(im.Image); err != nil || d.Name() != im.Image {
				raw++
			}
		}
		if raw == 0 {
			t.Fatalf("the golden lock names every image fully qualified: %v", il.Images)
		}
		pullMatchesLocations(t, lockYML, locs)
	})
}

// pullMatchesLocations pushes a bundle whose lock is lockYML, with the
// locations image locs, pulls it recursively and checks that no lock
// image's manifest was fetched: the locations image said what each is.
func pullMatchesLocations(t *testing.T, lockYML []byte, locs lock.ImageLocations) {
	t.Helper()
	reg := testregistry.NewGGCR(t)
	opts := reg.RemoteOptions(t)
	repo := reg.Repo("team/app")
	ref := pushBundleFiles(t, repo+":v1", map[string]string{".imgpkg/images.yml": string(lockYML)}, nil, opts)
	desc, err := remote.Head(ref, opts...)
	if err != nil {
		t.Fatal(err)
	}
	img, err := bundle.LocationsImage(locs)
	if err != nil {
		t.Fatal(err)
	}
	locTag, err := name.NewTag(repo + ":" + tags.ImageLocations(desc.Digest))
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(locTag, img, opts...); err != nil {
		t.Fatal(err)
	}

	reg.ResetCounts()
	res, err := Pull(context.Background(), ref, filepath.Join(t.TempDir(), "out"), Options{Bundle: true, Recursive: true, Remote: opts})
	if err != nil {
		t.Fatal(err)
	}
	if res.Rewrite != RewriteLocations || len(res.Nested) != 0 {
		t.Errorf("rewrite %q, nested %+v; want %q and none", res.Rewrite, res.Nested, RewriteLocations)
	}
	for _, r := range reg.Requests() {
		if r.Kind == testregistry.KindManifest && r.Ref != "v1" && r.Ref != desc.Digest.String() && r.Ref != locTag.TagStr() {
			t.Errorf("%s %s %s: the locations image says what it is", r.Method, r.Repo, r.Ref)
		}
	}
}
