package relocate

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/archive"
)

// PlanArchive returns the plan of re-packing the archive in r (`ferry
// export --from-tar`): the same images, in index.json's roles, the same
// manifests and blobs, read from r instead of registries. r must be a file,
// or the volumes of one (volumes.Set), holding an imgpkg tarball or a
// ferry archive with a seek table, and not a delta (export --since), which
// lacks blobs; it must stay open until Export is done.
// Export then writes a ferry archive of the plan, compressed at its level
// and split as asked, whose blobs are verified as they are read and again
// as they are written.
func PlanArchive(r io.Reader) (*Plan, error) {
	f, ok, err := openRandom(r)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errors.New("re-packing needs random access: a file holding an imgpkg tarball or a ferry archive with a seek table (an archive without one, gzip or plain tar, is imported and exported again instead)")
	}
	h := f.Head()
	if h.Delta != nil {
		// Its import finds what it left out at the destination; a re-pack
		// has nowhere to read those blobs from.
		return nil, fmt.Errorf("a delta archive (export --since) cannot be re-packed on its own: it leaves out %d configs and layers, expected at the destination, that a re-packed archive would have to carry; re-pack the full archive instead", len(h.Delta.LeftOut))
	}
	p := &Plan{Manifests: make(map[v1.Hash]Manifest, len(h.Manifests)), local: map[v1.Hash]func() (io.ReadCloser, error){}}

	// Media types come from the descriptors that name each manifest:
	// index.json's, then those of indexes, to any depth.
	var walk func(d v1.Descriptor) error
	walk = func(d v1.Descriptor) error {
		if _, ok := p.Manifests[d.Digest]; ok {
			return nil
		}
		raw, ok := h.Manifests[d.Digest]
		if !ok {
			return fmt.Errorf("manifest %s is not in the archive's head", d.Digest)
		}
		p.Manifests[d.Digest] = Manifest{Raw: raw, MediaType: d.MediaType}
		p.TotalBytes += int64(len(raw))
		if !d.MediaType.IsIndex() {
			return nil
		}
		idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
		if err != nil {
			return fmt.Errorf("index %s: %w", d.Digest, err)
		}
		for _, c := range idx.Manifests {
			if c.MediaType.IsImage() || c.MediaType.IsIndex() {
				if err := walk(c); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for _, e := range h.Entries {
		d := e.Descriptor
		if err := walk(d); err != nil {
			return nil, err
		}
		im := &Image{
			Digest: d.Digest, MediaType: d.MediaType, Size: d.Size, Role: e.Role,
			OriginalRef: e.OriginalRef, Tag: e.Tag, Subject: e.Subject, SignatureKind: e.SignatureKind,
		}
		if d.Platform != nil {
			im.Platforms = []v1.Platform{*d.Platform}
		}
		if d.MediaType.IsIndex() {
			idx, _ := v1.ParseIndexManifest(bytes.NewReader(h.Manifests[d.Digest]))
			for _, c := range idx.Manifests {
				if c.Platform != nil {
					im.Platforms = append(im.Platforms, *c.Platform)
				}
				if c.MediaType.IsImage() || c.MediaType.IsIndex() {
					im.Children = append(im.Children, c.Digest)
				}
			}
		}
		p.Images = append(p.Images, im)
		if p.Root == nil && (e.Role == archive.RoleBundle || e.Tag != "") {
			p.Root = im
		}
	}

	configs := map[v1.Hash]bool{}
	for _, m := range p.Manifests {
		if m.MediaType.IsImage() {
			if mf, err := v1.ParseManifest(bytes.NewReader(m.Raw)); err == nil {
				configs[mf.Config.Digest] = true
			}
		}
	}
	skipped := map[v1.Hash]bool{}
	for _, d := range h.SkippedLayers {
		skipped[d] = true
	}
	var cs, ls []Blob
	for _, d := range h.Blobs {
		b := Blob{Digest: d.Digest, Size: d.Size, MediaType: d.MediaType, Config: configs[d.Digest], URLs: d.URLs,
			Image: fmt.Sprintf("blob %s of the archive", d.Digest)}
		switch {
		case skipped[d.Digest]:
			p.Skipped = append(p.Skipped, b)
			continue
		case b.Config:
			cs = append(cs, b)
		default:
			ls = append(ls, b)
		}
		p.TotalBytes += d.Size
		digest := d.Digest
		p.local[digest] = func() (io.ReadCloser, error) { return f.Blob(digest) }
	}
	// The order Resolve gives: configs, then layers, each by digest.
	byDigest := func(bs []Blob) {
		sort.Slice(bs, func(i, j int) bool { return bs[i].Digest.String() < bs[j].Digest.String() })
	}
	byDigest(cs)
	byDigest(ls)
	p.Blobs = append(cs, ls...)
	return p, nil
}
