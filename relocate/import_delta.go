package relocate

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/archive"
	"github.com/ferry-dev/ferry/internal/parallel"
	"github.com/ferry-dev/ferry/internal/progress"
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
		// A repository these credentials cannot read, or that answers
		// oddly, does not stop the search: another may hold the blob.
		var firstErr error
		for _, from := range dst.mountSources(missing[i]) {
			r, err := dst.client.Repo(ctx, from, registry.Access{})
			var there bool
			if err == nil {
				there, err = r.BlobExists(ctx, missing[i].Digest, missing[i].Size)
			}
			if err != nil {
				if ctx.Err() != nil {
					return err
				}
				firstErr = cmp.Or(firstErr, err)
				continue
			}
			if there {
				at[i] = &from
				return nil
			}
		}
		return firstErr
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
		res.BytesLeftOutMounted += l.Size
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
// the delta expected them from: an archive, to be imported first; an
// inventory, whose repositories on this registry no longer hold them (or
// never did: it is of another registry).
func (dst *destination) missingError(still []archive.LeftOut) error {
	var size int64
	var first []string
	bases := map[int]bool{}
	for i, l := range still {
		size += l.Size
		bases[l.Base] = true
		if i < 5 {
			first = append(first, l.Digest.String())
		}
	}
	if len(still) > len(first) {
		first = append(first, fmt.Sprintf("and %d more", len(still)-len(first)))
	}
	var archives, inventories []string
	for _, i := range slices.Sorted(maps.Keys(bases)) {
		b := dst.head.delta.Bases[i]
		if b.Kind == archive.BaseInventory {
			inventories = append(inventories, b.String())
		} else {
			archives = append(archives, b.String())
		}
	}
	var expected []string
	if len(archives) > 0 {
		expected = append(expected, fmt.Sprintf("it expects them from %s: import that first", strings.Join(archives, "; ")))
	}
	if len(inventories) > 0 {
		expected = append(expected, fmt.Sprintf("the %s saw them, but no repository it walked on %s holds them now (deleted since, or the inventory is of another registry): take a new inventory of the destination and export again since it", strings.Join(inventories, "; "), dst.repo.RegistryStr()))
	}
	return fmt.Errorf("this delta archive leaves out %d %s (%s) that %s does not hold: %s; %s (or export in full)",
		len(still), plural(len(still), "blob", "blobs"), progress.Bytes(size), dst.repo, strings.Join(first, ", "), strings.Join(expected, "; "))
}

// mountSources returns the repositories of the destination's registry,
// other than the destination, that may hold l, in the order to ask them:
// the one the delta records for it (where the first inventory that holds
// it saw it), then every other repository its inventories walked. An
// inventory of several registries records, for each blob, the first
// repository that holds it, maybe on another registry than this import's;
// another that holds it too is on the list its base records
// (Base.Repositories), and so is a repository that a second inventory,
// given after the first, walked.
func (dst *destination) mountSources(l archive.LeftOut) []name.Repository {
	var out []name.Repository
	add := func(ref string) {
		repo, err := name.NewRepository(ref, dst.opts.Name...)
		if err != nil || repo.RegistryStr() != dst.repo.RegistryStr() || repo.Name() == dst.repo.Name() {
			return
		}
		if !slices.ContainsFunc(out, func(r name.Repository) bool { return r.Name() == repo.Name() }) {
			out = append(out, repo)
		}
	}
	if l.Repository != "" {
		add(l.Repository)
	}
	bases := dst.head.delta.Bases
	// The blob's own base first, then the others in order.
	order := []int{l.Base}
	for i := range bases {
		if i != l.Base {
			order = append(order, i)
		}
	}
	for _, i := range order {
		if i < 0 || i >= len(bases) || bases[i].Kind != archive.BaseInventory {
			continue
		}
		for _, ref := range bases[i].Repositories {
			add(ref)
		}
	}
	return out
}

// isLeftOut reports whether the archive left blob d out.
func (h *importHead) isLeftOut(d v1.Hash) bool {
	_, ok := h.leftOut[d]
	return ok
}
