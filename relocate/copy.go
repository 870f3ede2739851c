package relocate

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/archive"
	"github.com/ferry-dev/ferry/internal/parallel"
	"github.com/ferry-dev/ferry/internal/registry"
	"github.com/ferry-dev/ferry/lock"
)

// CopyOptions configures Copy.
type CopyOptions struct {
	// DestinationOptions say how to reach the registries and what to write
	// at the destination; its Client reaches the sources too, and says how
	// many times a blob's upload is started afresh (a new GET from the
	// source, a new upload session at the destination) when its bytes fail
	// on the way (registry.Options.UploadAttempts).
	DestinationOptions
}

// Copy executes the plan p straight from the source registries into repo,
// with exactly what an Import of p's archive would leave there (docs/destination.md):
// the same blobs and manifests, the same tags, the same image-locations
// images, in the same commit order, with the root's original tag last, so
// a failure anywhere before it never moves that tag.
//
// Blobs the destination has already are skipped (HEAD; a manifest it has
// vouches for its blobs). The others stream
// from their source to the destination, several at once and never held in
// memory or on disk; each is verified against its digest as it is read, and
// the destination verifies it again. Within one registry a blob is mounted
// from its source repository instead (the registry copies nothing), falling
// back to streaming when the registry declines. A blob whose bytes fail on
// the way (the source cut the download, the destination lost part of the
// upload) is sent again from a fresh GET, as often as the Client's
// UploadAttempts allow. A copy is idempotent: run again after a failure, it sends only what
// is missing.
func Copy(ctx context.Context, p *Plan, repo name.Repository, opts CopyOptions) (*ImportResult, error) {
	res, err := runCopy(ctx, p, repo, opts)
	if g, ok := errors.AsType[*sourceBlobGone](err); ok {
		// The source's fault, said first: the blobs go before any manifest
		// or tag.
		return nil, blobGone(g.b, err, "nothing was tagged at the destination "+repo.String())
	}
	if err != nil {
		return nil, fmt.Errorf("copy to %s: %w", repo, withHTTPStatus(err))
	}
	return res, nil
}

func runCopy(ctx context.Context, p *Plan, repo name.Repository, opts CopyOptions) (*ImportResult, error) {
	if p == nil || len(p.Images) == 0 {
		return nil, errors.New("the plan holds no images")
	}
	if len(p.local) > 0 {
		return nil, errors.New("the plan reads blobs from an archive or a local build, not from registries: export it, then import the archive")
	}
	head, err := planHead(p)
	if err != nil {
		return nil, err
	}
	dst, err := newDestination(ctx, repo, head, opts.DestinationOptions)
	if err != nil {
		return nil, err
	}
	dst.checkInMove = true
	c := &copier{plan: p, sources: make(map[v1.Hash]Blob, len(p.Blobs))}
	for _, b := range p.Blobs {
		c.sources[b.Digest] = b
	}
	dst.wouldMount = func(d v1.Hash) bool {
		b, ok := c.sources[d]
		return ok && mountable(b.Source.Context(), repo)
	}
	// The source repositories' clients authenticate (a ping, maybe a
	// token) while the destination is probed, one at a time, instead of
	// when the first blobs need them, every stream waiting for that.
	warmCtx, stopWarm := context.WithCancel(ctx)
	var warm sync.WaitGroup
	defer func() {
		stopWarm()
		warm.Wait()
	}()
	warm.Go(func() {
		for _, src := range c.sourceRepos(head, repo) {
			if _, err := dst.client.Repo(warmCtx, src, registry.Access{}); err != nil {
				// The copy asks again, and reports it.
				return
			}
		}
	})
	return dst.commit(ctx, "copy", c.move)
}

// sourceRepos lists, once each and in the order the copy needs them, the
// repositories its blobs will be read from: not those of blobs the plan
// holds already, nor those of the destination's registry, whose blobs are
// mounted.
func (c *copier) sourceRepos(head *importHead, dst name.Repository) []name.Repository {
	var out []name.Repository
	seen := map[string]bool{}
	for _, d := range head.blobs {
		b, ok := c.sources[d.Digest]
		if _, cached := c.plan.Cached[d.Digest]; !ok || cached {
			continue
		}
		repo := b.Source.Context()
		if repo.RegistryStr() != dst.RegistryStr() && !seen[repo.Name()] {
			seen[repo.Name()] = true
			out = append(out, repo)
		}
	}
	return out
}

// planHead is what an archive of p would hold at its head: the entries of
// its index.json, in the same order, and every manifest. The bundles'
// images.yml were read while planning, so locations images need not read
// them back from the destination.
func planHead(p *Plan) (*importHead, error) {
	entries := make([]archive.Entry, 0, len(p.Images))
	locks := map[v1.Hash]*lock.ImagesLock{}
	for _, im := range p.Images {
		entries = append(entries, archive.Entry{
			Descriptor:    v1.Descriptor{MediaType: im.MediaType, Size: im.Size, Digest: im.Digest},
			Role:          im.Role,
			OriginalRef:   im.OriginalRef,
			Tag:           im.Tag,
			Subject:       im.Subject,
			SignatureKind: im.SignatureKind,
		})
		if im.Lock != nil {
			locks[im.Digest] = im.Lock
		}
	}
	// Tags are reported in an order that follows index.json's, so a copy
	// reports them as an import would.
	archive.SortEntries(entries)
	skipped := make([]v1.Hash, 0, len(p.Skipped))
	for _, b := range p.Skipped {
		skipped = append(skipped, b.Digest)
	}
	head, err := newImportHead(entries, skipped, func(d v1.Hash) ([]byte, bool) {
		m, ok := p.Manifests[d]
		return m.Raw, ok
	})
	if err != nil {
		return nil, err
	}
	head.locks = locks
	head.rolesRead = true
	head.imagesLock = p.imagesLock
	return head, nil
}

// copier carries what a copy adds to the commit phase: where each blob
// comes from.
type copier struct {
	plan    *Plan
	sources map[v1.Hash]Blob
}

// move sends every blob the destination lacks, concurrently, or mounts it
// from its source repository within one registry.
func (c *copier) move(ctx context.Context, dst *destination, _ *ImportResult) error {
	var todo []Blob
	var descs []v1.Descriptor
	for _, d := range dst.head.blobs {
		if dst.blobPresent[d.Digest] {
			continue
		}
		b, ok := c.sources[d.Digest]
		if !ok {
			// planHead's manifests are the plan's, so this cannot happen.
			return fmt.Errorf("blob %s is referenced by a manifest but not in the plan", d.Digest)
		}
		todo = append(todo, b)
		descs = append(descs, d)
	}
	defer dst.headAhead(ctx, descs)()
	return parallel.ForEach(ctx, dst.conc, len(todo), func(ctx context.Context, i int) error {
		if there, err := dst.alreadyThere(ctx, descs[i]); there || err != nil {
			return err
		}
		mounted, err := c.copyBlob(ctx, dst, todo[i])
		if mounted {
			// Counted apart from the blobs sent (settleFound); the
			// summary says how many, so -v need not.
			dst.markMounted(todo[i].Digest)
		}
		return err
	})
}
