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

// checkDelta makes sure, before anything is written, that the destination
// holds every config and layer a delta archive left out. The probe found
// those the repository has; for one that an inventory saw in another
// repository of the same registry, that repository is asked. If any is
// still missing, the import stops, naming how many, the first few, and the
// base the delta expected them from: nothing has been written, not even a
// mount. Only then are the others mounted (in a dry run, they are only
// noted, and a bundle's layer among them is read where it is). It records
// in res what it found and mounted.
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
	at := make([]*name.Repository, len(missing))
	err := parallel.ForEach(ctx, dst.conc, len(missing), func(ctx context.Context, i int) error {
		from, ok := dst.mountSource(missing[i])
		if !ok {
			return nil
		}
		r, err := dst.client.Repo(ctx, from, registry.Access{})
		if err != nil {
			return err
		}
		there, err := r.BlobExists(ctx, missing[i].Digest, missing[i].Size)
		if there {
			at[i] = &from
		}
		return err
	})
	if err != nil {
		return err
	}
	var still []archive.LeftOut
	for i, l := range missing {
		if at[i] == nil {
			still = append(still, l)
		}
	}
	if len(still) > 0 {
		return dst.missingError(still)
	}
	if !dst.opts.DryRun {
		err := parallel.ForEach(ctx, dst.conc, len(missing), func(ctx context.Context, i int) error {
			l, from := missing[i], *at[i]
			r, err := dst.client.Repo(ctx, dst.repo, registry.Access{Push: true, MountFrom: &from})
			if err != nil {
				return err
			}
			ok, err := r.Mount(ctx, l.Digest)
			if err == nil && !ok {
				// The blob is there, but the registry opened an
				// upload instead (no cross-repository mounts, or no
				// right to read from).
				err = fmt.Errorf("the registry did not mount blob %s from %s into %s, though %s holds it (it may not mount across repositories, or these credentials may not read %s): export in full", l.Digest, from, dst.repo, from, from)
			}
			return err
		})
		if err != nil {
			return err
		}
	}
	count := map[string]int{}
	for i, l := range missing {
		dst.blobPresent[l.Digest] = true
		res.LeftOutMounted++
		count[at[i].Name()]++
		if dst.opts.DryRun {
			if dst.elsewhere == nil {
				dst.elsewhere = map[v1.Hash]name.Repository{}
			}
			dst.elsewhere[l.Digest] = *at[i]
		}
	}
	// The archive names where to mount from: -v says from where, the
	// summary how many (ImportResult.LeftOutMounted). A mount is no
	// warning: it is how a delta since an inventory is meant to land.
	for _, repo := range slices.Sorted(maps.Keys(count)) {
		verb := "mounted"
		if dst.opts.DryRun {
			verb = "would mount"
		}
		dst.rep.Logf("%s %d left-out blobs into %s from %s, where the delta's inventory saw them", verb, count[repo], dst.repo, repo)
	}
	return nil
}

// missingError says which left-out blobs the destination lacks and where
// the delta expected them from.
func (dst *destination) missingError(still []archive.LeftOut) error {
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
	var expected []string
	for _, i := range slices.Sorted(maps.Keys(bases)) {
		expected = append(expected, dst.head.delta.Bases[i].String())
	}
	return fmt.Errorf("this delta archive leaves out %d %s (%d bytes) that %s does not hold: %s; it expects them from %s: import that first (or export in full)",
		len(still), plural(len(still), "blob", "blobs"), bytes, dst.repo, strings.Join(first, ", "), strings.Join(expected, "; "))
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
