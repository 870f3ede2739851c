package relocate_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferry-dev/ferry/internal/registry"
	"github.com/ferry-dev/ferry/internal/testregistry"
	"github.com/ferry-dev/ferry/relocate"
)

// lockedDigests are the digests the source's bundles lock, by the
// repository path of the bundle that locks them, in lock order.
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
// was pushed where it is costs one question about its first locked image
// in its repository, not one per locked image.
func TestResolveOfABundleNeverRelocatedAsksItsRepositoryOnce(t *testing.T) {
	src := impNewSource(t, 0)
	src.reg.ResetCounts()
	if _, err := relocate.Resolve(context.Background(), relocate.Source{Bundle: src.rootTagRef}, relocate.Options{Remote: src.opts}); err != nil {
		t.Fatal(err)
	}
	locked := lockedDigests(t, src)
	asked := map[string][]string{}
	for _, r := range src.reg.Requests() {
		if r.Kind != testregistry.KindManifest {
			continue
		}
		for _, d := range locked[r.Repo] {
			if r.Ref == d.String() {
				asked[r.Repo] = append(asked[r.Repo], r.Method+" "+d.String())
			}
		}
	}
	for repo, ds := range locked {
		want := []string{http.MethodHead + " " + ds[0].String()}
		if got := asked[repo]; len(got) != 1 || got[0] != want[0] {
			t.Errorf("locked images asked for in %s: %v, want only %v (the probe)", repo, got, want)
		}
	}
}

// relocateWithoutLocations copies the source into a second registry and
// removes what says so there: the image-locations images, and with
// imgpkgTags false every imgpkg tag too (a copy made with crane or skopeo,
// by digest), leaving the bundle's own tag.
func relocateWithoutLocations(t *testing.T, src *impSource, imgpkgTags bool) *impDest {
	t.Helper()
	b := impNewDest(t, false)
	ctx := context.Background()
	if _, err := relocate.Copy(ctx, cpPlan(t, src), b.repo, cpOptions(t, b)); err != nil {
		t.Fatal(err)
	}
	opts := b.reg.RemoteOptions(t)
	for _, tag := range impMust(remote.List(b.repo, opts...)) {
		if tag == "v1" || (imgpkgTags && !strings.HasSuffix(tag, ".image-locations.imgpkg")) {
			continue
		}
		if err := remote.Delete(b.repo.Tag(tag), opts...); err != nil {
			t.Fatalf("delete tag %s: %v", tag, err)
		}
	}
	return b
}

// TestResolveOfABundleRelocatedWithoutLocationsImage: a repository that
// holds the lock's first image holds the others: each is fetched from there
// at once, its original location never asked, and no HEAD spent per image.
func TestResolveOfABundleRelocatedWithoutLocationsImage(t *testing.T) {
	for _, tc := range []struct {
		name string
		tags bool
	}{{"by an older imgpkg", true}, {"by another tool", false}} {
		t.Run(tc.name, func(t *testing.T) {
			src := impNewSource(t, 0)
			b := relocateWithoutLocations(t, src, tc.tags)
			src.reg.ResetCounts()
			b.reg.ResetCounts()
			opts := append(b.reg.RemoteOptions(t), src.opts...)
			p, err := relocate.Resolve(context.Background(), relocate.Source{Bundle: b.repo.String() + ":v1"}, relocate.Options{Remote: opts})
			if err != nil {
				t.Fatalf("resolve from the relocated repository: %v", err)
			}
			for _, im := range p.Images {
				if im.Source.Context().String() != b.repo.String() {
					t.Errorf("image %s resolved at %s, want it in %s", im.OriginalRef, im.Source, b.repo)
				}
			}
			for _, r := range src.reg.Requests() {
				if r.Kind == testregistry.KindManifest || r.Kind == testregistry.KindBlob {
					t.Errorf("%s %s: asked the original location", r.Method, r.Path)
				}
			}
			heads := 0
			for _, r := range b.reg.Requests() {
				if r.Kind == testregistry.KindManifest && r.Method == http.MethodHead && strings.HasPrefix(r.Ref, "sha256:") {
					heads++
				}
			}
			if heads != 2 { // one probe per bundle: the root and the nested one
				t.Errorf("%d HEADs by digest in %s, want one per bundle (2)", heads, b.repo)
			}
		})
	}
}

// TestResolveFindsAnImageCopiedIntoTheBundleRepository: an image missing at
// its original reference but present in the bundle's repository (put there
// by hand; the bundle was not relocated) is taken from there.
func TestResolveFindsAnImageCopiedIntoTheBundleRepository(t *testing.T) {
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

// TestResolveNamesBothPlacesARelocatedImageWasRefused: an image of a
// relocated bundle that neither its repository nor its original location
// serves is named with both reasons.
func TestResolveNamesBothPlacesARelocatedImageWasRefused(t *testing.T) {
	src := impNewSource(t, 0)
	b := relocateWithoutLocations(t, src, false)
	app2 := impMust(src.app2.Digest())
	if err := remote.Delete(b.repo.Digest(app2.String()), b.reg.RemoteOptions(t)...); err != nil {
		t.Fatal(err)
	}
	src.reg.Close()
	_, err := relocate.Resolve(context.Background(), relocate.Source{Bundle: b.repo.String() + ":v1"}, relocate.Options{Remote: b.reg.RemoteOptions(t)})
	if err == nil {
		t.Fatal("resolved a bundle whose image is nowhere")
	}
	for _, want := range []string{b.repo.String(), src.app2Ref, "nor at its original reference"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
}

// TestResolveAsksTheRegistryHowToAuthenticateOnce: the images of a bundle
// sit in five repositories of one registry that asks for no credentials;
// resolving asks it how to authenticate (GET /v2/) once, not once per
// repository, and fetches each manifest once, although the nested bundle's
// lock names app1 again at a later level. Under latency each of those
// questions is a round trip before its repository's first manifest.
func TestResolveAsksTheRegistryHowToAuthenticateOnce(t *testing.T) {
	src := impNewSource(t, 0)
	src.reg.ResetCounts()
	client := registry.New(src.reg.ClientOptions())
	if _, err := relocate.Resolve(context.Background(), relocate.Source{Bundle: src.rootTagRef}, relocate.Options{Remote: src.opts, Client: client}); err != nil {
		t.Fatal(err)
	}
	if n := src.reg.Counts().Get(http.MethodGet, testregistry.KindBase); n != 1 {
		t.Errorf("GET /v2/ asked %d times, want once for the registry", n)
	}
	gets := map[string]int{}
	for _, r := range src.reg.Requests() {
		if r.Kind == testregistry.KindManifest && r.Method == http.MethodGet {
			gets[r.Repo+"@"+r.Ref]++
		}
	}
	for m, n := range gets {
		if n != 1 {
			t.Errorf("manifest %s fetched %d times, want once", m, n)
		}
	}
}
