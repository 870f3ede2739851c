package relocate

import (
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/lock"
)

// BundleLocations returns the ImageLocations imgpkg records beside a
// relocated bundle whose images.yml is il: one entry per distinct lock
// image, with the reference exactly as written in images.yml (pull matches
// entries by that string, so it must not be normalised), and IsBundle set
// for the images isBundle reports as bundles. An image named twice (the same
// string, or a YAML alias) gets one entry, the first, because imgpkg keys
// the images it copies by that string and writes one entry per key; the
// locations image's digest depends on it. Marshal sorts the entries, so the
// order of il does not change that digest.
func BundleLocations(il *lock.ImagesLock, isBundle func(v1.Hash) bool) (lock.ImageLocations, error) {
	out := lock.ImageLocations{APIVersion: lock.APIVersion, Kind: lock.KindImageLocations}
	if il == nil {
		return out, nil
	}
	added := make(map[string]bool, len(il.Images))
	for i, img := range il.Images {
		if added[img.Image] {
			continue
		}
		added[img.Image] = true
		ref, err := img.Digest()
		if err != nil {
			return lock.ImageLocations{}, fmt.Errorf("images[%d] %q: %w", i, img.Image, err)
		}
		h, err := v1.NewHash(ref.DigestStr())
		if err != nil {
			return lock.ImageLocations{}, fmt.Errorf("images[%d] %q: %w", i, img.Image, err)
		}
		out.Images = append(out.Images, lock.ImageLocation{Image: img.Image, IsBundle: isBundle != nil && isBundle(h)})
	}
	return out, nil
}
