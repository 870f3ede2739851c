package relocate

import (
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/lock"
)

// BundleLocations returns the ImageLocations imgpkg records beside a
// relocated bundle whose images.yml is il, as imgpkg v0.43 writes it: one
// entry per digest, named in the fully qualified form imgpkg rewrites every
// lock name to as it reads images.yml (name.NewDigest(image).Name(), what
// lock.NormalizeDigestRef gives: "nginx@D" and "docker.io/library/nginx@D"
// both become "index.docker.io/library/nginx@D", "repo:tag@D" loses its
// tag), with IsBundle set for the digests isBundle reports as bundles.
//
// imgpkg keys a bundle's images by digest (Bundle.NoteCopy writes one entry
// per digest), so names that normalise alike, or the same name written
// twice or through a YAML alias, give one entry. When two different
// repositories name the same digest, imgpkg keeps whichever name its
// concurrent lookups store last, which varies between runs
// (fixtures/golden/README.md); ferry keeps the first in il, so the same lock
// always gives the same document. Marshal sorts the entries, so the order of
// il changes the locations image's digest only through that choice.
func BundleLocations(il *lock.ImagesLock, isBundle func(v1.Hash) bool) (lock.ImageLocations, error) {
	out := lock.ImageLocations{APIVersion: lock.APIVersion, Kind: lock.KindImageLocations}
	if il == nil {
		return out, nil
	}
	added := make(map[v1.Hash]bool, len(il.Images))
	for i, img := range il.Images {
		ref, err := img.Digest()
		if err != nil {
			return lock.ImageLocations{}, fmt.Errorf("images[%d] %q: %w", i, img.Image, err)
		}
		h, err := v1.NewHash(ref.DigestStr())
		if err != nil {
			return lock.ImageLocations{}, fmt.Errorf("images[%d] %q: %w", i, img.Image, err)
		}
		if added[h] {
			continue
		}
		added[h] = true
		out.Images = append(out.Images, lock.ImageLocation{Image: ref.Name(), IsBundle: isBundle != nil && isBundle(h)})
	}
	return out, nil
}
