package relocate

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferry-dev/ferry/archive"
	"github.com/ferry-dev/ferry/internal/atomicfile"
	"github.com/ferry-dev/ferry/internal/bundle"
	"github.com/ferry-dev/ferry/internal/parallel"
	"github.com/ferry-dev/ferry/internal/progress"
	"github.com/ferry-dev/ferry/internal/registry"
	"github.com/ferry-dev/ferry/lock"
	"github.com/ferry-dev/ferry/tags"
)

// Import and Copy differ only in how configs and layers reach the
// destination (from an archive's stream, or from the source registries).
// Everything else is this one commit phase: which blobs and manifests are
// there already, the manifests PUT children first, the ".imgpkg" tags, the
// image-locations images, the root's original tag last, and the lock output.

// DestinationOptions are the settings an import and a copy share: how they
// reach the destination and what they write there (the commit phase).
type DestinationOptions struct {
	// Remote is passed to the registry calls made through
	// go-containerregistry (tag listing, manifests with a subject).
	Remote []remote.Option
	// Client makes every other request, to the destination and, for a
	// copy, to the sources; nil means a registry.Client with the Docker
	// config's credentials and go-containerregistry's default transport.
	Client *registry.Client
	// Name is used to parse the original references (for RepoBasedTags)
	// and tags.
	Name []name.Option
	// Concurrency bounds the registry requests made at once; 0 means
	// DefaultImportConcurrency (the destination's round trips dominate).
	Concurrency int
	// RepoBasedTags gives lock images and bundles the tag
	// "<source path>-sha256-<hex>.imgpkg" instead of "sha256-<hex>.imgpkg"
	// (imgpkg's --repo-based-tags); the path is that of the original
	// reference, never the destination's.
	RepoBasedTags bool
	// DryRun checks the destination and reports what would be sent and
	// tagged, and changes nothing.
	DryRun bool
	// NoMount forbids taking a delta archive's left-out blobs from other
	// repositories of the destination's registry, which the archive names
	// (mounted, or read there and uploaded): those the destination lacks
	// fail the import before any write, as when no repository holds them.
	// A copy's mounts from its own sources are not concerned.
	NoMount bool
	// LockOutput, when set, is a file that receives, as imgpkg's copy
	// writes it, a BundleLock naming the root bundle at its new home, or,
	// without a root bundle, an ImagesLock naming the images there (the
	// ImagesLock file a copy was given, relocated); written atomically,
	// after the root tag.
	LockOutput string
	// Reporter receives progress; nil discards it.
	Reporter progress.Reporter
}

// client returns Client, or the default one.
func (o DestinationOptions) client() *registry.Client {
	if o.Client != nil {
		return o.Client
	}
	return registry.New(registry.Options{})
}

// destination is the repository an import or a copy writes into, with the
// plan of what it must hold.
type destination struct {
	repo   name.Repository
	opts   DestinationOptions
	conc   int
	rep    progress.Reporter
	client *registry.Client
	reg    *registry.Repo
	pull   *remote.Puller
	push   *remote.Pusher
	head   *importHead
	// blob reads a config or layer of the plan for the commit phase (a
	// bundle's layer, for its locations image): from the archive when the
	// mover has it at hand, otherwise from the destination once uploaded.
	blob func(ctx context.Context, d v1.Hash) (io.ReadCloser, error)
	// blobLocal says that blob reads the archive, which holds every blob.
	blobLocal bool

	blobPresent map[v1.Hash]bool
	// checkInMove says that the mover asks repo about each blob the probe
	// left unchecked as it moves the blobs (headAhead, alreadyThere), so
	// that uploads start without waiting for every blob's HEAD. Not in a
	// dry run, which moves nothing.
	checkInMove bool
	// unchecked are the blobs the probe left to the mover; found, those
	// of them repo turned out to have (under foundMu: the mover runs
	// them at once).
	unchecked map[v1.Hash]bool
	foundMu   sync.Mutex
	found     map[v1.Hash]bool
	// mounted are the blobs a copy mounted from their source repository
	// instead of sending them, and the left-out blobs of a delta mounted
	// from another repository (under foundMu); in a dry run, those it
	// would try to mount (wouldMount, checkDelta).
	mounted map[v1.Hash]bool
	// wouldMount, set by a copy, says whether its mover would try to mount
	// blob d rather than send it: a dry run counts those as to mount.
	wouldMount func(d v1.Hash) bool
	// ahead are the answers of the HEADs headAhead sends ahead of the
	// mover (under foundMu).
	ahead map[v1.Hash]*headAnswer
	// elsewhere are the left-out blobs a dry run found at their mount
	// source and did not mount: a bundle's layer among them is read there.
	elsewhere       map[v1.Hash]name.Repository
	manifestPresent map[v1.Hash]bool
	// existing are the tags of the repository before anything is written.
	existing map[string]bool
	// leftOutSent are the left-out blobs checkDelta sent, read from where
	// they are, as the registry would not mount them: in repo now
	// (blobPresent), they count as uploaded.
	leftOutSent map[v1.Hash]bool
}

// newDestination checks what can be checked before anything is changed
// and prepares the registry clients.
func newDestination(ctx context.Context, repo name.Repository, head *importHead, opts DestinationOptions) (*destination, error) {
	dst := &destination{
		repo:   repo,
		opts:   opts,
		conc:   opts.Concurrency,
		rep:    progress.OrNop(opts.Reporter),
		head:   head,
		client: opts.client(),
	}
	if dst.conc <= 0 {
		dst.conc = DefaultImportConcurrency
	}
	if err := dst.check(); err != nil {
		return nil, err
	}
	var err error
	if dst.pull, err = remote.NewPuller(opts.Remote...); err != nil {
		return nil, err
	}
	if dst.push, err = remote.NewPusher(opts.Remote...); err != nil {
		return nil, err
	}
	// The repository's tags (the probe's first question) are listed
	// through go-containerregistry, which authenticates on its own, while
	// the Client authenticates: each asks the registry how (a round trip
	// or more, a token maybe), and they need not wait for each other.
	access := registry.Access{Push: !opts.DryRun}
	listCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var listErr error
	var wg sync.WaitGroup
	wg.Go(func() { dst.existing, listErr = importListTags(listCtx, dst.pull, repo) })
	dst.reg, err = dst.client.Repo(ctx, repo, access)
	if err != nil {
		cancel()
	}
	wg.Wait()
	if err != nil {
		return nil, err
	}
	if listErr != nil {
		return nil, listErr
	}
	dst.blob = dst.blobFromDestination
	return dst, nil
}

// warnRetry tells the user when an upload of blob d is tried again.
func (dst *destination) warnRetry(d v1.Hash) registry.UploadOption {
	return registry.OnRetry(func(attempt, attempts int, err error) {
		dst.rep.Warnf("upload of blob %s to %s failed (%v); sending it again in a new session (attempt %d of %d)", d, dst.repo, err, attempt, attempts)
	})
}

// blobFromDestination reads blob d back from the destination, verified:
// from the repository it would be mounted from when a dry run left it
// there.
func (dst *destination) blobFromDestination(ctx context.Context, d v1.Hash) (io.ReadCloser, error) {
	reg, repo := dst.reg, dst.repo
	if from, ok := dst.elsewhere[d]; ok {
		var err error
		if reg, err = dst.client.Repo(ctx, from, registry.Access{}); err != nil {
			return nil, err
		}
		repo = from
	}
	rc, err := reg.GetBlob(ctx, d)
	if err != nil {
		return nil, err
	}
	return newDigestReader(rc, d, dst.head.blobSize[d], repo.Name()+"@"+d.String()), nil
}

// blobMover puts the configs and layers dst lacks (those not in
// dst.blobPresent) into dst, asking dst.alreadyThere first about each when
// it sets dst.checkInMove. It may record in res what only it knows
// (mounts); the upload counts are already set (and counted again after it,
// with the blobs it found there).
type blobMover func(ctx context.Context, dst *destination, res *ImportResult) error

// commit runs the whole move: it checks what repo has, then (unless in a
// dry run) calls move under a progress phase of the given name, then PUTs
// the manifests, writes the tags with the root tag last, and the lock
// output. It logs each manifest and tag it writes, and nothing more: the
// summary says what was already in place and where the root landed.
func (dst *destination) commit(ctx context.Context, phase string, move blobMover) (*ImportResult, error) {
	head := dst.head
	res := &ImportResult{Repository: dst.repo.Name(), Images: len(head.entries), DryRun: dst.opts.DryRun}
	if root := head.root; root != nil {
		res.Root = dst.digestRef(root.digest)
		res.Tag = root.Tag
	}
	imgpkg, originals, err := dst.entryTags()
	if err != nil {
		return nil, err
	}
	// What the tags point at before anything is written, so that the
	// result says truly which were created, moved or left alone; the
	// probe reads it on the way.
	names := tagNames(imgpkg, originals)
	for _, b := range head.bundles() {
		names = append(names, tags.ImageLocations(b.digest))
	}
	cur, err := dst.probe(ctx, imgpkg, names)
	if err != nil {
		return nil, err
	}
	if err := dst.checkDelta(ctx, res); err != nil {
		return nil, err
	}
	if dst.opts.DryRun && dst.wouldMount != nil {
		for _, b := range head.blobs {
			if !dst.blobPresent[b.Digest] && dst.wouldMount(b.Digest) {
				dst.markMounted(b.Digest)
			}
		}
	}
	missing := dst.countBlobs(res)
	for d := range head.manifests {
		if dst.manifestPresent[d] {
			res.ManifestsPresent++
		} else {
			res.ManifestsPushed++
		}
	}

	if dst.opts.DryRun {
		res.Tags, res.Unchecked, err = dst.dryRunTags(ctx, imgpkg, originals, cur)
		if err != nil {
			return nil, err
		}
		return res, nil
	}

	dst.rep.Start(phase, missing)
	defer dst.rep.Done()
	// Every bundle's locations image, from its images.yml, and verify's
	// rule before any tag: every image a bundle locks is in the archive or
	// in repo. Then the locations images' configs and layers go up (blobs,
	// which name nothing). From a file or in a copy the locks are at hand
	// before any blob moves: all of that runs while the blobs upload,
	// instead of after them, one request at a time beside the uploads.
	// From a stream the locks are read back from repo once the blobs are
	// there, and the locations images' blobs go up while the manifests do.
	var locs []*importLocations
	var staged *stagedLocations
	var results []TagResult
	if dst.locksAtHand() {
		err = alongside(ctx, func(ctx context.Context) error {
			return move(ctx, dst, res)
		}, func(ctx context.Context) error {
			var err error
			if locs, err = dst.checkedLocations(ctx, 1); err != nil {
				return err
			}
			staged, err = dst.stageLocations(ctx, locs, cur, 1)
			return err
		})
		if err != nil {
			return nil, err
		}
		dst.settleFound(res)
		dst.committing(phase)
		if results, err = dst.commitManifests(ctx, imgpkg, cur); err != nil {
			return nil, err
		}
	} else {
		if err := move(ctx, dst, res); err != nil {
			return nil, err
		}
		dst.settleFound(res)
		dst.committing(phase)
		if locs, err = dst.checkedLocations(ctx, dst.conc); err != nil {
			return nil, err
		}
		err = alongside(ctx, func(ctx context.Context) error {
			var err error
			results, err = dst.commitManifests(ctx, imgpkg, cur)
			return err
		}, func(ctx context.Context) error {
			var err error
			staged, err = dst.stageLocations(ctx, locs, cur, 1)
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	locResults, err := dst.writeLocations(ctx, staged, cur, res)
	if err != nil {
		return nil, err
	}
	results = append(results, locResults...)
	// The commit point: only now, with everything else in place.
	for _, t := range originals {
		r, err := dst.commitTag(ctx, t, cur)
		if err != nil {
			return nil, err
		}
		results = append(results, r)
	}
	res.Tags = results
	if dst.opts.LockOutput != "" {
		sayIfLocked(dst.rep, dst.opts.LockOutput)
		if err := dst.writeLockOutput(); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// writeLockOutput writes the lock output as imgpkg's copy does
// (pkg/imgpkg/cmd/copy.go, writeLockOutput): for a root bundle, a
// BundleLock naming it in repo with its original tag; for a copy of an
// ImagesLock file, that lock with each image rewritten to repo@digest, in
// its order, annotations kept; otherwise (-i, or an archive of either: an
// imgpkg tarball's import) an ImagesLock naming repo@digest of every image
// copied, the images and their cosign signatures (the referrers, which
// imgpkg does not copy, are not listed), in the order of their source
// references, as imgpkg sorts them.
func (dst *destination) writeLockOutput() error {
	head := dst.head
	if root := head.root; root != nil && root.isBundle() {
		bl := lock.BundleLock{Bundle: lock.BundleRef{Image: dst.digestRef(root.digest), Tag: root.Tag}}
		return bl.WriteFile(dst.opts.LockOutput)
	}
	il := lock.ImagesLock{APIVersion: lock.APIVersion, Kind: lock.KindImagesLock}
	if in := head.imagesLock; in != nil {
		for _, im := range in.Images {
			ref, err := im.Digest()
			if err != nil {
				return fmt.Errorf("lock output: image %s: %w", im.Image, err)
			}
			d, err := v1.NewHash(ref.DigestStr())
			if err != nil {
				return fmt.Errorf("lock output: image %s: %w", im.Image, err)
			}
			il.Images = append(il.Images, lock.ImageRef{Image: dst.digestRef(d), Annotations: im.Annotations})
		}
		return il.WriteFile(dst.opts.LockOutput)
	}
	type copied struct {
		source string
		digest v1.Hash
	}
	var images []copied
	for _, e := range head.entries {
		if e.Role == archive.RoleReferrer {
			continue
		}
		images = append(images, copied{source: dst.sourceDigestRef(e), digest: e.digest})
	}
	sort.SliceStable(images, func(i, j int) bool { return images[i].source < images[j].source })
	for _, im := range images {
		il.Images = append(il.Images, lock.ImageRef{Image: dst.digestRef(im.digest)})
	}
	return il.WriteFile(dst.opts.LockOutput)
}

// sourceDigestRef is where entry e was copied from, by digest, as imgpkg
// names an image it copies: the repository of its original reference
// (for a signature, that of its subject, where cosign's tag is), with its
// registry, "@" its digest; its digest alone when it has no original
// reference.
func (dst *destination) sourceDigestRef(e importEntry) string {
	if e.OriginalRef == "" {
		return e.digest.String()
	}
	ref, err := name.ParseReference(e.OriginalRef, append([]name.Option{name.WeakValidation}, dst.opts.Name...)...)
	if err != nil {
		return e.OriginalRef
	}
	return ref.Context().Name() + "@" + e.digest.String()
}

// committing ends the blobs' phase and starts that of the manifests and
// tags, so that the progress shown says what is being waited for rather
// than repeating the blobs' finished count.
func (dst *destination) committing(phase string) {
	dst.rep.Done()
	dst.rep.Start(phase+": writing manifests and tags", 0)
}

// bookkeepingTagError refuses original tag o, a tag that names a digest:
// other's, when this run writes it (zero otherwise).
func bookkeepingTagError(o importTag, other v1.Hash) error {
	what := "the manifest its digest names"
	if other != (v1.Hash{}) {
		what = other.String() + ", which this run writes"
	}
	return fmt.Errorf("the root's original tag %q is a bookkeeping tag, of %s: writing it last would move it onto the root, %s, leaving what it tags unprotected; nothing is tagged", o.tag, what, o.digest)
}

// countBlobs sets the blob counts of res from what repo is known to have
// and what the mover mounted, and returns the bytes missing there (or not
// checked yet). A mounted blob is not among the uploaded: its bytes were
// never sent. A delta's left-out blob that checkDelta sent (leftOutSent)
// is, but its bytes are not among those returned: they are sent already.
func (dst *destination) countBlobs(res *ImportResult) int64 {
	res.BlobsPresent, res.BytesPresent, res.BlobsUploaded, res.BytesUploaded = 0, 0, 0, 0
	res.BlobsMounted, res.BytesMounted = 0, 0
	var sentBefore int64
	for _, b := range dst.head.blobs {
		switch {
		case dst.leftOutSent[b.Digest]:
			res.BlobsUploaded++
			res.BytesUploaded += b.Size
			sentBefore += b.Size
		case dst.mounted[b.Digest]:
			// Before blobPresent: a delta's left-out blob mounted from
			// another repository is in repo now, but was not there before.
			res.BlobsMounted++
			res.BytesMounted += b.Size
		case dst.blobPresent[b.Digest]:
			res.BlobsPresent++
			res.BytesPresent += b.Size
		default:
			res.BlobsUploaded++
			res.BytesUploaded += b.Size
		}
	}
	return res.BytesUploaded + res.BytesMounted - sentBefore
}

// markMounted records that the mover mounted blob d instead of sending it.
func (dst *destination) markMounted(d v1.Hash) {
	dst.foundMu.Lock()
	defer dst.foundMu.Unlock()
	if dst.mounted == nil {
		dst.mounted = map[v1.Hash]bool{}
	}
	dst.mounted[d] = true
}

// alreadyThere reports whether repo has blob b, asking it (HEAD) when the
// probe left b to the mover (checkInMove); one it has is recorded, and its
// bytes count as done in the progress.
func (dst *destination) alreadyThere(ctx context.Context, b v1.Descriptor) (bool, error) {
	if !dst.unchecked[b.Digest] {
		return false, nil
	}
	ok, asked, err := dst.aheadAnswer(ctx, b.Digest)
	if !asked {
		ok, err = dst.reg.BlobExists(ctx, b.Digest, b.Size)
	}
	if err != nil || !ok {
		return false, err
	}
	dst.foundMu.Lock()
	dst.found[b.Digest] = true
	dst.foundMu.Unlock()
	dst.rep.Add(b.Size)
	return true, nil
}

// settleFound records the blobs the mover found in repo as present, and
// counts them so in res, and the blobs it mounted as mounted.
func (dst *destination) settleFound(res *ImportResult) {
	if len(dst.found) == 0 && len(dst.mounted) == 0 {
		return
	}
	for d := range dst.found {
		dst.blobPresent[d] = true
	}
	dst.countBlobs(res)
}

// locksAtHand reports whether every bundle's images.yml, and every config
// checkRoles reads, can be read before any blob is uploaded: a copy knows
// them from its plan, an import from a file reads them from the archive (a
// delta's left-out blobs are in repo by now). An import from a stream reads
// them back from repo once the blobs are there.
func (dst *destination) locksAtHand() bool {
	if !dst.head.rolesRead && !dst.blobLocal {
		return false
	}
	for _, b := range dst.head.bundles() {
		if dst.head.locks[b.digest] != nil {
			continue
		}
		for _, l := range dst.head.manifests[b.digest].layers {
			if !dst.readable(l) {
				return false
			}
		}
	}
	return true
}

// checkedLocations computes the locations image of every bundle and applies
// verify's rules (checkLocked, checkRoles), making at most conc requests at
// once to check locked images.
func (dst *destination) checkedLocations(ctx context.Context, conc int) ([]*importLocations, error) {
	locs, err := dst.locations(ctx, dst.head.bundles())
	if err != nil {
		return nil, err
	}
	if err := dst.checkLocked(ctx, locs, conc); err != nil {
		return nil, err
	}
	if _, err := dst.checkRoles(ctx, locs, func(v1.Hash) bool { return true }); err != nil {
		return nil, err
	}
	return locs, nil
}

// alongside runs main and side at once and returns the first failure: one
// failing cancels the other, whose error, a consequence, is not reported.
// The parent's cancellation is reported as such.
func alongside(ctx context.Context, main, side func(context.Context) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	var sideErr error
	wg.Go(func() {
		if sideErr = side(ctx); sideErr != nil {
			cancel(sideErr)
		}
	})
	if err := main(ctx); err != nil {
		cancel(err)
	}
	wg.Wait()
	if ctx.Err() == nil {
		return nil
	}
	return context.Cause(ctx)
}

// tagNames lists the tags of the given lists, in order.
func tagNames(lists ...[]importTag) []string {
	var names []string
	for _, l := range lists {
		for _, t := range l {
			names = append(names, t.tag)
		}
	}
	return names
}

// importTag is one tag to write.
type importTag struct {
	tag    string
	digest v1.Hash // zero when not known (dry run)
	m      importRawManifest
}

// importLocations is the locations image of one bundle.
type importLocations struct {
	bundle importEntry
	lock   *lock.ImagesLock // the bundle's images.yml
	img    v1.Image
	digest v1.Hash
	m      importRawManifest
}

// check refuses, before anything is changed, what would fail at the end.
func (dst *destination) check() error {
	for _, e := range dst.head.entries {
		if e.Tag == "" {
			continue
		}
		if _, err := name.NewTag(dst.repo.String()+":"+e.Tag, dst.opts.Name...); err != nil {
			return fmt.Errorf("%s: original tag %q: %w", e.name(), e.Tag, err)
		}
	}
	if dst.opts.LockOutput == "" {
		return nil
	}
	return CheckLockOutput(dst.opts.LockOutput)
}

// CheckLockOutput reports whether a lock output can be written at path:
// its directory exists, and path is not what atomicfile.Target refuses (a
// directory, a device, a named pipe, a socket, a symbolic link to none or
// to one of these). Import and copy check it before they change
// anything; a caller may check it before it resolves what to copy.
func CheckLockOutput(path string) error {
	if err := atomicfile.CheckDir(path); err != nil {
		return fmt.Errorf("lock output %s: %w", path, err)
	}
	if _, err := atomicfile.Target(path); err != nil {
		return fmt.Errorf("lock output %s: %w", path, err)
	}
	return nil
}

func (dst *destination) digestRef(d v1.Hash) string {
	return dst.repo.Name() + "@" + d.String()
}

// describe names a manifest in messages: its original reference if it has
// one.
func (dst *destination) describe(d v1.Hash) string {
	if e := dst.head.byDigest[d]; e != nil {
		return e.name()
	}
	return d.String()
}

// probe checks, concurrently, which manifests repo already has, then which
// blobs, and returns what the tags in names point at now (names missing
// from the map do not exist). One tag listing finds which tags exist; a
// manifest with an existing ".imgpkg" tag is checked through that tag,
// whose HEAD says both where the tag points and, when it is the right
// digest, that the manifest is there; the others by digest. A manifest the
// registry holds implies its configs, layers and children (it refused the
// manifest without them), so their blobs are not asked about: a re-import
// of a complete archive costs one HEAD per tag, whatever the archive's
// size.
func (dst *destination) probe(ctx context.Context, imgpkg []importTag, names []string) (map[string]v1.Hash, error) {
	cur, err := dst.currentTags(ctx, names, dst.conc)
	if err != nil {
		return nil, err
	}
	viaTag := map[v1.Hash]bool{}
	for _, t := range imgpkg {
		if prev, ok := cur[t.tag]; ok && prev == t.digest {
			viaTag[t.digest] = true
		}
	}
	var manifests, todo []v1.Hash
	for _, g := range dst.head.commit {
		for _, d := range g {
			manifests = append(manifests, d)
			if !viaTag[d] {
				todo = append(todo, d)
			}
		}
	}
	manOK := make([]bool, len(todo))
	err = parallel.ForEach(ctx, dst.conc, len(todo), func(ctx context.Context, i int) error {
		desc, err := dst.reg.ManifestDescriptor(ctx, todo[i].String())
		manOK[i] = desc != nil && desc.Digest == todo[i]
		return err
	})
	if err != nil {
		return nil, err
	}
	present := maps.Clone(viaTag)
	for i, d := range todo {
		if manOK[i] {
			present[d] = true
		}
	}
	dst.manifestPresent = make(map[v1.Hash]bool, len(manifests))
	dst.blobPresent = make(map[v1.Hash]bool, len(dst.head.blobs))
	// cover marks what a present manifest vouches for, children to any
	// depth, without recursion (a head may chain thousands of indexes).
	cover := func(root v1.Hash) {
		stack := []v1.Hash{root}
		for len(stack) > 0 {
			m := dst.head.manifests[stack[len(stack)-1]]
			stack = stack[:len(stack)-1]
			for _, b := range m.blobs {
				dst.blobPresent[b.Digest] = true
			}
			for _, c := range m.children {
				if !dst.manifestPresent[c.Digest] {
					dst.manifestPresent[c.Digest] = true
					stack = append(stack, c.Digest)
				}
			}
		}
	}
	for _, d := range manifests {
		if present[d] && !dst.manifestPresent[d] {
			dst.manifestPresent[d] = true
			cover(d)
		}
	}
	if err := dst.unlisted(ctx, manifests); err != nil {
		return nil, err
	}
	// The mover checks the others itself, each just before it would send
	// it; a delta's left-out blobs are checked here: checkDelta needs
	// them before anything is written.
	lazy := dst.checkInMove && !dst.opts.DryRun
	dst.unchecked = map[v1.Hash]bool{}
	dst.found = map[v1.Hash]bool{}
	var blobs []v1.Descriptor
	for _, b := range dst.head.blobs {
		switch {
		case dst.blobPresent[b.Digest]:
		case lazy && !dst.head.isLeftOut(b.Digest):
			dst.unchecked[b.Digest] = true
		default:
			blobs = append(blobs, b)
		}
	}
	blobOK := make([]bool, len(blobs))
	err = parallel.ForEach(ctx, dst.conc, len(blobs), func(ctx context.Context, i int) error {
		ok, err := dst.reg.BlobExists(ctx, blobs[i].Digest, blobs[i].Size)
		blobOK[i] = ok
		return err
	})
	if err != nil {
		return nil, err
	}
	for i, b := range blobs {
		if blobOK[i] {
			dst.blobPresent[b.Digest] = true
		}
	}
	return cur, nil
}

// unlisted marks as missing, among manifests, those with a subject that
// repo holds but that their subject's referrers do not list (the referrers
// API, or the "sha256-<hex>" fallback index where there is none): on a
// registry without the API, go-containerregistry's PUT of such a manifest
// stores it, then adds it to that index, and a run stopped between the
// two left it stored, but found by nobody. PUT again, it is added to the
// index (go-containerregistry reads it and adds what is missing). One
// listing per subject, at most conc at once; a manifest without a subject
// costs nothing.
func (dst *destination) unlisted(ctx context.Context, manifests []v1.Hash) error {
	bySubject := map[v1.Hash][]v1.Hash{}
	var subjects []v1.Hash
	for _, d := range manifests {
		m := dst.head.manifests[d]
		if !m.subject || !dst.manifestPresent[d] {
			continue
		}
		if m.subjectDigest == (v1.Hash{}) {
			dst.manifestPresent[d] = false
			continue
		}
		if _, ok := bySubject[m.subjectDigest]; !ok {
			subjects = append(subjects, m.subjectDigest)
		}
		bySubject[m.subjectDigest] = append(bySubject[m.subjectDigest], d)
	}
	listed := make([]map[v1.Hash]bool, len(subjects))
	err := parallel.ForEach(ctx, dst.conc, len(subjects), func(ctx context.Context, i int) error {
		descs, err := dst.reg.Referrers(ctx, subjects[i], registry.ReferrersLimits{})
		if err != nil {
			return err
		}
		listed[i] = make(map[v1.Hash]bool, len(descs))
		for _, desc := range descs {
			listed[i][desc.Digest] = true
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i, s := range subjects {
		for _, d := range bySubject[s] {
			if !listed[i][d] {
				dst.manifestPresent[d] = false
			}
		}
	}
	return nil
}

// commitManifests PUTs the missing manifests, group by group (children
// before parents), and writes the ".imgpkg" and cosign tags: a manifest
// that has a tag to write is PUT by that tag, which stores and tags it in
// one request (the registry refuses it unless every blob and child it
// names is there), and by digest only when it has none. It returns the
// results of the tags in imgpkg, in that order.
func (dst *destination) commitManifests(ctx context.Context, imgpkg []importTag, cur map[string]v1.Hash) ([]TagResult, error) {
	byDigest := map[v1.Hash][]importTag{}
	results := make([]TagResult, len(imgpkg))
	at := map[string]int{}
	for i, t := range imgpkg {
		results[i] = importTagResult(t, cur)
		at[t.tag] = i
		if results[i].Action != TagUnchanged {
			byDigest[t.digest] = append(byDigest[t.digest], t)
		}
	}
	for _, group := range dst.head.commit {
		var todo []v1.Hash
		conc := dst.conc
		for _, d := range group {
			if !dst.manifestPresent[d] || len(byDigest[d]) > 0 {
				todo = append(todo, d)
				if dst.head.manifests[d].subject {
					// go-containerregistry updates the subject's
					// fallback index (registries without the referrers
					// API) by read-modify-write: one at a time.
					conc = 1
				}
			}
		}
		err := parallel.ForEach(ctx, conc, len(todo), func(ctx context.Context, i int) error {
			d := todo[i]
			m := dst.head.manifests[d]
			raw := importRawManifest{raw: m.raw, mediaType: m.mediaType}
			refs := make([]string, 0, 1+len(byDigest[d]))
			for _, t := range byDigest[d] {
				refs = append(refs, t.tag)
			}
			if len(refs) == 0 {
				refs = append(refs, d.String())
			}
			for k, ref := range refs {
				if err := dst.putManifest(ctx, ref, d, raw, m.subject); err != nil {
					return err
				}
				if k == 0 && !dst.manifestPresent[d] {
					dst.rep.Logf("pushed manifest %s", dst.digestRef(d))
				}
				if ref != d.String() {
					dst.logTag(results[at[ref]])
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return results, nil
}

// putManifest PUTs a manifest of the archive under ref (a tag or its
// digest). A manifest with a subject goes through go-containerregistry,
// which also maintains the referrers fallback tag on registries without
// the referrers API.
func (dst *destination) putManifest(ctx context.Context, ref string, d v1.Hash, m importRawManifest, subject bool) error {
	if subject {
		r, err := dst.reference(ref)
		if err != nil {
			return err
		}
		if err := dst.push.Put(ctx, r, m); err != nil {
			return fmt.Errorf("put manifest %s: %w", r, err)
		}
		return nil
	}
	got, err := dst.reg.PutManifest(ctx, ref, m.raw, m.mediaType)
	if err != nil {
		return err
	}
	if got != d {
		return fmt.Errorf("put manifest %s: stored as %s, the archive has %s", dst.describe(d), got, d)
	}
	return nil
}

// reference parses ref, a tag or a digest, in the destination repository.
func (dst *destination) reference(ref string) (name.Reference, error) {
	if strings.HasPrefix(ref, "sha256:") {
		return name.NewDigest(dst.repo.Name()+"@"+ref, dst.opts.Name...)
	}
	return name.NewTag(dst.repo.Name()+":"+ref, dst.opts.Name...)
}

// imgpkgTag returns the "sha256-<hex>.imgpkg" tag of an index.json entry,
// or its repo-based form.
func (dst *destination) imgpkgTag(e importEntry) (string, error) {
	if !dst.opts.RepoBasedTags || e.OriginalRef == "" {
		return tags.Imgpkg(e.digest), nil
	}
	ref, err := name.ParseReference(e.OriginalRef, append([]name.Option{name.WeakValidation}, dst.opts.Name...)...)
	if err != nil {
		return "", fmt.Errorf("index.json entry %s: original reference: %w", e.name(), err)
	}
	return tags.RepoBased(ref.Context().RepositoryStr(), e.digest), nil
}

// entryTags returns the ".imgpkg" tags of every index.json entry but
// referrers, and the cosign tags of signatures (together, in the order
// they are written), and the original tags, written last. An original tag
// that is another manifest's bookkeeping tag is refused (see
// refuseBookkeeping) before anything is written; one that the run writes
// anyway, to the same manifest, as a ".imgpkg" tag (a bundle given by its
// own sha256-<hex>.imgpkg tag) is among the first only: written once,
// listed once.
func (dst *destination) entryTags() (imgpkg, originals []importTag, err error) {
	if imgpkg, originals, err = dst.listEntryTags(); err != nil {
		return nil, nil, err
	}
	if err := refuseBookkeeping(imgpkg, originals); err != nil {
		return nil, nil, err
	}
	return imgpkg, originals, nil
}

// listEntryTags is entryTags without the check of the original tags.
func (dst *destination) listEntryTags() (imgpkg, originals []importTag, err error) {
	seen := map[string]bool{}
	for _, e := range dst.head.entries {
		m := dst.head.manifests[e.digest]
		raw := importRawManifest{raw: m.raw, mediaType: m.mediaType}
		if t := artifactTag(e.Entry); t != "" && !seen[t] {
			seen[t] = true
			imgpkg = append(imgpkg, importTag{tag: t, digest: e.digest, m: raw})
		}
		if !hasImgpkgTag(e.Role) {
			continue
		}
		t, err := dst.imgpkgTag(e)
		if err != nil {
			return nil, nil, err
		}
		if !seen[t] {
			seen[t] = true
			imgpkg = append(imgpkg, importTag{tag: t, digest: e.digest, m: raw})
		}
		if e.Tag != "" {
			originals = append(originals, importTag{tag: e.Tag, digest: e.digest, m: raw})
		}
	}
	written := make(map[string]v1.Hash, len(imgpkg))
	for _, t := range imgpkg {
		written[t.tag] = t.digest
	}
	originals = slices.DeleteFunc(originals, func(o importTag) bool {
		d, ok := written[o.tag]
		return ok && d == o.digest
	})
	// In the order they are written (children before parents, group by
	// group; by name within a group, whose writes run at once), so that
	// the result lists them as they happened.
	group := map[v1.Hash]int{}
	for i, g := range dst.head.commit {
		for _, d := range g {
			group[d] = i
		}
	}
	sort.Slice(imgpkg, func(i, j int) bool {
		if gi, gj := group[imgpkg[i].digest], group[imgpkg[j].digest]; gi != gj {
			return gi < gj
		}
		return imgpkg[i].tag < imgpkg[j].tag
	})
	return imgpkg, originals, nil
}

// refuseBookkeeping refuses an original tag of the shape of one that names
// a digest (sha256-<hex>.imgpkg, a locations tag, cosign's, the referrers tag schema's sha256-<hex>): such a tag
// belongs to the manifest of that digest, and the original tag, written
// last over whatever it names, would move it off that manifest onto the
// root, leaving what it protected untagged, whether this run or another
// import wrote it. Only a .imgpkg tag of the root's own digest, plain or
// repo-based whatever the path and whether or not the run writes
// repo-based tags (a bundle given by that tag), names the root already:
// writing it there moves nothing. A tag that merely ends in .imgpkg
// (v1.imgpkg) is ordinary.
func refuseBookkeeping(imgpkg, originals []importTag) error {
	for _, o := range originals {
		if !tags.NamesADigest(o.tag) || tags.IsImgpkgOf(o.tag, o.digest) {
			continue
		}
		other := v1.Hash{}
		for _, t := range imgpkg {
			if t.tag == o.tag {
				other = t.digest
			}
		}
		if other != o.digest {
			return bookkeepingTagError(o, other)
		}
	}
	return nil
}

// readBundleLock reads a bundle's images.yml: from its layer in the
// archive when the mover has it, otherwise from the destination, verified
// against the layer's digest as it is read.
func (dst *destination) readBundleLock(ctx context.Context, b importEntry) (*lock.ImagesLock, error) {
	img, err := partial.CompressedToImage(&importBlobImage{ctx: ctx, blob: dst.blob, m: dst.head.manifests[b.digest]})
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %w", b.name(), err)
	}
	return bundle.ReadImagesLock(img, "bundle "+b.name())
}

// locations builds the locations image of every bundle in bundles.
func (dst *destination) locations(ctx context.Context, bundles []importEntry) ([]*importLocations, error) {
	// Bundles with one layer share its images.yml, and so its lock and
	// its locations image, which depend on nothing else: each is read and
	// built once per layer. Per bundle, an archive of thousands of
	// bundles with one layer (a few hundred KB) cost an import minutes
	// and gigabytes, where verify took a second.
	keyOf := func(b importEntry) v1.Hash {
		if m := dst.head.manifests[b.digest]; m != nil && len(m.layers) == 1 {
			return m.layers[0]
		}
		return b.digest
	}
	first := map[v1.Hash]int{} // key -> the first bundle with it
	var keys []v1.Hash
	for i, b := range bundles {
		k := keyOf(b)
		if _, ok := first[k]; !ok {
			first[k] = i
			keys = append(keys, k)
		}
	}
	built := make([]*importLocations, len(keys))
	err := parallel.ForEach(ctx, dst.conc, len(keys), func(ctx context.Context, i int) error {
		b := bundles[first[keys[i]]]
		il := dst.head.locks[b.digest]
		if il == nil {
			var err error
			if il, err = dst.readBundleLock(ctx, b); err != nil {
				return err
			}
		}
		locs, err := BundleLocations(il, dst.head.isBundle)
		if err != nil {
			return fmt.Errorf("bundle %s: %w", b.name(), err)
		}
		img, err := bundle.LocationsImage(locs)
		if err != nil {
			return fmt.Errorf("bundle %s: %w", b.name(), err)
		}
		d, err := img.Digest()
		if err != nil {
			return fmt.Errorf("bundle %s: locations image: %w", b.name(), err)
		}
		raw, err := img.RawManifest()
		if err != nil {
			return fmt.Errorf("bundle %s: locations image: %w", b.name(), err)
		}
		mt, err := img.MediaType()
		if err != nil {
			return fmt.Errorf("bundle %s: locations image: %w", b.name(), err)
		}
		built[i] = &importLocations{bundle: b, lock: il, img: img, digest: d, m: importRawManifest{raw: raw, mediaType: mt}}
		return nil
	})
	if err != nil {
		return nil, err
	}
	index := make(map[v1.Hash]int, len(keys))
	for i, k := range keys {
		index[k] = i
	}
	out := make([]*importLocations, len(bundles))
	for i, b := range bundles {
		l := *built[index[keyOf(b)]]
		l.bundle = b
		out[i] = &l
	}
	return out, nil
}

// checkLocked applies verify's rule before any locations image or tag is
// written: every image a bundle's images.yml locks is in the archive (an
// entry of its index.json, PUT before any tag and given its own .imgpkg
// tag; one held only inside an index is refused, as verify refuses it) or
// already in the destination. A
// locations image would otherwise tell `pull` that the image is in repo
// when it is nowhere there, and the user's tag would name a bundle that
// cannot be deployed from its new home. Without a destination (serve
// --repo, a repository made of the archive alone) only the archive counts.
func (dst *destination) checkLocked(ctx context.Context, locs []*importLocations, conc int) error {
	type locked struct {
		ref, by string
		h       v1.Hash
	}
	var ask []locked
	var inside []string
	asked := map[v1.Hash]bool{}
	err := eachLocked(locs, func(l *importLocations, ref string, h v1.Hash) {
		if _, entry := dst.head.byDigest[h]; entry || asked[h] {
			return
		}
		asked[h] = true
		if _, held := dst.head.manifests[h]; held {
			// Held only inside an index: verify refuses it, and it
			// would get no .imgpkg tag of its own. ferry's export makes
			// every locked image an entry.
			inside = append(inside, fmt.Sprintf("%s (locked by bundle %s)", ref, l.bundle.name()))
			return
		}
		ask = append(ask, locked{ref: ref, by: l.bundle.name(), h: h})
	})
	if err != nil {
		return err
	}
	if len(inside) > 0 {
		return fmt.Errorf("nothing tagged: the archive is inconsistent: %d locked %s only inside an index, not an image of the archive of %s own: %s",
			len(inside), plural(len(inside), "image is", "images are"), plural(len(inside), "its", "their"), strings.Join(inside, ", "))
	}
	present := make([]bool, len(ask))
	if dst.reg != nil {
		err = parallel.ForEach(ctx, conc, len(ask), func(ctx context.Context, i int) error {
			desc, err := dst.reg.ManifestDescriptor(ctx, ask[i].h.String())
			present[i] = desc != nil && desc.Digest == ask[i].h
			return err
		})
		if err != nil {
			return err
		}
	}
	var missing []string
	for i, a := range ask {
		if !present[i] {
			missing = append(missing, fmt.Sprintf("%s (locked by bundle %s)", a.ref, a.by))
		}
	}
	switch {
	case len(missing) == 0:
		return nil
	case dst.reg == nil:
		return fmt.Errorf("%d locked %s not in the archive, which an import refuses: %s",
			len(missing), plural(len(missing), "image is", "images are"), strings.Join(missing, ", "))
	}
	return fmt.Errorf("nothing tagged: %d locked %s neither in the archive nor in %s: %s",
		len(missing), plural(len(missing), "image is", "images are"), dst.repo, strings.Join(missing, ", "))
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// importLocationTags returns the two tags of a locations image: the bundle's
// ".image-locations.imgpkg" tag and the image's own ".imgpkg" tag (never
// repo-based, as imgpkg does it).
func importLocationTags(l *importLocations) []importTag {
	return []importTag{
		{tag: tags.ImageLocations(l.bundle.digest), digest: l.digest, m: l.m},
		{tag: tags.Imgpkg(l.digest), digest: l.digest, m: l.m},
	}
}

// currentTags returns what each of names points at in repo now; names
// missing from the map do not exist. One tag listing finds which exist, so
// a fresh repository costs one request, not one per tag; the listing is
// kept (dst.existing) for tags named later.
func (dst *destination) currentTags(ctx context.Context, names []string, conc int) (map[string]v1.Hash, error) {
	if dst.existing == nil {
		existing, err := importListTags(ctx, dst.pull, dst.repo)
		if err != nil {
			return nil, err
		}
		dst.existing = existing
	}
	var todo []string
	for _, n := range names {
		if dst.existing[n] {
			todo = append(todo, n)
		}
	}
	got := make([]*v1.Descriptor, len(todo))
	err := parallel.ForEach(ctx, conc, len(todo), func(ctx context.Context, i int) error {
		desc, err := dst.reg.ManifestDescriptor(ctx, todo[i])
		got[i] = desc
		return err
	})
	if err != nil {
		return nil, err
	}
	out := map[string]v1.Hash{}
	for i, n := range todo {
		if got[i] != nil {
			out[n] = got[i].Digest
		}
	}
	return out, nil
}

// importTagResult says what writing t does given what the tag points at now.
func importTagResult(t importTag, cur map[string]v1.Hash) TagResult {
	r := TagResult{Tag: t.tag, Action: TagCreate}
	if t.digest != (v1.Hash{}) {
		r.Digest = t.digest.String()
	}
	if prev, ok := cur[t.tag]; ok {
		r.Previous = prev.String()
		r.Action = TagMove
		if prev == t.digest {
			r.Action = TagUnchanged
		}
	}
	return r
}

// dryRunTags reports the tags an import would write, changing nothing.
func (dst *destination) dryRunTags(ctx context.Context, imgpkg, originals []importTag, cur map[string]v1.Hash) ([]TagResult, []string, error) {
	// Locations images can be computed for the bundles whose lock is
	// known, whose layers the mover can read, or whose layers are already
	// in repo; the others only after their layers are uploaded.
	var known []importEntry
	for _, b := range dst.head.bundles() {
		present := true
		for _, l := range dst.head.manifests[b.digest].layers {
			present = present && dst.blobPresent[l]
		}
		readable := true
		for _, l := range dst.head.manifests[b.digest].layers {
			readable = readable && dst.readable(l)
		}
		if present || dst.head.locks[b.digest] != nil || readable {
			known = append(known, b)
		}
	}
	locs, err := dst.locations(ctx, known)
	if err != nil {
		return nil, nil, err
	}
	// What a real import would refuse, a dry run refuses too, as far as
	// the locks it can read tell.
	if err := dst.checkLocked(ctx, locs, dst.conc); err != nil {
		return nil, nil, err
	}
	unchecked, err := dst.checkRoles(ctx, locs, dst.readable)
	if err != nil {
		return nil, nil, err
	}
	// In bundle order, as writeLocations writes them, whichever are known.
	all := append([]importTag(nil), imgpkg...)
	byBundle := make(map[v1.Hash]*importLocations, len(locs))
	for _, l := range locs {
		byBundle[l.bundle.digest] = l
	}
	for _, b := range dst.head.bundles() {
		if l := byBundle[b.digest]; l != nil {
			all = append(all, importLocationTags(l)...)
			continue
		}
		all = append(all, importTag{tag: tags.ImageLocations(b.digest)})
		unchecked = append(unchecked, fmt.Sprintf("the images.yml of bundle %s, whose layer is not at hand before it is uploaded: its locations image, and whether every image it locks is in the archive or at the destination", b.name()))
	}
	all = append(all, originals...)

	var more []string
	for _, l := range locs {
		more = append(more, tags.Imgpkg(l.digest))
	}
	own, err := dst.currentTags(ctx, more, dst.conc)
	if err != nil {
		return nil, nil, err
	}
	maps.Copy(cur, own)
	out := make([]TagResult, len(all))
	for i, t := range all {
		out[i] = importTagResult(t, cur)
	}
	return out, unchecked, nil
}

// putTag writes tag t unless it already points at the right digest, and
// returns what it did.
func (dst *destination) putTag(ctx context.Context, t importTag, cur map[string]v1.Hash) (TagResult, error) {
	r := importTagResult(t, cur)
	if r.Action == TagUnchanged {
		return r, nil
	}
	if err := dst.putManifest(ctx, t.tag, t.digest, t.m, false); err != nil {
		return r, fmt.Errorf("tag %s:%s: %w", dst.repo, t.tag, err)
	}
	dst.logTag(r)
	return r, nil
}

// commitTag writes an original tag, the commit point. The probe read it
// before the uploads, maybe minutes ago, and another import may have
// written it since: it is read again just before the PUT, so that the
// result says what this import truly replaced, and a change is told.
func (dst *destination) commitTag(ctx context.Context, t importTag, probed map[string]v1.Hash) (TagResult, error) {
	desc, err := dst.reg.ManifestDescriptor(ctx, t.tag)
	if err != nil {
		return TagResult{}, fmt.Errorf("tag %s:%s: %w", dst.repo, t.tag, err)
	}
	now := map[string]v1.Hash{}
	if desc != nil {
		now[t.tag] = desc.Digest
	}
	was, wasThere := probed[t.tag]
	if is, isThere := now[t.tag]; isThere != wasThere || is != was {
		dst.rep.Warnf("tag %s:%s changed while this ran (from %s to %s): another writer shares the repository", dst.repo, t.tag, tagState(was, wasThere), tagState(is, isThere))
	}
	return dst.putTag(ctx, t, now)
}

// tagState names what a tag points at in a message.
func tagState(d v1.Hash, ok bool) string {
	if !ok {
		return "absent"
	}
	return d.String()
}

// logTag reports a tag written, naming where, and what it pointed at
// before when it moved.
func (dst *destination) logTag(r TagResult) {
	if r.Previous != "" {
		dst.rep.Logf("tagged %s:%s (%s, was %s)", dst.repo, r.Tag, r.Digest, r.Previous)
		return
	}
	dst.rep.Logf("tagged %s:%s (%s)", dst.repo, r.Tag, r.Digest)
}

// stagedLocations are the locations images to write, their blobs already
// in repo.
type stagedLocations struct {
	locs []*importLocations
	// own is what the locations images' own ".imgpkg" tags point at now.
	own map[string]v1.Hash
	// present says, per bundle, that a tag of its locations image already
	// names it.
	present []bool
	// staged says which locations images (by digest) had their blobs
	// checked and uploaded.
	staged map[v1.Hash]bool
	// counts says how many of their blobs were sent, and found in repo.
	counts blobCounts
}

// stageLocations finds which locations images must be written (one whose
// two tags are both in place is not) and puts their configs and layers
// into repo, those of every bundle before any tag, at most conc requests
// at once. It reads cur and does not change it: the tags it finds are in
// the result's own map.
func (dst *destination) stageLocations(ctx context.Context, locs []*importLocations, cur map[string]v1.Hash, conc int) (*stagedLocations, error) {
	st := &stagedLocations{locs: locs, present: make([]bool, len(locs)), staged: map[v1.Hash]bool{}}
	own := make([]string, 0, len(locs))
	for _, l := range locs {
		own = append(own, tags.Imgpkg(l.digest))
	}
	var err error
	if st.own, err = dst.currentTags(ctx, own, conc); err != nil {
		return nil, err
	}
	now := func(tag string) (v1.Hash, bool) {
		if d, ok := st.own[tag]; ok {
			return d, true
		}
		d, ok := cur[tag]
		return d, ok
	}
	var todo []*importLocations
	for i, l := range locs {
		write := false
		for _, t := range importLocationTags(l) {
			d, ok := now(t.tag)
			st.present[i] = st.present[i] || (ok && d == l.digest)
			write = write || !ok || d != l.digest
		}
		if write && !st.staged[l.digest] {
			st.staged[l.digest] = true
			todo = append(todo, l)
		}
	}
	var mu sync.Mutex
	err = parallel.ForEach(ctx, conc, len(todo), func(ctx context.Context, i int) error {
		c, err := dst.uploadImageBlobs(ctx, todo[i].img)
		if err != nil {
			return fmt.Errorf("push locations image of bundle %s: %w", todo[i].bundle.name(), err)
		}
		mu.Lock()
		defer mu.Unlock()
		st.counts.sent += c.sent
		st.counts.sentSize += c.sentSize
		st.counts.found += c.found
		st.counts.foundSize += c.foundSize
		return nil
	})
	if err != nil {
		return nil, err
	}
	return st, nil
}

// writeLocations writes the tags of the locations images st staged, two
// per bundle, and returns their results in bundle order. What it writes
// counts in res as the archive's blobs and manifests do: each config or
// layer uploaded or found in repo, and each manifest that no tag pointed
// at before (one already there is PUT again only under a missing tag).
// The own tags st found are added to cur.
func (dst *destination) writeLocations(ctx context.Context, st *stagedLocations, cur map[string]v1.Hash, res *ImportResult) ([]TagResult, error) {
	maps.Copy(cur, st.own)
	locs := st.locs
	res.BlobsUploaded += st.counts.sent
	res.BytesUploaded += st.counts.sentSize
	res.BlobsPresent += st.counts.found
	res.BytesPresent += st.counts.foundSize
	results := make([][]TagResult, len(locs))
	pushed := make([]bool, len(locs))
	err := parallel.ForEach(ctx, dst.conc, len(locs), func(ctx context.Context, i int) error {
		for _, t := range importLocationTags(locs[i]) {
			r := importTagResult(t, cur)
			if r.Action != TagUnchanged {
				if err := dst.putManifest(ctx, t.tag, t.digest, t.m, false); err != nil {
					return fmt.Errorf("tag %s:%s: %w", dst.repo, t.tag, err)
				}
				if !st.present[i] && !pushed[i] {
					pushed[i] = true
					dst.rep.Logf("pushed manifest %s", dst.digestRef(t.digest))
				}
				dst.logTag(r)
			}
			results[i] = append(results[i], r)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	counted := map[v1.Hash]bool{}
	var out []TagResult
	for i, r := range results {
		switch d := locs[i].digest; {
		case counted[d]:
		case pushed[i]:
			counted[d] = true
			res.ManifestsPushed++
		case st.present[i]:
			// Already there (a re-run): it and its blobs count as the
			// archive's do, so the totals say what the repository holds
			// (blobs staged, checked with a HEAD, are counted already).
			counted[d] = true
			res.ManifestsPresent++
			if m, err := locs[i].img.Manifest(); err == nil && !st.staged[d] {
				for _, b := range append([]v1.Descriptor{m.Config}, m.Layers...) {
					res.BlobsPresent++
					res.BytesPresent += b.Size
				}
			}
		}
		out = append(out, r...)
	}
	return out, nil
}

// imageBlobs returns the config and the layers of a small image built in
// memory (a locations image).
func imageBlobs(img v1.Image) ([][]byte, error) {
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return nil, err
	}
	blobs := [][]byte{cfg}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return nil, err
		}
		blobs = append(blobs, b)
	}
	return blobs, nil
}

// blobCounts says what uploadImageBlobs did.
type blobCounts struct {
	sent, found         int
	sentSize, foundSize int64
}

// uploadImageBlobs puts the config and layers of a small image built in
// memory (a locations image) into repo, unless they are there, and
// says how many it uploaded and found there, and their sizes.
func (dst *destination) uploadImageBlobs(ctx context.Context, img v1.Image) (blobCounts, error) {
	var c blobCounts
	blobs, err := imageBlobs(img)
	if err != nil {
		return c, err
	}
	for _, b := range blobs {
		d := sha256Hash(b)
		ok, err := dst.reg.BlobExists(ctx, d, int64(len(b)))
		if err != nil {
			return c, err
		}
		if ok {
			c.found++
			c.foundSize += int64(len(b))
			continue
		}
		if _, err := dst.reg.Upload(ctx, d, int64(len(b)), func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(b)), nil
		}); err != nil {
			return c, err
		}
		c.sent++
		c.sentSize += int64(len(b))
	}
	return c, nil
}
