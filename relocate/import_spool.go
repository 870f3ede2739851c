package relocate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/internal/atomicfile"
	"github.com/ferry-dev/ferry/internal/ctxio"
	"github.com/ferry-dev/ferry/internal/progress"
	"github.com/ferry-dev/ferry/internal/registry"
)

// Uploads from a stream overlap reading the archive: the reader copies each
// missing blob that is small (at most memSpoolMax) into memory and hands it
// to a bounded pool of uploaders, then goes on with the next blob; a failed
// upload is sent again from memory. A larger blob is uploaded by the reader
// itself as it reads it (registry.Repo.UploadStream, which resumes after a
// dropped connection from what the registry holds), so nothing reaches the
// disk; with ImportOptions.SpoolDir it is copied to a temporary file and
// queued like a small one instead. What is held is bounded by count, by
// memory and by disk; the reader blocks while a bound is reached.

// importBudget bounds the spooled blobs not yet uploaded: at most slots
// blobs and at most bytes of temporary disk. A blob bigger than the whole
// byte budget is admitted when no other file is spooled, so it still goes
// through (alone) instead of blocking forever.
type importBudget struct {
	mu       sync.Mutex
	maxSlots int
	maxBytes int64
	maxMem   int64
	slots    int
	bytes    int64
	mem      int64
	wake     chan struct{}

	// peaks, for tests and measurements.
	peakSlots int
	peakBytes int64
}

func newImportBudget(slots int, bytes, mem int64) *importBudget {
	return &importBudget{maxSlots: max(slots, 1), maxBytes: bytes, maxMem: mem, wake: make(chan struct{})}
}

// acquire blocks until a blob using mem bytes of memory and disk bytes of
// temporary disk fits, or ctx ends.
func (b *importBudget) acquire(ctx context.Context, mem, disk int64) error {
	for {
		b.mu.Lock()
		fits := b.slots < b.maxSlots &&
			(disk == 0 || b.bytes == 0 || b.bytes+disk <= b.maxBytes) &&
			(mem == 0 || b.mem == 0 || b.mem+mem <= b.maxMem)
		if fits {
			b.slots++
			b.bytes += disk
			b.mem += mem
			b.peakSlots = max(b.peakSlots, b.slots)
			b.peakBytes = max(b.peakBytes, b.bytes)
			b.mu.Unlock()
			return nil
		}
		wake := b.wake
		b.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// release returns what acquire took and wakes the waiting reader.
func (b *importBudget) release(mem, disk int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.slots--
	b.bytes -= disk
	b.mem -= mem
	close(b.wake)
	b.wake = make(chan struct{})
}

func (b *importBudget) peaks() (int, int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.peakSlots, b.peakBytes
}

// importSpool is one blob waiting for its upload.
type importSpool struct {
	digest v1.Hash
	size   int64
	// mem holds a blob spooled in memory: chunks of prefetchChunk bytes
	// (the last one cut to what was read), reused from blob to blob.
	mem [][]byte
	// f holds a blob spooled to disk, a file without a name where the
	// system allows (atomicfile.Anonymous; name is then ""), so that an
	// import killed outright (SIGKILL) leaves nothing behind.
	f    *os.File
	name string
	// progress is what has been reported of the blob, across upload
	// attempts.
	progress blobProgress
}

// disk is the temporary disk the spool holds against the budget.
func (s *importSpool) disk() int64 {
	if s.f == nil {
		return 0
	}
	return s.size
}

// memory is the memory the spool holds against the budget.
func (s *importSpool) memory() int64 {
	if s.f != nil {
		return 0
	}
	return spoolChunks(s.size)
}

// spoolChunks is the memory a blob of size bytes takes in memory: whole
// chunks, for its bytes and one more (to see the end of its reader, which
// verifies it there).
func spoolChunks(size int64) int64 {
	return (size + 1 + prefetchChunk - 1) / prefetchChunk * prefetchChunk
}

func (s *importSpool) remove() {
	if s.f != nil {
		_ = s.f.Close()
	}
	if s.name != "" {
		_ = os.Remove(s.name)
	}
}

// importUploads runs the uploaders. Its context is canceled by the first
// failure, which stops the reader too.
type importUploads struct {
	ctx      context.Context
	cancel   context.CancelCauseFunc
	dst      *destination
	budget   *importBudget
	spoolDir string
	rep      progress.Reporter

	jobs      chan *importSpool
	wg        sync.WaitGroup
	closeOnce sync.Once

	mu   sync.Mutex
	err  error
	free [][]byte // memory chunks not in use; what is in use stays within the budget
}

func newImportUploads(ctx context.Context, dst *destination, slots int, budgetBytes int64, spoolDir string) *importUploads {
	ctx, cancel := context.WithCancelCause(ctx)
	u := &importUploads{
		ctx:      ctx,
		cancel:   cancel,
		dst:      dst,
		budget:   newImportBudget(slots, budgetBytes, memSpoolBudget),
		spoolDir: spoolDir,
		rep:      dst.rep,
		jobs:     make(chan *importSpool),
	}
	for i := 0; i < max(dst.conc, 1); i++ {
		u.wg.Add(1)
		go u.work()
	}
	return u
}

// fail records the first error and stops everything.
func (u *importUploads) fail(err error) {
	u.mu.Lock()
	if u.err == nil {
		u.err = err
	}
	u.mu.Unlock()
	u.cancel(err)
}

// failure returns the first error, if any.
func (u *importUploads) failure() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.err
}

// add uploads the blob d read from r: a small one (or, with a spool
// directory, any) is spooled and queued, and add returns once it is; a large
// one streams into its upload before add returns. It blocks while the spool
// budget is used up. The archive Reader verifies the blob's digest and size
// as r reaches its end; a mismatch fails add, before anything spooled is
// queued or anything streamed is committed.
func (u *importUploads) add(d v1.Hash, size int64, r io.Reader) error {
	if err := u.failure(); err != nil {
		return err
	}
	if size > memSpoolMax && u.spoolDir == "" {
		if there, err := u.dst.alreadyThere(u.ctx, v1.Descriptor{Digest: d, Size: size}); there || err != nil {
			// The Reader verifies it as it skips it.
			return err
		}
		return u.stream(d, size, r)
	}
	sp := &importSpool{digest: d, size: size}
	var mem, disk int64
	if size > memSpoolMax {
		disk = size
	} else {
		mem = spoolChunks(size)
	}
	if err := u.budget.acquire(u.ctx, mem, disk); err != nil {
		return err
	}
	if err := u.spool(sp, disk > 0, r); err != nil {
		u.drop(sp, mem, disk)
		return err
	}
	select {
	case u.jobs <- sp:
		return nil
	case <-u.ctx.Done():
		u.drop(sp, mem, disk)
		return context.Cause(u.ctx)
	}
}

// stream uploads blob d as it is read from r, in the reader's goroutine.
func (u *importUploads) stream(d v1.Hash, size int64, r io.Reader) error {
	err := u.dst.reg.UploadStream(u.ctx, d, size, &reportReader{r: r, rep: u.rep})
	if err != nil {
		var se *registry.SourceError
		if errors.As(err, &se) {
			// The archive's own error says more than the upload's.
			return se.Err
		}
	}
	return err
}

// spool copies r into memory or into a file of the spool directory.
func (u *importUploads) spool(sp *importSpool, toFile bool, r io.Reader) error {
	if !toFile {
		sp.mem = u.chunks(spoolChunks(sp.size))
		// One byte more than the blob: its reader is read to its end,
		// where it verifies the blob.
		n, err := readChunks(ctxio.NewReader(u.ctx, r), sp.mem)
		if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
			return err
		}
		if n != sp.size {
			return fmt.Errorf("blob %s: read %d bytes, expected %d", sp.digest, n, sp.size)
		}
		sp.mem = cutChunks(sp.mem, n)
		return nil
	}
	f, name, err := atomicfile.Anonymous(u.spoolDir, "ferry-import-*")
	if err != nil {
		return fmt.Errorf("spool blob %s: %w", sp.digest, err)
	}
	sp.f, sp.name = f, name // a name left is removed when the blob is dropped
	// A large blob stops being copied once another upload failed.
	n, err := io.Copy(f, ctxio.NewReader(u.ctx, r))
	if err != nil {
		return fmt.Errorf("spool blob %s: %w", sp.digest, err)
	}
	if n != sp.size {
		return fmt.Errorf("blob %s: read %d bytes, expected %d", sp.digest, n, sp.size)
	}
	return nil
}

func (u *importUploads) work() {
	defer u.wg.Done()
	for sp := range u.jobs {
		if u.ctx.Err() == nil {
			if err := u.upload(sp); err != nil {
				u.fail(err)
			}
		}
		u.drop(sp, sp.memory(), sp.disk())
	}
}

// drop removes what holds sp, gives its memory chunks back for the next
// blobs, and releases its mem and disk bytes of the budget.
func (u *importUploads) drop(sp *importSpool, mem, disk int64) {
	sp.remove()
	u.mu.Lock()
	for _, c := range sp.mem[:cap(sp.mem)] {
		u.free = append(u.free, c[:prefetchChunk])
	}
	u.mu.Unlock()
	sp.mem = nil
	u.budget.release(mem, disk)
}

// chunks returns n bytes of memory chunks, reused when there are free
// ones: allocating (and clearing) a buffer per blob made most of a stream
// import's garbage.
func (u *importUploads) chunks(n int64) [][]byte {
	k := int(n / prefetchChunk)
	out := make([][]byte, 0, k)
	u.mu.Lock()
	for len(out) < k && len(u.free) > 0 {
		out = append(out, u.free[len(u.free)-1])
		u.free = u.free[:len(u.free)-1]
	}
	u.mu.Unlock()
	for len(out) < k {
		out = append(out, make([]byte, prefetchChunk))
	}
	return out
}

func (u *importUploads) upload(sp *importSpool) error {
	if there, err := u.dst.alreadyThere(u.ctx, v1.Descriptor{Digest: sp.digest, Size: sp.size}); there || err != nil {
		return err
	}
	_, err := u.dst.reg.Upload(u.ctx, sp.digest, sp.size, sp.open(u.rep), u.dst.warnRetry(sp.digest))
	if err != nil {
		return err
	}
	sp.progress.finish(u.rep, sp.size)
	return nil
}

// close waits for the uploads queued so far (after a failure they are
// dropped, their spool files with them) and returns the first failure.
func (u *importUploads) close() error {
	u.closeOnce.Do(func() {
		close(u.jobs)
		u.wg.Wait()
		u.cancel(nil)
	})
	return u.failure()
}

// open returns a fresh reader of the spool for every upload attempt,
// counting what is sent.
func (s *importSpool) open(rep progress.Reporter) registry.Opener {
	return func() (io.ReadCloser, error) {
		var rc io.ReadCloser
		if s.f != nil {
			// Each attempt reads the file from its start, at its own
			// offsets: attempts may overlap a failed one's last read.
			rc = io.NopCloser(io.NewSectionReader(s.f, 0, s.size))
		} else {
			rc = io.NopCloser(&chunkReader{chunks: s.mem})
		}
		return &progressReader{rc: rc, p: &s.progress, rep: rep}, nil
	}
}
