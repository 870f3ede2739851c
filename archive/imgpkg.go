package archive

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// imgpkg's own tarball, as `imgpkg copy --to-tar` writes it
// (docs/archive-format.md, "imgpkg tarballs"): an uncompressed tar whose
// first entry, manifest.json, is a JSON list of the images and indexes it
// carries, each with its raw manifest (and for an image its raw config),
// followed by each layer once, named sha256-<hex>.tar.gz whatever its
// compression. ferry reads it in place: one pass over the tar headers
// finds where each layer lies, and each is then read on its own, like a
// blob of a seekable ferry archive.
const (
	imgpkgManifest = "manifest.json"
	// imgpkgRootLabel marks the root bundle in manifest.json.
	imgpkgRootLabel = "dev.carvel.imgpkg.copy.root-bundle"
	// imgpkgBundleLabel, in an image config, makes the image a bundle.
	imgpkgBundleLabel = "dev.carvel.imgpkg.bundle"
	// ImgpkgCreatedBy is the Head.CreatedBy of an imgpkg tarball.
	ImgpkgCreatedBy = "imgpkg copy --to-tar"
)

// ErrNotImgpkg is returned by OpenImgpkg for input that is not an imgpkg
// tarball at all (not a tar, or a tar whose first entry is not
// manifest.json), as opposed to a damaged one.
var ErrNotImgpkg = errors.New("not an imgpkg tarball")

var (
	imgpkgLayerName = regexp.MustCompile(`^sha256-([0-9a-f]{64})\.tar\.gz$`)
	// imgpkgSignatureTag is the tag imgpkg records for the cosign artifacts
	// it carries (--cosign-signatures): "sha256-<subject hex>.<kind>".
	imgpkgSignatureTag = regexp.MustCompile(`^sha256-([0-9a-f]{64})\.(sig|att|sbom)$`)
)

// imgpkgImage is an image of manifest.json (imgpkg's ImageDescriptor).
type imgpkgImage struct {
	Refs []string
	// Layers repeats the manifest's layer descriptors, in order.
	Layers []imgpkgLayerDesc
	Config struct {
		Digest string
		Raw    string
	}
	Manifest struct {
		MediaType string
		Digest    string
		Raw       string
	}
	Tag     string
	OrigRef string
	Labels  map[string]string
}

// imgpkgLayerDesc is a layer of an image of manifest.json (imgpkg's
// ImageLayerDescriptor): its manifest's descriptor of it, and its diff ID
// from the config, which ferry has no use for.
type imgpkgLayerDesc struct {
	MediaType string
	Digest    string
	DiffID    string
	Size      int64
}

// imgpkgIndex is an index of manifest.json (imgpkg's
// ImageIndexDescriptor), with its children's descriptors.
type imgpkgIndex struct {
	Refs      []string
	Images    []imgpkgImage
	Indexes   []imgpkgIndex
	MediaType string
	Digest    string
	Raw       string
	Tag       string
	OrigRef   string
	Labels    map[string]string
}

// imgpkgItem is one element of manifest.json: an image or an index.
type imgpkgItem struct {
	ImageIndex *imgpkgIndex
	Image      *imgpkgImage
}

// ImgpkgTar is an imgpkg tarball opened for random access. Its Head
// describes it as a ferry archive would: index.json entries with ferry's
// roles (the root bundle, nested bundles, images, cosign signatures),
// every manifest, and the configs and layers; Blob reads any of those on
// its own, verified against its digest. It is safe for concurrent use;
// each blob reader is not.
type ImgpkgTar struct {
	ra      io.ReaderAt
	head    *Head
	configs map[v1.Hash][]byte
	layers  map[v1.Hash]imgpkgLayer
}

// imgpkgLayer is where a layer's bytes lie in the tarball.
type imgpkgLayer struct {
	name         string
	offset, size int64
}

// OpenImgpkg opens the imgpkg tarball in ra, size bytes long. It reads
// manifest.json and the tar headers (not the layers) and checks everything
// a ferry archive's head is checked for: every manifest and config against
// its digest, every reference resolved, every layer present at its size
// (non-distributable layers imgpkg left out excepted), and no entry but
// manifest.json and layers the manifests reference. Only regular files
// with the names imgpkg writes are accepted, so nothing in the tarball can
// name a path. The tar must end as a Reader requires: with its
// end-of-archive marker, followed by nothing but a little zero padding.
// It returns an error matching ErrNotImgpkg when ra is not a tar starting
// with manifest.json.
func OpenImgpkg(ra io.ReaderAt, size int64, opts ReaderOptions) (*ImgpkgTar, error) {
	opts = opts.withDefaults()
	var block [512]byte
	if n, _ := ra.ReadAt(block[:], 0); n < len(block) || !bytes.Equal(block[257:262], []byte("ustar")) {
		return nil, ErrNotImgpkg
	}
	sr := io.NewSectionReader(ra, 0, size)
	tr := tar.NewReader(sr)
	hdr, err := tr.Next()
	if err != nil || hdr.Name != imgpkgManifest {
		return nil, ErrNotImgpkg
	}
	if err := checkImgpkgHeader(hdr, sr, size); err != nil {
		return nil, err
	}
	if hdr.Size > opts.MaxHeadSize {
		return nil, fmt.Errorf("imgpkg tar entry %s: %d bytes, more than the %d-byte head limit", imgpkgManifest, hdr.Size, opts.MaxHeadSize)
	}
	raw := make([]byte, hdr.Size)
	if _, err := io.ReadFull(tr, raw); err != nil {
		return nil, fmt.Errorf("imgpkg tar entry %s: %w", imgpkgManifest, explain(err))
	}
	t := &ImgpkgTar{ra: ra, configs: map[v1.Hash][]byte{}, layers: map[v1.Hash]imgpkgLayer{}}
	b, err := t.readManifest(raw, opts)
	if err != nil {
		return nil, fmt.Errorf("imgpkg tarball %s: %w", imgpkgManifest, err)
	}
	if err := t.scanLayers(tr, sr, size, b.cat); err != nil {
		return nil, err
	}
	if err := t.finish(b, false); err != nil {
		return nil, err
	}
	return t, nil
}

// checkImgpkgHeader accepts a regular file whose data lies within the
// file.
func checkImgpkgHeader(hdr *tar.Header, sr *io.SectionReader, size int64) error {
	if hdr.Typeflag != tar.TypeReg {
		return fmt.Errorf("imgpkg tar entry %q: type %s, only regular files are allowed", hdr.Name, typeName(hdr.Typeflag))
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return fmt.Errorf("imgpkg tar entry %q: a sparse file, which imgpkg never writes", hdr.Name)
		}
	}
	at, _ := sr.Seek(0, io.SeekCurrent)
	if hdr.Size < 0 || hdr.Size > size-at {
		return fmt.Errorf("imgpkg tar entry %s: %d bytes at offset %d, past the end of the %d-byte file: truncated tarball", hdr.Name, hdr.Size, at, size)
	}
	return nil
}

// imgpkgBuild is what readManifest found: the entries of the head, its
// catalog (complete), and the non-manifest digests it names.
type imgpkgBuild struct {
	entries []Entry
	cat     *catalog
}

// readManifest parses manifest.json, verifies every manifest and config in
// it, and builds the head's entries and catalog.
func (t *ImgpkgTar) readManifest(raw []byte, opts ReaderOptions) (*imgpkgBuild, error) {
	var items []imgpkgItem
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, fmt.Errorf("not imgpkg's list of images: %w", err)
	}
	if len(items) == 0 {
		return nil, errors.New("lists no images")
	}
	manifests := map[v1.Hash][]byte{}
	addManifest := func(what, digest, mediaType, raw string) (v1.Hash, error) {
		d, err := verifiedDigest(digest, raw)
		if err != nil {
			return d, fmt.Errorf("%s: manifest %w", what, err)
		}
		if !isManifestType(types.MediaType(mediaType)) {
			return d, fmt.Errorf("%s: manifest %s has media type %q, not an image manifest or index", what, d, mediaType)
		}
		manifests[d] = []byte(raw)
		return d, nil
	}
	var addImage func(what string, im *imgpkgImage) (v1.Hash, error)
	addImage = func(what string, im *imgpkgImage) (v1.Hash, error) {
		d, err := addManifest(what, im.Manifest.Digest, im.Manifest.MediaType, im.Manifest.Raw)
		if err != nil {
			return d, err
		}
		if err := checkImgpkgLayers(d, im.Manifest.Raw, im.Layers); err != nil {
			return d, fmt.Errorf("%s: %w", what, err)
		}
		cd, err := verifiedDigest(im.Config.Digest, im.Config.Raw)
		if err != nil {
			return d, fmt.Errorf("%s: config %w", what, err)
		}
		t.configs[cd] = []byte(im.Config.Raw)
		return d, nil
	}
	// An index's children are named from their item and their depth, not
	// their whole path: a chain of thousands of nested indexes (JSON allows
	// that deep) would hold a label per level, each longer than the last.
	var addIndex func(item string, depth int, ix *imgpkgIndex) (v1.Hash, error)
	addIndex = func(item string, depth int, ix *imgpkgIndex) (v1.Hash, error) {
		what := item
		if depth > 0 {
			what = fmt.Sprintf("%s, an index %d deep", item, depth)
		}
		d, err := addManifest(what, ix.Digest, ix.MediaType, ix.Raw)
		if err != nil {
			return d, err
		}
		for i := range ix.Images {
			if _, err := addImage(fmt.Sprintf("%s, image %d", what, i), &ix.Images[i]); err != nil {
				return d, err
			}
		}
		for i := range ix.Indexes {
			if _, err := addIndex(item, depth+1, &ix.Indexes[i]); err != nil {
				return d, err
			}
		}
		return d, nil
	}

	b := &imgpkgBuild{}
	var hasRoot bool
	for i, it := range items {
		what := fmt.Sprintf("item %d", i)
		var e Entry
		switch {
		case it.Image != nil && it.ImageIndex != nil, it.Image == nil && it.ImageIndex == nil:
			return nil, fmt.Errorf("%s: want exactly one of Image and ImageIndex", what)
		case it.Image != nil:
			im := it.Image
			what = fmt.Sprintf("item %d (%s)", i, firstRef(im.OrigRef, im.Refs))
			d, err := addImage(what, im)
			if err != nil {
				return nil, err
			}
			e, err = imgpkgEntry(d, im.Manifest.MediaType, im.Manifest.Raw, im.Config.Raw, im.OrigRef, im.Refs, im.Tag, im.Labels)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", what, err)
			}
		default:
			ix := it.ImageIndex
			what = fmt.Sprintf("item %d (%s)", i, firstRef(ix.OrigRef, ix.Refs))
			d, err := addIndex(what, 0, ix)
			if err != nil {
				return nil, err
			}
			if _, ok := ix.Labels[imgpkgRootLabel]; ok {
				return nil, fmt.Errorf("%s: the root bundle is an image index", what)
			}
			e, err = imgpkgEntry(d, ix.MediaType, ix.Raw, "", ix.OrigRef, ix.Refs, ix.Tag, ix.Labels)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", what, err)
			}
		}
		hasRoot = hasRoot || e.Role == RoleBundle
		b.entries = append(b.entries, e)
	}
	// A bundle among the images of a bundle is a nested bundle, as imgpkg
	// finds by following the root's images.yml; without a root, bundles
	// travel as the images imgpkg copied them as.
	for i, e := range b.entries {
		if e.Role == RoleNestedBundle && !hasRoot {
			b.entries[i].Role = RoleImage
		}
	}

	index, err := BuildIndex(b.entries, IndexOptions{CreatedBy: ImgpkgCreatedBy})
	if err != nil {
		return nil, err
	}
	info, err := parseIndex(index)
	if err != nil {
		return nil, err
	}
	if b.cat, err = newCatalog(info, opts.MaxManifestSize); err != nil {
		return nil, err
	}
	// Follow the closure in the order the catalog comes to want manifests
	// (catalog.fresh), each looked up by its digest: taking the smallest
	// wanted digest each time searched every manifest still wanted, and a
	// tarball of many images cost the square of their number.
	for i := 0; i < len(b.cat.fresh); i++ {
		d := b.cat.fresh[i]
		ref, wanted := b.cat.want[d]
		if !wanted {
			continue
		}
		m, ok := manifests[d]
		if !ok {
			return nil, fmt.Errorf("manifest %s (referenced by %s) is not in it", d, ref.from)
		}
		if err := b.cat.addManifest(d, m); err != nil {
			return nil, err
		}
	}
	b.cat.fresh = nil
	if !b.cat.complete() {
		// Every digest the catalog wants it lists in fresh.
		d, ref := b.cat.firstWanted()
		return nil, fmt.Errorf("manifest %s (referenced by %s) was not followed", d, ref.from)
	}
	return b, nil
}

// checkImgpkgLayers checks manifest.json's list of the layers of image d
// (raw, verified) against the manifest's: ferry goes by the manifest, but
// a list that says otherwise is not one imgpkg wrote.
func checkImgpkgLayers(d v1.Hash, raw string, listed []imgpkgLayerDesc) error {
	var m v1.Manifest
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		return fmt.Errorf("manifest %s: %w", d, err)
	}
	if len(listed) != len(m.Layers) {
		return fmt.Errorf("Layers lists %d layers, manifest %s has %d", len(listed), d, len(m.Layers))
	}
	for i, l := range m.Layers {
		if g := listed[i]; g.Digest != l.Digest.String() || g.Size != l.Size || g.MediaType != string(l.MediaType) {
			return fmt.Errorf("Layers: layer %d listed as %s (%d bytes, %s), manifest %s has %s (%d bytes, %s)",
				i, g.Digest, g.Size, g.MediaType, d, l.Digest, l.Size, l.MediaType)
		}
	}
	return nil
}

// firstRef names an item of manifest.json in messages.
func firstRef(orig string, refs []string) string {
	if orig != "" || len(refs) == 0 {
		return orig
	}
	return refs[0]
}

// verifiedDigest parses digest and checks that raw hashes to it.
func verifiedDigest(digest, raw string) (v1.Hash, error) {
	d, err := v1.NewHash(digest)
	if err == nil {
		err = checkDigest(d)
	}
	if err != nil {
		return d, fmt.Errorf("%q: %w", digest, err)
	}
	if sum := sha256.Sum256([]byte(raw)); hex.EncodeToString(sum[:]) != d.Hex {
		return d, fmt.Errorf("%s: content has digest sha256:%x", d, sum)
	}
	return d, nil
}

// imgpkgEntry turns an item of manifest.json into an entry of index.json.
// The root bundle keeps its tag, a cosign artifact becomes a signature of
// the image its tag names, a bundle a nested bundle (an image again when
// there is no root, see readManifest), anything else an image. The
// original reference is the one imgpkg recorded (images.yml's, or where
// it found the image).
func imgpkgEntry(d v1.Hash, mediaType, manifest, config, origRef string, refs []string, tag string, labels map[string]string) (Entry, error) {
	e := Entry{
		Descriptor:  v1.Descriptor{MediaType: types.MediaType(mediaType), Size: int64(len(manifest)), Digest: d},
		Role:        RoleImage,
		OriginalRef: firstRef(origRef, refs),
		Tag:         tag,
	}
	var cfg struct {
		Architecture string `json:"architecture"`
		OS           string `json:"os"`
		Variant      string `json:"variant"`
		Config       struct {
			Labels map[string]string `json:"Labels"`
		} `json:"config"`
	}
	if config != "" {
		var m v1.Manifest
		if err := json.Unmarshal([]byte(manifest), &m); err != nil {
			return e, fmt.Errorf("manifest %s: %w", d, err)
		}
		if m.Config.MediaType == types.DockerConfigJSON || m.Config.MediaType == types.OCIConfigJSON {
			if err := json.Unmarshal([]byte(config), &cfg); err != nil {
				return e, fmt.Errorf("config %s: %w", m.Config.Digest, err)
			}
		}
		if cfg.OS != "" || cfg.Architecture != "" {
			e.Descriptor.Platform = &v1.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}
		}
	}
	_, isBundle := cfg.Config.Labels[imgpkgBundleLabel]
	_, isRoot := labels[imgpkgRootLabel]
	switch sig := imgpkgSignatureTag.FindStringSubmatch(tag); {
	case isRoot && !isBundle:
		return e, fmt.Errorf("labelled the root bundle, but its config has no %s label", imgpkgBundleLabel)
	case isRoot:
		e.Role = RoleBundle
	case sig != nil:
		e.Role, e.Tag = RoleSignature, ""
		e.Subject, e.SignatureKind = v1.Hash{Algorithm: "sha256", Hex: sig[1]}, sig[2]
		// Where imgpkg found it: beside its subject, under that tag.
		repo := e.OriginalRef
		if i := strings.LastIndex(repo, "@"); i >= 0 {
			repo = repo[:i]
		}
		e.OriginalRef = repo + ":" + tag
	case isBundle:
		e.Role = RoleNestedBundle
	}
	return e, nil
}

// scanLayers reads the tar headers after manifest.json, whose data sr is
// at the end of: each entry must be a layer the manifests reference, once,
// at its size, and the tar must end as a stream's must (checkTarEnd).
func (t *ImgpkgTar) scanLayers(tr *tar.Reader, sr *io.SectionReader, size int64, cat *catalog) error {
	last := imgpkgManifest
	dataEnd, _ := sr.Seek(0, io.SeekCurrent)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			// archive/tar reads exactly the padding and the end blocks (it
			// seeks over the data it skips), so sr is where they end.
			at, _ := sr.Seek(0, io.SeekCurrent)
			return checkTarEnd(at-dataEnd, last, sr)
		}
		if err != nil {
			return fmt.Errorf("imgpkg tar entry after %s: %w", last, explain(err))
		}
		last = hdr.Name
		m := imgpkgLayerName.FindStringSubmatch(hdr.Name)
		if m == nil {
			return fmt.Errorf("imgpkg tar entry %q: not a name imgpkg writes (%s, sha256-<64 lowercase hex>.tar.gz)", hdr.Name, imgpkgManifest)
		}
		if err := checkImgpkgHeader(hdr, sr, size); err != nil {
			return err
		}
		d := v1.Hash{Algorithm: "sha256", Hex: m[1]}
		ref, ok := cat.blobs[d]
		_, isManifest := cat.manifests[d]
		switch _, dup := t.layers[d]; {
		case dup:
			return fmt.Errorf("imgpkg tar entry %s: appears twice", hdr.Name)
		case !ok || isManifest || !cat.layers[d]:
			// A manifest or a config is in manifest.json: an entry of its
			// name holds bytes nothing would ever check.
			return fmt.Errorf("imgpkg tar entry %s: not referenced by any manifest as a layer", hdr.Name)
		case hdr.Size != ref.desc.Size:
			return fmt.Errorf("imgpkg tar entry %s: %d bytes, %s says %d", hdr.Name, hdr.Size, ref.from, ref.desc.Size)
		}
		at, _ := sr.Seek(0, io.SeekCurrent)
		t.layers[d] = imgpkgLayer{name: hdr.Name, offset: at, size: hdr.Size}
		dataEnd = at + hdr.Size
	}
}

// finish checks that every config and layer is at hand (or a
// non-distributable layer imgpkg left out) and builds the head. stream is
// set when the tarball is read front to back (Reader): its layers are yet
// to come, and are checked as they do.
func (t *ImgpkgTar) finish(b *imgpkgBuild, stream bool) error {
	var skipped []v1.Descriptor
	var skippedDigests []v1.Hash
	blobs := b.cat.expected()
	for _, desc := range blobs {
		from := b.cat.blobs[desc.Digest].from
		if c, ok := t.configs[desc.Digest]; ok {
			if int64(len(c)) != desc.Size {
				return fmt.Errorf("imgpkg tarball: config %s: %d bytes, %s says %d", desc.Digest, len(c), from, desc.Size)
			}
			continue
		}
		if _, ok := t.layers[desc.Digest]; ok || (stream && !nonDistributable(desc.MediaType)) {
			continue
		}
		if stream {
			// imgpkg leaves such a layer out unless told otherwise, and
			// which it did shows only at the tarball's end: too late to
			// plan an import by.
			return fmt.Errorf("imgpkg tarball: layer %s (referenced by %s) is non-distributable, and whether imgpkg included it shows only at the tarball's end: give the tarball as a file, by its path, not on a pipe", desc.Digest, from)
		}
		if !nonDistributable(desc.MediaType) {
			return fmt.Errorf("imgpkg tarball: layer %s (referenced by %s) is missing: no entry sha256-%s.tar.gz", desc.Digest, from, desc.Digest.Hex)
		}
		skipped = append(skipped, desc)
		skippedDigests = append(skippedDigests, desc.Digest)
	}
	if err := b.cat.checkSkipped(skippedDigests); err != nil {
		return fmt.Errorf("imgpkg tarball: %w", err)
	}
	// The configs of images manifest.json lists but no manifest reaches
	// are not part of the archive.
	for d := range t.configs {
		if _, ok := b.cat.blobs[d]; !ok {
			delete(t.configs, d)
		}
	}
	index, err := BuildIndex(b.entries, IndexOptions{CreatedBy: ImgpkgCreatedBy, SkippedLayers: skipped})
	if err != nil {
		return fmt.Errorf("imgpkg tarball: %w", err)
	}
	info, err := parseIndex(index)
	if err != nil {
		return fmt.Errorf("imgpkg tarball: %w", err)
	}
	// The index is ferry's description of the tarball, not a file in it:
	// it has no seek table, and no format version of ferry's.
	delete(info.index.Annotations, AnnotationSeekable)
	t.head = &Head{
		Compression:   CompressionNone,
		CreatedBy:     ImgpkgCreatedBy,
		Index:         info.index,
		Entries:       info.entries,
		Manifests:     b.cat.manifests,
		SkippedLayers: info.skipped,
		Blobs:         blobs,
	}
	return nil
}

// Head returns the tarball described as a ferry archive's head. Its
// Version is 0 (not a ferry format) and CreatedBy is ImgpkgCreatedBy. The
// caller must not modify it.
func (t *ImgpkgTar) Head() *Head { return t.head }

// Has reports whether the tarball holds blob d (a config or layer).
func (t *ImgpkgTar) Has(d v1.Hash) bool {
	if _, ok := t.configs[d]; ok {
		return true
	}
	_, ok := t.layers[d]
	return ok
}

// Blob returns a reader of blob d's bytes: a config from manifest.json, or
// a layer straight from where it lies in the tarball. The reader fails,
// naming the entry, if the bytes do not match d's size and digest when it
// reaches their end. Every call returns a new, independent reader.
func (t *ImgpkgTar) Blob(d v1.Hash) (io.ReadCloser, error) {
	if c, ok := t.configs[d]; ok {
		return io.NopCloser(&checkedBlob{r: bytes.NewReader(c), entryCheck: newEntryCheck(imgpkgManifest+" config "+d.String(), d, int64(len(c)))}), nil
	}
	l, ok := t.layers[d]
	if !ok {
		return nil, fmt.Errorf("imgpkg tarball: blob %s is not in it", d)
	}
	return io.NopCloser(&checkedBlob{r: io.NewSectionReader(t.ra, l.offset, l.size), entryCheck: newEntryCheck(l.name, d, l.size)}), nil
}

// Config returns config d's bytes as manifest.json holds them, checked
// against d when the tarball was opened, or false when d is not a config
// of it. The slice is the tarball's own: callers must not change it.
func (t *ImgpkgTar) Config(d v1.Hash) ([]byte, bool) {
	c, ok := t.configs[d]
	return c, ok
}

// Layer returns where layer d's bytes lie in the tarball, for reading
// ranges of it (HTTP Range requests to `ferry serve`). Nothing checks what
// it reads: read the layer in full through Blob first. ok is false for a
// config (held in memory, read with Blob) and for a blob not in the
// tarball. A config is a config even when the tarball also has an entry
// of its name: Blob reads (and checks) manifest.json's copy, so the
// entry's bytes, which nothing checks, must never be served for it.
func (t *ImgpkgTar) Layer(d v1.Hash) (*io.SectionReader, bool) {
	if _, isConfig := t.configs[d]; isConfig {
		return nil, false
	}
	l, ok := t.layers[d]
	if !ok {
		return nil, false
	}
	return io.NewSectionReader(t.ra, l.offset, l.size), true
}

// checkedBlob reads one blob's bytes from r, verifying them at their end.
type checkedBlob struct {
	r io.Reader
	entryCheck
	err error
}

// Read implements io.Reader.
func (b *checkedBlob) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	n, err := b.r.Read(p)
	b.add(p[:n])
	switch {
	case err == io.EOF:
		if b.err = b.verify(); b.err != nil {
			return n, b.err
		}
		b.err = io.EOF
	case err != nil:
		b.err = fmt.Errorf("archive entry %s: %w", b.name, explain(err))
		return n, b.err
	}
	return n, err
}

// heldBlob is a blob whose bytes are in memory.
type heldBlob struct {
	d v1.Hash
	b []byte
}

// readImgpkgHead reads, on a Reader, a tarball imgpkg wrote: hdr is its
// first entry, manifest.json, from which the head is built as OpenImgpkg
// builds it; the configs it carries become the Reader's first blobs, and
// its layer entries follow. Checks that need the whole tarball (every
// layer present) are made at its end, as for a ferry archive.
func (r *Reader) readImgpkgHead(hdr *tar.Header, comp Compression, opts ReaderOptions) error {
	if hdr.Size > opts.MaxHeadSize {
		return fmt.Errorf("imgpkg tar entry %s: %d bytes, more than the %d-byte head limit", imgpkgManifest, hdr.Size, opts.MaxHeadSize)
	}
	raw, err := r.readAll(hdr)
	if err != nil {
		return err
	}
	t := &ImgpkgTar{configs: map[v1.Hash][]byte{}}
	b, err := t.readManifest(raw, opts)
	if err != nil {
		return fmt.Errorf("imgpkg tarball %s: %w", imgpkgManifest, err)
	}
	if err := t.finish(b, true); err != nil {
		return err
	}
	r.imgpkg = true
	r.cat = b.cat
	r.head = t.head
	r.head.Compression = comp
	for _, d := range slices.SortedFunc(maps.Keys(t.configs), cmpHash) {
		r.configs = append(r.configs, heldBlob{d: d, b: t.configs[d]})
	}
	return nil
}

// blobDigest gives the digest a config or layer entry's name carries.
func (r *Reader) blobDigest(name string) (v1.Hash, bool) {
	if !r.imgpkg {
		return parseBlobName(name)
	}
	m := imgpkgLayerName.FindStringSubmatch(name)
	if m == nil {
		return v1.Hash{}, false
	}
	return v1.Hash{Algorithm: "sha256", Hex: m[1]}, true
}
