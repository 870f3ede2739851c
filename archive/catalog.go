package archive

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/ferry-dev/ferry/internal/manifest"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// DefaultMaxManifestSize bounds one manifest or index in the head, as
// registries do (distribution refuses manifests over 4 MiB), so that a
// hostile archive cannot make a Reader hold an arbitrary blob in memory.
const DefaultMaxManifestSize = 4 << 20

// ref is why a digest is expected: the descriptor that names it first and
// who holds that descriptor, for messages.
type ref struct {
	desc v1.Descriptor
	from string
}

// catalog follows the closure of index.json: the manifests still wanted,
// those read, and the configs and layers they reference. Writer and Reader
// share it so that they agree on what a valid head is.
type catalog struct {
	maxManifest int64
	want        map[v1.Hash]ref
	manifests   map[v1.Hash][]byte
	blobs       map[v1.Hash]ref
	// distributable holds, for every digest some descriptor names with a
	// media type other than a non-distributable layer's, the first such
	// descriptor: such a digest can never be a skipped layer.
	distributable map[v1.Hash]ref
	// layers holds every digest named as a layer (or as a blob hung off
	// an index), not only as a config: an imgpkg tarball carries configs
	// in manifest.json, so an entry of a config's name is not one of its.
	layers map[v1.Hash]bool
	// fresh lists the digests wantManifest added to want, in order, for a
	// Reader to look up among the manifests it holds back (see readHead);
	// the Reader empties it as it goes.
	fresh []v1.Hash
	// total is the size of every distinct manifest and blob named so far.
	// Descriptor sizes are a writer's claim: a sum that would overflow
	// int64 is refused, so every total derived from the head (what
	// `inspect` and an import report) is a true, non-negative number.
	total int64
}

func newCatalog(info *indexInfo, maxManifest int64) (*catalog, error) {
	c := &catalog{
		maxManifest: maxManifest,
		want:        map[v1.Hash]ref{},
		manifests:   map[v1.Hash][]byte{},
		blobs:       map[v1.Hash]ref{},

		distributable: map[v1.Hash]ref{},
		layers:        map[v1.Hash]bool{},
	}
	for _, e := range info.entries {
		if err := c.wantManifest(e.Descriptor, indexName); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (c *catalog) wanted(d v1.Hash) bool {
	_, ok := c.want[d]
	return ok
}

func (c *catalog) complete() bool { return len(c.want) == 0 }

// firstWanted returns the smallest wanted digest, so that messages about
// missing manifests do not depend on map order.
func (c *catalog) firstWanted() (v1.Hash, ref) {
	d := slices.MinFunc(slices.Collect(maps.Keys(c.want)), cmpHash)
	return d, c.want[d]
}

func (c *catalog) wantManifest(d v1.Descriptor, from string) error {
	if err := checkDigest(d.Digest); err != nil {
		return fmt.Errorf("manifest referenced by %s: %w", from, err)
	}
	if d.Size <= 0 || d.Size > c.maxManifest {
		return fmt.Errorf("manifest %s referenced by %s: size %d is outside 1..%d bytes", d.Digest, from, d.Size, c.maxManifest)
	}
	c.noteType(d, from)
	if b, ok := c.manifests[d.Digest]; ok {
		if int64(len(b)) != d.Size {
			return fmt.Errorf("manifest %s: %s says %d bytes, it has %d", d.Digest, from, d.Size, len(b))
		}
		return nil
	}
	if r, ok := c.want[d.Digest]; ok {
		if r.desc.Size != d.Size {
			return fmt.Errorf("manifest %s: %s says %d bytes, %s says %d", d.Digest, from, d.Size, r.from, r.desc.Size)
		}
		return nil
	}
	if err := c.count(d, from); err != nil {
		return err
	}
	c.want[d.Digest] = ref{desc: d, from: from}
	c.fresh = append(c.fresh, d.Digest)
	return nil
}

// count adds the size of d, named for the first time, to the total.
func (c *catalog) count(d v1.Descriptor, from string) error {
	if d.Size > math.MaxInt64-c.total {
		return fmt.Errorf("%s %s referenced by %s: size %d takes the archive's total past %d bytes", kindOf(d), d.Digest, from, d.Size, int64(math.MaxInt64))
	}
	c.total += d.Size
	return nil
}

func kindOf(d v1.Descriptor) string {
	if isManifestType(d.MediaType) {
		return "manifest"
	}
	return "blob"
}

func (c *catalog) addBlob(d v1.Descriptor, from string) error {
	if err := checkDigest(d.Digest); err != nil {
		return fmt.Errorf("blob referenced by %s: %w", from, err)
	}
	if d.Size < 0 {
		return fmt.Errorf("blob %s referenced by %s: size %d", d.Digest, from, d.Size)
	}
	c.noteType(d, from)
	if r, ok := c.blobs[d.Digest]; ok {
		if r.desc.Size != d.Size {
			return fmt.Errorf("blob %s: %s says %d bytes, %s says %d", d.Digest, from, d.Size, r.from, r.desc.Size)
		}
		return nil
	}
	if _, isManifest := c.manifests[d.Digest]; !isManifest {
		if _, isWanted := c.want[d.Digest]; !isWanted {
			if err := c.count(d, from); err != nil {
				return err
			}
		}
	}
	c.blobs[d.Digest] = ref{desc: d, from: from}
	return nil
}

// addManifest records the wanted manifest d, whose bytes b the caller has
// verified against d, and wants what it references in turn.
func (c *catalog) addManifest(d v1.Hash, b []byte) error {
	r, ok := c.want[d]
	if !ok {
		return fmt.Errorf("manifest %s is not referenced by index.json or any index", d)
	}
	if int64(len(b)) != r.desc.Size {
		return fmt.Errorf("manifest %s: %d bytes, %s says %d", d, len(b), r.from, r.desc.Size)
	}
	delete(c.want, d)
	c.manifests[d] = b

	mt := r.desc.MediaType
	var probe struct {
		SchemaVersion int64           `json:"schemaVersion"`
		MediaType     types.MediaType `json:"mediaType"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return fmt.Errorf("manifest %s (referenced by %s): not valid JSON: %w", d, r.from, err)
	}
	if probe.SchemaVersion != 2 {
		return fmt.Errorf("manifest %s (referenced by %s): schemaVersion %d, want 2", d, r.from, probe.SchemaVersion)
	}
	if probe.MediaType != "" && probe.MediaType != mt {
		return fmt.Errorf("manifest %s: its mediaType is %s, %s says %s", d, probe.MediaType, r.from, mt)
	}
	// Without a mediaType field the declared type alone would decide: an
	// image declared an index would be read as an index of nothing, and
	// travel without its config and layers.
	if err := manifest.CheckType(mt, b); err != nil {
		return fmt.Errorf("manifest %s (referenced by %s): %w", d, r.from, err)
	}
	if mt.IsIndex() {
		var idx v1.IndexManifest
		if err := json.Unmarshal(b, &idx); err != nil {
			return fmt.Errorf("index %s (referenced by %s): %w", d, r.from, err)
		}
		from := "index " + d.String()
		for _, child := range idx.Manifests {
			var err error
			switch {
			case isManifestType(child.MediaType):
				err = c.wantManifest(child, from)
			case child.MediaType.IsSchema1():
				err = fmt.Errorf("%s names %s of media type %s (Docker schema 1), which is not supported", from, child.Digest, child.MediaType)
			default:
				// Artifacts may hang blobs directly off an index; they
				// travel like layers.
				err = c.addBlob(child, from)
				c.layers[child.Digest] = true
			}
			if err != nil {
				return err
			}
		}
		return nil
	}
	var m v1.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("manifest %s (referenced by %s): %w", d, r.from, err)
	}
	from := "manifest " + d.String()
	if err := c.addBlob(m.Config, from); err != nil {
		return err
	}
	for _, l := range m.Layers {
		if err := c.addBlob(l, from); err != nil {
			return err
		}
		c.layers[l.Digest] = true
	}
	return nil
}

// expected returns the configs and layers the head references and does not
// itself hold, sorted by digest.
func (c *catalog) expected() []v1.Descriptor {
	out := make([]v1.Descriptor, 0, len(c.blobs))
	for d, r := range c.blobs {
		if _, inHead := c.manifests[d]; inHead {
			continue
		}
		desc := r.desc
		out = append(out, v1.Descriptor{MediaType: desc.MediaType, Size: desc.Size, Digest: desc.Digest, URLs: desc.URLs})
	}
	slices.SortFunc(out, func(a, b v1.Descriptor) int { return cmpHash(a.Digest, b.Digest) })
	return out
}

// noteType records the first descriptor that names d.Digest with a
// distributable media type.
func (c *catalog) noteType(d v1.Descriptor, from string) {
	if _, ok := c.distributable[d.Digest]; !ok && !nonDistributable(d.MediaType) {
		c.distributable[d.Digest] = ref{desc: d, from: from}
	}
}

// checkSkipped enforces, once the head is complete, what makes a layer
// listed in AnnotationSkippedLayers legitimately absent: a manifest
// references it, and every descriptor naming it marks it non-distributable.
// Without this an index could excuse any layer from being in the archive
// and Close, Next and Verify would all accept an archive that is missing
// content. Writer and Reader both call it so that they agree.
func (c *catalog) checkSkipped(skipped []v1.Hash) error {
	for _, d := range skipped {
		if _, ok := c.blobs[d]; !ok {
			return fmt.Errorf("%s lists %s, which no manifest references as a layer", AnnotationSkippedLayers, d)
		}
		if dr, ok := c.distributable[d]; ok {
			return fmt.Errorf("%s lists %s, but %s names it with media type %q, which is distributable; only non-distributable layers may be left out",
				AnnotationSkippedLayers, d, dr.from, dr.desc.MediaType)
		}
	}
	return nil
}

// nonDistributable reports whether mt is the media type of a layer that
// may be left out of an archive: Docker's foreign layer or any OCI
// non-distributable layer (tar, tar+gzip, tar+zstd). It is a superset of
// go-containerregistry's !IsDistributable, which relocate's planner uses,
// so every layer a plan skips is one the archive accepts as skipped.
func nonDistributable(mt types.MediaType) bool {
	return mt == types.DockerForeignLayer ||
		strings.HasPrefix(string(mt), "application/vnd.oci.image.layer.nondistributable.v1.tar")
}
