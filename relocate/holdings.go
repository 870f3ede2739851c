package relocate

import (
	"bytes"
	"context"
	"fmt"
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
	for _, repo := range repos {
		r, err := holdings(ctx, repo, puller, client, conc)
		if err != nil {
			return nil, fmt.Errorf("inventory of %s: %w", repo, withHTTPStatus(err))
		}
		if r.Tags == 0 {
			// A typo in --repo looks just like this: say so, since a delta
			// made from it would leave out nothing.
			rep.Warnf("%s has no tags (it is empty, or does not exist): the inventory lists nothing from it", repo)
		}
		rep.Logf("%s: %d tags, %d manifests, %d blobs", repo, r.Tags, len(r.Manifests), len(r.Blobs))
		doc.Repositories = append(doc.Repositories, r)
	}
	return doc, nil
}

// walker is the state of one repository's walk.
type walker struct {
	repo name.Repository
	reg  *registry.Repo
	conc int

	mu        sync.Mutex
	manifests map[v1.Hash]int64
	blobs     map[v1.Hash]int64
}

func holdings(ctx context.Context, repo name.Repository, puller *remote.Puller, client *registry.Client, conc int) (inventory.Repository, error) {
	out := inventory.Repository{Registry: repo.RegistryStr(), Repository: repo.RepositoryStr()}
	tagSet, err := importListTags(ctx, puller, repo)
	if err != nil {
		return out, err
	}
	reg, err := client.Repo(ctx, repo, registry.Access{})
	if err != nil {
		return out, err
	}
	w := &walker{repo: repo, reg: reg, conc: conc, manifests: map[v1.Hash]int64{}, blobs: map[v1.Hash]int64{}}
	var level []string
	for t := range tagSet {
		level = append(level, t)
	}
	out.Tags = len(level)
	// Level by level: the tags, then what their manifests name, then the
	// referrers of everything found so far, until nothing new turns up.
	for len(level) > 0 {
		next, err := w.fetchLevel(ctx, level)
		if err != nil {
			return out, err
		}
		level = next
	}
	for d, size := range w.manifests {
		out.Manifests = append(out.Manifests, inventory.Item{Digest: d, Size: size})
	}
	for d, size := range w.blobs {
		if _, isManifest := w.manifests[d]; !isManifest {
			out.Blobs = append(out.Blobs, inventory.Item{Digest: d, Size: size})
		}
	}
	return out, nil
}

// fetchLevel fetches the manifests refs name (tags or digests) and returns
// the digests of the next level: children not seen yet and the referrers
// of the manifests new in this level.
func (w *walker) fetchLevel(ctx context.Context, refs []string) ([]string, error) {
	found := make([][]string, len(refs))
	err := parallel.ForEach(ctx, w.conc, len(refs), func(ctx context.Context, i int) error {
		raw, mt, d, err := w.reg.GetManifest(ctx, refs[i], archive.DefaultMaxManifestSize)
		if err != nil {
			// A tag deleted while the walk runs is not an error.
			if isNotFoundErr(err) && !isDigestRef(refs[i]) {
				return nil
			}
			return err
		}
		if !w.add(d, int64(len(raw))) {
			return nil
		}
		children, err := w.parse(d, raw, mt)
		if err != nil {
			return err
		}
		refd, err := w.referrers(ctx, d)
		if err != nil {
			return err
		}
		found[i] = append(children, refd...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	var next []string
	seen := map[string]bool{}
	for _, f := range found {
		for _, d := range f {
			if !seen[d] && !w.known(d) {
				seen[d] = true
				next = append(next, d)
			}
		}
	}
	return next, nil
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

func (w *walker) known(d string) bool {
	h, err := v1.NewHash(d)
	if err != nil {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.manifests[h]
	return ok
}

func (w *walker) addBlob(d v1.Descriptor) {
	if !d.MediaType.IsDistributable() {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.blobs[d.Digest] = d.Size
}

// parse records the blobs a manifest references and returns the digests
// of the manifests an index names.
func (w *walker) parse(d v1.Hash, raw []byte, mt types.MediaType) ([]string, error) {
	m, err := parseImportManifest(d, raw, mt)
	if err != nil {
		return nil, fmt.Errorf("manifest %s@%s: %w", w.repo, d, err)
	}
	for _, b := range m.blobs {
		w.addBlob(b)
	}
	var children []string
	for _, c := range m.children {
		children = append(children, c.Digest.String())
	}
	return children, nil
}

// referrers returns the digests of the manifests whose subject is d: every
// page of the referrers API, or its tag fallback, within the bounds export
// reads them in (registry.Repo.Referrers).
func (w *walker) referrers(ctx context.Context, d v1.Hash) ([]string, error) {
	descs, err := w.reg.Referrers(ctx, d, registry.ReferrersLimits{})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, r := range descs {
		out = append(out, r.Digest.String())
	}
	return out, nil
}

func isDigestRef(ref string) bool { return bytes.HasPrefix([]byte(ref), []byte("sha256:")) }

// isNotFoundErr reports a registry's "no such manifest or repository".
func isNotFoundErr(err error) bool { return regerr.IsNotFound(err) }
