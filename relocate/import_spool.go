package relocate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/internal/progress"
)

// Uploads overlap reading the archive: the reader copies each missing blob
// (verified by the archive Reader as it goes) into a spool — memory for
// small blobs, a temporary file for the rest — and hands it to a bounded
// pool of uploaders, then goes on with the next blob. An upload that fails
// part way is retried from the spool (go-containerregistry reopens the layer
// for each attempt), which a blob streamed straight from the archive could
// not be. What is spooled is bounded by count and by bytes; the reader blocks
// while the bound is reached, so temporary disk never grows with the
// archive.

// importBudget bounds the spooled blobs not yet uploaded: at most slots
// blobs and at most bytes of temporary disk. A blob bigger than the whole
// byte budget is admitted when no other file is spooled, so it still goes
// through (alone) instead of blocking forever.
type importBudget struct {
	mu       sync.Mutex
	maxSlots int
	maxBytes int64
	slots    int
	bytes    int64
	wake     chan struct{}

	// peaks, for tests and measurements.
	peakSlots int
	peakBytes int64
}

func newImportBudget(slots int, bytes int64) *importBudget {
	return &importBudget{maxSlots: max(slots, 1), maxBytes: bytes, wake: make(chan struct{})}
}

// acquire blocks until a blob using disk bytes of temporary disk (0 for a
// memory spool) fits, or ctx ends.
func (b *importBudget) acquire(ctx context.Context, disk int64) error {
	for {
		b.mu.Lock()
		fits := b.slots < b.maxSlots && (disk == 0 || b.bytes == 0 || b.bytes+disk <= b.maxBytes)
		if fits {
			b.slots++
			b.bytes += disk
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
func (b *importBudget) release(disk int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.slots--
	b.bytes -= disk
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
	mem    []byte
	file   string
	// progress is what has been reported of the blob, across upload
	// attempts.
	progress blobProgress
}

// disk is the temporary disk the spool holds against the budget.
func (s *importSpool) disk() int64 {
	if s.file == "" {
		return 0
	}
	return s.size
}

func (s *importSpool) remove() {
	if s.file != "" {
		_ = os.Remove(s.file)
	}
}

// importUploads runs the uploaders. Its context is canceled by the first
// failure, which stops the reader too.
type importUploads struct {
	ctx      context.Context
	cancel   context.CancelCauseFunc
	pusher   *remote.Pusher
	repo     name.Repository
	budget   *importBudget
	spoolDir string
	rep      progress.Reporter

	jobs      chan *importSpool
	wg        sync.WaitGroup
	closeOnce sync.Once

	mu  sync.Mutex
	dir string // created on the first file spool
	err error
}

func newImportUploads(ctx context.Context, pusher *remote.Pusher, repo name.Repository, workers, slots int, budgetBytes int64, spoolDir string, rep progress.Reporter) *importUploads {
	ctx, cancel := context.WithCancelCause(ctx)
	u := &importUploads{
		ctx:      ctx,
		cancel:   cancel,
		pusher:   pusher,
		repo:     repo,
		budget:   newImportBudget(slots, budgetBytes),
		spoolDir: spoolDir,
		rep:      rep,
		jobs:     make(chan *importSpool),
	}
	for i := 0; i < max(workers, 1); i++ {
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

// add spools the blob d from r and queues its upload. It blocks while the
// spool budget is used up. The archive Reader verifies the blob's digest
// and size as r reaches its end; a mismatch fails add, before anything is
// queued.
func (u *importUploads) add(d v1.Hash, size int64, r io.Reader) error {
	if err := u.failure(); err != nil {
		return err
	}
	sp := &importSpool{digest: d, size: size}
	disk := int64(0)
	if size > memSpoolMax {
		disk = size
	}
	if err := u.budget.acquire(u.ctx, disk); err != nil {
		return err
	}
	if err := u.spool(sp, disk > 0, r); err != nil {
		sp.remove()
		u.budget.release(disk)
		return err
	}
	select {
	case u.jobs <- sp:
		return nil
	case <-u.ctx.Done():
		sp.remove()
		u.budget.release(disk)
		return context.Cause(u.ctx)
	}
}

// spool copies r into memory or into a file of the spool directory.
func (u *importUploads) spool(sp *importSpool, toFile bool, r io.Reader) error {
	if !toFile {
		var buf bytes.Buffer
		buf.Grow(int(sp.size))
		n, err := io.Copy(&buf, r)
		if err != nil {
			return err
		}
		if n != sp.size {
			return fmt.Errorf("blob %s: read %d bytes, expected %d", sp.digest, n, sp.size)
		}
		sp.mem = buf.Bytes()
		return nil
	}
	dir, err := u.tempDir()
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "blob-*")
	if err != nil {
		return fmt.Errorf("spool blob %s: %w", sp.digest, err)
	}
	sp.file = f.Name()
	n, err := io.Copy(f, r)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("spool blob %s: %w", sp.digest, cerr)
	}
	if err != nil {
		return err
	}
	if n != sp.size {
		return fmt.Errorf("blob %s: read %d bytes, expected %d", sp.digest, n, sp.size)
	}
	return nil
}

// tempDir creates the spool directory on first use, so that an import with
// nothing to upload touches no disk.
func (u *importUploads) tempDir() (string, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.dir != "" {
		return u.dir, nil
	}
	dir, err := os.MkdirTemp(u.spoolDir, "ferry-import-*")
	if err != nil {
		return "", fmt.Errorf("create spool directory: %w", err)
	}
	u.dir = dir
	return dir, nil
}

func (u *importUploads) work() {
	defer u.wg.Done()
	for sp := range u.jobs {
		if u.ctx.Err() == nil {
			if err := u.upload(sp); err != nil {
				u.fail(err)
			}
		}
		sp.remove()
		u.budget.release(sp.disk())
	}
}

func (u *importUploads) upload(sp *importSpool) error {
	l := &importSpoolLayer{sp: sp, rep: u.rep}
	if err := u.pusher.Upload(u.ctx, u.repo, l); err != nil {
		return fmt.Errorf("upload blob %s to %s: %w", sp.digest, u.repo, err)
	}
	// A registry that already had the blob (another import running at
	// the same time) reads nothing; the bar still completes.
	sp.progress.finish(u.rep, sp.size)
	return nil
}

// close waits for the uploads queued so far (after a failure they are
// dropped), removes the spool directory and returns the first failure.
func (u *importUploads) close() error {
	u.closeOnce.Do(func() {
		close(u.jobs)
		u.wg.Wait()
		u.mu.Lock()
		dir := u.dir
		u.mu.Unlock()
		if dir != "" {
			_ = os.RemoveAll(dir)
		}
		u.cancel(nil)
	})
	return u.failure()
}

// importSpoolLayer presents a spool to go-containerregistry's uploader.
type importSpoolLayer struct {
	sp  *importSpool
	rep progress.Reporter
}

// errImportNoDiffID is returned by importSpoolLayer.DiffID: an upload never needs it,
// and computing it would mean decompressing the blob.
var errImportNoDiffID = errors.New("diff ID of a spooled blob is not known")

// Digest implements v1.Layer.
func (l *importSpoolLayer) Digest() (v1.Hash, error) { return l.sp.digest, nil }

// DiffID implements v1.Layer.
func (l *importSpoolLayer) DiffID() (v1.Hash, error) { return v1.Hash{}, errImportNoDiffID }

// Compressed implements v1.Layer: a fresh reader of the spool for every
// attempt, counting what is sent.
func (l *importSpoolLayer) Compressed() (io.ReadCloser, error) {
	var rc io.ReadCloser
	if l.sp.file != "" {
		f, err := os.Open(l.sp.file)
		if err != nil {
			return nil, err
		}
		rc = f
	} else {
		rc = io.NopCloser(bytes.NewReader(l.sp.mem))
	}
	return &progressReader{rc: rc, p: &l.sp.progress, rep: l.rep}, nil
}

// Uncompressed implements v1.Layer; uploads do not use it.
func (l *importSpoolLayer) Uncompressed() (io.ReadCloser, error) { return nil, errImportNoDiffID }

// Size implements v1.Layer.
func (l *importSpoolLayer) Size() (int64, error) { return l.sp.size, nil }

// MediaType implements v1.Layer. A blob is uploaded the same whatever its
// type; go-containerregistry would silently skip one whose type says
// non-distributable, which an archive made with
// --include-non-distributable-layers does hold, so no such type is given.
func (l *importSpoolLayer) MediaType() (types.MediaType, error) {
	return types.MediaType("application/octet-stream"), nil
}
