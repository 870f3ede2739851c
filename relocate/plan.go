// Package relocate resolves a bundle (or an image, or a lock file) into a
// Plan — every image, manifest and blob that must travel, each once — and
// executes that plan as a move: registry to archive (Export), and later
// archive to registry and registry to registry.
//
// The plan is computed once and is deterministic: the same content in the
// registry gives the same Plan, whatever the concurrency used to resolve it,
// which is what makes exported archives byte-identical.
package relocate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/archive"
	"github.com/ferry-dev/ferry/internal/progress"
	"github.com/ferry-dev/ferry/internal/registry"
	"github.com/ferry-dev/ferry/lock"
)

// DefaultConcurrency is how many registry requests run at once when
// Options.Concurrency or ExportOptions.Concurrency is zero.
const DefaultConcurrency = 8

// Source names what to relocate. Exactly one field must be set; they mirror
// the -b, -i and --lock flags.
type Source struct {
	// Bundle is a bundle reference (tag or digest); its lock is followed.
	Bundle string
	// Image is any image or index reference, copied as is (a bundle given
	// here is copied as a plain image: its lock is not followed). Given by
	// tag, its tag is the root's original tag, as Bundle's is.
	Image string
	// LockFile is the path of an ImagesLock or a BundleLock file.
	LockFile string
	// Local, with Bundle or Image, is that root built here and not pushed
	// (`ferry push --to-tar`): it is not fetched, Bundle or Image being
	// the reference it will have, and its config and layers are read from
	// it; what its lock names is resolved from registries as usual. Its
	// repository is not asked about it: the root was never there, and
	// neither are its signatures or referrers.
	Local v1.Image
}

// String names the source in messages, as the user gave it.
func (s Source) String() string {
	switch {
	case s.Bundle != "":
		return "bundle " + s.Bundle
	case s.Image != "":
		return "image " + s.Image
	default:
		return "lock file " + s.LockFile
	}
}

// Options configures Resolve.
type Options struct {
	// Remote is passed to every registry call (auth, transport, ...).
	Remote []remote.Option
	// Client is handed on to the moves that execute the plan (ExportOptions,
	// DestinationOptions), which download with it; nil means a default
	// registry.Client.
	Client *registry.Client
	// Name is used to parse every reference (e.g. name.Insecure).
	Name []name.Option
	// Concurrency bounds the manifests resolved at once; 0 means
	// DefaultConcurrency.
	Concurrency int
	// IncludeNonDistributable keeps foreign / non-distributable layers in
	// the plan instead of listing them in Plan.Skipped.
	IncludeNonDistributable bool
	// CosignSignatures carries cosign's artifacts of every image and
	// bundle: the manifests tagged "sha256-<hex>.sig", ".att" and ".sbom"
	// in the repository the image was resolved from. Three HEADs per image.
	CosignSignatures bool
	// Referrers carries the artifacts whose manifests name an image or
	// bundle as their subject (OCI 1.1 referrers API, or the "sha256-<hex>"
	// tag-schema index on registries without it). One request per image.
	Referrers bool
	// Reporter receives warnings (skipped layers, images of a relocated
	// bundle found only at their original reference) and where the images
	// of relocated bundles were found; nil discards them.
	Reporter progress.Reporter

	// maxManifestBytes bounds the manifests and indexes a run holds;
	// 0 means archive.DefaultMaxHeadSize. Tests set it small.
	maxManifestBytes int64
}

// Plan is everything a move must carry, each digest once, in a
// deterministic order.
type Plan struct {
	// Root is the bundle given with -b (or a BundleLock), or the image given
	// with -i; nil for an ImagesLock file.
	Root *Image
	// Images lists every image that the archive's index.json names: the
	// root, nested bundles and lock images (manifests or indexes). Index
	// children are not listed here; they are reachable through Children.
	// Order: breadth-first from the root, each lock in its own order.
	Images []*Image
	// Manifests holds the raw bytes of every manifest and index: those of
	// Images and those of every index child, to any depth.
	Manifests map[v1.Hash]Manifest
	// Blobs lists configs first, then layers, each group sorted by digest.
	Blobs []Blob
	// Skipped lists the non-distributable layers left out of Blobs.
	Skipped []Blob
	// TotalBytes is the size of every manifest and blob that will be moved.
	TotalBytes int64
	// Cached holds blobs Resolve already read, verified against their
	// digests: configs, and bundle layers of at most
	// bundle.MaxKeptLayerSize, within maxCached bytes in all, so that a
	// move need not fetch them again.
	Cached map[v1.Hash][]byte

	// imagesLock is the ImagesLock file the plan was resolved from, if
	// any: a copy's lock output is that lock, relocated, as imgpkg writes
	// it.
	imagesLock *lock.ImagesLock

	// local opens the blobs that are not fetched from a registry: those
	// of an archive being re-packed (PlanArchive), or of a root built
	// locally (Source.Local). Export reads them; Copy refuses such a plan.
	local map[v1.Hash]func() (io.ReadCloser, error)
	// sequential is set when local reads an archive front to back
	// (PlanArchive of a stream): Export then opens one blob at a time,
	// in the order of Blobs.
	sequential bool
	// stream is what local reads a stream with, when sequential: it holds
	// the decompressor and temporary files that Close releases.
	stream *streamBlobs
}

// Close releases what a plan of an archive read front to back (PlanArchive
// of a pipe, a gzip'd tarball...) holds: the archive's decompressor, and
// the temporary files (already removed from their directory, but taking
// disk space while open) of the blobs the stream held before their turn.
// Export and ExportFile call it when they return, whether they succeed or
// not; a caller that never exports such a plan must call it. It does not
// close the reader given to PlanArchive, which stays the caller's. It must
// not be called while Export runs; it is safe to call more than once, and
// does nothing for any other plan. It returns nil.
func (p *Plan) Close() error {
	if p.stream != nil {
		p.stream.close()
	}
	return nil
}

// Image is one entry of a Plan's index: a manifest or an index.
type Image struct {
	// Digest, MediaType and Size describe the manifest or index itself.
	Digest    v1.Hash
	MediaType types.MediaType
	Size      int64
	// Role is why the image travels: the root bundle, a nested bundle, or
	// an image a lock names (or -i, or an ImagesLock file).
	Role archive.Role
	// OriginalRef is the reference as written in the lock, or as given on
	// the command line for the root.
	OriginalRef string
	// Tag is the root's tag (from -b REPO:TAG, -i REPO:TAG or a
	// BundleLock), restored last at the destination; empty for a root
	// named by digest and for every other image (an ImagesLock file's
	// images have no tag, as in imgpkg).
	Tag string
	// Source is where the image was resolved.
	Source name.Digest
	// Platforms are those of an index's children, or the image's own
	// platform when its config names one.
	Platforms []v1.Platform
	// Lock is the bundle's own images.yml (root and nested bundles only).
	Lock *lock.ImagesLock
	// Children are an index's direct children, in index order.
	Children []v1.Hash
	// Subject is the image or bundle a signature or referrer is about.
	Subject v1.Hash
	// SignatureKind is the cosign tag suffix of a signature ("sig", "att",
	// "sbom").
	SignatureKind string
}

// Manifest is the raw bytes of a manifest or index, as the registry served
// them (digests are computed over exactly these bytes).
type Manifest struct {
	Raw       []byte
	MediaType types.MediaType
	// Source is where the manifest was fetched.
	Source name.Digest
}

// Blob is a config or layer to move.
type Blob struct {
	Digest    v1.Hash
	Size      int64
	MediaType types.MediaType
	// Config is true for image configs, which are written before layers.
	Config bool
	// Source is repository@digest of the blob, in the repository of the
	// first image (in plan order) that references it.
	Source name.Digest
	// URLs are the foreign URLs of a non-distributable layer, if any.
	URLs []string
	// Image is the first image (in plan order) that references the blob,
	// to name it in messages.
	Image string
}

// origin names where the blob is read from, in messages.
func (b Blob) origin() string {
	if b.Source == (name.Digest{}) {
		return b.Image
	}
	return b.Source.String()
}

// Resolve computes the Plan for src: it fetches every manifest (and the
// configs and images.yml needed to find bundles), concurrently, but with a
// result that does not depend on the concurrency.
func Resolve(ctx context.Context, src Source, opts Options) (*Plan, error) {
	n := 0
	for _, s := range []string{src.Bundle, src.Image, src.LockFile} {
		if s != "" {
			n++
		}
	}
	if n != 1 {
		return nil, errors.New("resolve: exactly one of bundle, image or lock file must be given")
	}
	conc := opts.Concurrency
	if conc <= 0 {
		conc = DefaultConcurrency
	}
	puller, err := remote.NewPuller(append(append([]remote.Option{}, opts.Remote...), remote.WithContext(ctx), remote.WithJobs(conc))...)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", src, err)
	}
	client := opts.Client
	if client == nil {
		client = registry.New(registry.Options{})
	}
	r := &resolver{
		puller:    puller,
		client:    client,
		nameOpts:  opts.Name,
		conc:      conc,
		rep:       progress.OrNop(opts.Reporter),
		nodes:     map[v1.Hash]*node{},
		images:    map[v1.Hash]*Image{},
		relocated: map[v1.Hash]*repoCheck{},
		maxHeld:   opts.maxManifestBytes,

		artifactsFound: map[archive.Role]int{},
	}
	if r.maxHeld <= 0 {
		// What an archive's head may carry is what a run may hold: an
		// import would refuse more, and thousands of images with
		// manifests of a few KiB come to tens of MiB.
		r.maxHeld = archive.DefaultMaxHeadSize
	}

	var first []want
	switch {
	case src.Bundle != "":
		ref, err := name.ParseReference(src.Bundle, opts.Name...)
		if err != nil {
			return nil, fmt.Errorf("resolve bundle %s: %w", src.Bundle, err)
		}
		first = []want{{ref: ref, digest: digestOf(ref), original: src.Bundle, tag: tagOf(ref), kind: wantRootBundle, local: src.Local}}
	case src.Image != "":
		ref, err := name.ParseReference(src.Image, opts.Name...)
		if err != nil {
			return nil, fmt.Errorf("resolve image %s: %w", src.Image, err)
		}
		// By tag, the tag travels and is written last at the
		// destination, as for -b and as imgpkg does for -i.
		first = []want{{ref: ref, digest: digestOf(ref), original: src.Image, tag: tagOf(ref), kind: wantRootImage, local: src.Local}}
	case src.Local != nil:
		return nil, errors.New("resolve: a root built locally needs the bundle or image reference it will have")
	default:
		first, err = r.lockFileWants(src.LockFile)
		if err != nil {
			return nil, err
		}
	}
	if err := r.run(ctx, first); err != nil {
		return nil, runError(src, err)
	}
	if opts.CosignSignatures || opts.Referrers {
		arts, err := r.artifactWants(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("resolve %s: %w", src, err)
		}
		if err := r.run(ctx, arts); err != nil {
			return nil, runError(src, err)
		}
		r.logArtifacts()
	}
	return r.plan(opts)
}

// runError names src in front of a heldError, which is about the whole
// run rather than the reference being fetched when it stopped.
func runError(src Source, err error) error {
	if _, ok := errors.AsType[*heldError](err); ok {
		return fmt.Errorf("resolve %s: %w", src, err)
	}
	return err
}

// tagOf returns the tag of a tag reference, "" for a digest reference.
func tagOf(ref name.Reference) string {
	if t, ok := ref.(name.Tag); ok {
		return t.TagStr()
	}
	return ""
}

// digestOf returns the digest of a digest reference, zero for a tag.
func digestOf(ref name.Reference) v1.Hash {
	if d, ok := ref.(name.Digest); ok {
		return mustHash(d)
	}
	return v1.Hash{}
}

// lockFileWants reads an ImagesLock or BundleLock file into the first
// level of resolution.
func (r *resolver) lockFileWants(path string) ([]want, error) {
	data, err := lock.ReadDocument(path)
	if err != nil {
		return nil, fmt.Errorf("read lock file %s: %w", path, err)
	}
	if lock.DocumentKind(data) == lock.KindBundleLock {
		bl, err := lock.ParseBundleLock(data, path)
		if err != nil {
			return nil, fmt.Errorf("read lock file %s: %w", path, err)
		}
		ref, err := r.digestRef(bl.Bundle.Digest())
		if err != nil {
			return nil, fmt.Errorf("lock file %s: bundle %s: %w", path, bl.Bundle.Image, err)
		}
		return []want{{ref: ref, digest: mustHash(ref), original: bl.Bundle.Image, tag: bl.Bundle.Tag, kind: wantRootBundle}}, nil
	}
	il, err := lock.ParseImagesLock(data, path)
	if err != nil {
		return nil, fmt.Errorf("read lock file %s: %w", path, err)
	}
	r.imagesLock = il
	return r.lockWants(il, name.Repository{}, v1.Hash{}, "lock file "+path)
}

// digestRef re-parses a normalised lock reference with the caller's name
// options (name.Insecure, say), which the lock package does not know about.
func (r *resolver) digestRef(d name.Digest, err error) (name.Digest, error) {
	if err != nil {
		return name.Digest{}, err
	}
	return name.NewDigest(d.String(), r.nameOpts...)
}

// lockWants turns the images of a lock into wants of the next level.
// bundleRepo and bundle name the bundle whose lock it is, if any, where its
// images are looked for first.
func (r *resolver) lockWants(il *lock.ImagesLock, bundleRepo name.Repository, bundle v1.Hash, lockedBy string) ([]want, error) {
	var out []want
	var probe v1.Hash
	for _, im := range il.Images {
		ref, err := r.digestRef(im.Digest())
		if err != nil {
			return nil, fmt.Errorf("image %s locked by %s: %w", im.Image, lockedBy, err)
		}
		d := mustHash(ref)
		if probe == (v1.Hash{}) && ref.Context().String() != bundleRepo.String() {
			probe = d
		}
		out = append(out, want{ref: ref, digest: d, original: im.Image, kind: wantLockImage, lockedBy: lockedBy, bundleRepo: bundleRepo, bundle: bundle})
	}
	for i := range out {
		out[i].probe = probe
	}
	return out, nil
}

// mustHash returns the digest of a digest reference; name.NewDigest has
// already validated it, so a failure here is impossible.
func mustHash(d name.Digest) v1.Hash {
	h, err := v1.NewHash(d.DigestStr())
	if err != nil {
		return v1.Hash{}
	}
	return h
}

// plan flattens the resolved graph into a Plan.
func (r *resolver) plan(opts Options) (*Plan, error) {
	rep := progress.OrNop(opts.Reporter)
	p := &Plan{Manifests: make(map[v1.Hash]Manifest, len(r.order))}
	for _, im := range r.imageOrder {
		p.Images = append(p.Images, r.images[im])
	}
	if r.root != nil {
		p.Root = r.images[*r.root]
	}
	p.imagesLock = r.imagesLock

	type seenBlob struct {
		blob        Blob
		distributes bool
	}
	blobs := map[v1.Hash]*seenBlob{}
	var blobOrder []v1.Hash
	add := func(n *node, d v1.Descriptor, config bool) error {
		if b, ok := blobs[d.Digest]; ok {
			if b.blob.Size != d.Size {
				return fmt.Errorf("blob %s has size %d in %s but %d in %s", d.Digest, d.Size, n.source, b.blob.Size, b.blob.Image)
			}
			b.blob.Config = b.blob.Config || config
			b.distributes = b.distributes || d.MediaType.IsDistributable()
			return nil
		}
		blobs[d.Digest] = &seenBlob{
			blob: Blob{
				Digest:    d.Digest,
				Size:      d.Size,
				MediaType: d.MediaType,
				Config:    config,
				Source:    n.source.Context().Digest(d.Digest.String()),
				URLs:      d.URLs,
				Image:     n.source.String(),
			},
			distributes: d.MediaType.IsDistributable(),
		}
		blobOrder = append(blobOrder, d.Digest)
		return nil
	}
	p.Cached = map[v1.Hash][]byte{}
	var cached int64
	for _, h := range r.order {
		n := r.nodes[h]
		p.Manifests[h] = Manifest{Raw: n.raw, MediaType: n.mediaType, Source: n.source}
		keep := func(d v1.Hash, b []byte) {
			if _, ok := p.Cached[d]; !ok && b != nil && cached+int64(len(b)) <= maxCached {
				p.Cached[d] = b
				cached += int64(len(b))
			}
		}
		p.TotalBytes += int64(len(n.raw))
		// Parsed again, one at a time: the resolver holds only the
		// bytes (node.manifest).
		if n.isIndex {
			idx, err := n.index()
			if err != nil {
				return nil, err
			}
			// Children that are neither manifests nor indexes are plain
			// blobs the index points to; they travel like layers.
			for _, c := range idx.Manifests {
				if !c.MediaType.IsImage() && !c.MediaType.IsIndex() {
					if err := add(n, c, false); err != nil {
						return nil, err
					}
				}
			}
			continue
		}
		m, err := n.manifest()
		if err != nil {
			return nil, err
		}
		keep(m.Config.Digest, n.configRaw)
		if len(m.Layers) == 1 {
			keep(m.Layers[0].Digest, n.layerRaw)
		}
		if err := add(n, m.Config, true); err != nil {
			return nil, err
		}
		for _, l := range m.Layers {
			if err := add(n, l, false); err != nil {
				return nil, err
			}
		}
		if n.img != nil {
			p.addLocal(n.img, m)
		}
	}
	var configs, layers []Blob
	for _, h := range blobOrder {
		b := blobs[h]
		if _, isManifest := p.Manifests[h]; isManifest {
			// Already in the archive as a manifest; a blob entry would
			// write the same path twice.
			continue
		}
		switch {
		case b.blob.Config:
			configs = append(configs, b.blob)
		case !b.distributes && !opts.IncludeNonDistributable:
			p.Skipped = append(p.Skipped, b.blob)
		default:
			layers = append(layers, b.blob)
		}
	}
	byDigest := func(bs []Blob) {
		sort.Slice(bs, func(i, j int) bool { return bs[i].Digest.String() < bs[j].Digest.String() })
	}
	byDigest(configs)
	byDigest(layers)
	byDigest(p.Skipped)
	p.Blobs = append(configs, layers...)
	for _, b := range p.Blobs {
		p.TotalBytes += b.Size
	}
	for _, b := range p.Skipped {
		rep.Warnf("skipping non-distributable layer %s (%s, %d bytes) of %s", b.Digest, b.MediaType, b.Size, b.Image)
	}
	return p, nil
}

// maxCached bounds the blobs a Plan keeps in memory: thousands of images'
// configs (a few KiB each) and a few small bundle layers, not more.
const maxCached = 16 << 20

// openCached returns a reader of blob d when the plan holds its bytes.
func (p *Plan) openCached(d v1.Hash) (io.ReadCloser, bool) {
	b, ok := p.Cached[d]
	if !ok {
		return nil, false
	}
	return io.NopCloser(bytes.NewReader(b)), true
}

// referencedBlobs returns what a manifest points to: config and layers of an
// image, children of an index. Raw bytes in a Plan were parsed during
// Resolve, so a failure here means nothing is referenced.
func referencedBlobs(m Manifest) []v1.Hash {
	var out []v1.Hash
	switch {
	case m.MediaType.IsIndex():
		im, err := v1.ParseIndexManifest(bytes.NewReader(m.Raw))
		if err != nil {
			return nil
		}
		for _, d := range im.Manifests {
			out = append(out, d.Digest)
		}
	case m.MediaType.IsImage():
		mf, err := v1.ParseManifest(bytes.NewReader(m.Raw))
		if err != nil {
			return nil
		}
		out = append(out, mf.Config.Digest)
		for _, d := range mf.Layers {
			out = append(out, d.Digest)
		}
	}
	return out
}

// addLocal makes the config and layers of img, built locally, read from
// it rather than fetched.
func (p *Plan) addLocal(img v1.Image, m *v1.Manifest) {
	if p.local == nil {
		p.local = map[v1.Hash]func() (io.ReadCloser, error){}
	}
	p.local[m.Config.Digest] = func() (io.ReadCloser, error) {
		b, err := img.RawConfigFile()
		if err != nil {
			return nil, err
		}
		return io.NopCloser(bytes.NewReader(b)), nil
	}
	for _, l := range m.Layers {
		d := l.Digest
		p.local[d] = func() (io.ReadCloser, error) {
			layer, err := img.LayerByDigest(d)
			if err != nil {
				return nil, err
			}
			return layer.Compressed()
		}
	}
}
