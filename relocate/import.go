package relocate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferry-dev/ferry/archive"
	"github.com/ferry-dev/ferry/internal/bundle"
	"github.com/ferry-dev/ferry/internal/progress"
	"github.com/ferry-dev/ferry/lock"
	"github.com/ferry-dev/ferry/tags"
)

// DefaultImportConcurrency is how many registry requests an import runs at
// once (existence checks, uploads, manifests, tags) when
// ImportOptions.Concurrency is zero. It is also the number of blobs
// uploading at once; one more is spooled while they do.
//
// Measured with BenchmarkImport (16 images × 4 layers of 2 MiB, 134 MB,
// into an in-memory distribution registry on 2 cores), in MB/s:
//
//	concurrency (spooled)    1 (1)  1 (2)  2 (3)  4 (5)  4 (8)  8 (9)  16 (17)
//	loopback                  ~150   ~140   ~150   ~140   ~150   ~160   ~160
//	10 ms per request           21     21     40     69     67     92    105
//
// On loopback client and registry share the CPU (reading, verifying and
// the registry's hashing), so overlap gains nothing; with any latency each
// upload's four round trips (HEAD, POST, PATCH, PUT) dominate and
// concurrency pays up to about 8. Spooling more blobs than are uploading
// does not help (4/5 vs 4/8). A re-import with every blob present reads
// and verifies the archive at about 1 GB/s.
const DefaultImportConcurrency = 8

// DefaultImportSpoolBytes bounds the temporary disk used by blobs waiting
// for their upload when ImportOptions.SpoolBytes is zero.
const DefaultImportSpoolBytes int64 = 2 << 30

// ImportOptions configures Import.
type ImportOptions struct {
	// Remote is passed to every registry call (auth, transport, retries).
	Remote []remote.Option
	// Name is used to parse the archive's original references (for
	// RepoBasedTags) and tags.
	Name []name.Option
	// Concurrency bounds the registry requests made at once; 0 means
	// DefaultImportConcurrency.
	Concurrency int
	// RepoBasedTags gives lock images and bundles the tag
	// "<source path>-sha256-<hex>.imgpkg" instead of "sha256-<hex>.imgpkg"
	// (imgpkg's --repo-based-tags); the path is that of the reference the
	// archive recorded at export, never the destination's.
	RepoBasedTags bool
	// DryRun checks the destination and reports what an import would
	// upload and tag, and changes nothing. It reads only the archive's head
	// (index.json and the manifests), never its configs and layers, so it is
	// quick on any archive but does not verify them; see Import.
	DryRun bool
	// LockOutput, when set, is a file that receives a BundleLock naming the
	// root bundle at its new home (written atomically, after the root tag).
	LockOutput string
	// Reporter receives progress; nil discards it.
	Reporter progress.Reporter
	// SpoolDir is where blobs waiting for their upload are kept, in a
	// directory removed before Import returns; "" means os.TempDir().
	SpoolDir string
	// SpoolBytes bounds the temporary disk those blobs use; 0 means
	// DefaultImportSpoolBytes. A single blob bigger than that is still
	// spooled, alone.
	SpoolBytes int64

	// spoolSlots overrides how many blobs may be spooled at once (tests and
	// measurements); 0 means Concurrency+1.
	spoolSlots int
}

// TagAction says what an import does to a tag.
type TagAction string

// What an import does to a tag.
const (
	// TagCreate writes a tag that did not exist.
	TagCreate TagAction = "create"
	// TagMove points an existing tag at another digest.
	TagMove TagAction = "move"
	// TagUnchanged leaves a tag that already points at the right digest;
	// it is not written again.
	TagUnchanged TagAction = "unchanged"
)

// TagResult is one tag an import writes, or would write in a dry run.
type TagResult struct {
	// Tag is the tag, without the repository.
	Tag string `json:"tag"`
	// Digest is what the tag points at after the import. In a dry run it is
	// empty for the tags of a locations image that cannot be computed yet
	// (see Import).
	Digest string `json:"digest"`
	// Previous is what the tag pointed at before, empty if it did not exist.
	Previous string `json:"previous,omitempty"`
	// Action is TagCreate, TagMove or TagUnchanged.
	Action TagAction `json:"action"`
}

// ImportResult describes an import (or, with DryRun, what it would do).
type ImportResult struct {
	// Repository is the destination repository.
	Repository string `json:"repository"`
	// Root is repo@digest of the root bundle (or of the archive's single
	// tagged image); empty when the archive has no root (a lock file's
	// images).
	Root string `json:"root,omitempty"`
	// Tag is the root's original tag, written last; empty when the root was
	// exported by digest.
	Tag string `json:"tag,omitempty"`
	// Tags lists every tag written or left unchanged (or, in a dry run,
	// that would be), in the order an import writes them.
	Tags []TagResult `json:"tags"`
	// BlobsUploaded and BytesUploaded count the configs and layers sent to
	// the destination (in a dry run: missing there); manifests and
	// locations images are not counted.
	BlobsUploaded int   `json:"blobsUploaded"`
	BytesUploaded int64 `json:"bytesUploaded"`
	// BlobsPresent and BytesPresent count those the destination already had.
	BlobsPresent int   `json:"blobsPresent"`
	BytesPresent int64 `json:"bytesPresent"`
	// ManifestsPushed and ManifestsPresent count the archive's manifests
	// and indexes PUT (in a dry run: missing) and already there.
	ManifestsPushed  int `json:"manifestsPushed"`
	ManifestsPresent int `json:"manifestsPresent"`
	// DryRun is set when nothing was changed.
	DryRun bool `json:"dryRun"`
}

// Import reads a ferry archive (zstd, gzip or plain tar) once, front to
// back, and puts everything it holds into repo, recreating what imgpkg
// writes there (DESIGN §2):
//
//   - From the head (index.json and the manifests) it knows every blob; it
//     checks which ones repo already has, then uploads the missing ones as
//     the stream goes by, each verified against its digest while it is read
//     (a mismatch aborts the import, naming the digest and archive entry).
//     Nothing is extracted to disk; blobs waiting for their upload are
//     spooled, within ImportOptions.SpoolBytes, and removed on every exit.
//   - Then every manifest is PUT by digest, children before parents, and the
//     digest the registry reports is checked against the archive's.
//   - Then the tags: "sha256-<hex>.imgpkg" (or repo-based) for every image
//     of index.json, an image-locations image per bundle with its two tags,
//     and last the root's original tag, the commit point: a failure earlier
//     never moves it. Tags already pointing at the right digest are not
//     written again.
//
// An import is idempotent and resumable: run again after a failure or a
// kill, it uploads only what is missing and completes. The locations images
// are built from each bundle's images.yml, read back from the destination
// once the blobs are in (bundle layers are small), so both a real and a dry
// run get it the same way.
//
// With DryRun only the head is read: the result says which blobs are
// missing and which tags would be created or moved. A bundle whose layer is
// not in repo yet cannot have its locations image computed without reading
// the archive's layers, so its locations tag is reported with an empty
// Digest, and the tag named after the locations image's own digest is not
// listed.
func Import(ctx context.Context, r io.Reader, repo name.Repository, opts ImportOptions) (*ImportResult, error) {
	res, err := runImport(ctx, r, repo, opts)
	if err != nil {
		return nil, fmt.Errorf("import to %s: %w", repo, err)
	}
	return res, nil
}

// importer carries one import.
type importer struct {
	repo name.Repository
	opts ImportOptions
	conc int
	rep  progress.Reporter
	pull *remote.Puller
	push *remote.Pusher
	ar   *archive.Reader
	head *importHead

	blobPresent     map[v1.Hash]bool
	manifestPresent map[v1.Hash]bool
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
	img    v1.Image
	digest v1.Hash
	m      importRawManifest
}

func runImport(ctx context.Context, r io.Reader, repo name.Repository, opts ImportOptions) (*ImportResult, error) {
	ar, err := archive.NewReader(r, archive.ReaderOptions{})
	if err != nil {
		return nil, err
	}
	defer ar.Close()
	head, err := readImportHead(ar)
	if err != nil {
		return nil, err
	}
	im := &importer{
		repo: repo,
		opts: opts,
		conc: opts.Concurrency,
		rep:  progress.OrNop(opts.Reporter),
		ar:   ar,
		head: head,
	}
	if im.conc <= 0 {
		im.conc = DefaultImportConcurrency
	}
	if err := im.check(); err != nil {
		return nil, err
	}
	if im.pull, err = remote.NewPuller(opts.Remote...); err != nil {
		return nil, err
	}
	if im.push, err = remote.NewPusher(opts.Remote...); err != nil {
		return nil, err
	}

	res := &ImportResult{Repository: repo.Name(), DryRun: opts.DryRun}
	if root := head.root; root != nil {
		res.Root = im.digestRef(root.digest)
		res.Tag = root.Tag
	}
	if err := im.probe(ctx); err != nil {
		return nil, err
	}
	var missing int64
	for _, b := range head.blobs {
		if im.blobPresent[b.Digest] {
			res.BlobsPresent++
			res.BytesPresent += b.Size
		} else {
			res.BlobsUploaded++
			missing += b.Size
		}
	}
	res.BytesUploaded = missing
	for d := range head.manifests {
		if im.manifestPresent[d] {
			res.ManifestsPresent++
		} else {
			res.ManifestsPushed++
		}
	}

	if opts.DryRun {
		res.Tags, err = im.dryRunTags(ctx)
		if err != nil {
			return nil, err
		}
		return res, nil
	}

	im.rep.Start("import", missing)
	defer im.rep.Done()
	if err := im.stream(ctx); err != nil {
		return nil, err
	}
	if err := im.commitManifests(ctx); err != nil {
		return nil, err
	}
	res.Tags, err = im.writeTags(ctx)
	if err != nil {
		return nil, err
	}
	if opts.LockOutput != "" {
		bl := lock.BundleLock{Bundle: lock.BundleRef{Image: res.Root, Tag: res.Tag}}
		if err := bl.WriteFile(opts.LockOutput); err != nil {
			return nil, err
		}
	}
	if res.Root != "" {
		im.rep.Logf("imported %s", res.Root)
	}
	return res, nil
}

// check refuses, before anything is changed, what would fail at the end.
func (im *importer) check() error {
	for _, e := range im.head.entries {
		if e.Tag == "" {
			continue
		}
		if _, err := name.NewTag(im.repo.String()+":"+e.Tag, im.opts.Name...); err != nil {
			return fmt.Errorf("index.json entry %s: original tag %q: %w", e.name(), e.Tag, err)
		}
	}
	if im.opts.LockOutput == "" {
		return nil
	}
	if root := im.head.root; root == nil || !root.isBundle() {
		return errors.New("lock output: the archive holds no root bundle")
	}
	dir := filepath.Dir(im.opts.LockOutput)
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("lock output %s: %w", im.opts.LockOutput, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("lock output %s: %s is not a directory", im.opts.LockOutput, dir)
	}
	return nil
}

func (im *importer) digestRef(d v1.Hash) string {
	return im.repo.Name() + "@" + d.String()
}

// describe names a manifest in messages: its index.json entry if it has
// one.
func (im *importer) describe(d v1.Hash) string {
	if e := im.head.byDigest[d]; e != nil {
		return e.name()
	}
	return d.String()
}

// probe checks, concurrently, which blobs and manifests repo already has.
func (im *importer) probe(ctx context.Context) error {
	blobs := im.head.blobs
	manifests := make([]v1.Hash, 0, len(im.head.manifests))
	for _, g := range im.head.commit {
		manifests = append(manifests, g...)
	}
	blobOK := make([]bool, len(blobs))
	manOK := make([]bool, len(manifests))
	err := importParallel(ctx, im.conc, len(blobs)+len(manifests), func(ctx context.Context, i int) error {
		if i < len(blobs) {
			ok, err := importBlobExists(ctx, im.pull, im.repo, blobs[i].Digest)
			blobOK[i] = ok
			return err
		}
		i -= len(blobs)
		desc, err := importHeadManifest(ctx, im.pull, im.repo.Digest(manifests[i].String()))
		manOK[i] = desc != nil
		return err
	})
	if err != nil {
		return err
	}
	im.blobPresent = make(map[v1.Hash]bool, len(blobs))
	for i, b := range blobs {
		if blobOK[i] {
			im.blobPresent[b.Digest] = true
		}
	}
	im.manifestPresent = make(map[v1.Hash]bool, len(manifests))
	for i, d := range manifests {
		if manOK[i] {
			im.manifestPresent[d] = true
		}
	}
	return nil
}

// stream reads the archive's configs and layers, uploading those repo
// lacks.
func (im *importer) stream(ctx context.Context) error {
	slots := im.opts.spoolSlots
	if slots <= 0 {
		slots = im.conc + 1
	}
	budget := im.opts.SpoolBytes
	if budget <= 0 {
		budget = DefaultImportSpoolBytes
	}
	up := newImportUploads(ctx, im.push, im.repo, im.conc, slots, budget, im.opts.SpoolDir, im.rep)
	defer up.close()

	seen := map[v1.Hash]bool{}
	for {
		if up.ctx.Err() != nil {
			break
		}
		d, size, rd, err := im.ar.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			up.fail(err)
			break
		}
		seen[d] = true
		want, ok := im.head.blobSize[d]
		if !ok || im.blobPresent[d] {
			// Present already, or referenced by no manifest: the Reader
			// still verifies it as it skips it.
			continue
		}
		if want != size {
			up.fail(fmt.Errorf("archive entry blobs/%s/%s: %d bytes, the manifests say %d", d.Algorithm, d.Hex, size, want))
			break
		}
		if err := up.add(d, size, rd); err != nil {
			up.fail(err)
			break
		}
	}
	if err := up.close(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, b := range im.head.blobs {
		if !seen[b.Digest] {
			return fmt.Errorf("blob %s is referenced by a manifest but not in the archive", b.Digest)
		}
	}
	return nil
}

// commitManifests PUTs the missing manifests, group by group.
func (im *importer) commitManifests(ctx context.Context) error {
	for _, group := range im.head.commit {
		var todo []v1.Hash
		for _, d := range group {
			if !im.manifestPresent[d] {
				todo = append(todo, d)
			}
		}
		err := importParallel(ctx, im.conc, len(todo), func(ctx context.Context, i int) error {
			d := todo[i]
			m := im.head.manifests[d]
			if err := importPutManifest(ctx, im.push, im.pull, im.repo, d, importRawManifest{raw: m.raw, mediaType: m.mediaType}); err != nil {
				return err
			}
			im.rep.Logf("pushed manifest %s", im.describe(d))
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
func (im *importer) imgpkgTag(e importEntry) (string, error) {
	if !im.opts.RepoBasedTags || e.OriginalRef == "" {
		return tags.Imgpkg(e.digest), nil
	}
	ref, err := name.ParseReference(e.OriginalRef, append([]name.Option{name.WeakValidation}, im.opts.Name...)...)
	if err != nil {
		return "", fmt.Errorf("index.json entry %s: original reference: %w", e.name(), err)
	}
	return tags.RepoBased(ref.Context().RepositoryStr(), e.digest), nil
}

// entryTags returns the ".imgpkg" tags of every index.json entry (sorted
// by tag) and the original tags, written last.
func (im *importer) entryTags() (imgpkg, originals []importTag, err error) {
	seen := map[string]bool{}
	for _, e := range im.head.entries {
		m := im.head.manifests[e.digest]
		raw := importRawManifest{raw: m.raw, mediaType: m.mediaType}
		t, err := im.imgpkgTag(e)
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
func (im *importer) readBundleLock(ctx context.Context, b importEntry) (*lock.ImagesLock, error) {
	img, err := partial.CompressedToImage(&importDestImage{ctx: ctx, puller: im.pull, repo: im.repo, m: im.head.manifests[b.digest]})
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %w", b.name(), err)
	}
	return bundle.ReadImagesLock(img, "bundle "+b.name())
}

// locations builds the locations image of every bundle in bundles.
func (im *importer) locations(ctx context.Context, bundles []importEntry) ([]*importLocations, error) {
	out := make([]*importLocations, len(bundles))
	err := importParallel(ctx, im.conc, len(bundles), func(ctx context.Context, i int) error {
		b := bundles[i]
		il, err := im.readBundleLock(ctx, b)
		if err != nil {
			return err
		}
		locs, err := BundleLocations(il, im.head.isBundle)
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
		out[i] = &importLocations{bundle: b, img: img, digest: d, m: importRawManifest{raw: raw, mediaType: mt}}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
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
func (im *importer) currentTags(ctx context.Context, names []string) (map[string]v1.Hash, error) {
	existing, err := importListTags(ctx, im.pull, im.repo)
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
	err = importParallel(ctx, im.conc, len(todo), func(ctx context.Context, i int) error {
		desc, err := importHeadManifest(ctx, im.pull, im.repo.Tag(todo[i]))
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
func (im *importer) dryRunTags(ctx context.Context) ([]TagResult, error) {
	imgpkg, originals, err := im.entryTags()
	if err != nil {
		return nil, err
	}
	// Locations images can be computed for the bundles whose layers are
	// already in repo; the others only after their layers are uploaded.
	var known, unknown []importEntry
	for _, b := range im.head.bundles() {
		ok := true
		for _, l := range im.head.manifests[b.digest].layers {
			ok = ok && im.blobPresent[l]
		}
		if ok {
			known = append(known, b)
		} else {
			unknown = append(unknown, b)
		}
	}
	locs, err := im.locations(ctx, known)
	if err != nil {
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
	cur, err := im.currentTags(ctx, names)
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
func (im *importer) writeTags(ctx context.Context) ([]TagResult, error) {
	imgpkg, originals, err := im.entryTags()
	if err != nil {
		return nil, err
	}
	locs, err := im.locations(ctx, im.head.bundles())
	if err != nil {
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
	cur, err := im.currentTags(ctx, names)
	if err != nil {
		return nil, err
	}

	var results []TagResult
	var mu sync.Mutex
	put := func(ctx context.Context, t importTag) error {
		r := importTagResult(t, cur)
		if r.Action != TagUnchanged {
			if err := im.push.Put(ctx, im.repo.Tag(t.tag), t.m); err != nil {
				return fmt.Errorf("tag %s:%s: %w", im.repo, t.tag, err)
			}
			im.rep.Logf("tagged %s:%s (%s)", im.repo, t.tag, t.digest)
		}
		mu.Lock()
		results = append(results, r)
		mu.Unlock()
		return nil
	}
	putAll := func(ts []importTag) error {
		return importParallel(ctx, im.conc, len(ts), func(ctx context.Context, i int) error { return put(ctx, ts[i]) })
	}

	if err := putAll(imgpkg); err != nil {
		return nil, err
	}
	err = importParallel(ctx, im.conc, len(locs), func(ctx context.Context, i int) error {
		l := locs[i]
		ts := importLocationTags(l)
		need := false
		for _, t := range ts {
			need = need || importTagResult(t, cur).Action != TagUnchanged
		}
		if need {
			if err := im.push.Push(ctx, im.repo.Digest(l.digest.String()), l.img); err != nil {
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
		im.rep.Logf("%d tags already in place", unchanged)
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
