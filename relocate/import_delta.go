package relocate

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/archive"
	"github.com/ferry-dev/ferry/internal/parallel"
	"github.com/ferry-dev/ferry/internal/registry"
)

// checkDelta makes sure, before anything is uploaded, that the destination
// holds every config and layer a delta archive left out. The probe found
// those the repository has; one that an inventory saw in another repository
// of the same registry is mounted from there (in a dry run, only looked
// up). If any is still missing, the import stops, naming how many, the
// first few, and the base the delta expected them from: nothing has been
// written. It records in res what it found and mounted.
func (dst *destination) checkDelta(ctx context.Context, res *ImportResult) error {
	if dst.head.delta == nil {
		return nil
	}
	var missing []archive.LeftOut
	for _, l := range dst.head.delta.LeftOut {
		res.BlobsLeftOut++
		res.BytesLeftOut += l.Size
		if !dst.blobPresent[l.Digest] {
			missing = append(missing, l)
		}
	}
	found := make([]bool, len(missing))
	err := parallel.ForEach(ctx, dst.conc, len(missing), func(ctx context.Context, i int) error {
		l := missing[i]
		from, ok := dst.mountSource(l)
		if !ok {
			return nil
		}
		if dst.opts.DryRun {
			r, err := dst.client.Repo(ctx, from, registry.Access{})
			if err != nil {
				return err
			}
			found[i], err = r.BlobExists(ctx, l.Digest)
			return err
		}
		r, err := dst.client.Repo(ctx, dst.repo, registry.Access{Push: true, MountFrom: &from})
		if err != nil {
			return err
		}
		found[i], err = r.Mount(ctx, l.Digest)
		return err
	})
	if err != nil {
		return err
	}
	var still []archive.LeftOut
	for i, l := range missing {
		if found[i] {
			dst.blobPresent[l.Digest] = true
			res.LeftOutMounted++
			continue
		}
		still = append(still, l)
	}
	if len(still) == 0 {
		return nil
	}
	var bytes int64
	var first []string
	bases := map[int]bool{}
	for i, l := range still {
		bytes += l.Size
		bases[l.Base] = true
		if i < 5 {
			first = append(first, l.Digest.String())
		}
	}
	if len(still) > len(first) {
		first = append(first, fmt.Sprintf("and %d more", len(still)-len(first)))
	}
	var from []string
	for _, i := range slices.Sorted(maps.Keys(bases)) {
		from = append(from, dst.head.delta.Bases[i].String())
	}
	return fmt.Errorf("this delta archive leaves out %d %s (%d bytes) that %s does not hold: %s; it expects them from %s: import that first (or export in full)",
		len(still), plural(len(still), "blob", "blobs"), bytes, dst.repo, strings.Join(first, ", "), strings.Join(from, "; "))
}

// mountSource returns the repository an inventory saw l in, when it is
// another repository of the destination's registry.
func (dst *destination) mountSource(l archive.LeftOut) (name.Repository, bool) {
	if l.Repository == "" {
		return name.Repository{}, false
	}
	repo, err := name.NewRepository(l.Repository, dst.opts.Name...)
	if err != nil || repo.RegistryStr() != dst.repo.RegistryStr() || repo.Name() == dst.repo.Name() {
		return name.Repository{}, false
	}
	return repo, true
}

// isLeftOut reports whether the archive left blob d out.
func (h *importHead) isLeftOut(d v1.Hash) bool {
	_, ok := h.leftOut[d]
	return ok
}
