package relocate_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferry-dev/ferry/internal/testregistry"
	"github.com/ferry-dev/ferry/relocate"
	"github.com/ferry-dev/ferry/tags"
)

// lockedDigests are the digests the source's bundles lock, by the
// repository path of the bundle that locks them.
func lockedDigests(t *testing.T, src *impSource) map[string][]v1.Hash {
	t.Helper()
	digests := func(refs []string) []v1.Hash {
		var out []v1.Hash
		for _, r := range refs {
			out = append(out, impMust(v1.NewHash(impMust(name.NewDigest(r)).DigestStr())))
		}
		return out
	}
	return map[string][]v1.Hash{"src/root": digests(src.rootLocks), "src/nested": digests(src.nestedLocks)}
}

// TestResolveOfABundleNeverRelocatedAsksItsRepositoryOnce: a bundle that
// was pushed where it is (no image-locations image, no imgpkg tags beside
// it) costs one tag listing of its repository, not a request per locked
// image asking whether the image was relocated there.
func TestResolveOfABundleNeverRelocatedAsksItsRepositoryOnce(t *testing.T) {
	src := impNewSource(t, 0)
	src.reg.ResetCounts()
	if _, err := relocate.Resolve(context.Background(), relocate.Source{Bundle: src.rootTagRef}, relocate.Options{Remote: src.opts}); err != nil {
		t.Fatal(err)
	}
	locked := lockedDigests(t, src)
	lists := map[string]int{}
	for _, r := range src.reg.Requests() {
		if r.Kind == testregistry.KindTags {
			lists[r.Repo]++
		}
		if r.Kind != testregistry.KindManifest {
			continue
		}
		for _, d := range locked[r.Repo] {
			if r.Ref == d.String() {
				t.Errorf("%s %s: asked the bundle's repository for locked image %s", r.Method, r.Path, d)
			}
		}
	}
	for repo := range locked {
		if lists[repo] != 1 {
			t.Errorf("tag lists of %s: %d, want 1", repo, lists[repo])
		}
	}
}

// relocateWithoutLocations copies the source into a second registry and
// removes the image-locations images there, as an imgpkg too old to write
// them would have left the repository; then the first registry goes away.
func relocateWithoutLocations(t *testing.T, src *impSource) *impDest {
	t.Helper()
	b := impNewDest(t, false)
	ctx := context.Background()
	if _, err := relocate.Copy(ctx, cpPlan(t, src), b.repo, cpOptions(t, b)); err != nil {
		t.Fatal(err)
	}
	for _, bundle := range []v1.Hash{impMust(src.root.Digest()), impMust(src.nested.Digest())} {
		if err := remote.Delete(b.repo.Tag(tags.ImageLocations(bundle)), b.reg.RemoteOptions(t)...); err != nil {
			t.Fatalf("delete the locations image of %s: %v", bundle, err)
		}
	}
	src.reg.Close()
	return b
}

// TestResolveOfABundleRelocatedWithoutLocationsImage: the imgpkg tags of a
// repository say which images were relocated into it; each is fetched from
// there at once, its original location (gone) never tried, and no HEAD is
// spent per image.
func TestResolveOfABundleRelocatedWithoutLocationsImage(t *testing.T) {
	src := impNewSource(t, 0)
	b := relocateWithoutLocations(t, src)
	b.reg.ResetCounts()
	p, err := relocate.Resolve(context.Background(), relocate.Source{Bundle: b.repo.String() + ":v1"}, relocate.Options{Remote: b.reg.RemoteOptions(t)})
	if err != nil {
		t.Fatalf("resolve from the relocated repository: %v", err)
	}
	for _, im := range p.Images {
		if im.Source.Context().String() != b.repo.String() {
			t.Errorf("image %s resolved at %s, want it in %s", im.OriginalRef, im.Source, b.repo)
		}
	}
	for _, r := range b.reg.Requests() {
		if r.Kind == testregistry.KindManifest && r.Method == http.MethodHead && strings.HasPrefix(r.Ref, "sha256:") {
			t.Errorf("HEAD %s: the tag list already said the image is there", r.Path)
		}
	}
}

// TestResolveFindsAnUntaggedImageInTheBundleRepository: an image missing at
// its original reference but present, untagged, in the bundle's repository
// is taken from there.
func TestResolveFindsAnUntaggedImageInTheBundleRepository(t *testing.T) {
	src := impNewSource(t, 0)
	ctx := context.Background()
	app2 := impMust(src.app2.Digest())
	rootRepo := impMust(name.NewRepository(src.ep.Repo("src/root")))
	if err := remote.Write(rootRepo.Digest(app2.String()), src.app2, src.opts...); err != nil {
		t.Fatal(err)
	}
	if err := remote.Delete(impMust(name.NewDigest(src.app2Ref)), src.opts...); err != nil {
		t.Fatal(err)
	}
	p, err := relocate.Resolve(ctx, relocate.Source{Bundle: src.rootTagRef}, relocate.Options{Remote: src.opts})
	if err != nil {
		t.Fatalf("resolve with %s only in the bundle's repository: %v", src.app2Ref, err)
	}
	found := false
	for _, im := range p.Images {
		if im.Digest == app2 {
			found = true
			if im.Source.Context().String() != rootRepo.String() {
				t.Errorf("image %s resolved at %s, want %s", im.OriginalRef, im.Source, rootRepo)
			}
		}
	}
	if !found {
		t.Errorf("%s is not in the plan", app2)
	}
}
