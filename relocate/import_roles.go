package relocate

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/archive"
	"github.com/ferry-dev/ferry/internal/bundle"
	"github.com/ferry-dev/ferry/internal/parallel"
	"github.com/ferry-dev/ferry/lock"
)

// A bundle is a bundle by its config's label (imgpkg's rule), whatever
// index.json calls it. An archive that gives a locked bundle the role of
// a plain image would have its images.yml go unchecked (verify's rule,
// that every image it locks travels with it or is at the destination) and
// its locations image say it is no bundle, so that `pull -r` skips it:
// the commit phase reads the config of every image a bundle locks that
// could be one, and refuses the archive if it is.

// roleCandidate is an image of the archive that a bundle locks, whose role
// says it is no bundle, and whose shape (an image with one layer) lets it
// be one: its config is read to tell.
type roleCandidate struct {
	entry  importEntry
	config v1.Descriptor
	by     string // the bundle that locks it
}

// roleCandidates lists, once each, the images the bundles of locs lock
// that must be read to know they are no bundles.
func (dst *destination) roleCandidates(locs []*importLocations) ([]roleCandidate, error) {
	var out []roleCandidate
	seen := map[v1.Hash]bool{}
	err := eachLocked(locs, func(l *importLocations, _ string, h v1.Hash) {
		e, ok := dst.head.byDigest[h]
		m := dst.head.manifests[h]
		if !ok || seen[h] || e.isBundle() || m == nil || !m.mediaType.IsImage() || len(m.layers) != 1 || !imageConfig(m.config.MediaType) {
			return
		}
		seen[h] = true
		out = append(out, roleCandidate{entry: *e, config: m.config, by: l.bundle.name()})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// checkRoles reads the config of every candidate that readable says can
// be read, and refuses the archive if one carries the bundle label; it
// returns what it could not read, for a dry run to report.
func (dst *destination) checkRoles(ctx context.Context, locs []*importLocations, readable func(v1.Hash) bool) ([]string, error) {
	if dst.head.rolesRead {
		return nil, nil
	}
	cands, err := dst.roleCandidates(locs)
	if err != nil {
		return nil, err
	}
	var todo []roleCandidate
	var unchecked []string
	for _, c := range cands {
		if readable(c.config.Digest) {
			todo = append(todo, c)
		} else {
			unchecked = append(unchecked, fmt.Sprintf("whether %s, locked by bundle %s, is a bundle (its config is not at hand before the archive is read through)", c.entry.name(), c.by))
		}
	}
	labelled := make([]bool, len(todo))
	err = parallel.ForEach(ctx, dst.conc, len(todo), func(ctx context.Context, i int) error {
		c := todo[i]
		if c.config.Size < 0 || c.config.Size > bundle.MaxConfigSize {
			return fmt.Errorf("image %s: config %s declares %d bytes; a config may have at most %d", c.entry.name(), c.config.Digest, c.config.Size, bundle.MaxConfigSize)
		}
		rc, err := dst.blob(ctx, c.config.Digest)
		if err != nil {
			return fmt.Errorf("image %s: config: %w", c.entry.name(), err)
		}
		defer rc.Close()
		b, err := io.ReadAll(io.LimitReader(rc, c.config.Size+1))
		if err != nil {
			return fmt.Errorf("image %s: config: %w", c.entry.name(), err)
		}
		if int64(len(b)) != c.config.Size {
			return fmt.Errorf("image %s: config %s: %d bytes where the manifest declares %d", c.entry.name(), c.config.Digest, len(b), c.config.Size)
		}
		labelled[i], err = configIsBundle(b)
		if err != nil {
			return fmt.Errorf("image %s: config %s: %w", c.entry.name(), c.config.Digest, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var wrong []string
	for i, c := range todo {
		if labelled[i] {
			wrong = append(wrong, fmt.Sprintf("%s (locked by bundle %s; role %s)", c.entry.name(), c.by, roleName(c.entry.Role)))
		}
	}
	if len(wrong) > 0 {
		return nil, fmt.Errorf("nothing tagged: the archive is inconsistent: %d %s a bundle by %s config label (%s), but index.json does not say so, so %s images.yml would go unchecked: %s",
			len(wrong), plural(len(wrong), "image is", "images are"), plural(len(wrong), "its", "their"), bundle.LabelKey, plural(len(wrong), "its", "their"), strings.Join(wrong, ", "))
	}
	return unchecked, nil
}

// imageConfig says whether mt is an image config, the only kind whose
// labels make a bundle (as export's resolver reads them).
func imageConfig(mt types.MediaType) bool {
	return mt == types.DockerConfigJSON || mt == types.OCIConfigJSON
}

// configIsBundle reports whether the image config b carries the bundle
// label, as imgpkg reads it.
func configIsBundle(b []byte) (bool, error) {
	cfg, err := v1.ParseConfigFile(bytes.NewReader(b))
	if err != nil {
		// Not every image's config is a Docker/OCI image config
		// (artifacts); such a config labels nothing.
		var probe map[string]any
		if json.Unmarshal(b, &probe) == nil {
			return false, nil
		}
		return false, err
	}
	return bundle.IsBundle(cfg), nil
}

// roleName shows a role, "" as none.
func roleName(r archive.Role) string {
	if r == "" {
		return "none"
	}
	return string(r)
}

// readable says whether the commit phase can read blob d without
// uploading anything: it is at the destination (or where a dry run would
// mount it from), or in an archive read at random.
func (dst *destination) readable(d v1.Hash) bool {
	_, elsewhere := dst.elsewhere[d]
	return dst.blobPresent[d] || dst.blobLocal || elsewhere
}

// eachLocked calls f with every image the bundles of locs lock (their
// images.yml, where read), its reference as written and its digest; once
// per lock, which bundles sharing a layer share (f sees the first).
func eachLocked(locs []*importLocations, f func(l *importLocations, ref string, h v1.Hash)) error {
	seen := map[*lock.ImagesLock]bool{}
	for _, l := range locs {
		if l.lock == nil || seen[l.lock] {
			// Bundles sharing a layer share its lock (locations): once.
			continue
		}
		seen[l.lock] = true
		for _, img := range l.lock.Images {
			ref, err := img.Digest()
			if err != nil {
				return fmt.Errorf("bundle %s: images.yml: %q: %w", l.bundle.name(), img.Image, err)
			}
			h, err := v1.NewHash(ref.DigestStr())
			if err != nil {
				return fmt.Errorf("bundle %s: images.yml: %q: %w", l.bundle.name(), img.Image, err)
			}
			f(l, img.Image, h)
		}
	}
	return nil
}
