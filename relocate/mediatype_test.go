package relocate_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/relocate"
)

// An image manifest need not carry a mediaType field (it is optional in
// OCI), and go-containerregistry's registry serves a manifest with the
// Content-Type it was pushed with. An image pushed as an index would,
// trusted on its Content-Type, be read as an index of no children and
// travel without its config and layers, with every tag written over it.
// Resolve refuses it, naming the manifest, so neither export nor copy
// carries it; a manifest whose mediaType field contradicts its
// Content-Type is refused as well, and so is a Docker manifest without
// the field, which distribution would refuse at import.
func TestResolveRefusesAManifestServedAsTheWrongKind(t *testing.T) {
	src := impNewSource(t, 0)
	img := impMust(random.Image(1024, 1))
	repo := impMust(name.NewRepository(src.ep.Repo("src/mislabelled")))
	if err := remote.Write(repo.Tag("whole"), img, src.opts...); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(impMust(img.RawManifest()), &m); err != nil {
		t.Fatal(err)
	}
	withField := impMust(json.Marshal(m))
	delete(m, "mediaType")
	without := impMust(json.Marshal(m))

	for _, tc := range []struct {
		name string
		raw  []byte
		as   types.MediaType
		want string
	}{
		{"no mediaType field, served as an OCI index", without, types.OCIImageIndex, "it is an image manifest"},
		{"no mediaType field, served as a Docker list", without, types.DockerManifestList, "it is an image manifest"},
		{"mediaType field of an image, served as an index", withField, types.OCIImageIndex, "its mediaType is"},
		// Distribution refuses a Docker manifest without the field at
		// import (MANIFEST_INVALID): it would be carried for nothing.
		{"no mediaType field, served as a Docker manifest", without, types.DockerManifestSchema2, "no mediaType field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ref := putRaw(t, src.opts, repo, tc.raw, tc.as)
			for _, source := range []relocate.Source{
				{Image: ref.String()},
				{Bundle: lockingBundle(t, src, ref.String())},
			} {
				p, err := relocate.Resolve(context.Background(), source, relocate.Options{Remote: src.opts})
				if err == nil {
					t.Fatalf("resolve %+v accepted %s served as %s: %d images, %d blobs", source, ref, tc.as, len(p.Images), len(p.Blobs))
				}
				if !strings.Contains(err.Error(), ref.DigestStr()) || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("resolve %+v: %v; want it to name %s and say %q", source, err, ref.DigestStr(), tc.want)
				}
			}
		})
	}
}

// lockingBundle pushes a bundle whose images.yml locks ref, and returns
// its reference by tag.
func lockingBundle(t *testing.T, src *impSource, ref string) string {
	t.Helper()
	d := impMust(name.NewDigest(ref))
	tag := "for-" + d.DigestStr()[len("sha256:"):][:12]
	src.pushBundle(t, "src/locker", tag, []string{ref})
	return src.ep.Repo("src/locker") + ":" + tag
}
