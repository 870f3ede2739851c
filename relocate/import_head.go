package relocate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/archive"
	"github.com/ferry-dev/ferry/lock"
)

// The head of an archive (index.json and every manifest) is the whole plan
// of an import: which images get which tags, which blobs must be in the
// destination, and in what order manifests can be committed. importHead is
// that plan, computed before the first config or layer is read.

// importManifest is one manifest or index of the archive's head.
type importManifest struct {
	digest    v1.Hash
	raw       []byte
	mediaType types.MediaType
	// children are the manifests and indexes an index names.
	children []v1.Descriptor
	// blobs are the configs and layers of a manifest, and the non-manifest
	// descriptors of an index; each digest once.
	blobs []v1.Descriptor
	// layers are a manifest's layer digests, in order (bundle images.yml
	// is read from them).
	layers []v1.Hash
	// config is an image manifest's config (zero for an index).
	config v1.Descriptor
	// subject is set when the manifest names a subject: PUT into a
	// registry without the referrers API, it updates the subject's
	// fallback index, which concurrent PUTs would race on.
	subject bool
	// subjectDigest is the subject's digest (zero if it does not parse:
	// the PUT will say why).
	subjectDigest v1.Hash
}

// importEntry is one descriptor of index.json.
type importEntry struct {
	archive.Entry
	digest v1.Hash
}

// isBundle reports whether the entry is the root or a nested bundle.
func (e importEntry) isBundle() bool {
	return e.Role == archive.RoleBundle || e.Role == archive.RoleNestedBundle
}

// name describes the entry in messages: its original reference and digest.
func (e importEntry) name() string {
	switch {
	case e.OriginalRef == "":
		return e.digest.String()
	case strings.HasSuffix(e.OriginalRef, "@"+e.digest.String()):
		// A reference by digest already says it: the digest twice made
		// one line of two 71-character digests.
		return e.OriginalRef
	}
	return fmt.Sprintf("%s (%s)", e.OriginalRef, e.digest)
}

// importHead is the plan read from an archive's head.
type importHead struct {
	// entries are those of index.json, each digest once, in index order.
	entries  []importEntry
	byDigest map[v1.Hash]*importEntry
	// root is the root bundle (or, in an archive of a single image, the
	// entry that carries the original tag); nil when there is none.
	root      *importEntry
	manifests map[v1.Hash]*importManifest
	// commit groups manifests in the order they must be PUT: every
	// manifest of a group only refers to manifests of earlier groups.
	commit [][]v1.Hash
	// blobs are the configs and layers the destination must hold when the
	// manifests are PUT, sorted by digest; skipped (non-distributable)
	// layers are not among them.
	blobs    []v1.Descriptor
	blobSize map[v1.Hash]int64
	skipped  map[v1.Hash]bool
	// delta is the archive's, when it is a delta: configs and layers it
	// left out, which the destination must already hold.
	delta   *archive.Delta
	leftOut map[v1.Hash]archive.LeftOut
	// locks are the images.yml of bundles, when the mover already knows
	// them (a copy read them while planning); the others are read back
	// from the destination once their layers are there.
	locks map[v1.Hash]*lock.ImagesLock
	// rolesRead says that the entries' roles come from their configs (a
	// copy's plan read each), so checkRoles need not read them again.
	rolesRead bool
	// imagesLock is the ImagesLock file a copy's plan was resolved from,
	// if any (the lock output relocates it).
	imagesLock *lock.ImagesLock
}

// bundles returns the root and nested bundle entries, in index order.
func (h *importHead) bundles() []importEntry {
	var out []importEntry
	for _, e := range h.entries {
		if e.isBundle() {
			out = append(out, e)
		}
	}
	return out
}

// isBundle reports whether d is a bundle entry of the archive.
func (h *importHead) isBundle(d v1.Hash) bool {
	e, ok := h.byDigest[d]
	return ok && e.isBundle()
}

// MaxNesting bounds how deep a plan nests: indexes within indexes (an
// archive's head, a copy's source), and, when resolving from registries,
// every step down from the root (an index's child, a bundle's lock, an
// image's artifacts). Real images nest two or three indexes deep; the
// bound keeps the walks of a head, some recursive, within a small stack,
// where a head within its size limit could chain a million indexes.
const MaxNesting = 1000

// archiveImportHead builds the plan from an archive's head.
func archiveImportHead(h *archive.Head) (*importHead, error) {
	head, err := newImportHead(h.Entries, h.SkippedLayers, func(d v1.Hash) ([]byte, bool) {
		b, ok := h.Manifests[d]
		return b, ok
	})
	if err != nil {
		return nil, err
	}
	if h.Delta != nil {
		head.delta = h.Delta
		head.leftOut = make(map[v1.Hash]archive.LeftOut, len(h.Delta.LeftOut))
		for _, l := range h.Delta.LeftOut {
			head.leftOut[l.Digest] = l
		}
	}
	return head, nil
}

// newImportHead builds the plan of what a destination must hold from the
// entries of an archive's index.json (or of a Plan, see Copy), the layers
// left out, and the raw manifests and indexes by digest. skipped is
// trusted: the archive Reader admits only layers every manifest marks
// non-distributable, and a Plan skips only those.
func newImportHead(entries []archive.Entry, skipped []v1.Hash, manifest func(v1.Hash) ([]byte, bool)) (*importHead, error) {
	h := &importHead{
		byDigest:  map[v1.Hash]*importEntry{},
		manifests: map[v1.Hash]*importManifest{},
		blobSize:  map[v1.Hash]int64{},
		skipped:   map[v1.Hash]bool{},
	}
	for _, d := range skipped {
		h.skipped[d] = true
	}
	at := map[v1.Hash]int{}
	for _, e := range entries {
		d := e.Descriptor.Digest
		if i, ok := at[d]; ok {
			// One digest, two descriptors: a bundle role wins, so its
			// locations image is not forgotten.
			next := importEntry{Entry: e, digest: d}
			if !h.entries[i].isBundle() && next.isBundle() {
				h.entries[i] = next
			}
			continue
		}
		at[d] = len(h.entries)
		h.entries = append(h.entries, importEntry{Entry: e, digest: d})
	}
	if len(h.entries) == 0 {
		return nil, fmt.Errorf("index.json lists no images")
	}
	for i := range h.entries {
		h.byDigest[h.entries[i].digest] = &h.entries[i]
	}
	for i := range h.entries {
		e := &h.entries[i]
		if e.Role == archive.RoleBundle && h.root == nil {
			h.root = e
		}
	}
	if h.root == nil {
		for i := range h.entries {
			if h.entries[i].Tag != "" {
				h.root = &h.entries[i]
				break
			}
		}
	}

	// Walk every manifest reachable from index.json, depth first in the
	// order of the children, without recursion: a head may chain indexes
	// a million deep within its size limit, which recursion would take
	// for a stack overflow, fatal, before the depth is refused below.
	type visit struct {
		d    v1.Hash
		mt   types.MediaType
		from string
	}
	for _, e := range h.entries {
		stack := []visit{{e.digest, e.Descriptor.MediaType, "index.json entry " + e.name()}}
		for len(stack) > 0 {
			v := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if _, ok := h.manifests[v.d]; ok {
				continue
			}
			raw, ok := manifest(v.d)
			if !ok {
				return nil, fmt.Errorf("manifest %s (referenced by %s) is not in the archive", v.d, v.from)
			}
			m, err := parseImportManifest(v.d, raw, v.mt)
			if err != nil {
				return nil, fmt.Errorf("archive entry blobs/%s/%s (referenced by %s): %w", v.d.Algorithm, v.d.Hex, v.from, err)
			}
			h.manifests[v.d] = m
			for i := len(m.children) - 1; i >= 0; i-- {
				c := m.children[i]
				stack = append(stack, visit{c.Digest, c.MediaType, "index " + v.d.String()})
			}
		}
	}

	// The archive Reader already refuses sizes that are negative or whose
	// sum overflows; a copy's plan comes from registries, whose manifests
	// are checked here the same way, so the totals reported are true.
	var total int64
	for _, m := range h.manifests {
		for _, b := range m.blobs {
			if h.skipped[b.Digest] {
				continue
			}
			if _, isManifest := h.manifests[b.Digest]; isManifest {
				continue
			}
			if _, seen := h.blobSize[b.Digest]; seen {
				continue
			}
			if b.Size < 0 || b.Size > math.MaxInt64-total {
				return nil, fmt.Errorf("blob %s referenced by manifest %s: size %d is negative or takes the total past %d bytes", b.Digest, m.digest, b.Size, int64(math.MaxInt64))
			}
			total += b.Size
			h.blobSize[b.Digest] = b.Size
			h.blobs = append(h.blobs, v1.Descriptor{Digest: b.Digest, Size: b.Size, MediaType: b.MediaType})
		}
	}
	sort.Slice(h.blobs, func(i, j int) bool { return h.blobs[i].Digest.String() < h.blobs[j].Digest.String() })
	var depth int
	h.commit, depth = importCommitOrder(h)
	if depth > MaxNesting {
		return nil, fmt.Errorf("indexes nest %d deep, more than the %d ferry reads (real images nest two or three)", depth, MaxNesting)
	}
	return h, nil
}

// parseImportManifest reads what an import needs from a manifest or index.
// mt is the media type the referring descriptor gives; the manifest's own
// mediaType field is used when that is empty.
func parseImportManifest(d v1.Hash, raw []byte, mt types.MediaType) (*importManifest, error) {
	var probe struct {
		MediaType types.MediaType `json:"mediaType"`
		Manifests json.RawMessage `json:"manifests"`
		Subject   json.RawMessage `json:"subject"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil {
		return nil, fmt.Errorf("not a valid manifest: %w", err)
	}
	if mt == "" {
		mt = probe.MediaType
	}
	if mt == "" {
		// An OCI manifest may omit mediaType; an index is recognised by
		// its manifests list.
		if len(probe.Manifests) > 0 {
			mt = types.OCIImageIndex
		} else {
			mt = types.OCIManifestSchema1
		}
	}
	m := &importManifest{digest: d, raw: raw, mediaType: mt, subject: len(probe.Subject) > 0 && string(probe.Subject) != "null"}
	if m.subject {
		var subject struct {
			Digest string `json:"digest"`
		}
		if json.Unmarshal(probe.Subject, &subject) == nil {
			m.subjectDigest, _ = v1.NewHash(subject.Digest)
		}
	}
	seen := map[v1.Hash]bool{}
	addBlob := func(desc v1.Descriptor) {
		if !seen[desc.Digest] {
			seen[desc.Digest] = true
			m.blobs = append(m.blobs, desc)
		}
	}
	switch {
	case mt.IsIndex():
		idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("not a valid index: %w", err)
		}
		for _, c := range idx.Manifests {
			if c.MediaType.IsImage() || c.MediaType.IsIndex() {
				m.children = append(m.children, c)
			} else {
				addBlob(c)
			}
		}
	case mt.IsSchema1():
		return nil, fmt.Errorf("media type %s (Docker schema 1) is not supported", mt)
	default:
		mf, err := v1.ParseManifest(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("not a valid manifest: %w", err)
		}
		addBlob(mf.Config)
		m.config = mf.Config
		for _, l := range mf.Layers {
			addBlob(l)
			m.layers = append(m.layers, l.Digest)
		}
	}
	return m, nil
}

// Manifest classes, committed in this order.
const (
	importCommitIndexChild = iota // a manifest or index some index names
	importCommitIndex             // an index named by index.json only
	importCommitImage             // an image named by index.json only
	importCommitNestedBundle
	importCommitRootBundle
	importCommitArtifact // signatures and referrers, once what they are about is there
)

// importCommitOrder groups manifests so that children come before parents: index
// children first (deepest first), then indexes, then images, then nested
// bundles and last the root bundle, so that a bundle appears in the
// destination only once everything it locks is there.
//
// depth is the greatest height: how deep indexes nest.
func importCommitOrder(h *importHead) (order [][]v1.Hash, depth int) {
	isChild := map[v1.Hash]bool{}
	for _, m := range h.manifests {
		for _, c := range m.children {
			isChild[c.Digest] = true
		}
	}
	// A manifest's height is one more than its highest child's: children
	// go in lower groups, so they are PUT first whatever the depth (an
	// archive's head may chain thousands of indexes). Content addressing
	// makes cycles impossible; heights are computed children first,
	// without recursion, so a deep chain costs no stack.
	height := map[v1.Hash]int{}
	var heightOf func(d v1.Hash) int
	heightOf = func(root v1.Hash) int {
		type frame struct {
			d    v1.Hash
			next int
		}
		stack := []frame{{d: root}}
		for len(stack) > 0 {
			top := &stack[len(stack)-1]
			if _, done := height[top.d]; done {
				stack = stack[:len(stack)-1]
				continue
			}
			children := h.manifests[top.d].children
			if top.next < len(children) {
				c := children[top.next].Digest
				top.next++
				if _, done := height[c]; !done {
					stack = append(stack, frame{d: c})
				}
				continue
			}
			hgt := 0
			for _, c := range children {
				hgt = max(hgt, height[c.Digest]+1)
			}
			height[top.d] = hgt
			depth = max(depth, hgt)
			stack = stack[:len(stack)-1]
		}
		return height[root]
	}
	type key struct{ class, height int }
	groups := map[key][]v1.Hash{}
	for d, m := range h.manifests {
		class := importCommitImage
		switch e := h.byDigest[d]; {
		case isChild[d]:
			class = importCommitIndexChild
		case e != nil && e.Role.IsArtifact():
			class = importCommitArtifact
		case e != nil && h.root == e && e.isBundle():
			class = importCommitRootBundle
		case e != nil && e.isBundle():
			class = importCommitNestedBundle
		case m.mediaType.IsIndex():
			class = importCommitIndex
		}
		k := key{class, heightOf(d)}
		groups[k] = append(groups[k], d)
	}
	keys := make([]key, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].class != keys[j].class {
			return keys[i].class < keys[j].class
		}
		return keys[i].height < keys[j].height
	})
	out := make([][]v1.Hash, 0, len(keys))
	for _, k := range keys {
		g := groups[k]
		sort.Slice(g, func(i, j int) bool { return g[i].String() < g[j].String() })
		out = append(out, g)
	}
	return out, depth
}
