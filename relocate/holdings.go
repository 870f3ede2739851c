package relocate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/archive"
	"github.com/ferry-dev/ferry/internal/inventory"
	"github.com/ferry-dev/ferry/internal/parallel"
	"github.com/ferry-dev/ferry/internal/progress"
	"github.com/ferry-dev/ferry/internal/regerr"
	"github.com/ferry-dev/ferry/internal/registry"
)

// InventoryOptions configures TakeInventory.
type InventoryOptions struct {
	// Remote is passed to the tag listing, made through
	// go-containerregistry.
	Remote []remote.Option
	// Client fetches the manifests; nil means a default registry.Client.
	Client *registry.Client
	// Concurrency bounds the requests made at once; 0 means
	// DefaultConcurrency.
	Concurrency int
	// CreatedBy is recorded in the document; "" means DefaultCreatedBy.
	CreatedBy string
	// Reporter receives one line per repository; nil discards it.
	Reporter progress.Reporter
	// MaxManifests bounds the manifests walked in each repository; 0
	// means MaxInventoryManifests.
	MaxManifests int
	// MaxBlobs bounds the blobs (configs and layers) the document lists,
	// all repositories together; 0 means MaxInventoryBlobs.
	MaxBlobs int
}

// TakeInventory lists what each repository holds (`ferry inventory`):
// every tag, internal ones included, followed through manifests, index
// children and referrers (the OCI 1.1 referrers API, or its tag fallback),
// to every manifest and every config and layer they reference. Manifests
// are read within archive.DefaultMaxManifestSize and checked against their
// digests; a repository that does not exist holds nothing.
func TakeInventory(ctx context.Context, repos []name.Repository, opts InventoryOptions) (*inventory.Document, error) {
	conc := opts.Concurrency
	if conc <= 0 {
		conc = DefaultConcurrency
	}
	client := opts.Client
	if client == nil {
		client = registry.New(registry.Options{})
	}
	createdBy := opts.CreatedBy
	if createdBy == "" {
		createdBy = DefaultCreatedBy
	}
	rep := progress.OrNop(opts.Reporter)
	puller, err := remote.NewPuller(opts.Remote...)
	if err != nil {
		return nil, err
	}
	doc := &inventory.Document{MediaType: inventory.MediaType, FormatVersion: inventory.FormatVersion, CreatedBy: createdBy, Created: time.Now().UTC().Truncate(time.Second)}
	if len(repos) > archive.MaxBaseRepositories {
		return nil, fmt.Errorf("inventory of %d repositories: export --since reads at most %d from one inventory; take several", len(repos), archive.MaxBaseRepositories)
	}
	maxManifests := opts.MaxManifests
	if maxManifests <= 0 {
		maxManifests = MaxInventoryManifests
	}
	maxBlobs := opts.MaxBlobs
	if maxBlobs <= 0 {
		maxBlobs = MaxInventoryBlobs
	}
	listed := 0 // blobs the repositories before this one list
	for _, repo := range repos {
		r, err := holdings(ctx, repo, puller, client, conc, maxManifests, blobBound{max: maxBlobs, before: listed}, rep)
		if err != nil {
			return nil, fmt.Errorf("inventory of %s: %w", repo, withHTTPStatus(err))
		}
		if r.Tags == 0 {
			// A typo in --repo looks just like this: say so, since a delta
			// made from it would leave out nothing.
			rep.Warnf("%s has no tags (it is empty, or does not exist): the inventory lists nothing from it", repo)
		}
		rep.Logf("%s: %d tags, %d manifests, %d blobs", repo, r.Tags, len(r.Manifests), len(r.Blobs))
		listed += len(r.Blobs)
		doc.Repositories = append(doc.Repositories, r)
	}
	return doc, nil
}

// MaxInventoryManifests bounds the manifests an inventory walks in one
// repository (tags, index children and referrers, each fetched once): a
// registry that kept naming new ones would otherwise make the walk
// endless. 250,000 is 10,000 tags of multi-platform indexes with a dozen
// children and a signature each, twice over; the walk's own state for
// that many is a few tens of MiB.
const MaxInventoryManifests = 250_000

// MaxInventoryBlobs bounds the distinct blobs (configs and layers) one
// inventory lists, all its repositories together, each counted as the
// walk finds it: a registry that does not check that the layers a
// manifest names exist (go-containerregistry's pkg/registry, a proxy)
// would otherwise let a few manifests of made-up layers fill memory, and
// the manifest bound allows billions. 1,000,000 is four blobs of their
// own for each of the MaxInventoryManifests manifests of a repository at
// that bound (images share most layers: a config and a layer or two of
// their own is typical); as JSON that is about 150 MB, within the
// inventory.MaxSize that export --since reads; the walk holds about 50
// bytes for each (a 32-byte key and its size), the document about 110.
const MaxInventoryBlobs = 1_000_000

// blobBound is what the walk of one repository may add to an inventory's
// blobs: max in all, of which the repositories before it list before.
type blobBound struct {
	max, before int
}

// walker is the state of one repository's walk.
type walker struct {
	repo name.Repository
	reg  *registry.Repo
	conc int
	max  int // manifests walked at most
	blob blobBound
	rep  progress.Reporter

	mu        sync.Mutex
	manifests map[v1.Hash]int64
	// blobs are keyed by their sha256 (parse lets no other through), 32
	// bytes without a pointer: a million of them cost a fraction of what
	// v1.Hash keys and their strings do.
	blobs map[[sha256.Size]byte]int64
	// skipped are the digests named to the walk that it went on without:
	// the repository does not hold them, or their manifest is unusable.
	skipped map[v1.Hash]bool
}

// walkRef is what the walk fetches: a tag (from is ""), or the digest of a
// manifest that another one names, from saying which ("a child of
// REPO@DIGEST", "a referrer of REPO@DIGEST") for warnings.
type walkRef struct {
	ref, from string
}

func holdings(ctx context.Context, repo name.Repository, puller *remote.Puller, client *registry.Client, conc, maxManifests int, blobs blobBound, rep progress.Reporter) (inventory.Repository, error) {
	out := inventory.Repository{Registry: repo.RegistryStr(), Repository: repo.RepositoryStr()}
	tagSet, err := importListTags(ctx, puller, repo)
	if err != nil {
		return out, err
	}
	reg, err := client.Repo(ctx, repo, registry.Access{})
	if err != nil {
		return out, err
	}
	w := &walker{repo: repo, reg: reg, conc: conc, max: maxManifests, blob: blobs, rep: rep, manifests: map[v1.Hash]int64{}, blobs: map[[sha256.Size]byte]int64{}, skipped: map[v1.Hash]bool{}}
	var level []walkRef
	for t := range tagSet {
		level = append(level, walkRef{ref: t})
	}
	out.Tags = len(level)
	// Level by level: the tags, then what their manifests name, then the
	// referrers of everything found so far, until nothing new turns up.
	for len(level) > 0 {
		if n := len(w.manifests) + len(level); n > maxManifests {
			return out, w.tooMany(len(level))
		}
		next, err := w.fetchLevel(ctx, level)
		if err != nil {
			return out, err
		}
		level = next
	}
	for d, size := range w.manifests {
		out.Manifests = append(out.Manifests, inventory.Item{Digest: d, Size: size})
	}
	for k, size := range w.blobs {
		d := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(k[:])}
		if _, isManifest := w.manifests[d]; !isManifest {
			out.Blobs = append(out.Blobs, inventory.Item{Digest: d, Size: size})
		}
	}
	return out, nil
}

// fetchLevel fetches the manifests refs name and returns the next level:
// children not seen yet and the referrers of the manifests new in this
// level.
//
// An inventory is advisory (an import checks every blob a delta leaves
// out), so one manifest the walk cannot use does not stop it: a digest the
// repository does not hold (an index's child, a listed referrer) and a
// manifest GetManifest refuses (larger than the limit, its bytes not of
// its digest: a signed Docker schema 1 manifest's digest is that of its
// payload) are skipped, and a manifest that cannot be read (Docker schema
// 1) is listed without what it would reference, each with a warning. A
// tag deleted while the walk runs is skipped without one.
func (w *walker) fetchLevel(ctx context.Context, refs []walkRef) ([]walkRef, error) {
	found := make([][]walkRef, len(refs))
	// What the level names is kept once, and counted against the bound as
	// it is found: many manifests of a level, each naming thousands of
	// children, would otherwise be held whole before the next level's
	// check.
	var mu sync.Mutex
	seen := map[string]bool{}
	room := w.max - len(w.manifests) - len(refs)
	named := 0
	err := parallel.ForEach(ctx, w.conc, len(refs), func(ctx context.Context, i int) error {
		r := refs[i]
		raw, mt, d, err := w.reg.GetManifest(ctx, r.ref, archive.DefaultMaxManifestSize)
		switch {
		case registry.UnusableManifest(err):
			w.skip(r)
			if r.from != "" {
				err = fmt.Errorf("%w (%s)", err, r.from)
			}
			w.rep.Warnf("%v: skipped", err)
			return nil
		case regerr.IsNotFound(err):
			if r.from != "" {
				w.skip(r)
				w.rep.Warnf("%s is not in the repository: skipped", w.name(r, r.ref))
			}
			return nil
		case err != nil:
			return err
		}
		if !w.add(d, int64(len(raw))) {
			return nil
		}
		children, blobs, err := w.parse(d, raw, mt)
		if err != nil {
			w.rep.Warnf("%s: %v: listed without what it references", w.name(r, d.String()), err)
		}
		if err := w.addBlobs(blobs); err != nil {
			return err
		}
		refd, err := w.referrers(ctx, d)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		for _, r := range append(children, refd...) {
			if !seen[r.ref] && !w.known(r.ref) {
				seen[r.ref] = true
				found[i] = append(found[i], r)
			}
		}
		if named += len(found[i]); named > room {
			return w.tooMany(len(refs) + named)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var next []walkRef
	for _, f := range found {
		next = append(next, f...)
	}
	return next, nil
}

// tooMany is the error of a walk that would pass its bound, with named
// manifests to fetch beyond those it has.
func (w *walker) tooMany(named int) error {
	w.mu.Lock()
	have := len(w.manifests)
	w.mu.Unlock()
	return fmt.Errorf("more than %d manifests to walk (%d found, %d more named): a repository this large, or a registry that keeps naming new ones, is beyond what an inventory lists", w.max, have, named)
}

// name names the manifest r led to, of digest d, in a warning.
func (w *walker) name(r walkRef, d string) string {
	if r.from == "" {
		return fmt.Sprintf("manifest %s:%s (%s)", w.repo, r.ref, d)
	}
	return fmt.Sprintf("manifest %s@%s (%s)", w.repo, d, r.from)
}

// add records manifest d; it reports false when d was already recorded.
func (w *walker) add(d v1.Hash, size int64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.manifests[d]; ok {
		return false
	}
	w.manifests[d] = size
	return true
}

// skip records that the walk goes on without the manifest of the digest r
// names (not for a tag), so that nothing leads to it again.
func (w *walker) skip(r walkRef) {
	d, err := v1.NewHash(r.ref)
	if err != nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.skipped[d] = true
}

// known reports whether the walk has fetched d, or skipped it.
func (w *walker) known(d string) bool {
	h, err := v1.NewHash(d)
	if err != nil {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.manifests[h]
	return ok || w.skipped[h]
}

// addBlobs records the blobs a manifest references (but non-distributable
// layers), each counted against the inventory's blob bound as it is found.
func (w *walker) addBlobs(descs []v1.Descriptor) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, d := range descs {
		if !d.MediaType.IsDistributable() {
			continue
		}
		var k [sha256.Size]byte
		if n, err := hex.Decode(k[:], []byte(d.Digest.Hex)); err != nil || n != len(k) || d.Digest.Algorithm != "sha256" {
			return fmt.Errorf("a manifest names blob %q, not a sha256 digest", d.Digest)
		}
		if _, ok := w.blobs[k]; !ok && w.blob.before+len(w.blobs) >= w.blob.max {
			before := ""
			if w.blob.before > 0 {
				before = fmt.Sprintf(", %d of them in the repositories before it", w.blob.before)
			}
			return fmt.Errorf("more than %d blobs to list (%d found%s): a repository this large, or a registry that names layers it does not hold, is beyond what an inventory lists; take several inventories", w.blob.max, w.blob.before+len(w.blobs), before)
		}
		w.blobs[k] = d.Size
	}
	return nil
}

// parse returns the blobs a manifest references and the manifests an
// index names. It returns nothing from a manifest it cannot read: one
// parseImportManifest refuses (Docker schema 1), one of another media type
// than an image manifest or index (an OCI artifact manifest of the 1.1
// release candidates, whose "blobs" the image parser would not see), or
// one that names something by another digest than sha256 (or by none),
// which an inventory cannot list.
func (w *walker) parse(d v1.Hash, raw []byte, mt types.MediaType) ([]walkRef, []v1.Descriptor, error) {
	m, err := parseImportManifest(d, raw, mt)
	if err != nil {
		return nil, nil, err
	}
	if !m.mediaType.IsImage() && !m.mediaType.IsIndex() {
		return nil, nil, fmt.Errorf("media type %s is neither an image manifest nor an index", m.mediaType)
	}
	for _, b := range slices.Concat(m.blobs, m.children) {
		if b.Digest.Algorithm != "sha256" {
			return nil, nil, fmt.Errorf("it names a %s without a sha256 digest (%q)", b.MediaType, b.Digest)
		}
	}
	var children []walkRef
	for _, c := range m.children {
		children = append(children, walkRef{ref: c.Digest.String(), from: fmt.Sprintf("a child of %s@%s", w.repo, d)})
	}
	return children, m.blobs, nil
}

// referrers returns the manifests whose subject is d: every page of the
// referrers API, or its tag fallback, within the bounds export reads them
// in (registry.Repo.Referrers).
func (w *walker) referrers(ctx context.Context, d v1.Hash) ([]walkRef, error) {
	descs, err := w.reg.Referrers(ctx, d, registry.ReferrersLimits{})
	if err != nil {
		return nil, err
	}
	var out []walkRef
	for _, r := range descs {
		out = append(out, walkRef{ref: r.Digest.String(), from: fmt.Sprintf("a referrer of %s@%s", w.repo, d)})
	}
	return out, nil
}
