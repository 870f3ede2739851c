package relocate

import (
	"context"
	"fmt"
	"io"
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

// MountProbesPerBlob and MountProbesExtra bound the requests an import of
// a delta makes looking for the left-out blobs its destination lacks in
// other repositories of the destination's registry: one HEAD per
// repository asked, at most MountProbesPerBlob for each such blob plus
// MountProbesExtra in all. The repositories are asked in rounds (every
// blob's first candidate, then the second of every blob not found yet,
// and so on), so that every blob is looked for in at least its first
// MountProbesPerBlob candidates, the repository its inventory saw it in
// first. The candidates come from the archive (archive.MaxBaseRepositories
// per base); a blob not found within the bound is missing, as one that no
// candidate holds, and the error says that the search stopped.
const (
	MountProbesPerBlob = 4
	MountProbesExtra   = 1000
)

// LeftOutSource is one repository of the destination's registry that an
// import took a delta's left-out blobs from (ImportResult.LeftOutFrom).
type LeftOutSource struct {
	// Repository is the repository, registry/path.
	Repository string `json:"repository"`
	// Mounted and MountedBytes count the blobs mounted from it (in a dry
	// run: to mount).
	Mounted      int   `json:"mounted"`
	MountedBytes int64 `json:"mountedBytes"`
	// Uploaded and UploadedBytes count the blobs the registry would not
	// mount from it (it opened an upload instead): read from it and
	// uploaded, verified against their digest.
	Uploaded      int   `json:"uploaded,omitempty"`
	UploadedBytes int64 `json:"uploadedBytes,omitempty"`
}

// checkDelta makes sure, before anything is written, that the destination
// holds every config and layer a delta archive left out. The probe found
// those the repository has; for one that an inventory saw in another
// repository of the same registry, the repositories the delta names there
// are asked (mountSearch), within MountProbesPerBlob and MountProbesExtra.
// If any is still missing, the import stops, naming how many, the first
// few, and the base the delta expected them from: nothing has been
// written, not even a mount. With NoMount no other repository is asked.
// Only then are the others mounted (in a dry run, they are only noted, and
// a bundle's layer among them is read where it is); one the registry will
// not mount is read from where it is and uploaded. It records in res what
// it found, mounted and uploaded, and from where.
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
	if len(missing) == 0 {
		return nil
	}
	if dst.opts.NoMount {
		return dst.missingError(missing, errNoMount)
	}
	at, stopped, err := dst.findLeftOut(ctx, missing)
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
		why := errNotHeld
		if stopped {
			why = errSearchStopped
		}
		return dst.missingError(still, why)
	}
	uploaded := make([]bool, len(missing))
	if !dst.opts.DryRun {
		err := parallel.ForEach(ctx, dst.conc, len(missing), func(ctx context.Context, i int) error {
			mounted, err := dst.mountLeftOut(ctx, missing[i], *at[i])
			uploaded[i] = !mounted
			return err
		})
		if err != nil {
			return err
		}
	}
	from := map[string]*LeftOutSource{}
	var sent []string
	var sentN int
	var sentBytes int64
	for i, l := range missing {
		repo := at[i].Name()
		s := from[repo]
		if s == nil {
			s = &LeftOutSource{Repository: repo}
			from[repo] = s
		}
		dst.blobPresent[l.Digest] = true
		if uploaded[i] {
			// In place now, but its bytes were sent: counted among the
			// uploads (countBlobs), not the mounts.
			if dst.leftOutSent == nil {
				dst.leftOutSent = map[v1.Hash]bool{}
			}
			dst.leftOutSent[l.Digest] = true
			s.Uploaded++
			s.UploadedBytes += l.Size
			sentN++
			sentBytes += l.Size
			continue
		}
		s.Mounted++
		s.MountedBytes += l.Size
		dst.markMounted(l.Digest)
		res.LeftOutMounted++
		res.BytesLeftOutMounted += l.Size
		if dst.opts.DryRun {
			if dst.elsewhere == nil {
				dst.elsewhere = map[v1.Hash]name.Repository{}
			}
			dst.elsewhere[l.Digest] = *at[i]
		}
	}
	// The archive names where to mount from: the result (and the
	// summary) says from where, -v as it happens. A mount is no warning:
	// it is how a delta since an inventory is meant to land; a mount the
	// registry refused is one, once for all.
	for _, repo := range slices.Sorted(maps.Keys(from)) {
		s := from[repo]
		res.LeftOutFrom = append(res.LeftOutFrom, *s)
		if s.Uploaded > 0 {
			sent = append(sent, fmt.Sprintf("%d from %s", s.Uploaded, repo))
		}
		if s.Mounted == 0 {
			continue
		}
		verb := "mounted"
		if dst.opts.DryRun {
			verb = "would mount"
		}
		dst.rep.Logf("%s %d left-out %s into %s from %s, where the delta's inventory saw them", verb, s.Mounted, plural(s.Mounted, "blob", "blobs"), dst.repo, repo)
	}
	if sentN > 0 {
		dst.rep.Warnf("the registry did not mount %d left-out %s (%s) into %s (it may not mount across repositories, or these credentials may not read the source): read them from where they are (%s) and uploaded them instead",
			sentN, plural(sentN, "blob", "blobs"), progress.Bytes(sentBytes), dst.repo, strings.Join(sent, ", "))
	}
	return nil
}

// findLeftOut looks for each of the missing blobs in the other
// repositories of the destination's registry the delta names, in rounds
// (see MountProbesPerBlob): at[i] is where missing[i] is, nil when no
// repository asked holds it. stopped says that the bound ended the search
// with candidates left unasked. A repository these credentials cannot
// read, or that answers oddly, does not stop the search: another may hold
// the blob; its error is returned only for a blob found nowhere.
func (dst *destination) findLeftOut(ctx context.Context, missing []archive.LeftOut) (at []*name.Repository, stopped bool, err error) {
	search := dst.newMountSearch()
	at = make([]*name.Repository, len(missing))
	errs := make([]error, len(missing))
	cursors := make([]mountCursor, len(missing))
	pending := make([]int, len(missing))
	for i, l := range missing {
		cursors[i] = search.cursor(l)
		pending[i] = i
	}
	budget := MountProbesPerBlob*len(missing) + MountProbesExtra
	type probe struct {
		i    int
		from mountCandidate
	}
	for len(pending) > 0 {
		var round []probe
		for _, i := range pending {
			c, ok := search.next(&cursors[i])
			if !ok {
				continue
			}
			if budget == 0 {
				stopped = true
				break
			}
			budget--
			round = append(round, probe{i, c})
		}
		if len(round) == 0 {
			break
		}
		err := parallel.ForEach(ctx, dst.conc, len(round), func(ctx context.Context, k int) error {
			p := round[k]
			l := missing[p.i]
			r, err := dst.client.Repo(ctx, p.from.repo, registry.Access{})
			var there bool
			if err == nil {
				there, err = r.BlobExists(ctx, l.Digest, l.Size)
			}
			switch {
			case err != nil && ctx.Err() != nil:
				return err
			case err != nil:
				if errs[p.i] == nil {
					errs[p.i] = err
				}
			case there:
				at[p.i] = &p.from.repo
			}
			return nil
		})
		if err != nil {
			return nil, false, err
		}
		pending = pending[:0]
		for _, p := range round {
			if at[p.i] == nil {
				pending = append(pending, p.i)
			}
		}
		if stopped {
			break
		}
	}
	for i := range missing {
		if at[i] == nil && errs[i] != nil {
			return nil, false, errs[i]
		}
	}
	return at, stopped, nil
}

// mountLeftOut puts left-out blob l into the destination from the
// repository from, which holds it: mounted, or, when the registry opens an
// upload instead, sent in that session, read from from and verified
// against its digest as it streams, as a copy sends a blob. It reports
// whether the blob was mounted.
func (dst *destination) mountLeftOut(ctx context.Context, l archive.LeftOut, from name.Repository) (bool, error) {
	up, err := dst.client.Repo(ctx, dst.repo, registry.Access{Push: true, MountFrom: &from})
	if err != nil {
		return false, err
	}
	b := Blob{Digest: l.Digest, Size: l.Size, Source: from.Digest(l.Digest.String())}
	mounted, err := up.Upload(ctx, l.Digest, l.Size, func() (io.ReadCloser, error) {
		return openSource(ctx, dst.client, b)
	}, registry.OnRetry(func(attempt, attempts int, err error) {
		dst.rep.Warnf("left-out blob %s failed on its way from %s to %s (%v); sending it again from a fresh download (attempt %d of %d)",
			l.Digest, from, dst.repo, err, attempt, attempts)
	}))
	if err != nil {
		return false, fmt.Errorf("left-out blob %s, from %s: %w", l.Digest, from, err)
	}
	return mounted, nil
}

// Why left-out blobs are missing, for missingError.
type missingWhy int

const (
	// errNotHeld: no repository asked holds them.
	errNotHeld missingWhy = iota
	// errSearchStopped: the bound on the search ended it first.
	errSearchStopped
	// errNoMount: NoMount, so no other repository was asked.
	errNoMount
)

// missingError says which left-out blobs the destination lacks and where
// the delta expected them from: an archive, to be imported first; an
// inventory, whose repositories on this registry no longer hold them (or
// never did: it is of another registry), or were not asked (why).
func (dst *destination) missingError(still []archive.LeftOut, why missingWhy) error {
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
		reg := dst.repo.RegistryStr()
		switch why {
		case errNoMount:
			expected = append(expected, fmt.Sprintf("the %s saw them; --no-mount forbids taking them from another repository of %s: import without it", strings.Join(inventories, "; "), reg))
		case errSearchStopped:
			expected = append(expected, fmt.Sprintf("the %s saw them, but the repositories of %s asked do not hold them now, and ferry stopped asking after %d per blob and %d more in all, the delta naming more repositories than that", strings.Join(inventories, "; "), reg, MountProbesPerBlob, MountProbesExtra))
		default:
			expected = append(expected, fmt.Sprintf("the %s saw them, but no repository it walked on %s holds them now (deleted since, or the inventory is of another registry): take a new inventory of the destination and export again since it", strings.Join(inventories, "; "), reg))
		}
	}
	return fmt.Errorf("this delta archive leaves out %d %s (%s) that %s does not hold: %s; %s (or export in full)",
		len(still), plural(len(still), "blob", "blobs"), progress.Bytes(size), dst.repo, strings.Join(first, ", "), strings.Join(expected, "; "))
}

// mountCandidate is a repository of the destination's registry that may
// hold a left-out blob, with its name.
type mountCandidate struct {
	repo name.Repository
	name string
}

// mountSearch is where an import looks for a delta's left-out blobs: the
// repositories of the destination's registry, other than the destination,
// that the delta names, each parsed once. A blob is looked for in the
// repository the delta records for it (where the first inventory that
// holds it saw it), then in every other repository its base (an
// inventory) walked, then in those of the other bases, in order. An
// inventory of several registries records, for each blob, the first
// repository that holds it, maybe on another registry than this import's;
// another that holds it too is on the list its base records
// (Base.Repositories), and so is a repository that a second inventory,
// given after the first, walked.
type mountSearch struct {
	// all are the candidates of every base, in order, each once.
	all []mountCandidate
	// perBase are each base's candidates, each once, and inBase their
	// names.
	perBase [][]mountCandidate
	inBase  []map[string]bool
	// recorded are the repositories the delta records for its blobs,
	// parsed: nil for one that is no candidate.
	recorded map[string]*mountCandidate
	dst      *destination
}

// newMountSearch reads the candidates off the delta: linear in the
// repositories it names.
func (dst *destination) newMountSearch() *mountSearch {
	bases := dst.head.delta.Bases
	s := &mountSearch{
		perBase:  make([][]mountCandidate, len(bases)),
		inBase:   make([]map[string]bool, len(bases)),
		recorded: map[string]*mountCandidate{},
		dst:      dst,
	}
	parsed := map[string]*mountCandidate{}
	inAll := map[string]bool{}
	for i, b := range bases {
		s.inBase[i] = map[string]bool{}
		if b.Kind != archive.BaseInventory {
			continue
		}
		for _, ref := range b.Repositories {
			c, ok := parsed[ref]
			if !ok {
				c = s.candidate(ref)
				parsed[ref] = c
			}
			if c == nil || s.inBase[i][c.name] {
				continue
			}
			s.inBase[i][c.name] = true
			s.perBase[i] = append(s.perBase[i], *c)
			if !inAll[c.name] {
				inAll[c.name] = true
				s.all = append(s.all, *c)
			}
		}
	}
	return s
}

// candidate parses ref, and returns nil unless it is a repository of the
// destination's registry other than the destination.
func (s *mountSearch) candidate(ref string) *mountCandidate {
	dst := s.dst
	repo, err := name.NewRepository(ref, dst.opts.Name...)
	if err != nil || repo.RegistryStr() != dst.repo.RegistryStr() || repo.Name() == dst.repo.Name() {
		return nil
	}
	return &mountCandidate{repo: repo, name: repo.Name()}
}

// mountCursor is how far the search for one blob has gone.
type mountCursor struct {
	base     int
	recorded *mountCandidate
	stage, k int
}

// cursor starts the search for l.
func (s *mountSearch) cursor(l archive.LeftOut) mountCursor {
	c := mountCursor{base: l.Base}
	if l.Repository != "" {
		r, ok := s.recorded[l.Repository]
		if !ok {
			r = s.candidate(l.Repository)
			s.recorded[l.Repository] = r
		}
		c.recorded = r
	}
	return c
}

// next returns the next repository to ask for c's blob, each once, and
// false when none is left. Its work is bounded by the candidates it
// returns plus those of the blob's base.
func (s *mountSearch) next(c *mountCursor) (mountCandidate, bool) {
	skip := func(m mountCandidate) bool { return c.recorded != nil && m.name == c.recorded.name }
	for {
		switch c.stage {
		case 0:
			c.stage = 1
			if c.recorded != nil {
				return *c.recorded, true
			}
		case 1:
			own := s.perBase[c.base]
			for c.k < len(own) {
				m := own[c.k]
				c.k++
				if !skip(m) {
					return m, true
				}
			}
			c.stage, c.k = 2, 0
		case 2:
			for c.k < len(s.all) {
				m := s.all[c.k]
				c.k++
				if !skip(m) && !s.inBase[c.base][m.name] {
					return m, true
				}
			}
			c.stage = 3
		default:
			return mountCandidate{}, false
		}
	}
}

// isLeftOut reports whether the archive left blob d out.
func (h *importHead) isLeftOut(d v1.Hash) bool {
	_, ok := h.leftOut[d]
	return ok
}
