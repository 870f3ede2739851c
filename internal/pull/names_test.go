package pull

import (
	"context"
	"net/http"
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
func TestPullRecursiveMatchesLocationsByNormalisedName(t *testing.T) {
	reg := testregistry.NewGGCR(t)
	opts := reg.RemoteOptions(t)
	repo := reg.Repo("team/app")
	lockYML, err := golden.ReadFile(golden.NormalisedLock)
	if err != nil {
		t.Fatal(err)
	}
	ref := pushBundleFiles(t, repo+":v1", map[string]string{".imgpkg/images.yml": string(lockYML)}, nil, opts)
	desc, err := remote.Head(ref, opts...)
	if err != nil {
		t.Fatal(err)
	}
	data, err := golden.ReadFile(golden.NormalisedLocationsFile)
	if err != nil {
		t.Fatal(err)
	}
	locs, err := lock.ParseImageLocations(data, golden.NormalisedLocationsFile)
	if err != nil {
		t.Fatal(err)
	}
	img, err := bundle.LocationsImage(*locs)
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

// Without a locations image, imgpkg checks each lock image in the bundle's
// repository once per distinct name in its fully qualified form, so
// "repo:v1@D" and "repo@D" cost one HEAD; ferry used to count the strings.
func TestPullChecksEachNormalisedNameOnce(t *testing.T) {
	reg := testregistry.NewGGCR(t)
	opts := reg.RemoteOptions(t)
	repo := reg.Repo("src/app1")
	app := seedApp(t, repo, opts)
	pushed := "apiVersion: imgpkg.carvel.dev/v1alpha1\nkind: ImagesLock\nimages:\n" +
		"- image: " + repo + ":v1@" + app.String() + "\n" +
		"- image: " + repo + "@" + app.String() + "\n"
	ref := pushBundleFiles(t, repo+":bundle", map[string]string{".imgpkg/images.yml": pushed}, nil, opts)

	reg.ResetCounts()
	res, err := Pull(context.Background(), ref, filepath.Join(t.TempDir(), "out"), Options{Bundle: true, Remote: opts})
	if err != nil {
		t.Fatal(err)
	}
	if res.Rewrite != RewriteChecked {
		t.Errorf("rewrite %q, want %q", res.Rewrite, RewriteChecked)
	}
	heads := 0
	for _, r := range reg.Requests() {
		if r.Method == http.MethodHead && r.Kind == testregistry.KindManifest && r.Ref == app.String() {
			heads++
		}
	}
	if heads != 1 {
		t.Errorf("%d HEADs of %s@%s, want 1 (one per distinct normalised name, as imgpkg)", heads, repo, app)
	}
}
