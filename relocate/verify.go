package relocate

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"

	"github.com/ferry-dev/ferry/archive"
	"github.com/ferry-dev/ferry/internal/bundle"
	"github.com/ferry-dev/ferry/internal/ctxio"
	"github.com/ferry-dev/ferry/internal/hashing"
	"github.com/ferry-dev/ferry/internal/progress"
	"github.com/ferry-dev/ferry/internal/volumes"
	"github.com/ferry-dev/ferry/lock"
)

// VerifyResult is what `ferry verify` reports.
type VerifyResult struct {
	Archive string `json:"archive"`
	// Format is FormatFerry, or FormatImgpkg for a tarball imgpkg wrote.
	Format string `json:"format"`
	// SHA256 is the archive's (the volumes joined, when split).
	SHA256 string `json:"sha256"`
	// Volumes are the volumes read, each with its sha256, when split.
	Volumes []volumes.Volume `json:"volumes,omitempty"`
	Images  int              `json:"images"`
	Blobs   int              `json:"blobs"`
	Bytes   int64            `json:"bytes"`
	Bundles int              `json:"bundles"`
	Sidecar string           `json:"checksumFile,omitempty"`
	// SeekTable says what was found of the table of contents and seek
	// table that end a ferry archive: archive.SeekTableChecked,
	// SeekTableAbsent (written without one, or not zstd) or
	// SeekTableUnchecked (read from a pipe); empty for an imgpkg tarball.
	SeekTable string `json:"seekTable,omitempty"`
	Verified  bool   `json:"verified"`
	// LeftOut and LeftOutBytes count the blobs a delta archive left out,
	// expected at the destination; Bases, the --since archives shown to
	// hold every one of them.
	LeftOut      int      `json:"leftOut,omitempty"`
	LeftOutBytes int64    `json:"leftOutBytes,omitempty"`
	Bases        []string `json:"basesChecked,omitempty"`
	// Unchecked says what could not be checked offline: the images.yml of
	// a bundle whose layer a delta left out, when no --since archive holds
	// it.
	Unchecked []string `json:"unchecked,omitempty"`
}

// VerifyOptions configures VerifyFile.
type VerifyOptions struct {
	// Reporter receives progress; nil discards it.
	Reporter progress.Reporter
	// Since are previous archives a delta was made against: each blob the
	// delta left out must be in one of them (verify --since), and a
	// bundle's images.yml left out is read from there.
	Since []string
}

// VerifyFile reads the archive at path once, offline, and checks every
// blob's digest and size, every manifest's references, that every image a
// bundle's images.yml locks is in the archive, and, when path.sha256
// exists, the archive's checksum against it; for a ferry archive, also
// the table of contents and seek table at its end, which import, inspect
// and serve read a file by. path may name the volumes of
// a split archive (volumes.OpenArchive): each volume is then checked
// against its line of path.sha256 as it is read, and a volume missing,
// extra, out of order or damaged is named. An imgpkg tarball is checked
// the same way, each layer read where it lies.
func VerifyFile(ctx context.Context, path string, opts VerifyOptions) (*VerifyResult, error) {
	rep := progress.OrNop(opts.Reporter)
	bases, closeBases, err := openBases(ctx, opts.Since, rep)
	if err != nil {
		return nil, err
	}
	defer closeBases()
	in, err := volumes.OpenArchive(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	defer in.Close()
	res := &VerifyResult{Archive: path, Format: FormatFerry}
	ra, size, seekable := archive.RandomAccess(in)
	base := path
	vs, split := in.(*volumes.Set)
	if split {
		base = vs.Base()
		if err := checkVolumes(vs); err != nil {
			return res, fmt.Errorf("verify %s: %w", path, err)
		}
	}
	var t *archive.ImgpkgTar
	err = archive.ErrNotImgpkg
	if seekable {
		t, err = archive.OpenImgpkg(ra, size, archive.ReaderOptions{})
	}
	switch {
	case err == nil:
		res.Format = FormatImgpkg
		rep.Start("verify", 2*size)
	case errors.Is(err, archive.ErrNotImgpkg):
		rep.Start("verify", size)
	default:
		return res, fmt.Errorf("verify %s: %w", path, err)
	}
	defer rep.Done()
	// The file's sum on a goroutine of its own: it overlaps the
	// decompression and the blobs' digests, on the other core.
	sum := hashing.NewAsync()
	defer sum.Close()
	in2 := io.TeeReader(&reportReader{r: ctxio.NewReader(ctx, bufio.NewReaderSize(in, 1<<20)), rep: rep}, sum)
	if t != nil {
		// The file's checksum first, then each blob where it lies. (A
		// buffer of 1 MiB: io.Discard would read 8 KiB at a time, each a
		// hand-over to the hashing goroutine.)
		if _, err := io.CopyBuffer(struct{ io.Writer }{io.Discard}, in2, make([]byte, 1<<20)); err != nil {
			return res, fmt.Errorf("verify %s: %w", path, err)
		}
		err = verifyRandom(ctx, t, res, rep)
	} else {
		if !seekable {
			ra = nil
		}
		err = verify(ctx, in2, ra, size, res, bases)
	}
	if err != nil {
		if split {
			// The read stopped at the damage, maybe before the end of
			// the volume that holds it: name that volume if its sum says.
			if serr := vs.CheckSums(); serr != nil {
				return res, fmt.Errorf("verify %s: %w", path, sumBlame(serr, err))
			}
		}
		return res, fmt.Errorf("verify %s: %w", path, err)
	}
	// Whatever follows the tar's end (zstd padding) is part of the file's sum.
	if _, err := io.Copy(io.Discard, in2); err != nil {
		return res, fmt.Errorf("verify %s: %w", path, err)
	}
	res.SHA256 = sum.Sum()
	if split {
		res.Volumes = vs.Volumes()
		if vs.Sidecar() != "" {
			// Set.Read compared every volume with its line.
			res.Sidecar = vs.Sidecar()
			res.Verified = true
			return res, nil
		}
	}
	side := base + ".sha256"
	want, ok, err := checksumOf(base, side)
	if err != nil {
		return res, fmt.Errorf("verify %s: %w", path, err)
	}
	if ok {
		if want != res.SHA256 {
			return res, fmt.Errorf("verify %s: the archive's sha256 is %s, but %s says %s", path, res.SHA256, filepath.Base(side), want)
		}
		res.Sidecar = side
	}
	res.Verified = true
	return res, nil
}

// checksumOf returns the sum that side, the checksum file beside the
// archive at base, gives the archive, and false when there is no such file
// or it is not about the archive. A line naming the archive is its sum. A
// file that lists only volumes of the archive is a split export's, about
// the volumes: the archive was joined from them (cat FILE.0* > FILE),
// and the file says nothing of it as a whole. A single line naming another
// file is the archive's under the name it was exported as (renamed since).
// Anything else is an error naming side.
func checksumOf(base, side string) (string, bool, error) {
	sums, err := volumes.ReadChecksums(side)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", false, nil
	case err != nil:
		return "", false, err
	}
	name := filepath.Base(base)
	if sum, ok := sums[name]; ok {
		return sum, true, nil
	}
	vols, other := 0, ""
	for file, sum := range sums {
		if _, ok := volumes.VolumeNumber(file, name); ok {
			vols++
		} else {
			other = sum
		}
	}
	switch {
	case vols > 0 && vols == len(sums):
		return "", false, nil
	case len(sums) == 1 && vols == 0:
		return other, true, nil
	}
	return "", false, fmt.Errorf("%s names neither %s nor only its volumes (%d lines): which sum is the archive's?", filepath.Base(side), name, len(sums))
}

// verifyBase is a --since archive: what it holds, and, when it has a seek
// table, random access to read a bundle's layer from it.
//
// What it holds is what its table of contents lists, which OpenFile
// checked against its head, and the seek table accounts for every byte
// of the file: a base cut short has no seek table. One without a seek
// table (gzip, an older ferry) has nothing at its end that vouches for
// its head's list, so it is read whole and verified before its list is
// believed.
type verifyBase struct {
	path string
	f    io.Closer
	file *archive.File // nil without a seek table
	// held is every config and layer the base holds: those it carries,
	// and, for a delta, those it left out itself (its own import found
	// them at the destination), as export --since counts them.
	held map[v1.Hash]bool
}

// holds reports whether the base holds blob d, itself or by reference.
func (b verifyBase) holds(d v1.Hash) bool { return b.held[d] }

// carries reports whether the base's own bytes include blob d.
func (b verifyBase) carries(d v1.Hash) bool { return b.file != nil && b.file.Has(d) }

// ErrNotABaseArchive is matched (errors.Is) by VerifyFile's error for a
// --since file that cannot be a delta's base: an inventory, or no archive
// at all. It is a matter of how verify was called, not of the archive.
var ErrNotABaseArchive = errors.New("not a base archive")

// openBases opens the --since archives; the returned function closes them.
func openBases(ctx context.Context, paths []string, rep progress.Reporter) ([]verifyBase, func(), error) {
	var out []verifyBase
	closeAll := func() {
		for _, b := range out {
			b.f.Close()
		}
	}
	for _, p := range paths {
		if fi, err := os.Stat(p); err == nil && fi.Mode()&(fs.ModeNamedPipe|fs.ModeCharDevice|fs.ModeSocket) != 0 {
			// Refused before it is opened: opening a FIFO waits for its
			// writer, and a base is read at random anyway.
			closeAll()
			return nil, nil, fmt.Errorf("verify --since %s: %w", p, notABase{errors.New("is a pipe or device, not a file: a base archive is read at random; give the file")})
		}
		f, err := volumes.OpenArchive(ctx, p)
		if errors.Is(err, fs.ErrNotExist) {
			err = notABase{err}
		}
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("verify --since: %w", err)
		}
		b, err := openBase(ctx, p, f, rep)
		if err != nil {
			f.Close()
			closeAll()
			return nil, nil, fmt.Errorf("verify --since %s: %w", p, err)
		}
		out = append(out, b)
	}
	return out, closeAll, nil
}

// openBase reads a base archive's head (a file or the volumes of one):
// through its seek table when it has one; otherwise the whole archive is
// read and verified, and one whose index.json declares a seek table it
// does not end with is refused (cut short or damaged).
func openBase(ctx context.Context, path string, f io.ReadCloser, rep progress.Reporter) (verifyBase, error) {
	b := verifyBase{path: path, f: f, held: map[v1.Hash]bool{}}
	ra, size, ok := archive.RandomAccess(f)
	if !ok {
		return b, notRegular(f)
	}
	if vs, split := f.(*volumes.Set); split {
		if err := checkVolumes(vs); err != nil {
			return b, err
		}
	}
	// An inventory is a base of export --since, but holds no blob to
	// check the delta against: only its import can, at the destination.
	if sniffInventory(ra, size) {
		return b, notABase{errors.New("is a JSON document (an inventory?), not an archive: verify --since takes the base archive a delta was made from; the blobs an inventory lists are checked by the import, at the destination")}
	}
	var head *archive.Head
	af, err := archive.OpenFile(ra, size, archive.ReaderOptions{})
	switch {
	case err == nil:
		b.file, head = af, af.Head()
	case errors.Is(err, archive.ErrNotSeekable):
		// No head to read, as export --since decides (ReadSince): not an
		// archive at all.
		if head, err = archive.Inspect(io.NewSectionReader(ra, 0, size)); err != nil {
			return b, notABase{err}
		}
		if head.Compression == archive.CompressionZstd && head.Index.Annotations[archive.AnnotationSeekable] == "true" {
			return b, fmt.Errorf("its index.json says it ends with a seek table, and it does not: the archive is cut short or damaged")
		}
		rep.Logf("verifying the base %s whole: it has no table of contents to say what it holds", path)
		if _, err := archive.Verify(ctx, io.NewSectionReader(ra, 0, size)); err != nil {
			return b, err
		}
	default:
		return b, err
	}
	skipped := map[v1.Hash]bool{}
	for _, d := range head.SkippedLayers {
		skipped[d] = true
	}
	for _, d := range head.Blobs {
		if b.file != nil && b.file.Has(d.Digest) || b.file == nil && !skipped[d.Digest] {
			b.held[d.Digest] = true
		}
	}
	// A delta base holds, by reference, what it left out itself: its
	// own import found those blobs at the destination.
	if head.Delta != nil {
		for _, l := range head.Delta.LeftOut {
			b.held[l.Digest] = true
		}
	}
	return b, nil
}

// verify reads the archive in r once, checking it whole; ra (size bytes)
// is the same archive at random, nil on a pipe, to check its trailer
// against what was read.
func verify(ctx context.Context, r io.Reader, ra io.ReaderAt, size int64, res *VerifyResult, bases []verifyBase) error {
	ar, err := archive.NewReader(r, archive.ReaderOptions{})
	if err != nil {
		return err
	}
	defer ar.Close()
	head := ar.Head()
	res.Images = len(head.Entries)
	// An imgpkg tarball read front to back (gzip-compressed, or a pipe)
	// is one too.
	res.Format = formatOf(head)
	if err := importRefusal(head); err != nil {
		return err
	}
	leftOut := map[v1.Hash]bool{}
	if head.Delta != nil {
		for _, l := range head.Delta.LeftOut {
			leftOut[l.Digest] = true
			res.LeftOut++
			res.LeftOutBytes += l.Size
		}
		if len(bases) > 0 {
			if err := checkBases(head.Delta, bases); err != nil {
				return err
			}
			for _, b := range bases {
				res.Bases = append(res.Bases, b.path)
			}
		}
	}

	// Each bundle's images.yml is checked as its layer goes by, so that
	// verify holds one layer at a time however many bundles there are;
	// the configs of images that could be bundles are read as they go by.
	locks, err := newLockChecks(head)
	if err != nil {
		return err
	}
	roles := newRoleLabels(head)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		d, size, blob, err := ar.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		res.Blobs++
		res.Bytes += size
		if err := readForChecks(ctx, d, blob, locks, roles); err != nil {
			return err
		}
	}
	// The table of contents and seek table are what import, inspect and
	// serve read a file by: a damaged one must not pass.
	st, err := ar.CheckTrailer(ra, size)
	if err != nil {
		return err
	}
	if res.Format == FormatFerry {
		res.SeekTable = string(st)
	}
	if err := roles.fromBases(leftOut, bases); err != nil {
		return err
	}
	return locks.finish(ctx, roles, leftOut, bases, res)
}

// verifyRandom reads every config and layer of f, each where it lies,
// verified against its digest, then checks the bundles' locks.
func verifyRandom(ctx context.Context, f RandomArchive, res *VerifyResult, rep progress.Reporter) error {
	head := f.Head()
	res.Images = len(head.Entries)
	if err := importRefusal(head); err != nil {
		return err
	}
	locks, err := newLockChecks(head)
	if err != nil {
		return err
	}
	roles := newRoleLabels(head)
	skipped := map[v1.Hash]bool{}
	for _, d := range head.SkippedLayers {
		skipped[d] = true
	}
	for _, b := range head.Blobs {
		if skipped[b.Digest] {
			continue
		}
		rc, err := f.Blob(b.Digest)
		if err != nil {
			return err
		}
		err = readForChecks(ctx, b.Digest, ctxio.NewReader(ctx, &reportReader{r: rc, rep: rep}), locks, roles)
		rc.Close()
		if err != nil {
			return err
		}
		res.Blobs++
		res.Bytes += b.Size
	}
	return locks.finish(ctx, roles, nil, nil, res)
}

// importRefusal returns why an import refuses the archive of head before
// it writes anything, as inspect reports it (importTagOrder): an original
// tag that is another manifest's bookkeeping tag. Verify must not pass an
// archive no import accepts.
func importRefusal(head *archive.Head) error {
	ih, err := archiveImportHead(head)
	if err != nil {
		return err
	}
	_, refused, err := importTagOrder(ih)
	if err != nil {
		return err
	}
	if refused != "" {
		return fmt.Errorf("import refuses the archive: %s", refused)
	}
	return nil
}

// readForChecks reads blob d of an archive (verified against its digest
// as it is read) to its end, checking it on the way: a bundle's layer
// against the archive's entries, an image's config for the bundle label.
// A bundle's layer is streamed, never held: verify reads one of any size,
// as import does.
func readForChecks(ctx context.Context, d v1.Hash, blob io.Reader, locks *lockChecks, roles *roleLabels) error {
	if !locks.wants(d) {
		if roles.wants(d) {
			return roles.read(d, blob)
		}
		_, err := io.Copy(io.Discard, blob)
		return err
	}
	// A blob that is also an image's config (only a crafted archive makes
	// it so) is read once: the config check gets its first bytes, as many
	// as it reads of a config.
	var cfg *headBuffer
	if roles.wants(d) {
		cfg = &headBuffer{max: bundle.MaxConfigSize + 1}
		blob = io.TeeReader(blob, cfg)
	}
	if err := locks.read(ctx, d, blob); err != nil {
		return err
	}
	if cfg != nil {
		return roles.read(d, bytes.NewReader(cfg.b))
	}
	return nil
}

// headBuffer keeps the first max bytes written to it and drops the rest.
type headBuffer struct {
	b   []byte
	max int
}

// Write implements io.Writer.
func (h *headBuffer) Write(p []byte) (int, error) {
	h.b = append(h.b, p[:min(len(p), max(h.max-len(h.b), 0))]...)
	return len(p), nil
}

// bundleRef is a bundle of an archive and its one layer, which holds its
// images.yml.
type bundleRef struct {
	entry archive.Entry
	layer v1.Descriptor
}

// source names the bundle in errors.
func (b bundleRef) source() string {
	ref, digest := b.entry.OriginalRef, b.entry.Descriptor.Digest.String()
	switch {
	case ref == "":
		return "bundle " + digest
	case strings.HasSuffix(ref, "@"+digest):
		// A reference by digest already says it: not twice on one line.
		return "bundle " + ref
	}
	return fmt.Sprintf("bundle %s (%s)", ref, digest)
}

// lockChecks checks that every image a bundle of an archive locks
// travelled with it (is an entry of index.json), one bundle layer at a
// time as the layers are read; what is left for the end is a set of
// digests (the locked images whose config says whether they are bundles,
// and the layers not read), bounded by the head, never a layer's bytes.
// Each layer's images.yml is parsed and checked once, however many
// entries of index.json name bundles with that layer (one bundle under
// many original references): the work is the archive's bytes, not their
// product with its entries.
type lockChecks struct {
	byLayer   map[v1.Hash][]bundleRef
	checked   map[v1.Hash]bool // layers read and checked
	inArchive map[v1.Hash]bool
	named     map[v1.Hash]bool        // entries index.json calls bundles
	roleOf    map[v1.Hash]lockedImage // locked images to check the role of
	manifests map[v1.Hash][]byte      // the head's, by digest
	bundles   int
	// parsed counts the images.yml documents parsed.
	parsed int
}

// lockedImage is an image a bundle locks, as the first bundle to lock it
// names it, for the error that refuses it.
type lockedImage struct {
	src, image string
}

// newLockChecks lists the bundles of head and their layers.
func newLockChecks(head *archive.Head) (*lockChecks, error) {
	c := &lockChecks{
		byLayer:   map[v1.Hash][]bundleRef{},
		checked:   map[v1.Hash]bool{},
		inArchive: map[v1.Hash]bool{},
		named:     map[v1.Hash]bool{},
		roleOf:    map[v1.Hash]lockedImage{},
		manifests: head.Manifests,
	}
	layerOf := map[v1.Hash]v1.Descriptor{}
	for _, e := range head.Entries {
		c.inArchive[e.Descriptor.Digest] = true
		if e.Role != archive.RoleBundle && e.Role != archive.RoleNestedBundle {
			continue
		}
		c.named[e.Descriptor.Digest] = true
		l, ok := layerOf[e.Descriptor.Digest]
		if !ok {
			var m v1.Manifest
			if err := json.Unmarshal(head.Manifests[e.Descriptor.Digest], &m); err != nil {
				return nil, fmt.Errorf("bundle %s: manifest: %w", e.Descriptor.Digest, err)
			}
			if len(m.Layers) != 1 {
				return nil, fmt.Errorf("bundle %s (%s) has %d layers, want 1", e.OriginalRef, e.Descriptor.Digest, len(m.Layers))
			}
			l = m.Layers[0]
			layerOf[e.Descriptor.Digest] = l
		}
		c.byLayer[l.Digest] = append(c.byLayer[l.Digest], bundleRef{entry: e, layer: l})
	}
	return c, nil
}

// wants says whether blob d is the layer of a bundle.
func (c *lockChecks) wants(d v1.Hash) bool {
	_, ok := c.byLayer[d]
	return ok && !c.checked[d]
}

// read reads layer, blob d, to its end and checks the images.yml in it,
// the layer of every bundle byLayer lists for it: every image it locks is
// an entry of the archive; those not bundles themselves are kept to check
// their role when every config has been read. The first bundle with the
// layer names it in errors: the images.yml is the same for all of them.
func (c *lockChecks) read(ctx context.Context, d v1.Hash, layer io.Reader) error {
	bs := c.byLayer[d]
	b := bs[0]
	src := b.source()
	l, err := c.parse(ctx, b, layer)
	// To its end, whatever images.yml holds: the archive checks the
	// layer's digest there, and bytes that do not match it are the fault
	// to report, before what they say.
	if _, derr := io.Copy(io.Discard, layer); derr != nil {
		return fmt.Errorf("%s: %w", src, derr)
	}
	if err != nil {
		return err
	}
	held, err := lockedHeld(src, l, c.inArchive)
	if err != nil {
		return err
	}
	for i, h := range held {
		if _, seen := c.roleOf[h]; !seen && !c.named[h] {
			c.roleOf[h] = lockedImage{src: src, image: l.Images[i].Image}
		}
	}
	c.bundles += len(bs)
	c.checked[d] = true
	return nil
}

// lockedHeld returns the digest of every image l, the images.yml of
// bundle src, locks, in its order, or an error naming the first that is
// not an entry of the archive (inArchive).
func lockedHeld(src string, l *lock.ImagesLock, inArchive map[v1.Hash]bool) ([]v1.Hash, error) {
	out := make([]v1.Hash, 0, len(l.Images))
	for _, li := range l.Images {
		d, err := li.Digest()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", src, err)
		}
		h, err := v1.NewHash(d.DigestStr())
		if err != nil {
			return nil, fmt.Errorf("%s: %w", src, err)
		}
		if !inArchive[h] {
			return nil, fmt.Errorf("%s locks %s, which the archive does not hold", src, li.Image)
		}
		out = append(out, h)
	}
	return out, nil
}

// parse reads the images.yml of bundle b from its layer as import reads
// it (readBundleLock): through the bundle's manifest as the archive holds
// it, the layer streamed.
func (c *lockChecks) parse(ctx context.Context, b bundleRef, layer io.Reader) (*lock.ImagesLock, error) {
	c.parsed++
	return parseBundleLayer(ctx, c.manifests, b, layer)
}

// parseBundleLayer is lockChecks.parse for callers that read several
// layers at once: it changes nothing but what it reads of layer.
func parseBundleLayer(ctx context.Context, manifests map[v1.Hash][]byte, b bundleRef, layer io.Reader) (*lock.ImagesLock, error) {
	src := b.source()
	d := b.entry.Descriptor.Digest
	m, err := parseImportManifest(d, manifests[d], b.entry.Descriptor.MediaType)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src, err)
	}
	opened := false
	img, err := partial.CompressedToImage(&importBlobImage{ctx: ctx, m: m, blob: func(_ context.Context, h v1.Hash) (io.ReadCloser, error) {
		if h != b.layer.Digest || opened {
			return nil, fmt.Errorf("blob %s: the check reads the layer %s of the bundle, once, and nothing else", h, b.layer.Digest)
		}
		opened = true
		return io.NopCloser(layer), nil
	}})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src, err)
	}
	return bundle.ReadImagesLock(img, src)
}

// finish checks the bundles whose layer was not read (a delta left it
// out: it is read from a --since archive that carries it, or reported
// unchecked) and the role of every locked image, now that every config
// the archive carries has been read.
func (c *lockChecks) finish(ctx context.Context, roles *roleLabels, leftOut map[v1.Hash]bool, bases []verifyBase, res *VerifyResult) error {
	for _, d := range keysInOrder(c.byLayer) {
		if c.checked[d] {
			continue
		}
		bs := c.byLayer[d]
		if !leftOut[d] {
			return fmt.Errorf("%s: its layer %s is not in the archive", bs[0].source(), d)
		}
		rc, ok, err := blobFromBases(bases, d)
		if err != nil {
			return fmt.Errorf("%s: %w", bs[0].source(), err)
		}
		if !ok {
			for _, b := range bs {
				res.Unchecked = append(res.Unchecked, fmt.Sprintf("the images.yml of %s: the delta left its layer out and no --since archive carries it", b.source()))
			}
			continue
		}
		err = c.read(ctx, d, rc)
		rc.Close()
		if err != nil {
			return err
		}
	}
	for _, h := range keysInOrder(c.roleOf) {
		li := c.roleOf[h]
		unchecked, err := roles.check(h)
		if err != nil {
			return fmt.Errorf("%s locks %s: %w", li.src, li.image, err)
		}
		if unchecked {
			res.Unchecked = append(res.Unchecked, fmt.Sprintf("whether %s, which %s locks, is a bundle: the delta left its config out and no --since archive carries it", li.image, li.src))
		}
	}
	res.Bundles = c.bundles
	return nil
}

// keysInOrder returns the keys of m in order, so that what verify
// reports does not depend on map order.
func keysInOrder[V any](m map[v1.Hash]V) []v1.Hash {
	out := make([]v1.Hash, 0, len(m))
	for h := range m {
		out = append(out, h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// checkBases proves that the --since archives hold every blob the delta
// left out.
func checkBases(d *archive.Delta, bases []verifyBase) error {
	var missing []string
	for _, l := range d.LeftOut {
		held := false
		for _, b := range bases {
			held = held || b.holds(l.Digest)
		}
		if !held {
			missing = append(missing, l.Digest.String())
		}
	}
	if len(missing) > 0 {
		names := make([]string, len(bases))
		for i, b := range bases {
			names[i] = b.path
		}
		first := missing[:min(len(missing), 5)]
		return fmt.Errorf("%d of the %d blobs the delta left out are in none of %s: %s", len(missing), len(d.LeftOut), strings.Join(names, ", "), strings.Join(first, ", "))
	}
	return nil
}

// blobFromBases opens blob d (a bundle's layer, a config) in the first
// base that carries it; the reader checks it against its digest at its
// end.
func blobFromBases(bases []verifyBase, d v1.Hash) (io.ReadCloser, bool, error) {
	for _, b := range bases {
		if !b.carries(d) {
			continue
		}
		rc, err := b.file.Blob(d)
		if err != nil {
			return nil, false, fmt.Errorf("base %s: %w", b.path, err)
		}
		return rc, true, nil
	}
	return nil, false, nil
}

// roleLabels tells, for every image of an archive that could be a bundle
// (an image of one layer whose role says it is not one), whether its
// config carries the bundle label: verify's half of the rule import
// applies (checkRoles), read as the configs go by, keeping a bool each.
type roleLabels struct {
	byConfig map[v1.Hash][]v1.Hash // config -> the entries that have it
	config   map[v1.Hash]v1.Descriptor
	labelled map[v1.Hash]bool // by config, once read
}

func newRoleLabels(head *archive.Head) *roleLabels {
	r := &roleLabels{byConfig: map[v1.Hash][]v1.Hash{}, config: map[v1.Hash]v1.Descriptor{}, labelled: map[v1.Hash]bool{}}
	for _, e := range head.Entries {
		if e.Role == archive.RoleBundle || e.Role == archive.RoleNestedBundle || !e.Descriptor.MediaType.IsImage() {
			continue
		}
		var m v1.Manifest
		if json.Unmarshal(head.Manifests[e.Descriptor.Digest], &m) != nil || len(m.Layers) != 1 || !imageConfig(m.Config.MediaType) {
			continue
		}
		d := e.Descriptor.Digest
		if _, dup := r.config[d]; !dup {
			r.config[d] = m.Config
			r.byConfig[m.Config.Digest] = append(r.byConfig[m.Config.Digest], d)
		}
	}
	return r
}

// wants says whether blob d is a config to read.
func (r *roleLabels) wants(d v1.Hash) bool {
	_, ok := r.byConfig[d]
	return ok
}

// read reads config d (within bundle.MaxConfigSize; a larger one is
// drained and refused if a bundle locks its image, as import refuses it).
func (r *roleLabels) read(d v1.Hash, rd io.Reader) error {
	b, err := io.ReadAll(io.LimitReader(rd, bundle.MaxConfigSize+1))
	if err != nil {
		return err
	}
	if int64(len(b)) > bundle.MaxConfigSize {
		_, err := io.Copy(io.Discard, rd)
		return err
	}
	labelled, err := configIsBundle(b)
	if err != nil {
		return fmt.Errorf("config %s: %w", d, err)
	}
	r.labelled[d] = labelled
	return nil
}

// fromBases reads, from the --since archives, the configs a delta left
// out.
func (r *roleLabels) fromBases(leftOut map[v1.Hash]bool, bases []verifyBase) error {
	for d, entries := range r.byConfig {
		if _, read := r.labelled[d]; read || !leftOut[d] || len(bases) == 0 {
			continue
		}
		// One larger than a config may be is refused by its declared
		// size (check): nothing to read.
		if c := r.config[entries[0]]; c.Size < 0 || c.Size > bundle.MaxConfigSize {
			continue
		}
		rc, ok, err := blobFromBases(bases, d)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		err = r.read(d, rc)
		rc.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// check refuses image h, which a bundle locks, if its config labels it a
// bundle or is larger than a config may be; unchecked is true when its
// config could not be read (a delta left it out).
func (r *roleLabels) check(h v1.Hash) (unchecked bool, err error) {
	c, ok := r.config[h]
	if !ok {
		return false, nil
	}
	if c.Size < 0 || c.Size > bundle.MaxConfigSize {
		return false, fmt.Errorf("image %s: config %s declares %d bytes; a config may have at most %d", h, c.Digest, c.Size, bundle.MaxConfigSize)
	}
	labelled, read := r.labelled[c.Digest]
	switch {
	case !read:
		return true, nil
	case labelled:
		return false, fmt.Errorf("%s is a bundle by its config's label (%s), but index.json does not call it one, so its images.yml would go unchecked: the archive is inconsistent", h, bundle.LabelKey)
	}
	return false, nil
}
