package relocate

import (
	"context"
	"io"
	"sync"
)

// The archive must hold blobs in plan order, but downloading them one at a
// time leaves most of the bandwidth unused. A prefetcher lets workers
// download blobs ahead of the writer into memory while the writer streams
// the blob at the head of the order straight from the registry. A small
// blob (at most memSpoolMax) is read whole; of a larger one only the first
// prefetchHead bytes are read, and its download is left open for the writer
// to go on with when its turn comes: the request's round trip and the
// connection's start overlap the writing of the blobs before it, and memory
// holds a bounded slice of it. Nothing is written to disk. The output order,
// and so the archive bytes, never depend on which download finishes first.
//
// What is held ahead is bounded twice: by count (limit, which also bounds
// the downloads open at once) and by bytes (budget).

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

// prefetchHead is how much of a blob larger than memSpoolMax is read ahead
// of the writer; the rest streams from the open download.
const prefetchHead = 1 << 20

// prefetchChunk is the unit of the memory holding blobs ahead: chunks are
// reused from blob to blob, so that an export allocates at most its budget
// once instead of a buffer per blob (every blob's bytes again, which kept
// the garbage collector running all the time under the soft memory limit).
const prefetchChunk = 256 << 10

type slotState int

const (
	slotPending  slotState = iota
	slotSpooling           // a worker is downloading it
	slotSpooled            // downloaded (or started), waiting for the writer
	slotFailed             // a worker failed; the writer tries again itself
	slotTaken              // handed to the writer
)

// prefetchSpool is what a worker fetched of one blob.
type prefetchSpool struct {
	// mem is the blob, or its first prefetchHead bytes, in chunks of
	// prefetchChunk bytes (the last one cut to what was read).
	mem [][]byte
	// rest is the open download of the rest of the blob; nil when mem is
	// the whole blob.
	rest io.ReadCloser
}

type blobOpener func(ctx context.Context, b Blob) (io.ReadCloser, error)

type prefetcher struct {
	blobs  []Blob
	open   blobOpener
	limit  int   // blobs held ahead (the head included once taken from them)
	budget int64 // bytes held ahead of the head

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	stop   func() bool

	mu       sync.Mutex
	cond     *sync.Cond
	state    []slotState
	spools   []prefetchSpool
	head     int
	ahead    int
	reserved int64
	closed   bool
	free     [][]byte // chunks not in use
	made     int      // chunks ever made (all are in free once idle)
}

// newPrefetcher starts workers-1 download workers (the writer itself is the
// last one), and holds at most workers-1 blobs ahead, so that at most
// workers downloads are open at once: those held ahead may keep theirs open.
// With workers <= 1 nothing is fetched ahead.
func newPrefetcher(ctx context.Context, blobs []Blob, open blobOpener, workers int, budget int64) *prefetcher {
	ctx, cancel := context.WithCancel(ctx)
	p := &prefetcher{
		blobs:  blobs,
		open:   open,
		limit:  max(workers-1, 0),
		budget: budget,
		ctx:    ctx,
		cancel: cancel,
		state:  make([]slotState, len(blobs)),
		spools: make([]prefetchSpool, len(blobs)),
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

// held is how many bytes of memory a worker holds for b: whole chunks, of
// the blob and one byte more (to see a blob longer than it should be), or
// of its first prefetchHead bytes.
func held(b Blob) int64 {
	n := int64(prefetchHead)
	if b.Size <= memSpoolMax {
		n = b.Size + 1
	}
	return (n + prefetchChunk - 1) / prefetchChunk * prefetchChunk
}

// chunks returns n bytes of chunks, reused when there are free ones. What
// is in use never exceeds the budget (reserved), so neither do all the
// chunks ever made.
func (p *prefetcher) chunks(n int64) [][]byte {
	k := int((n + prefetchChunk - 1) / prefetchChunk)
	out := make([][]byte, 0, k)
	p.mu.Lock()
	for len(out) < k && len(p.free) > 0 {
		c := p.free[len(p.free)-1]
		p.free = p.free[:len(p.free)-1]
		out = append(out, c)
	}
	p.made += k - len(out)
	p.mu.Unlock()
	for len(out) < k {
		out = append(out, make([]byte, prefetchChunk))
	}
	return out
}

// putChunks gives chunks back for reuse; p.mu must be held.
func (p *prefetcher) putChunks(cs [][]byte) {
	for _, c := range cs {
		p.free = append(p.free, c[:prefetchChunk])
	}
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
		if p.reserved+held(p.blobs[j]) <= p.budget {
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
		p.reserved += held(p.blobs[j])
		p.mu.Unlock()

		sp, err := p.fill(p.blobs[j], p.chunks(held(p.blobs[j])))

		p.mu.Lock()
		if err != nil {
			// The writer opens it again itself, and reports what fails.
			p.state[j] = slotFailed
			p.ahead--
			p.reserved -= held(p.blobs[j])
		} else {
			p.state[j] = slotSpooled
			p.spools[j] = sp
		}
		p.cond.Broadcast()
		p.mu.Unlock()
	}
}

// fill downloads one blob, or its first bytes, into memory: the chunks
// given, which it gives back if it fails.
func (p *prefetcher) fill(b Blob, mem [][]byte) (sp prefetchSpool, err error) {
	defer func() {
		if err != nil {
			p.mu.Lock()
			p.putChunks(mem)
			p.mu.Unlock()
		}
	}()
	rc, err := p.open(p.ctx, b)
	if err != nil {
		return prefetchSpool{}, err
	}
	if b.Size <= memSpoolMax {
		defer rc.Close()
		// Reading one byte more than expected lets the writer's size check
		// see a blob that is too long instead of a silently cut one.
		n, err := readChunks(io.LimitReader(rc, b.Size+1), mem)
		if n < b.Size {
			// Cut short (net/http says io.ErrUnexpectedEOF for a body that
			// ends before its length, as readChunks does for a blob
			// shorter than its chunks): the writer opens it again.
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return prefetchSpool{}, err
		}
		if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
			return prefetchSpool{}, err
		}
		return prefetchSpool{mem: cutChunks(mem, n)}, nil
	}
	if _, err := readChunks(io.LimitReader(rc, prefetchHead), mem); err != nil {
		// The writer opens it again itself, and says what is wrong.
		rc.Close()
		return prefetchSpool{}, err
	}
	return prefetchSpool{mem: cutChunks(mem, prefetchHead), rest: rc}, nil
}

// readChunks fills chunks from r in order until r ends or they are full;
// it returns how many bytes it read and io.ErrUnexpectedEOF (or io.EOF, if
// nothing) when r ended first.
func readChunks(r io.Reader, chunks [][]byte) (int64, error) {
	var n int64
	for _, c := range chunks {
		k, err := io.ReadFull(r, c)
		n += int64(k)
		if err != nil {
			if err == io.EOF && n > 0 {
				err = io.ErrUnexpectedEOF
			}
			return n, err
		}
	}
	return n, nil
}

// cutChunks returns the chunks holding the first n bytes, the last one cut
// to its part of them. Chunks past them are left out, to be given back
// with the rest (putChunks restores their length).
func cutChunks(chunks [][]byte, n int64) [][]byte {
	out := chunks[:0:len(chunks)]
	for _, c := range chunks {
		if n <= 0 {
			break
		}
		k := min(int64(len(c)), n)
		out = append(out, c[:k])
		n -= k
	}
	return out
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
			// The head is never prefetched: it streams straight through.
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
			return p.reader(i, sp), nil
		default: // spooling
			p.cond.Wait()
		}
	}
}

// reader reads what was prefetched of blob i, then the rest of its
// download, and gives its room back when closed.
func (p *prefetcher) reader(i int, sp prefetchSpool) io.ReadCloser {
	release := func() {
		p.mu.Lock()
		p.putChunks(sp.mem[:cap(sp.mem)])
		p.ahead--
		p.reserved -= held(p.blobs[i])
		p.cond.Broadcast()
		p.mu.Unlock()
	}
	r := &spoolReader{release: release, rest: sp.rest}
	r.Reader = &chunkReader{chunks: sp.mem}
	if sp.rest != nil {
		r.Reader = io.MultiReader(r.Reader, sp.rest)
	}
	return r
}

// chunkReader reads chunks in order, leaving them as they are (they go
// back to the prefetcher whole).
type chunkReader struct {
	chunks [][]byte
	i, off int // the next byte is chunks[i][off]
}

// Read implements io.Reader.
func (r *chunkReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) && r.i < len(r.chunks) {
		k := copy(p[n:], r.chunks[r.i][r.off:])
		n += k
		if r.off += k; r.off == len(r.chunks[r.i]) {
			r.i, r.off = r.i+1, 0
		}
	}
	if n == 0 && len(p) > 0 {
		return 0, io.EOF
	}
	return n, nil
}

type spoolReader struct {
	io.Reader
	rest    io.ReadCloser
	release func()
	once    sync.Once
}

// Close closes the download, if one is open, and frees the blob's share
// of the budget; it is safe to call more than once.
func (r *spoolReader) Close() error {
	var err error
	r.once.Do(func() {
		if r.rest != nil {
			err = r.rest.Close()
		}
		r.release()
	})
	return err
}

// close stops the workers, waits for them and closes every download still
// open. It is safe to call on every exit path.
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
		if sp.rest != nil {
			sp.rest.Close()
		}
		p.spools[i] = prefetchSpool{}
	}
	return nil
}
