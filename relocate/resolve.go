package relocate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/archive"
	"github.com/ferry-dev/ferry/internal/bundle"
	"github.com/ferry-dev/ferry/internal/parallel"
	"github.com/ferry-dev/ferry/internal/progress"
	"github.com/ferry-dev/ferry/internal/regerr"
	"github.com/ferry-dev/ferry/internal/registry"
	"github.com/ferry-dev/ferry/lock"
	"github.com/ferry-dev/ferry/tags"
)

// Resolution runs level by level (breadth-first): every manifest of a level
// is fetched concurrently, then the level is registered in its own order.
// Which repository a digest is taken from, and the order of Plan.Images, are
// therefore fixed by the content alone, never by which request finished
// first.

type wantKind int

const (
	wantRootBundle wantKind = iota // -b or a BundleLock: must be a bundle, lock followed
	wantRootImage                  // -i: copied as is
	wantLockImage                  // an image named in a lock
	wantChild                      // a manifest or index named by an index
	wantArtifact                   // a signature or referrer of an image above
)

// want is one reference to resolve at some level.
type want struct {
	ref      name.Reference
	digest   v1.Hash // zero for a root given by tag
	original string  // as written in the lock or on the command line
	tag      string  // roots only
	kind     wantKind
	// follow is set for lock images of a bundle: if they are bundles
	// themselves (nested bundles), their lock is followed too. Images of an
	// ImagesLock file are copied as they are.
	follow bool
	// lockedBy names the bundle, lock file or index that refers to ref,
	// for error messages.
	lockedBy string
	// bundleRepo is the repository of the bundle whose lock names ref, and
	// bundle its digest (zero for the images of a lock file).
	bundleRepo name.Repository
	bundle     v1.Hash
	// probe is the first image of that lock found elsewhere than in the
	// bundle's repository, whose presence there tells whether the bundle
	// was relocated (see checkRepo).
	probe v1.Hash
	// role, subject and sigKind describe an artifact (wantArtifact only).
	role    archive.Role
	subject v1.Hash
	sigKind string
	// local is the root when it was built here (Source.Local), not fetched.
	local v1.Image
}

func (w want) followsLock() bool {
	return w.kind == wantRootBundle || (w.kind == wantLockImage && w.follow)
}

// node is one resolved manifest or index.
type node struct {
	digest    v1.Hash
	source    name.Digest
	mediaType types.MediaType
	raw       []byte
	// Of the parsed manifest or index only what is asked for again and
	// again is kept; the rest is parsed from raw when needed (manifest,
	// index). Parsed, a manifest listing thousands of layers weighs
	// several times its bytes, and every manifest of a run is held until
	// the plan is made: maxManifestBytes bounds raw, and raw is all there
	// is to bound.
	isIndex bool
	// config is a manifest's config descriptor (digest, size, media type
	// and URLs only).
	config v1.Descriptor
	// subject is the digest of the subject the manifest or index names,
	// nil if none.
	subject *v1.Hash
	// repo is the repository source is read from, through the resolver's
	// registry.Client, which asks a registry how to authenticate once, not
	// once per repository as a remote.Puller does: under latency those
	// pings, one per locked image's repository, were most of resolving.
	repo *registry.Repo
	// img is the image of a root built locally (Source.Local); repo is
	// then nil.
	img v1.Image

	configChecked bool
	// configRaw is the config's bytes, read to check it (verified).
	configRaw []byte
	bundle    bool
	platform  *v1.Platform
	lockRead  bool
	lock      *lock.ImagesLock
	// layerRaw is a small bundle layer's bytes, read for its lock
	// (verified), nil for a larger one.
	layerRaw []byte

	childrenQueued bool
	lockQueued     bool
	// rejected is set when a want of it was refused (checkReferrer).
	rejected bool

	// via says where a lock image was found, for register to report.
	via lockSource
}

type resolver struct {
	puller *remote.Puller
	// client rereads what a dropped connection cut (Client.Reread).
	client   *registry.Client
	nameOpts []name.Option
	conc     int
	rep      progress.Reporter

	relocatedMu sync.Mutex
	relocated   map[v1.Hash]*repoCheck // by bundle digest
	saidFound   bool

	nodes map[v1.Hash]*node
	order []v1.Hash // nodes in the order they were resolved
	// held is the bytes of the manifests and indexes fetched so far,
	// counted as each arrives (concurrently), so that a run stops as soon
	// as they pass maxHeld (see Options.maxManifestBytes), not once a
	// level of thousands of them has been fetched.
	held       atomic.Int64
	maxHeld    int64
	images     map[v1.Hash]*Image
	imageOrder []v1.Hash
	root       *v1.Hash
	// imagesLock is the ImagesLock file given as the source, if any.
	imagesLock *lock.ImagesLock

	// artifactSubjects is how many images artifacts were looked for
	// beside, and artifactsFound how many of each role register took.
	artifactSubjects int
	artifactsFound   map[archive.Role]int
	// goneReferrers are manifests a referrers listing named that their
	// registry no longer has: register leaves them out with a warning.
	goneReferrers map[v1.Hash]bool
}

// job is the work one digest needs at one level.
type job struct {
	w           want
	n           *node // nil: the manifest must be fetched
	checkConfig bool
	readLock    bool
	result      *node
	// onlyReferrer: every want merged into the job is a listed referrer,
	// so that a manifest the registry lacks is left out, not an error.
	onlyReferrer bool
	// gone: the manifest was not found and onlyReferrer is set.
	gone bool
}

func (r *resolver) run(ctx context.Context, level []want) error {
	for depth := 0; len(level) > 0; depth++ {
		if depth > MaxNesting {
			// Each level is one step down: into an index, a bundle's
			// lock, an image's artifacts. The import of so deep a plan
			// would refuse it, and the walks of its head recurse.
			w := level[0]
			return fmt.Errorf("%s (named by %s) lies more than %d levels below the root (indexes within indexes, bundles locking bundles); refusing to read on", w.ref, w.lockedBy, MaxNesting)
		}
		jobs := r.jobsFor(level)
		err := parallel.ForEach(ctx, r.conc, len(jobs), func(ctx context.Context, i int) error {
			return r.do(ctx, jobs[i])
		})
		if err != nil {
			return err
		}
		var added []v1.Hash
		for _, j := range jobs {
			if j.gone {
				if r.goneReferrers == nil {
					r.goneReferrers = map[v1.Hash]bool{}
				}
				r.goneReferrers[j.w.digest] = true
			}
			if j.result != nil {
				if _, ok := r.nodes[j.result.digest]; !ok {
					r.nodes[j.result.digest] = j.result
					r.order = append(r.order, j.result.digest)
					added = append(added, j.result.digest)
				} else {
					// Fetched twice (two roots by tag): held once.
					r.held.Add(-int64(len(j.result.raw)))
				}
			}
		}
		next, err := r.register(level, jobs)
		if err != nil {
			return err
		}
		r.dropRejected(added)
		level = next
	}
	return nil
}

// dropRejected forgets the manifests fetched at a level, among added, that
// were fetched only for wants register refused (a listed referrer that is
// not one), so that the plan does not carry them.
func (r *resolver) dropRejected(added []v1.Hash) {
	drop := map[v1.Hash]bool{}
	for _, d := range added {
		if r.nodes[d].rejected && r.images[d] == nil {
			drop[d] = true
			r.held.Add(-int64(len(r.nodes[d].raw)))
			delete(r.nodes, d)
		}
	}
	if len(drop) == 0 {
		return
	}
	order := r.order[:0]
	for _, d := range r.order {
		if !drop[d] {
			order = append(order, d)
		}
	}
	r.order = order
}

// jobsFor merges the wants of a level into at most one job per digest,
// skipping work already done at an earlier level.
func (r *resolver) jobsFor(level []want) []*job {
	var jobs []*job
	byDigest := map[v1.Hash]*job{}
	for _, w := range level {
		needConfig := w.kind != wantChild && w.kind != wantArtifact
		needLock := w.followsLock()
		referrer := w.role == archive.RoleReferrer
		if w.digest == (v1.Hash{}) {
			jobs = append(jobs, &job{w: w, checkConfig: needConfig, readLock: needLock})
			continue
		}
		if j, ok := byDigest[w.digest]; ok {
			j.checkConfig = j.checkConfig || needConfig
			j.readLock = j.readLock || needLock
			j.onlyReferrer = j.onlyReferrer && referrer
			continue
		}
		n := r.nodes[w.digest]
		if n != nil && n.done(needConfig, needLock) {
			continue
		}
		j := &job{w: w, n: n, checkConfig: needConfig, readLock: needLock, onlyReferrer: referrer}
		byDigest[w.digest] = j
		jobs = append(jobs, j)
	}
	return jobs
}

// done reports whether n already has what a want needs.
func (n *node) done(needConfig, needLock bool) bool {
	if n.isIndex {
		return true // indexes have no config and are never bundles
	}
	if needConfig && !n.configChecked {
		return false
	}
	if needLock && !n.lockRead && (!n.configChecked || n.bundle) {
		return false
	}
	return true
}

// do runs one job. It only touches its own node, so jobs of a level run
// in parallel without locks.
func (r *resolver) do(ctx context.Context, j *job) error {
	w := j.w
	n := j.n
	if w.local != nil && n == nil {
		var err error
		if n, err = newLocalNode(w.local, w.ref); err != nil {
			return wantError(w, err)
		}
		if err := r.hold(w, n.raw); err != nil {
			return err
		}
		j.result = n
	} else if n == nil {
		m, src, via, err := r.fetch(ctx, w)
		if err != nil && j.onlyReferrer && regerr.IsManifestNotFound(err) {
			// A listing is the registry's word, and a referrer deleted
			// since (or an index entry anyone can tag) does not make
			// the image it is about any less carriable.
			j.gone = true
			return nil
		}
		if err != nil {
			return wantError(w, err)
		}
		if err := r.hold(w, m.raw); err != nil {
			return err
		}
		n, err = newNode(m, src)
		if err != nil {
			return wantError(w, err)
		}
		n.via = via
		j.result = n
	}
	if err := checkRootTag(w, n.digest); err != nil {
		// Before its config and layer are read.
		return wantError(w, err)
	}
	if n.isIndex {
		return nil
	}
	if (j.checkConfig || j.readLock) && !n.configChecked {
		img, err := n.image(ctx)
		if err != nil {
			return wantError(w, err)
		}
		if isImageConfig(n.config.MediaType) {
			// Bounded before it is fetched: a registry named by a lock
			// may declare a config of any size.
			var cfg *v1.ConfigFile
			var raw []byte
			err := r.reread(ctx, "config of "+n.source.String(), func() (err error) {
				cfg, raw, err = bundle.ReadConfigRaw(img, "image "+n.source.String())
				return err
			})
			if err != nil {
				return wantError(w, err)
			}
			n.configRaw = raw
			n.bundle = bundle.IsBundle(cfg)
			if cfg.OS != "" || cfg.Architecture != "" {
				p := cfg.Platform()
				n.platform = p
			}
		}
		n.configChecked = true
	}
	if j.readLock && n.bundle && !n.lockRead {
		img, err := n.image(ctx)
		if err != nil {
			return wantError(w, err)
		}
		var l *lock.ImagesLock
		var raw []byte
		err = r.reread(ctx, "images.yml of "+n.source.String(), func() (err error) {
			l, raw, err = bundle.ReadImagesLockKeep(img, n.source.String())
			if _, ok := errors.AsType[*bundle.ContentError](err); ok {
				// In the bytes, not the connection: no new attempt.
				err = registry.Permanent(err)
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("read .imgpkg/images.yml of bundle %s: %w", w.original, err)
		}
		n.lock = l
		n.layerRaw = raw
		n.lockRead = true
	}
	return nil
}

// hold counts n's bytes among those the run holds, and refuses them past
// the budget: a lock may name some 20,000 images and an index as many
// children, each manifest up to archive.DefaultMaxManifestSize, which
// would take tens of GiB of memory from a hostile (or broken) source.
func (r *resolver) hold(w want, raw []byte) error {
	held := r.held.Add(int64(len(raw)))
	if held <= r.maxHeld {
		return nil
	}
	return &heldError{max: r.maxHeld, at: w.original, lockedBy: w.lockedBy}
}

// namedCost is what naming a manifest costs before it is fetched (the want
// and job that carry it, about a KiB), counted by name against the budget
// hold keeps: an index or a referrers listing names manifests by the
// hundred thousand in a few MB, which once took gigabytes before one of
// them was fetched. A release of 10,000 images of a few platforms and
// referrers each names some 100,000: 50 MB of the 256 MiB.
const namedCost = 512

// name counts w, a manifest named and not yet fetched, against the budget
// hold keeps, and refuses it past the budget.
func (r *resolver) name(w want) error {
	if r.held.Add(namedCost) <= r.maxHeld {
		return nil
	}
	return &heldError{max: r.maxHeld, at: w.original, lockedBy: w.lockedBy, named: true}
}

// heldError is a run stopped by hold; Resolve names its source in front.
type heldError struct {
	max          int64
	at, lockedBy string
	// named: the budget ran out on manifests named (by an index or a
	// referrers listing), none of them fetched yet.
	named bool
}

func (e *heldError) Error() string {
	at := e.at
	if e.lockedBy != "" {
		at += " (locked by " + e.lockedBy + ")"
	}
	if e.named {
		return fmt.Sprintf("it names more manifests than ferry holds while resolving (%d bytes counted for each, %s in all, the most an archive's head may carry) when %s lists %s; "+
			"split it into smaller bundles or lock files", namedCost, progress.Bytes(e.max), e.lockedBy, e.at)
	}
	return fmt.Sprintf("its manifests and indexes come to more than %s (%d bytes) in all, the most ferry holds while resolving and the most an archive's head may carry, when %s is fetched; "+
		"split it into smaller bundles or lock files", progress.Bytes(e.max), e.max, at)
}

// wantError names the reference that failed and what refers to it.
func wantError(w want, err error) error {
	if _, ok := errors.AsType[*regerr.NotFoundError](err); ok {
		return err
	}
	if regerr.IsManifestNotFound(err) {
		return wantNotFound(w, err)
	}
	switch w.kind {
	case wantRootBundle:
		return fmt.Errorf("resolve bundle %s: %w", w.original, err)
	case wantRootImage:
		return fmt.Errorf("resolve image %s: %w", w.original, err)
	default:
		return fmt.Errorf("resolve %s (locked by %s): %w", w.original, w.lockedBy, err)
	}
}

// wantNotFound says in plain words that the registry has no manifest for
// w, wrapping its answer.
func wantNotFound(w want, err error) error {
	switch w.kind {
	case wantRootBundle:
		return regerr.NotFound("bundle", w.ref, "", err)
	case wantRootImage:
		return regerr.NotFound("image", w.ref, "", err)
	default:
		return regerr.NotFound("image", w.ref, w.lockedBy, err)
	}
}

func isImageConfig(mt types.MediaType) bool {
	return mt == types.DockerConfigJSON || mt == types.OCIConfigJSON
}

// fetch gets the manifest a want names and checks that a digest reference
// got exactly that digest.
func (r *resolver) fetch(ctx context.Context, w want) (*fetched, name.Digest, lockSource, error) {
	if w.kind == wantLockImage {
		d, ok := w.ref.(name.Digest)
		if !ok {
			return nil, name.Digest{}, 0, fmt.Errorf("%s is not a digest reference", w.ref)
		}
		return r.resolveLockImage(ctx, w, d)
	}
	m, err := r.get(ctx, w.ref)
	if err != nil {
		return nil, name.Digest{}, 0, err
	}
	if w.digest != (v1.Hash{}) && m.digest != w.digest {
		return nil, name.Digest{}, 0, fmt.Errorf("registry returned manifest %s for %s", m.digest, w.ref)
	}
	return m, w.ref.Context().Digest(m.digest.String()), viaOriginal, nil
}

// lockSource is where a lock image was found.
type lockSource int

const (
	// viaOriginal: at the reference the lock names, the bundle not being
	// relocated (or the image being in the bundle's repository anyway).
	viaOriginal lockSource = iota
	// viaBundleRepo: in the bundle's repository, the lock naming another.
	viaBundleRepo
	// viaFallback: at the reference the lock names, although the bundle
	// was relocated (it has an image-locations image) and the image should
	// have been in its repository.
	viaFallback
)

// repoCheck is what one look at a bundle's repository says about where the
// images its lock names are, asked once per bundle.
type repoCheck struct {
	once sync.Once
	// located: the bundle's image-locations image is there, so imgpkg or
	// ferry relocated the bundle, and its images, into the repository.
	located bool
	// holds: the repository holds the lock's probe image (its first image
	// locked elsewhere), so the bundle was relocated there, by a tool that
	// writes no image-locations image (an older imgpkg, crane, skopeo).
	holds bool
}

// relocated reports whether the bundle's images are looked for in its
// repository first.
func (c *repoCheck) relocated() bool { return c.located || c.holds }

// checkRepo looks at a bundle's repository once: a HEAD of its
// image-locations tag and, if there is none, a HEAD of the lock's probe
// image there. The probe is fixed by the lock, never by which request comes
// first, so the plan is the same at any concurrency.
func (r *resolver) checkRepo(ctx context.Context, w want) *repoCheck {
	r.relocatedMu.Lock()
	c := r.relocated[w.bundle]
	if c == nil {
		c = &repoCheck{}
		r.relocated[w.bundle] = c
	}
	r.relocatedMu.Unlock()
	c.once.Do(func() {
		repo, err := r.client.Repo(ctx, w.bundleRepo, registry.Access{})
		if err != nil {
			return // neither can be seen: the lock's references are used
		}
		if d, err := repo.ManifestDescriptor(ctx, tags.ImageLocations(w.bundle)); err == nil && d != nil {
			c.located = true
			return
		}
		if w.probe != (v1.Hash{}) {
			d, err := repo.ManifestDescriptor(ctx, w.probe.String())
			c.holds = err == nil && d != nil
		}
	})
	return c
}

// resolveLockImage is the one place a lock image is looked up. A bundle
// that was relocated (imported or copied into its repository) still names
// its images' original locations, which a second hop across an air gap
// cannot reach; as imgpkg does, its images are taken from the bundle's own
// repository, by digest, and only if one is missing there from the
// reference the lock names. A bundle counts as relocated when its
// image-locations image is there (imgpkg, ferry; a fallback to the
// original reference is then warned about), or when the repository holds
// the first image its lock names elsewhere (other tools).
//
// Any other bundle was pushed where it is: its images are taken from their
// original references, and from the bundle's repository only if that fails
// (an image copied there by hand). That costs two requests per bundle where
// imgpkg asks the repository for every image, and both orders give the same
// bytes (every digest is checked).
func (r *resolver) resolveLockImage(ctx context.Context, w want, ref name.Digest) (*fetched, name.Digest, lockSource, error) {
	if w.bundle == (v1.Hash{}) || ref.Context().String() == w.bundleRepo.String() {
		desc, err := r.getDigest(ctx, ref)
		return desc, ref, viaOriginal, err
	}
	c := r.checkRepo(ctx, w)
	inRepo := w.bundleRepo.Digest(ref.DigestStr())
	var inErr error
	if c.relocated() {
		desc, err := r.getDigest(ctx, inRepo)
		if err == nil {
			return desc, inRepo, viaBundleRepo, nil
		}
		inErr = err
	}
	desc, err := r.getDigest(ctx, ref)
	switch {
	case err == nil && c.located:
		return desc, ref, viaFallback, nil
	case err == nil:
		return desc, ref, viaOriginal, nil
	case inErr != nil && regerr.IsManifestNotFound(inErr) && regerr.IsManifestNotFound(err):
		return nil, name.Digest{}, 0, &regerr.NotFoundError{What: "image", Ref: ref, LockedBy: w.lockedBy,
			Elsewhere: "the repository " + w.bundleRepo.String() + " the bundle was relocated to", Err: err}
	case inErr != nil:
		return nil, name.Digest{}, 0, fmt.Errorf("not in the repository %s the bundle was relocated to (%v), nor at its original reference: %w", w.bundleRepo, inErr, err)
	}
	// Not asked yet: the image may sit in the bundle's repository, put
	// there by hand or by another tool.
	if desc, inErr := r.getDigest(ctx, inRepo); inErr == nil {
		return desc, inRepo, viaBundleRepo, nil
	}
	return nil, name.Digest{}, 0, err
}

// fetched is a manifest or index as a registry served it.
type fetched struct {
	raw       []byte
	mediaType types.MediaType
	digest    v1.Hash // of raw
	repo      *registry.Repo
}

// get fetches the manifest ref names, again if a dropped connection cut it.
func (r *resolver) get(ctx context.Context, ref name.Reference) (*fetched, error) {
	repo, err := r.client.Repo(ctx, ref.Context(), registry.Access{})
	if err != nil {
		return nil, err
	}
	m := &fetched{repo: repo}
	// One byte more than a manifest may have, so that newNode names the
	// size of one that is too large.
	err = r.reread(ctx, "manifest "+ref.String(), func() (err error) {
		m.raw, m.mediaType, m.digest, err = repo.GetManifest(ctx, ref.Identifier(), archive.DefaultMaxManifestSize+1)
		return err
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// reread runs read, a whole fetch of what (a manifest, a config, a bundle's
// images.yml), again when a dropped connection cut it part way: the
// transport's retries end once a response's headers have arrived.
func (r *resolver) reread(ctx context.Context, what string, read func() error) error {
	return r.client.Reread(ctx, read, func(attempt, attempts int, err error) {
		r.rep.Warnf("%s: %v; reading it again (attempt %d of %d)", what, err, attempt, attempts)
	})
}

// getDigest fetches ref and checks the registry served that digest.
func (r *resolver) getDigest(ctx context.Context, ref name.Digest) (*fetched, error) {
	m, err := r.get(ctx, ref)
	if err != nil {
		return nil, err
	}
	if m.digest.String() != ref.DigestStr() {
		return nil, fmt.Errorf("registry returned manifest %s for %s", m.digest, ref)
	}
	return m, nil
}

// image returns the node's image (a manifest, not an index), whose blobs
// are read with ctx: a node found at an earlier level is read again at a
// later one, with that level's context, without fetching its manifest
// again.
func (n *node) image(ctx context.Context) (v1.Image, error) {
	if n.img != nil {
		return n.img, nil
	}
	return partial.CompressedToImage(&repoImage{ctx: ctx, n: n})
}

// repoImage is the image of a node, its blobs read from the node's
// repository.
type repoImage struct {
	ctx context.Context
	n   *node
}

// RawManifest implements partial.CompressedImageCore.
func (i *repoImage) RawManifest() ([]byte, error) { return i.n.raw, nil }

// MediaType implements partial.CompressedImageCore.
func (i *repoImage) MediaType() (types.MediaType, error) { return i.n.mediaType, nil }

// RawConfigFile implements partial.CompressedImageCore with
// bundle.ReadConfigRaw, which reads the config through ConfigLayer: no
// more than bundle.MaxConfigSize, checked against its size and digest,
// whoever asks (go-containerregistry's ConfigFile among them).
func (i *repoImage) RawConfigFile() ([]byte, error) {
	img, err := partial.CompressedToImage(i)
	if err != nil {
		return nil, err
	}
	_, raw, err := bundle.ReadConfigRaw(img, "image "+i.n.source.String())
	return raw, err
}

// ConfigLayer lets partial.ConfigLayer stream the config from the
// registry.
func (i *repoImage) ConfigLayer() (v1.Layer, error) {
	return partial.CompressedToLayer(i.blob(i.n.config))
}

// LayerByDigest implements partial.CompressedImageCore.
func (i *repoImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if h == i.n.config.Digest {
		return i.blob(i.n.config), nil
	}
	m, err := i.n.manifest()
	if err != nil {
		return nil, err
	}
	for _, l := range m.Layers {
		if l.Digest == h {
			return i.blob(l), nil
		}
	}
	return nil, fmt.Errorf("manifest %s has no blob %s", i.n.digest, h)
}

func (i *repoImage) blob(d v1.Descriptor) *repoBlob {
	return &repoBlob{ctx: i.ctx, repo: i.n.repo, d: d}
}

// repoBlob is one blob of a repository, as its descriptor declares it; its
// reader checks the bytes against the descriptor's size and digest as they
// end, as go-containerregistry's remote layers do: a bundle layer too large
// to keep is streamed (bundle.ReadImagesLock) and read from that alone.
type repoBlob struct {
	ctx  context.Context
	repo *registry.Repo
	d    v1.Descriptor
}

// Digest implements partial.CompressedLayer.
func (b *repoBlob) Digest() (v1.Hash, error) { return b.d.Digest, nil }

// Size implements partial.CompressedLayer.
func (b *repoBlob) Size() (int64, error) { return b.d.Size, nil }

// MediaType implements partial.CompressedLayer.
func (b *repoBlob) MediaType() (types.MediaType, error) { return b.d.MediaType, nil }

// Compressed implements partial.CompressedLayer.
func (b *repoBlob) Compressed() (io.ReadCloser, error) {
	rc, err := b.repo.GetBlob(b.ctx, b.d.Digest)
	if err != nil {
		return nil, err
	}
	return newDigestReader(rc, b.d.Digest, b.d.Size, b.repo.Name().String()+"@"+b.d.Digest.String()), nil
}

// newLocalNode is the node of a root built locally, which will have the
// reference ref.
func newLocalNode(img v1.Image, ref name.Reference) (*node, error) {
	raw, err := img.RawManifest()
	if err != nil {
		return nil, err
	}
	d, err := img.Digest()
	if err != nil {
		return nil, err
	}
	mt, err := img.MediaType()
	if err != nil {
		return nil, err
	}
	n := &node{digest: d, source: ref.Context().Digest(d.String()), mediaType: mt, raw: raw, img: img}
	m, err := n.manifest()
	if err != nil {
		return nil, err
	}
	n.summarize(m.Config, m.Subject)
	return n, nil
}

// manifest parses the node's manifest again: only its bytes are held.
func (n *node) manifest() (*v1.Manifest, error) {
	m, err := v1.ParseManifest(bytes.NewReader(n.raw))
	if err != nil {
		return nil, fmt.Errorf("parse manifest %s: %w", n.digest, err)
	}
	return m, nil
}

// index parses the node's index again: only its bytes are held.
func (n *node) index() (*v1.IndexManifest, error) {
	m, err := v1.ParseIndexManifest(bytes.NewReader(n.raw))
	if err != nil {
		return nil, fmt.Errorf("parse index %s: %w", n.digest, err)
	}
	return m, nil
}

// summarize keeps what is asked of a parsed manifest or index often.
func (n *node) summarize(config v1.Descriptor, subject *v1.Descriptor) {
	n.config = v1.Descriptor{MediaType: config.MediaType, Size: config.Size, Digest: config.Digest, URLs: config.URLs}
	if subject != nil {
		d := subject.Digest
		n.subject = &d
	}
}

func newNode(desc *fetched, src name.Digest) (*node, error) {
	// go-containerregistry reads up to 100 MiB of a manifest (ferry's
	// registry transport stops at 4 MiB); an archive holds none above
	// archive.DefaultMaxManifestSize, distribution's limit too.
	if len(desc.raw) > archive.DefaultMaxManifestSize {
		return nil, fmt.Errorf("manifest %s is %d bytes; a manifest may have at most %d", desc.digest, len(desc.raw), archive.DefaultMaxManifestSize)
	}
	n := &node{digest: desc.digest, source: src, mediaType: desc.mediaType, raw: desc.raw, repo: desc.repo}
	switch {
	case desc.mediaType.IsImage():
		m, err := n.manifest()
		if err != nil {
			return nil, err
		}
		n.summarize(m.Config, m.Subject)
	case desc.mediaType.IsIndex():
		m, err := n.index()
		if err != nil {
			return nil, err
		}
		n.isIndex = true
		n.summarize(v1.Descriptor{}, m.Subject)
	case desc.mediaType.IsSchema1():
		return nil, fmt.Errorf("manifest %s is Docker schema 1 (%s), which cannot be relocated by digest", desc.digest, desc.mediaType)
	default:
		return nil, fmt.Errorf("manifest %s has unsupported media type %q", desc.digest, desc.mediaType)
	}
	return n, nil
}

// register records the Images of a level and returns the next level.
func (r *resolver) register(level []want, jobs []*job) ([]want, error) {
	// A root given by tag has no digest until it is fetched.
	rootDigest := func(w want) v1.Hash {
		if w.digest != (v1.Hash{}) {
			return w.digest
		}
		for _, j := range jobs {
			if j.w.ref == w.ref && j.result != nil {
				return j.result.digest
			}
		}
		return v1.Hash{}
	}
	var next []want
	for _, w := range level {
		d := rootDigest(w)
		n := r.nodes[d]
		if n == nil && w.role == archive.RoleReferrer && r.goneReferrers[d] {
			r.rep.Warnf("%s lists %s, which %s does not have (not found); leaving it out", w.lockedBy, d, w.ref.Context())
			continue
		}
		if n == nil {
			return nil, wantError(w, errors.New("not resolved")) // unreachable: do() fetched it
		}
		if w.kind == wantRootBundle {
			if n.isIndex {
				return nil, fmt.Errorf("%s is an image index (%s), not a bundle; use -i to carry it as an image", w.original, n.mediaType)
			}
			if !n.bundle {
				return nil, fmt.Errorf("%s is not a bundle (its config has no %s label); use -i to carry it as an image", w.original, bundle.LabelKey)
			}
		}
		if w.kind == wantLockImage {
			r.reportVia(w, n)
		}
		if w.kind == wantArtifact {
			if !r.checkReferrer(w, n) {
				continue
			}
			r.artifactsFound[w.role]++
			// An artifact that is already in the plan (as an image, or
			// as the artifact of another subject) travels once, under
			// its first role.
			if r.images[d] == nil {
				im, err := artifactImage(w, n, d)
				if err != nil {
					return nil, wantError(w, err)
				}
				r.images[d] = im
				r.imageOrder = append(r.imageOrder, d)
			}
		} else if w.kind != wantChild {
			im := r.images[d]
			if im == nil {
				platforms, children, err := n.entryOf()
				if err != nil {
					return nil, wantError(w, err)
				}
				im = &Image{
					Digest:      d,
					MediaType:   n.mediaType,
					Size:        int64(len(n.raw)),
					Role:        roleOf(w, n),
					OriginalRef: w.original,
					Tag:         w.tag,
					Source:      n.source,
					Platforms:   platforms,
					Children:    children,
				}
				r.images[d] = im
				r.imageOrder = append(r.imageOrder, d)
				if w.kind == wantRootBundle || w.kind == wantRootImage {
					dd := d
					r.root = &dd
				}
			}
			if w.followsLock() && n.bundle && n.lock != nil && !n.lockQueued {
				im.Lock = n.lock
				n.lockQueued = true
				// A bundle built here has never been in its repository:
				// its images are where its lock says.
				repo, bundleDigest := n.source.Context(), d
				if n.img != nil {
					repo, bundleDigest = name.Repository{}, v1.Hash{}
				}
				ws, err := r.lockWants(n.lock, repo, bundleDigest, "bundle "+w.original)
				if err != nil {
					return nil, err
				}
				for i := range ws {
					ws[i].follow = true
				}
				next = append(next, ws...)
			}
		}
		if n.isIndex && !n.childrenQueued {
			n.childrenQueued = true
			idx, err := n.index()
			if err != nil {
				return nil, wantError(w, err)
			}
			by := "index " + w.original // one string for every child
			for _, c := range idx.Manifests {
				if !c.MediaType.IsImage() && !c.MediaType.IsIndex() {
					continue
				}
				if c.Size < 0 || c.Size > archive.DefaultMaxManifestSize {
					return nil, fmt.Errorf("index %s names manifest %s of %d bytes; a manifest may have at most %d", w.original, c.Digest, c.Size, archive.DefaultMaxManifestSize)
				}
				ref := n.source.Context().Digest(c.Digest.String())
				cw := want{
					ref:      ref,
					digest:   c.Digest,
					original: ref.String(),
					kind:     wantChild,
					lockedBy: by,
				}
				if err := r.name(cw); err != nil {
					return nil, err
				}
				next = append(next, cw)
			}
		}
	}
	return next, nil
}

// checkRootTag refuses a root whose tag, written last at the destination,
// has the shape of a tag that names some manifest by its digest
// (sha256-<hex>.imgpkg, a locations tag, cosign's, the referrers tag schema's sha256-<hex>): an import refuses such
// an archive (refuseBookkeeping), so it is refused here, the same way,
// before anything is downloaded. Only a .imgpkg tag of the root's own
// digest, plain or repo-based, names the root already: writing it there
// moves nothing. The error wraps tags.ErrBookkeeping.
func checkRootTag(w want, d v1.Hash) error {
	if (w.kind != wantRootBundle && w.kind != wantRootImage) || w.tag == "" || !tags.NamesADigest(w.tag) || tags.IsImgpkgOf(w.tag, d) {
		return nil
	}
	return fmt.Errorf("its tag %q is %w (sha256-<hex>.imgpkg, a locations tag, cosign's, the referrers tag schema's sha256-<hex>) of the manifest its digest names, not of %s: written last at the destination, it would move onto %s and leave what it tags unprotected, so an import refuses it; give the root by digest or by another tag", w.tag, tags.ErrBookkeeping, d, d)
}

// reportVia says, in plan order, when the images of a relocated bundle
// were found in its repository (once) and each time one had to be taken
// from its original reference instead.
func (r *resolver) reportVia(w want, n *node) {
	switch n.via {
	case viaBundleRepo:
		if !r.saidFound {
			r.saidFound = true
			r.rep.Logf("%s was relocated: its images (and those of any relocated bundle it locks) are read from its repository %s, not from the original locations its images.yml names", w.lockedBy, w.bundleRepo)
		}
	case viaFallback:
		r.rep.Warnf("image %s (locked by %s) is not in the repository %s the bundle was relocated to; using its original reference", w.original, w.lockedBy, w.bundleRepo)
	}
}

func roleOf(w want, n *node) archive.Role {
	switch {
	case w.kind == wantRootBundle:
		return archive.RoleBundle
	case w.followsLock() && n.bundle:
		return archive.RoleNestedBundle
	default:
		return archive.RoleImage
	}
}

// entryOf returns the platforms of an image (its config's) or of an
// index (its children's), and an index's children.
func (n *node) entryOf() ([]v1.Platform, []v1.Hash, error) {
	if !n.isIndex {
		if n.platform != nil {
			return []v1.Platform{*n.platform}, nil, nil
		}
		return nil, nil, nil
	}
	idx, err := n.index()
	if err != nil {
		return nil, nil, err
	}
	var ps []v1.Platform
	var cs []v1.Hash
	for _, c := range idx.Manifests {
		if c.Platform != nil {
			ps = append(ps, *c.Platform)
		}
		if c.MediaType.IsImage() || c.MediaType.IsIndex() {
			cs = append(cs, c.Digest)
		}
	}
	return ps, cs, nil
}
