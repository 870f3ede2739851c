package relocate

import (
	"encoding/json"
	"fmt"
	"io"
	"math"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/archive"
	"github.com/ferry-dev/ferry/internal/volumes"
	"github.com/ferry-dev/ferry/tags"
)

// Inventory describes an archive from its head alone: what it holds and the
// tags an import writes. It is what `ferry inspect` prints.
type Inventory struct {
	// Format is FormatFerry, or FormatImgpkg for a tarball imgpkg wrote.
	Format string `json:"format"`
	// Volumes are the volumes the archive was read from, when split.
	Volumes []volumes.Volume `json:"volumes,omitempty"`
	// Compression, Version and CreatedBy come from the archive's head.
	Compression string `json:"compression"`
	Version     int    `json:"formatVersion"`
	CreatedBy   string `json:"createdBy,omitempty"`
	// Images are index.json's entries, the root first.
	Images []InventoryImage `json:"images"`
	// Blobs and Bytes count every config and layer the archive holds (each
	// once) and their size; Manifests and ManifestBytes the manifests and
	// indexes.
	Blobs         int   `json:"blobs"`
	Bytes         int64 `json:"bytes"`
	Manifests     int   `json:"manifests"`
	ManifestBytes int64 `json:"manifestBytes"`
	// Skipped are the non-distributable layers left out at export.
	Skipped []string `json:"skippedLayers,omitempty"`
	// Delta is set on a delta archive: its bases and the blobs it left
	// out (not counted in Blobs and Bytes), with LeftOutBytes their size.
	Delta        *archive.Delta `json:"delta,omitempty"`
	LeftOutBytes int64          `json:"leftOutBytes,omitempty"`
	// Tags are the tags an import writes (without --repo-based-tags), in
	// the order it writes them; the original tag comes last. The tag of
	// each locations image's own digest (sha256-<hex>.imgpkg) is not
	// among them: that digest is known only once the bundle's images.yml
	// is read, at import.
	Tags []string `json:"importTags"`
	// ImportRefused says why an import would refuse the archive before
	// writing anything, when it would: an original tag that is another
	// manifest's bookkeeping tag (sha256-<hex>.imgpkg, a locations tag,
	// cosign's, the referrers tag schema's sha256-<hex>). That tag is then
	// not among Tags.
	ImportRefused string `json:"importRefused,omitempty"`
}

// InventoryImage is one entry of an archive's index.json.
type InventoryImage struct {
	Digest      string `json:"digest"`
	MediaType   string `json:"mediaType"`
	Role        string `json:"role"`
	OriginalRef string `json:"originalRef,omitempty"`
	Tag         string `json:"tag,omitempty"`
	// Subject is what a signature or referrer is about.
	Subject   string   `json:"subject,omitempty"`
	Platforms []string `json:"platforms,omitempty"`
	// Size is the manifest, configs and layers this entry reaches (shared
	// blobs count in every entry that reaches them).
	Size int64 `json:"size"`
}

// Inspect reads only the head of the archive in r (index.json and the
// manifests come first) and describes it. It never reads a config or layer,
// so it is quick on any archive; `verify` checks those. r may also be an
// imgpkg tarball (a file) or the volumes of an archive (volumes.Set).
func Inspect(r io.Reader) (*Inventory, error) {
	h, err := inspectHead(r)
	if err != nil {
		return nil, err
	}
	inv := &Inventory{Format: formatOf(h), Compression: string(h.Compression), Version: h.Version, CreatedBy: h.CreatedBy, Volumes: volumesOf(r)}
	skipped := map[v1.Hash]bool{}
	for _, d := range h.SkippedLayers {
		skipped[d] = true
		inv.Skipped = append(inv.Skipped, d.String())
	}
	// The archive Reader refuses a head whose distinct sizes overflow a
	// sum, so these totals cannot; the sizes each entry reaches (shared
	// blobs and repeated index children counted again) are checked below.
	leftOut := map[v1.Hash]bool{}
	if h.Delta != nil {
		inv.Delta = h.Delta
		for _, l := range h.Delta.LeftOut {
			leftOut[l.Digest] = true
			inv.LeftOutBytes += l.Size
		}
	}
	for _, b := range h.Blobs {
		if skipped[b.Digest] || leftOut[b.Digest] {
			continue
		}
		inv.Blobs++
		inv.Bytes += b.Size
	}
	for _, m := range h.Manifests {
		inv.Manifests++
		inv.ManifestBytes += int64(len(m))
	}
	// First: it refuses indexes nested deeper than reach, which recurses,
	// may go.
	head, err := archiveImportHead(h)
	if err != nil {
		return nil, err
	}
	memo := map[v1.Hash]reached{}
	for _, e := range h.Entries {
		d := e.Descriptor.Digest
		size, plats, err := reach(h, d, skipped, memo)
		if err != nil {
			return nil, fmt.Errorf("index.json entry %s (%s): %w", e.OriginalRef, d, err)
		}
		inv.Images = append(inv.Images, InventoryImage{
			Digest: d.String(), MediaType: string(e.Descriptor.MediaType), Role: string(e.Role),
			OriginalRef: e.OriginalRef, Tag: e.Tag, Platforms: plats, Size: size,
		})
		if e.Role.IsArtifact() {
			inv.Images[len(inv.Images)-1].Subject = e.Subject.String()
		}
	}
	inv.Tags, inv.ImportRefused, err = importTagOrder(head)
	if err != nil {
		return nil, err
	}
	return inv, nil
}

// importTagOrder lists the tags an import of head writes, in the order
// the commit phase writes them, from the same pieces it uses: the .imgpkg
// and cosign tags by commit group (destination.entryTags), each bundle's
// .image-locations.imgpkg tag in bundle order (importHead.bundles, as
// destination.locations keeps it), then the original tags. The tag of each
// locations image's own digest, which follows its bundle's
// .image-locations.imgpkg tag at import, is left out: it is known only
// once the bundle's images.yml is read. An original tag an import refuses
// is left out too, and refused says why.
func importTagOrder(head *importHead) (order []string, refused string, err error) {
	dst := &destination{head: head}
	imgpkg, originals, err := dst.listEntryTags()
	if err != nil {
		return nil, "", err
	}
	if err := refuseBookkeeping(imgpkg, originals); err != nil {
		refused, originals = err.Error(), nil
	}
	out := make([]string, 0, len(imgpkg)+len(head.bundles())+len(originals))
	out = append(out, tagNames(imgpkg)...)
	for _, b := range head.bundles() {
		out = append(out, tags.ImageLocations(b.digest))
	}
	return append(out, tagNames(originals)...), refused, nil
}

// reached is what reach found for one manifest.
type reached struct {
	size  int64
	plats []string
}

// reach sums the sizes of what manifest d references, following index
// children, and lists the platforms of an index. memo keeps each
// manifest's answer: indexes that list the same child many times, nested,
// would otherwise take exponential time on a tiny archive.
func reach(h *archive.Head, d v1.Hash, skipped map[v1.Hash]bool, memo map[v1.Hash]reached) (int64, []string, error) {
	if r, ok := memo[d]; ok {
		return r.size, r.plats, nil
	}
	raw, ok := h.Manifests[d]
	if !ok {
		return 0, nil, fmt.Errorf("manifest %s is not in the archive's head", d)
	}
	var m struct {
		MediaType string          `json:"mediaType"`
		Config    *v1.Descriptor  `json:"config"`
		Layers    []v1.Descriptor `json:"layers"`
		Manifests []v1.Descriptor `json:"manifests"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return 0, nil, fmt.Errorf("manifest %s: %w", d, err)
	}
	size := int64(len(raw))
	var plats []string
	add := func(n int64, what v1.Hash) error {
		if n < 0 || n > math.MaxInt64-size {
			return fmt.Errorf("manifest %s: size %d of %s takes its total past %d bytes", d, n, what, int64(math.MaxInt64))
		}
		size += n
		return nil
	}
	if m.Config != nil {
		if err := add(m.Config.Size, m.Config.Digest); err != nil {
			return 0, nil, err
		}
	}
	for _, l := range m.Layers {
		if !skipped[l.Digest] {
			if err := add(l.Size, l.Digest); err != nil {
				return 0, nil, err
			}
		}
	}
	for _, c := range m.Manifests {
		if !c.MediaType.IsImage() && !c.MediaType.IsIndex() {
			// A blob hung directly off an index (artifacts do this).
			if err := add(c.Size, c.Digest); err != nil {
				return 0, nil, err
			}
			continue
		}
		n, _, err := reach(h, c.Digest, skipped, memo)
		if err != nil {
			return 0, nil, err
		}
		if err := add(n, c.Digest); err != nil {
			return 0, nil, err
		}
		if c.Platform != nil {
			plats = append(plats, c.Platform.String())
		}
	}
	memo[d] = reached{size: size, plats: plats}
	return size, plats, nil
}
