package relocate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferry-dev/ferry/archive"
	"github.com/ferry-dev/ferry/internal/atomicfile"
	"github.com/ferry-dev/ferry/internal/ctxio"
	"github.com/ferry-dev/ferry/internal/progress"
	"github.com/ferry-dev/ferry/internal/registry"
	"github.com/ferry-dev/ferry/internal/volumes"
)

// DefaultSpoolBudget bounds the memory holding blobs downloaded ahead of the
// archive writer when ExportOptions.SpoolBudget is zero.
const DefaultSpoolBudget int64 = memSpoolBudget

// DefaultCreatedBy is recorded in the archive when ExportOptions.CreatedBy
// is empty.
const DefaultCreatedBy = "ferry"

// ExportOptions configures Export and ExportFile.
type ExportOptions struct {
	// Level is the zstd level of the archive.
	Level archive.Level
	// Concurrency is how many blobs download at once (the one being
	// written and those fetched ahead of it); 0 means DefaultConcurrency.
	// It never changes the archive's bytes.
	Concurrency int
	// CreatedBy is recorded in the archive's index (ferry and its
	// version); "" means DefaultCreatedBy.
	CreatedBy string
	// Reporter receives progress; nil discards it.
	Reporter progress.Reporter
	// Into names the archive in the step reported for each image written
	// ("exported image REF into Into"): a file, "standard output", the
	// volumes. Empty, the steps name no archive.
	Into string
	// Remote is passed to every registry call.
	Remote []remote.Option
	// Client downloads the blobs; nil means a default registry.Client.
	Client *registry.Client
	// Since, when set, makes the archive a delta: every config and layer a
	// base holds is left out, and the archive says which and why (format
	// version 2, archive.Delta). Manifests are always carried.
	Since []*Since
	// SpoolBudget bounds the memory holding what is downloaded ahead of the
	// writer; 0 means DefaultSpoolBudget. Nothing is written to disk but
	// the archive: a blob larger than memSpoolMax has only its first bytes
	// fetched ahead, and streams from the registry when its turn comes.
	// The memory comes in chunks of 256 KiB, each blob fetched ahead
	// taking whole ones (a blob of a few bytes takes one): a budget below
	// one chunk fetches nothing ahead.
	SpoolBudget int64
	// SplitSize, when positive, makes ExportFile write the archive as
	// volumes of at most that many bytes (PATH.001, PATH.002, …, see
	// internal/volumes) instead of one file; joined in order they are the
	// archive it would have written. Export ignores it.
	SplitSize int64
	// WrapFile, when set, is given the writer of the temporary file
	// ExportFile writes (of the volumes, with SplitSize) and returns the
	// writer Export writes to: for a library caller that meters or
	// throttles the output, or a test that makes a write fail as a full
	// disk does. An error from it fails the export like one from the
	// file: nothing is left under the final name. Export ignores it.
	WrapFile func(io.Writer) io.Writer
}

// wrapFile is w through ExportOptions.WrapFile, if set.
func (o ExportOptions) wrapFile(w io.Writer) io.Writer {
	if o.WrapFile == nil {
		return w
	}
	return o.WrapFile(w)
}

// ExportResult describes a written archive.
type ExportResult struct {
	// Path is the archive file (ExportFile only).
	Path string
	// SHA256 is the hex sha256 of the archive's bytes.
	SHA256 string
	// Images is the number of entries in the archive's index.json.
	Images int
	// Blobs is the number of configs and layers written.
	Blobs int
	// Bytes is the size of the manifests and blobs carried (before the
	// archive's compression).
	Bytes int64
	// Manifests and ManifestBytes count the manifests and indexes
	// written, and their size (part of Bytes).
	Manifests     int
	ManifestBytes int64
	// ArchiveBytes is the size of the archive itself.
	ArchiveBytes int64
	// Skipped are the non-distributable layers left out.
	Skipped []Blob
	// Delta is set when ExportOptions.Since left blobs out: the bases, and
	// every config and layer left out.
	Delta *archive.Delta
	// LeftOutBytes is the size of those blobs.
	LeftOutBytes int64
	// Volumes are the volumes written, in order, when the archive was
	// split (ExportOptions.SplitSize); SHA256 is then that of the volumes
	// joined.
	Volumes []volumes.Volume
}

// CheckExportPath reports whether an archive could be created at path (its
// directory exists and is writable), without leaving anything behind, and
// whether a directory stands where the export would write or replace a
// file: path itself, path.sha256, a volume of an earlier export under the
// name, or with opts.SplitSize any volume name the archive may take
// (volumes.CheckNames). So is one that would write or replace a file one
// of opts.Since was read from (ErrOutputIsABase). A path that is a device, a named pipe or a socket,
// or a symbolic link to one, is refused (atomicfile.ErrNotRegular): a
// stream there is for Export. A symbolic link to a file is followed: the
// archive, its volumes and its checksum file are written where it leads
// (atomicfile.Target); a link that leads nowhere is refused. The CLI calls it
// before Resolve, so that a typo in -o fails before anything is fetched;
// ExportFile checks again, for real, when it starts.
func CheckExportPath(path string, opts ExportOptions) error {
	target, err := atomicfile.Target(path)
	if err != nil {
		return fmt.Errorf("export to %s: %w", path, err)
	}
	sayIfLocked(opts.Reporter, target)
	f, err := atomicfile.Create(target)
	if err != nil {
		return fmt.Errorf("export to %s: %w", path, err)
	}
	if err := f.Abort(); err != nil {
		return fmt.Errorf("export to %s: %w", path, err)
	}
	if err := volumes.CheckNames(target, opts.SplitSize > 0); err != nil {
		return fmt.Errorf("export to %s: %w", path, err)
	}
	if err := checkNotABase(target, opts.Since); err != nil {
		return fmt.Errorf("export to %s: %w", path, err)
	}
	return nil
}

// ExportFile writes the archive of p to path atomically: into a temporary
// file beside it that is put in place with path.sha256 (sha256sum format)
// only when complete, replacing all an earlier export left under the name
// (volumes.Put), so that a failure or cancellation leaves no file under
// path and the previous archive as it was. The file is created before any
// download, and the names it replaces checked (CheckExportPath), so an
// unwritable destination fails fast. Before that, the temporary files an
// export to path left when it was killed are removed, with a warning
// (volumes.RemoveTemporaries). A symbolic link at path is followed, and
// the archive written where it leads, which ExportResult.Path names; a
// device, named pipe or socket is refused (CheckExportPath). Writing to
// standard output ("-") is the caller's business: use Export. Like Export,
// it closes p when it returns.
func ExportFile(ctx context.Context, p *Plan, path string, opts ExportOptions) (*ExportResult, error) {
	// Released even when the file cannot be created and Export never runs.
	defer p.Close()
	// The archive, its volumes and its checksum file go side by side
	// where a symbolic link leads.
	target, err := atomicfile.Target(path)
	if err != nil {
		return nil, fmt.Errorf("export to %s: %w", path, err)
	}
	// Errors name the path as given, and where a link led.
	name := path
	if target != path {
		name = path + " (a link to " + target + ")"
	}
	path = target
	if err := checkNotABase(path, opts.Since); err != nil {
		return nil, fmt.Errorf("export to %s: %w", name, err)
	}
	// What an export to path killed for good left (SIGKILL, a second
	// signal, a crash) would only take up the disk this one needs. It
	// runs before this export creates its own temporary files: where
	// flock is emulated by fcntl locks (NFS), a process's own locks do
	// not exclude it, and the clean-up's closing a file drops them.
	sayIfLocked(opts.Reporter, path)
	warnAll(opts.Reporter, volumes.RemoveTemporaries(path))
	if opts.SplitSize > 0 {
		return exportVolumes(ctx, p, path, opts)
	}
	f, err := atomicfile.Create(path)
	if err != nil {
		return nil, fmt.Errorf("export to %s: %w", name, err)
	}
	if err := volumes.CheckNames(path, false); err != nil {
		f.Abort()
		return nil, fmt.Errorf("export to %s: %w", name, err)
	}
	res, idle, err := export(ctx, p, opts.wrapFile(f), opts)
	if err != nil {
		abortWhenIdle(f, idle)
		return nil, fmt.Errorf("export to %s: %w", name, withHTTPStatus(err))
	}
	sum, err := hex.DecodeString(res.SHA256)
	if err != nil {
		f.Abort()
		return nil, fmt.Errorf("export to %s: %w", name, err)
	}
	// Archive and checksum are put in place together, under a lock, so
	// that two exports to one path never leave one's checksum beside the
	// other's archive; the volumes of an earlier split export under this
	// name go with the archive it replaces.
	sayIfLocked(opts.Reporter, path)
	warnings, err := volumes.Put(path, []*atomicfile.File{f}, []atomicfile.Checksum{{Path: path, Sum: sum}})
	if err != nil {
		return nil, fmt.Errorf("export to %s: %w", name, err)
	}
	warnAll(opts.Reporter, warnings)
	res.Path = path
	return res, nil
}

// Export writes the archive of p to w (docs/archive-format.md): the layout header, the
// index, every manifest, then configs and layers in plan order. Blobs are
// downloaded concurrently but written in order, so the output is
// byte-identical for the same plan whatever the concurrency; each is
// verified against its digest and size as it is written. On error, what was
// written to w is incomplete and must be discarded. Export closes p
// (Plan.Close) when it returns: a plan of a stream is read once.
//
// Once ctx ends, Export returns its error without waiting for w: the
// frames waiting to be written are dropped, and a write to w in progress,
// which nothing can interrupt (a pipe nobody reads, a stalled disk), is
// left to return on its own; nothing is written to w after it. Such a
// write may therefore still be in progress when Export returns, and stays
// blocked until w takes its bytes: for standard output nobody reads, until
// the process exits, as with ctxio.Detached.
func Export(ctx context.Context, p *Plan, w io.Writer, opts ExportOptions) (*ExportResult, error) {
	res, _, err := export(ctx, p, w, opts)
	if err != nil {
		return nil, withHTTPStatus(err)
	}
	return res, nil
}

// abortWhenIdle aborts f, an output Export gave up on, once idle (closed
// when nothing more will be written to it) is closed. If a write to it is
// still in progress, its temporary files are removed at once
// (atomicfile.File.Unlink), so that neither they nor anything under the
// final name are left however long that write takes, and it is closed by
// a goroutine of its own once the write returns.
func abortWhenIdle(f interface {
	Unlink() error
	Abort() error
}, idle <-chan struct{}) {
	select {
	case <-idle:
		f.Abort()
		return
	default:
	}
	f.Unlink()
	go func() {
		<-idle
		f.Abort()
	}()
}

// export is Export; idle is closed once nothing more will be written to w
// (at once when nothing was: nil is never returned).
func export(ctx context.Context, p *Plan, w io.Writer, opts ExportOptions) (res *ExportResult, idle <-chan struct{}, err error) {
	// A plan of a stream is read once: what it holds is released on every
	// return, after the blobs being read are closed (deferred first, so
	// run last).
	defer p.Close()
	nothing := make(chan struct{})
	close(nothing)
	idle = nothing
	rep := progress.OrNop(opts.Reporter)
	conc := opts.Concurrency
	if conc <= 0 {
		conc = DefaultConcurrency
	}
	if p.sequential {
		conc = 1
	}
	budget := opts.SpoolBudget
	if budget <= 0 {
		budget = DefaultSpoolBudget
	}

	createdBy := opts.CreatedBy
	if createdBy == "" {
		createdBy = DefaultCreatedBy
	}
	d := delta(p, opts.Since)
	warnUnused(rep, p, opts.Since, d)
	var leftOutBytes int64
	if d != nil && len(d.LeftOut) > 0 {
		// Only what is carried is fetched, written and counted.
		left := make(map[v1.Hash]bool, len(d.LeftOut))
		for _, l := range d.LeftOut {
			left[l.Digest] = true
			leftOutBytes += l.Size
		}
		pc := *p
		pc.Blobs = slices.DeleteFunc(slices.Clone(p.Blobs), func(b Blob) bool { return left[b.Digest] })
		pc.TotalBytes -= leftOutBytes
		p = &pc
	} else {
		d = nil
	}
	index, manifests, err := archiveHead(p, createdBy, d)
	if err != nil {
		return nil, idle, err
	}

	sum := sha256.New()
	out := &archiveCounter{w: io.MultiWriter(w, sum)}
	aw, err := archive.NewWriter(out, archive.WriterOptions{Level: opts.Level})
	if err != nil {
		return nil, idle, err
	}
	idle = aw.Done()
	// Cancelling the export cancels the Writer, even while it waits for the
	// output to take a frame, which a stalled output never does. Released
	// after the Writer is closed (deferred first, so run last): the Close
	// of an abandoned archive waits for the write in progress unless
	// cancelled.
	stop := context.AfterFunc(ctx, func() { aw.Cancel(ctx.Err()) })
	defer stop()
	closed := false
	defer func() {
		if !closed {
			// The archive is abandoned: what is queued is dropped.
			aw.Close()
		}
	}()

	rep.Start("export", p.TotalBytes)
	defer rep.Done()

	if err := aw.WriteHeader(index, manifests); err != nil {
		return nil, idle, fmt.Errorf("write archive head: %w", err)
	}
	var manifestBytes int64
	for _, m := range manifests {
		rep.Add(int64(len(m)))
		manifestBytes += int64(len(m))
	}

	done := newImageTracker(p)
	for _, im := range done.ready(-1) {
		logImage(rep, im, opts.Into)
	}

	client := opts.Client
	if client == nil {
		client = registry.New(registry.Options{})
	}
	// Downloads are not verified here: the archive Writer checks every
	// blob's size and digest as it writes it, so each byte is hashed once.
	open := func(ctx context.Context, b Blob) (io.ReadCloser, error) {
		if local, ok := p.local[b.Digest]; ok {
			return local()
		}
		if rc, ok := p.openCached(b.Digest); ok {
			return rc, nil
		}
		src, err := client.Repo(ctx, b.Source.Context(), registry.Access{})
		if err != nil {
			return nil, err
		}
		return src.GetBlob(ctx, b.Digest)
	}
	resume := func(ctx context.Context, b Blob, off int64) (io.ReadCloser, error) {
		if local, ok := p.local[b.Digest]; ok {
			// Read from an archive or a local build: opened again, the
			// bytes read so far skipped (and hashed again by the blob's
			// own check).
			rc, err := local()
			if err != nil {
				return nil, err
			}
			if _, err := io.CopyN(io.Discard, rc, off); err != nil {
				rc.Close()
				return nil, err
			}
			return rc, nil
		}
		src, err := client.Repo(ctx, b.Source.Context(), registry.Access{})
		if err != nil {
			return nil, err
		}
		return src.GetBlobFrom(ctx, b.Digest, b.Size, off)
	}
	if p.sequential {
		// A stream is read once: what failed cannot be read again.
		resume = nil
	}
	pf := newPrefetcher(ctx, p.Blobs, open, conc, budget)
	defer func() {
		if cerr := pf.close(); cerr != nil && err == nil {
			res, err = nil, cerr
		}
	}()
	for i, b := range p.Blobs {
		if err := ctx.Err(); err != nil {
			return nil, idle, err
		}
		if err := writeBlob(ctx, aw, pf, i, b, rep, resume); err != nil {
			return nil, idle, err
		}
		for _, im := range done.ready(i) {
			logImage(rep, im, opts.Into)
		}
	}
	closed = true
	if err := aw.Close(); err != nil {
		return nil, idle, fmt.Errorf("finish archive: %w", err)
	}
	return &ExportResult{
		SHA256:        hex.EncodeToString(sum.Sum(nil)),
		Images:        len(p.Images),
		Blobs:         len(p.Blobs),
		Bytes:         p.TotalBytes,
		Manifests:     len(manifests),
		ManifestBytes: manifestBytes,
		ArchiveBytes:  out.n,
		Skipped:       p.Skipped,
		Delta:         d,
		LeftOutBytes:  leftOutBytes,
	}, idle, nil
}

func writeBlob(ctx context.Context, aw *archive.Writer, pf *prefetcher, i int, b Blob, rep progress.Reporter, resume resumeFunc) error {
	rc, err := pf.next(i)
	if g := blobGone(b, err, "the archive was not completed"); g != nil {
		return g
	}
	if err != nil {
		return fmt.Errorf("fetch %s: %w", b.origin(), err)
	}
	// A download cut part way (a registry or proxy that drops a connection
	// the writer kept waiting) goes on from where it stopped.
	tries := resumeTries
	if resume == nil {
		tries = 0
	}
	rr := &resumingReader{ctx: ctx, rc: rc, resume: func(ctx context.Context, off int64) (io.ReadCloser, error) { return resume(ctx, b, off) }, tries: tries}
	defer rr.Close()
	// Bytes are reported as they reach the archive writer; a blob read
	// from memory stops when the export is cancelled.
	r := ctxio.NewReader(ctx, &reportReader{r: rr, rep: rep})
	if err := aw.WriteBlob(b.Digest, b.Size, r); err != nil {
		if oe := (*archive.OutputError)(nil); errors.As(err, &oe) {
			// The download was fine; the archive could not be written.
			return err
		}
		if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
			return fmt.Errorf("fetch %s: %w (%v)", b.origin(), cerr, err)
		}
		return fmt.Errorf("fetch %s: %w", b.origin(), err)
	}
	return nil
}

// archiveHead builds index.json and the manifests map from the plan.
func archiveHead(p *Plan, createdBy string, d *archive.Delta) ([]byte, map[v1.Hash][]byte, error) {
	entries := make([]archive.Entry, 0, len(p.Images))
	for _, im := range p.Images {
		d := v1.Descriptor{MediaType: im.MediaType, Size: im.Size, Digest: im.Digest}
		if im.MediaType.IsImage() && len(im.Platforms) == 1 {
			pl := im.Platforms[0]
			d.Platform = &pl
		}
		entries = append(entries, archive.Entry{
			Descriptor:    d,
			Role:          im.Role,
			OriginalRef:   im.OriginalRef,
			Tag:           im.Tag,
			Subject:       im.Subject,
			SignatureKind: im.SignatureKind,
		})
	}
	skipped := make([]v1.Descriptor, 0, len(p.Skipped))
	for _, b := range p.Skipped {
		skipped = append(skipped, v1.Descriptor{MediaType: b.MediaType, Size: b.Size, Digest: b.Digest, URLs: b.URLs})
	}
	index, err := archive.BuildIndex(entries, archive.IndexOptions{CreatedBy: createdBy, SkippedLayers: skipped, Delta: d})
	if err != nil {
		return nil, nil, fmt.Errorf("build archive index: %w", err)
	}
	manifests := make(map[v1.Hash][]byte, len(p.Manifests))
	for h, m := range p.Manifests {
		manifests[h] = m.Raw
	}
	return index, manifests, nil
}

// imageTracker knows, for each image of the plan, the position of the last
// of its blobs in the plan's order, so that one line per image can be
// logged when the image is complete in the archive.
type imageTracker struct {
	byLast map[int][]*Image
}

func newImageTracker(p *Plan) *imageTracker {
	pos := make(map[v1.Hash]int, len(p.Blobs))
	for i, b := range p.Blobs {
		pos[b.Digest] = i
	}
	t := &imageTracker{byLast: map[int][]*Image{}}
	for _, im := range p.Images {
		last := -1
		seen := map[v1.Hash]bool{}
		var walk func(h v1.Hash)
		walk = func(h v1.Hash) {
			if seen[h] {
				return
			}
			seen[h] = true
			m, ok := p.Manifests[h]
			if !ok {
				return
			}
			for _, d := range referencedBlobs(m) {
				if i, ok := pos[d]; ok && i > last {
					last = i
				}
				walk(d)
			}
		}
		walk(im.Digest)
		t.byLast[last] = append(t.byLast[last], im)
	}
	return t
}

// ready returns the images whose last blob is blob i (-1: images with no
// blob at all, complete once the head is written).
func (t *imageTracker) ready(i int) []*Image { return t.byLast[i] }

// logImage says that im is in the archive, named into (ExportOptions.Into),
// naming its digest once: a reference by digest already holds it.
func logImage(rep progress.Reporter, im *Image, into string) {
	if into != "" {
		into = " into " + into
	}
	switch d := im.Digest.String(); {
	case im.OriginalRef == "":
		rep.Logf("exported %s %s%s", im.Role, d, into)
	case strings.HasSuffix(im.OriginalRef, "@"+d):
		rep.Logf("exported %s %s%s", im.Role, im.OriginalRef, into)
	default:
		rep.Logf("exported %s %s (%s)%s", im.Role, im.OriginalRef, d, into)
	}
}

// archiveCounter counts the bytes of the archive.
type archiveCounter struct {
	w io.Writer
	n int64
}

// Write implements io.Writer.
func (c *archiveCounter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// resumeFunc opens blob b again from byte off.
type resumeFunc func(ctx context.Context, b Blob, off int64) (io.ReadCloser, error)

// resumeTries is how many times one blob's download may be resumed.
const resumeTries = 3

// resumingReader reads a download and, when it fails part way, opens it
// again from the first byte not yet read, up to tries times. Whoever reads
// it checks the whole blob's digest, so a resumed download can only fail,
// never pass off other bytes.
type resumingReader struct {
	ctx    context.Context
	rc     io.ReadCloser
	resume func(ctx context.Context, off int64) (io.ReadCloser, error)
	tries  int
	n      int64
}

// Read implements io.Reader.
func (r *resumingReader) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	r.n += int64(n)
	if err == nil || err == io.EOF || r.ctx.Err() != nil || r.tries <= 0 {
		return n, err
	}
	r.tries--
	r.rc.Close()
	rc, rerr := r.resume(r.ctx, r.n)
	if rerr != nil {
		r.rc = io.NopCloser(errReader{fmt.Errorf("%w; resuming it from byte %d: %v", err, r.n, rerr)})
		return n, nil
	}
	r.rc = rc
	return n, nil
}

// Close implements io.Closer.
func (r *resumingReader) Close() error { return r.rc.Close() }

// errReader fails every read with err.
type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }
