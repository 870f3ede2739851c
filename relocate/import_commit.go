package relocate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferry-dev/ferry/internal/bundle"
	"github.com/ferry-dev/ferry/internal/parallel"
	"github.com/ferry-dev/ferry/internal/progress"
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
	// Remote is passed to every registry call (auth, transport, retries).
	// For a copy that includes the sources: credentials for registries
	// that need different ones come from a keychain (the Docker config).
	Remote []remote.Option
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
	// LockOutput, when set, is a file that receives a BundleLock naming the
	// root bundle at its new home (written atomically, after the root tag).
	LockOutput string
	// Reporter receives progress; nil discards it.
	Reporter progress.Reporter
}

// destination is the repository an import or a copy writes into, with the
// plan of what it must hold.
type destination struct {
	repo name.Repository
	opts DestinationOptions
	conc int
	rep  progress.Reporter
	pull *remote.Puller
	push *remote.Pusher
	head *importHead

	blobPresent     map[v1.Hash]bool
	manifestPresent map[v1.Hash]bool
}

// newDestination checks what can be checked before anything is changed
// and prepares the registry clients.
func newDestination(repo name.Repository, head *importHead, opts DestinationOptions) (*destination, error) {
	dst := &destination{
		repo: repo,
		opts: opts,
		conc: opts.Concurrency,
		rep:  progress.OrNop(opts.Reporter),
		head: head,
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
	return dst, nil
}

// blobMover puts the configs and layers dst lacks (those not in
// dst.blobPresent) into dst. It may record in res what only it knows
// (mounts); the upload counts are already set.
type blobMover func(ctx context.Context, dst *destination, res *ImportResult) error

// commit runs the whole move: it checks what repo has, then (unless in a
// dry run) calls move under a progress phase of the given name, then PUTs
// the manifests, writes the tags with the root tag last, and the lock
// output. done is the verb logged at the end ("imported").
func (dst *destination) commit(ctx context.Context, phase, done string, move blobMover) (*ImportResult, error) {
	head := dst.head
	res := &ImportResult{Repository: dst.repo.Name(), DryRun: dst.opts.DryRun}
	if root := head.root; root != nil {
		res.Root = dst.digestRef(root.digest)
		res.Tag = root.Tag
	}
	if err := dst.probe(ctx); err != nil {
		return nil, err
	}
	var missing int64
	for _, b := range head.blobs {
		if dst.blobPresent[b.Digest] {
			res.BlobsPresent++
			res.BytesPresent += b.Size
		} else {
			res.BlobsUploaded++
			missing += b.Size
		}
	}
	res.BytesUploaded = missing
	for d := range head.manifests {
		if dst.manifestPresent[d] {
			res.ManifestsPresent++
		} else {
			res.ManifestsPushed++
		}
	}

	var err error
	if dst.opts.DryRun {
		res.Tags, err = dst.dryRunTags(ctx)
		if err != nil {
			return nil, err
		}
		return res, nil
	}

	dst.rep.Start(phase, missing)
	defer dst.rep.Done()
	if err := move(ctx, dst, res); err != nil {
		return nil, err
	}
	if err := dst.commitManifests(ctx); err != nil {
		return nil, err
	}
	res.Tags, err = dst.writeTags(ctx)
	if err != nil {
		return nil, err
	}
	if dst.opts.LockOutput != "" {
		bl := lock.BundleLock{Bundle: lock.BundleRef{Image: res.Root, Tag: res.Tag}}
		if err := bl.WriteFile(dst.opts.LockOutput); err != nil {
			return nil, err
		}
	}
	if res.Root != "" {
		dst.rep.Logf("%s %s", done, res.Root)
	}
	return res, nil
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
	if root := dst.head.root; root == nil || !root.isBundle() {
		return errors.New("lock output: there is no root bundle to name")
	}
	dir := filepath.Dir(dst.opts.LockOutput)
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("lock output %s: %w", dst.opts.LockOutput, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("lock output %s: %s is not a directory", dst.opts.LockOutput, dir)
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

// probe checks, concurrently, which blobs and manifests repo already has.
func (dst *destination) probe(ctx context.Context) error {
	blobs := dst.head.blobs
	manifests := make([]v1.Hash, 0, len(dst.head.manifests))
	for _, g := range dst.head.commit {
		manifests = append(manifests, g...)
	}
	blobOK := make([]bool, len(blobs))
	manOK := make([]bool, len(manifests))
	err := parallel.ForEach(ctx, dst.conc, len(blobs)+len(manifests), func(ctx context.Context, i int) error {
		if i < len(blobs) {
			ok, err := importBlobExists(ctx, dst.pull, dst.repo, blobs[i].Digest)
			blobOK[i] = ok
			return err
		}
		i -= len(blobs)
		desc, err := importHeadManifest(ctx, dst.pull, dst.repo.Digest(manifests[i].String()))
		manOK[i] = desc != nil
		return err
	})
	if err != nil {
		return err
	}
	dst.blobPresent = make(map[v1.Hash]bool, len(blobs))
	for i, b := range blobs {
		if blobOK[i] {
			dst.blobPresent[b.Digest] = true
		}
	}
	dst.manifestPresent = make(map[v1.Hash]bool, len(manifests))
	for i, d := range manifests {
		if manOK[i] {
			dst.manifestPresent[d] = true
		}
	}
	return nil
}

// commitManifests PUTs the missing manifests, group by group.
func (dst *destination) commitManifests(ctx context.Context) error {
	for _, group := range dst.head.commit {
		var todo []v1.Hash
		conc := dst.conc
		for _, d := range group {
			if !dst.manifestPresent[d] {
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
			if err := importPutManifest(ctx, dst.push, dst.pull, dst.repo, d, importRawManifest{raw: m.raw, mediaType: m.mediaType}); err != nil {
				return err
			}
			dst.rep.Logf("pushed manifest %s", dst.describe(d))
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
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
// referrers, and the cosign tags of signatures (together, sorted by tag),
// and the original tags, written last.
func (dst *destination) entryTags() (imgpkg, originals []importTag, err error) {
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
	sort.Slice(imgpkg, func(i, j int) bool { return imgpkg[i].tag < imgpkg[j].tag })
	return imgpkg, originals, nil
}

// readBundleLock reads a bundle's images.yml from the destination, whose
// copy of its layer is verified against the layer's digest as it is read.
func (dst *destination) readBundleLock(ctx context.Context, b importEntry) (*lock.ImagesLock, error) {
	img, err := partial.CompressedToImage(&importDestImage{ctx: ctx, puller: dst.pull, repo: dst.repo, m: dst.head.manifests[b.digest]})
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %w", b.name(), err)
	}
	return bundle.ReadImagesLock(img, "bundle "+b.name())
}

// locations builds the locations image of every bundle in bundles.
func (dst *destination) locations(ctx context.Context, bundles []importEntry) ([]*importLocations, error) {
	out := make([]*importLocations, len(bundles))
	err := parallel.ForEach(ctx, dst.conc, len(bundles), func(ctx context.Context, i int) error {
		b := bundles[i]
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
		out[i] = &importLocations{bundle: b, lock: il, img: img, digest: d, m: importRawManifest{raw: raw, mediaType: mt}}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// checkLocked applies verify's rule before any locations image or tag is
// written: every image a bundle's images.yml locks is in the archive (a
// manifest of its head, PUT by now) or already in the destination. A
// locations image would otherwise tell `pull` that the image is in repo
// when it is nowhere there, and the user's tag would name a bundle that
// cannot be deployed from its new home.
func (dst *destination) checkLocked(ctx context.Context, locs []*importLocations) error {
	type locked struct {
		ref, by string
		h       v1.Hash
	}
	var ask []locked
	asked := map[v1.Hash]bool{}
	for _, l := range locs {
		if l.lock == nil {
			continue
		}
		for _, img := range l.lock.Images {
			ref, err := img.Digest()
			if err != nil {
				return fmt.Errorf("bundle %s: images.yml: %q: %w", l.bundle.name(), img.Image, err)
			}
			h, err := v1.NewHash(ref.DigestStr())
			if err != nil {
				return fmt.Errorf("bundle %s: images.yml: %q: %w", l.bundle.name(), img.Image, err)
			}
			if _, inArchive := dst.head.manifests[h]; inArchive || asked[h] {
				continue
			}
			asked[h] = true
			ask = append(ask, locked{ref: img.Image, by: l.bundle.name(), h: h})
		}
	}
	present := make([]bool, len(ask))
	err := parallel.ForEach(ctx, dst.conc, len(ask), func(ctx context.Context, i int) error {
		desc, err := importHeadManifest(ctx, dst.pull, dst.repo.Digest(ask[i].h.String()))
		present[i] = desc != nil
		return err
	})
	if err != nil {
		return err
	}
	var missing []string
	for i, a := range ask {
		if !present[i] {
			missing = append(missing, fmt.Sprintf("%s (locked by bundle %s)", a.ref, a.by))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("nothing tagged: %d locked %s neither in the archive nor in %s: %s",
			len(missing), plural(len(missing), "image is", "images are"), dst.repo, strings.Join(missing, ", "))
	}
	return nil
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
// a fresh repository costs one request, not one per tag.
func (dst *destination) currentTags(ctx context.Context, names []string) (map[string]v1.Hash, error) {
	existing, err := importListTags(ctx, dst.pull, dst.repo)
	if err != nil {
		return nil, err
	}
	var todo []string
	for _, n := range names {
		if existing[n] {
			todo = append(todo, n)
		}
	}
	got := make([]*v1.Descriptor, len(todo))
	err = parallel.ForEach(ctx, dst.conc, len(todo), func(ctx context.Context, i int) error {
		desc, err := importHeadManifest(ctx, dst.pull, dst.repo.Tag(todo[i]))
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
func (dst *destination) dryRunTags(ctx context.Context) ([]TagResult, error) {
	imgpkg, originals, err := dst.entryTags()
	if err != nil {
		return nil, err
	}
	// Locations images can be computed for the bundles whose lock is
	// known or whose layers are already in repo; the others only after
	// their layers are uploaded.
	var known, unknown []importEntry
	for _, b := range dst.head.bundles() {
		present := true
		for _, l := range dst.head.manifests[b.digest].layers {
			present = present && dst.blobPresent[l]
		}
		if present || dst.head.locks[b.digest] != nil {
			known = append(known, b)
		} else {
			unknown = append(unknown, b)
		}
	}
	locs, err := dst.locations(ctx, known)
	if err != nil {
		return nil, err
	}
	// What a real import would refuse, a dry run refuses too, as far as
	// the locks it can read tell.
	if err := dst.checkLocked(ctx, locs); err != nil {
		return nil, err
	}
	all := append([]importTag(nil), imgpkg...)
	for _, l := range locs {
		all = append(all, importLocationTags(l)...)
	}
	for _, b := range unknown {
		all = append(all, importTag{tag: tags.ImageLocations(b.digest)})
	}
	all = append(all, originals...)

	names := make([]string, len(all))
	for i, t := range all {
		names[i] = t.tag
	}
	cur, err := dst.currentTags(ctx, names)
	if err != nil {
		return nil, err
	}
	out := make([]TagResult, len(all))
	for i, t := range all {
		out[i] = importTagResult(t, cur)
	}
	return out, nil
}

// writeTags writes every tag in commit order: the ".imgpkg" tags, then each
// bundle's locations image and its tags, then the original tags.
func (dst *destination) writeTags(ctx context.Context) ([]TagResult, error) {
	imgpkg, originals, err := dst.entryTags()
	if err != nil {
		return nil, err
	}
	locs, err := dst.locations(ctx, dst.head.bundles())
	if err != nil {
		return nil, err
	}
	if err := dst.checkLocked(ctx, locs); err != nil {
		return nil, err
	}
	var locTags []importTag
	for _, l := range locs {
		locTags = append(locTags, importLocationTags(l)...)
	}
	var names []string
	for _, stage := range [][]importTag{imgpkg, locTags, originals} {
		for _, t := range stage {
			names = append(names, t.tag)
		}
	}
	cur, err := dst.currentTags(ctx, names)
	if err != nil {
		return nil, err
	}

	var results []TagResult
	var mu sync.Mutex
	put := func(ctx context.Context, t importTag) error {
		r := importTagResult(t, cur)
		if r.Action != TagUnchanged {
			if err := dst.push.Put(ctx, dst.repo.Tag(t.tag), t.m); err != nil {
				return fmt.Errorf("tag %s:%s: %w", dst.repo, t.tag, err)
			}
			dst.rep.Logf("tagged %s:%s (%s)", dst.repo, t.tag, t.digest)
		}
		mu.Lock()
		results = append(results, r)
		mu.Unlock()
		return nil
	}
	putAll := func(ts []importTag) error {
		return parallel.ForEach(ctx, dst.conc, len(ts), func(ctx context.Context, i int) error { return put(ctx, ts[i]) })
	}

	if err := putAll(imgpkg); err != nil {
		return nil, err
	}
	err = parallel.ForEach(ctx, dst.conc, len(locs), func(ctx context.Context, i int) error {
		l := locs[i]
		ts := importLocationTags(l)
		need := false
		for _, t := range ts {
			need = need || importTagResult(t, cur).Action != TagUnchanged
		}
		if need {
			if err := dst.push.Push(ctx, dst.repo.Digest(l.digest.String()), l.img); err != nil {
				return fmt.Errorf("push locations image of bundle %s: %w", l.bundle.name(), err)
			}
		}
		for _, t := range ts {
			if err := put(ctx, t); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// The commit point: only now, with everything else in place.
	for _, t := range originals {
		if err := put(ctx, t); err != nil {
			return nil, err
		}
	}
	unchanged := 0
	for _, r := range results {
		if r.Action == TagUnchanged {
			unchanged++
		}
	}
	if unchanged > 0 {
		dst.rep.Logf("%d tags already in place", unchanged)
	}
	// Concurrent writes finish in any order; report them in commit order.
	order := map[string]int{}
	for i, n := range names {
		if _, ok := order[n]; !ok {
			order[n] = i
		}
	}
	sort.SliceStable(results, func(i, j int) bool { return order[results[i].Tag] < order[results[j].Tag] })
	return results, nil
}
