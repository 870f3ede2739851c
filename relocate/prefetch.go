package relocate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// The archive must hold blobs in plan order, but downloading them one at a
// time leaves most of the bandwidth unused. A prefetcher lets workers
// download blobs ahead of the writer into spools (memory for small blobs,
// temporary files for the rest) while the writer streams the blob at the
// head of the order straight from the registry. The output order, and so
// the archive bytes, never depend on which download finishes first.
//
// What is held ahead is bounded twice: by count (limit) and by bytes
// (budget), so neither temporary disk nor memory grows with the size of the
// content; a blob bigger than the whole budget is never spooled, the writer
// streams it when it reaches the head.

// memSpoolMax is the largest blob held in memory while it waits: by the
// export prefetcher for the writer, and by an import from a stream for its
// upload. Larger blobs stream (or, with a spool directory, go to disk).
// memSpoolBudget bounds what is held at once, so that memory stays flat
// whatever the archive; at 4 MiB, the many-small-layers case (a few MiB
// each, most images) keeps every upload stream busy.
const (
	memSpoolMax    = 4 << 20
	memSpoolBudget = 24 << 20
)

type slotState int

const (
	slotPending  slotState = iota
	slotSpooling           // a worker is downloading it
	slotSpooled            // downloaded, waiting for the writer
	slotFailed             // a worker failed; the writer tries again itself
	slotTaken              // handed to the writer
)

type prefetchSpool struct {
	mem  []byte
	file string
}

type blobOpener func(ctx context.Context, b Blob) (io.ReadCloser, error)

type prefetcher struct {
	blobs  []Blob
	open   blobOpener
	limit  int   // blobs held ahead of the head
	budget int64 // bytes held ahead of the head
	dir    string

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	stop   func() bool

	mu       sync.Mutex
	cond     *sync.Cond
	state    []slotState
	spools   []prefetchSpool
	errs     []error
	head     int
	ahead    int
	reserved int64
	closed   bool
	tempDir  string // created on first use
	dirErr   error
}

// newPrefetcher starts workers-1 download workers (the writer itself is the
// last one). With workers <= 1 nothing is fetched ahead and nothing is
// spooled.
func newPrefetcher(ctx context.Context, blobs []Blob, open blobOpener, workers int, budget int64, dir string) *prefetcher {
	ctx, cancel := context.WithCancel(ctx)
	p := &prefetcher{
		blobs:  blobs,
		open:   open,
		limit:  workers,
		budget: budget,
		dir:    dir,
		ctx:    ctx,
		cancel: cancel,
		state:  make([]slotState, len(blobs)),
		spools: make([]prefetchSpool, len(blobs)),
		errs:   make([]error, len(blobs)),
	}
	p.cond = sync.NewCond(&p.mu)
	// Waiters must wake up when the export is cancelled.
	p.stop = context.AfterFunc(ctx, func() {
		p.mu.Lock()
		p.cond.Broadcast()
		p.mu.Unlock()
	})
	for i := 1; i < workers; i++ {
		p.wg.Add(1)
		go p.work()
	}
	return p
}

// pick returns the first pending blob after the head that fits in what may
// be held ahead, or -1.
func (p *prefetcher) pick() int {
	if p.ahead >= p.limit {
		return -1
	}
	for j := p.head + 1; j < len(p.blobs); j++ {
		if p.state[j] != slotPending {
			continue
		}
		if p.reserved+p.blobs[j].Size <= p.budget {
			return j
		}
	}
	return -1
}

func (p *prefetcher) work() {
	defer p.wg.Done()
	for {
		p.mu.Lock()
		j := -1
		for !p.closed && p.ctx.Err() == nil {
			if j = p.pick(); j >= 0 {
				break
			}
			p.cond.Wait()
		}
		if j < 0 {
			p.mu.Unlock()
			return
		}
		p.state[j] = slotSpooling
		p.ahead++
		p.reserved += p.blobs[j].Size
		p.mu.Unlock()

		sp, err := p.fill(p.blobs[j])

		p.mu.Lock()
		if err != nil {
			p.state[j] = slotFailed
			p.errs[j] = err
			p.ahead--
			p.reserved -= p.blobs[j].Size
		} else {
			p.state[j] = slotSpooled
			p.spools[j] = sp
		}
		p.cond.Broadcast()
		p.mu.Unlock()
	}
}

// fill downloads one blob into a spool.
func (p *prefetcher) fill(b Blob) (sp prefetchSpool, err error) {
	rc, err := p.open(p.ctx, b)
	if err != nil {
		return prefetchSpool{}, err
	}
	defer rc.Close()
	if b.Size <= memSpoolMax {
		var buf bytes.Buffer
		buf.Grow(int(b.Size))
		// Reading one byte more than expected lets the writer's size check
		// see a blob that is too long instead of a silently cut one.
		if _, err := io.Copy(&buf, io.LimitReader(rc, b.Size+1)); err != nil {
			return prefetchSpool{}, err
		}
		return prefetchSpool{mem: buf.Bytes()}, nil
	}
	dir, err := p.spoolDir()
	if err != nil {
		return prefetchSpool{}, err
	}
	f, err := os.CreateTemp(dir, "blob-")
	if err != nil {
		return prefetchSpool{}, fmt.Errorf("spool %s: %w", b.Digest, err)
	}
	defer func() {
		if err != nil {
			os.Remove(f.Name())
		}
	}()
	if _, err := io.Copy(f, io.LimitReader(rc, b.Size+1)); err != nil {
		f.Close()
		return prefetchSpool{}, fmt.Errorf("spool %s: %w", b.Digest, err)
	}
	if err := f.Close(); err != nil {
		return prefetchSpool{}, fmt.Errorf("spool %s: %w", b.Digest, err)
	}
	return prefetchSpool{file: f.Name()}, nil
}

// spoolDir creates the temporary directory on first use, so that exports
// that never spool to disk never touch it.
func (p *prefetcher) spoolDir() (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tempDir == "" && p.dirErr == nil {
		if p.closed {
			return "", errors.New("export finished")
		}
		p.tempDir, p.dirErr = os.MkdirTemp(p.dir, "ferry-export-")
		if p.dirErr != nil {
			p.dirErr = fmt.Errorf("create spool directory: %w", p.dirErr)
		}
	}
	return p.tempDir, p.dirErr
}

// next returns blob i, which must be the one after the previous call's. The
// caller must Close the reader before asking for the next blob.
func (p *prefetcher) next(i int) (io.ReadCloser, error) {
	p.mu.Lock()
	p.head = i
	p.cond.Broadcast()
	for {
		if err := p.ctx.Err(); err != nil {
			p.mu.Unlock()
			return nil, err
		}
		switch p.state[i] {
		case slotPending, slotFailed:
			// The head is never spooled: it streams straight through.
			// Every blob gets two tries to open: a worker's failed one and
			// one here, or two here when no worker got to it first, so
			// the outcome does not depend on who won that race. A blob
			// that fails for good becomes the writer's error.
			tries := 1
			if p.state[i] == slotPending {
				tries = 2
			}
			p.state[i] = slotTaken
			p.mu.Unlock()
			var rc io.ReadCloser
			var err error
			for range tries {
				if rc, err = p.open(p.ctx, p.blobs[i]); err == nil || p.ctx.Err() != nil {
					break
				}
			}
			return rc, err
		case slotSpooled:
			p.state[i] = slotTaken
			sp := p.spools[i]
			p.spools[i] = prefetchSpool{}
			p.mu.Unlock()
			return p.reader(i, sp)
		default: // spooling
			p.cond.Wait()
		}
	}
}

// reader reads a spool and gives its room back when closed.
func (p *prefetcher) reader(i int, sp prefetchSpool) (io.ReadCloser, error) {
	release := func() {
		if sp.file != "" {
			os.Remove(sp.file)
		}
		p.mu.Lock()
		p.ahead--
		p.reserved -= p.blobs[i].Size
		p.cond.Broadcast()
		p.mu.Unlock()
	}
	if sp.file == "" {
		return &spoolReader{Reader: bytes.NewReader(sp.mem), release: release}, nil
	}
	f, err := os.Open(sp.file)
	if err != nil {
		release()
		return nil, fmt.Errorf("spool %s: %w", p.blobs[i].Digest, err)
	}
	return &spoolReader{Reader: f, file: f, release: release}, nil
}

type spoolReader struct {
	io.Reader
	file    *os.File
	release func()
	once    sync.Once
}

// Close closes the spool file, removes it and frees its share of the
// budget; it is safe to call more than once.
func (r *spoolReader) Close() error {
	var err error
	r.once.Do(func() {
		if r.file != nil {
			err = r.file.Close()
		}
		r.release()
	})
	return err
}

// close stops the workers, waits for them and removes every spool and the
// temporary directory. It is safe to call on every exit path.
func (p *prefetcher) close() error {
	p.mu.Lock()
	p.closed = true
	p.cond.Broadcast()
	p.mu.Unlock()
	p.cancel()
	p.wg.Wait()
	p.stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, sp := range p.spools {
		if sp.file != "" {
			os.Remove(sp.file)
		}
		p.spools[i] = prefetchSpool{}
	}
	if p.tempDir != "" {
		if err := os.RemoveAll(p.tempDir); err != nil {
			return fmt.Errorf("remove spool directory: %w", err)
		}
	}
	return nil
}
