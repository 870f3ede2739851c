package archive

import (
	"errors"
	"fmt"
	"hash"
	"io"
	"runtime"
	"sync"

	"github.com/cespare/xxhash/v2"
	"github.com/klauspost/compress/zstd"
)

// Level is the zstd compression level of a Writer. The zero value is
// Default.
type Level int

// Levels, as klauspost/compress/zstd names them (roughly zstd -1, -3, -7
// and -11).
const (
	Default Level = iota
	Fastest
	Better
	Best
)

// ParseLevel reads the --level flag: fastest, default, better or best.
func ParseLevel(s string) (Level, error) {
	switch s {
	case "fastest":
		return Fastest, nil
	case "default", "":
		return Default, nil
	case "better":
		return Better, nil
	case "best":
		return Best, nil
	}
	return 0, fmt.Errorf("compression level %q: want fastest, default, better or best", s)
}

// String implements fmt.Stringer with the names ParseLevel reads.
func (l Level) String() string {
	switch l {
	case Fastest:
		return "fastest"
	case Default:
		return "default"
	case Better:
		return "better"
	case Best:
		return "best"
	}
	return fmt.Sprintf("Level(%d)", int(l))
}

func (l Level) zstd() (zstd.EncoderLevel, error) {
	switch l {
	case Fastest:
		return zstd.SpeedFastest, nil
	case Default:
		return zstd.SpeedDefault, nil
	case Better:
		return zstd.SpeedBetterCompression, nil
	case Best:
		return zstd.SpeedBestCompression, nil
	}
	return 0, fmt.Errorf("unknown compression level %d", int(l))
}

// frameSize is how much tar goes into one zstd frame.
//
// Why independent frames: klauspost's streaming encoder gives the same bytes
// for every WithEncoderConcurrency, but it compresses one block at a time,
// so a second core only overlaps the caller's work. Its WithConcurrentBlocks
// mode is parallel, but it is off at concurrency 1, so its bytes differ
// between 1 and 2, which would break "same inputs, same archive". Frames of
// a fixed size compressed with EncodeAll are cut at the same offsets
// whatever the concurrency, so they are deterministic, and they compress in
// parallel. Each carries its own content checksum, so a flipped byte is
// still caught, and a sequence of frames is one valid zstd stream (zstd -d,
// tar --zstd).
//
// BenchmarkCompressors, 128 MiB in 32 KiB writes, 2 cores (AMD EPYC,
// shared with other jobs: best of 2-3 runs), MB/s and compressed/input:
//
//	text-like  stream c1       stream c2  blocks c2  frames 8M c1  frames 8M c2
//	fastest    233  0.3456     292        470        237           430  0.3462
//	default    189  0.3329     227        342        187           359  0.3335
//	better     108  0.3328     128        185        122           145  0.3346
//	best        17  0.3117      16         18         18            34  0.3154
//	random     stream c1 4043 (default) / 5404 (fastest); frames c2 5556 / 6487; ratio 1.000
//
// So frames with two workers run 1.8-2x the single stream on compressible
// data and are no slower on incompressible data (most layers are gzip
// already), for +0.2% of output at fastest and default, +0.5% at better and
// +1.2% at best (at 8 MiB frames). Frames are 4 MiB: a reader decoding a
// frame holds its whole window, so smaller frames keep imports (several
// blobs decoded at once) and the writer (concurrency+1 frames in memory, in
// and out) within a small memory budget, for a few tenths of a percent of
// ratio on compressible data; a blob that starts a frame (every blob does)
// makes frames shorter anyway.
//
// The random row above is the encoder's: since then a frame whose samples
// do not shrink (rawframe.go) is written as Raw blocks without it, and
// costs its sampling and checksum only (BenchmarkSampling: about 0.1 and
// 0.5 ms per frame, against 2 ms for the encoder at default, 20 at best).
const frameSize = 4 << 20

// windowFor is the zstd window for frames of size bytes: a power of two
// within the encoder's bounds.
func windowFor(size int) int {
	w := zstd.MinWindowSize
	for w < size && w < zstd.MaxWindowSize {
		w <<= 1
	}
	return w
}

// frameWriter compresses what it is written into independent zstd frames
// of frameSize bytes, concurrency of them at a time. A goroutine of its own
// writes them out in order, so that writing the archive (and whatever the
// underlying writer does, such as hashing it) overlaps reading and
// compressing what comes next.
type frameWriter struct {
	w       io.Writer
	encs    *levelEncoders // the level's, for frames worth compressing
	small   *levelEncoders // for those of smallFrame bytes or less
	sampler *zstd.Encoder  // decides which those are (newSampler)
	conc    int
	size    int // frameSize, smaller in tests

	cur  *frameJob      // the frame being filled
	free chan *frameJob // jobs whose buffers may be reused
	out  chan *frameJob // jobs in output order
	done chan struct{}  // closed when the output goroutine ends

	// quit is closed by cancel, from any goroutine: no job is waited for
	// any more, no frame is written after the one being written, and
	// Close and abort do not wait for that one (a write blocked on a
	// stalled output may never return).
	quit     chan struct{}
	quitOnce sync.Once

	// cut counts the frames cut so far (written or being compressed), so
	// that the frame an entry starts in is known when it starts.
	cut int

	// Set by the output goroutine; read by others only after done, except
	// err, which is also read under mu to stop early.
	mu    sync.Mutex
	err   error
	table []seekEntry // every frame written, in order: the seek table
}

// frameJob is one frame: its tar bytes, then its compressed bytes, or a
// skippable frame ready to write. A frame not worth compressing is written
// from src in Raw blocks (raw, with sum its checksum), and dst is only the
// scratch of sampling.
type frameJob struct {
	src, dst  []byte
	raw       bool
	sum       uint64 // xxhash.Sum64(src), when raw
	skippable bool
	ready     chan struct{} // closed once dst is ready
}

func newFrameWriter(w io.Writer, level Level, concurrency, size int) (*frameWriter, error) {
	zl, err := level.zstd()
	if err != nil {
		return nil, err
	}
	if concurrency < 0 {
		return nil, fmt.Errorf("concurrency %d is negative", concurrency)
	}
	if concurrency == 0 {
		concurrency = runtime.GOMAXPROCS(0)
	}
	// A frame never refers outside itself, so a window the size of a frame
	// loses nothing, and keeps each encoder's history that small.
	encoders := func(zl zstd.EncoderLevel) (*levelEncoders, error) {
		return newLevelEncoders(concurrency,
			zstd.WithEncoderLevel(zl),
			zstd.WithEncoderCRC(true),
			zstd.WithWindowSize(windowFor(size)),
			zstd.WithLowerEncoderMem(true))
	}
	encs, err := encoders(zl)
	if err != nil {
		return nil, err
	}
	small := encs
	if level == Best {
		if small, err = encoders(zstd.SpeedBetterCompression); err != nil {
			return nil, err
		}
	}
	sampler, err := newSampler(concurrency)
	if err != nil {
		return nil, err
	}
	// One frame filling and concurrency compressing or being written.
	jobs := concurrency + 1
	f := &frameWriter{
		w:       w,
		encs:    encs,
		small:   small,
		sampler: sampler,
		conc:    concurrency,
		size:    size,
		free:    make(chan *frameJob, jobs),
		out:     make(chan *frameJob, jobs),
		done:    make(chan struct{}),
		quit:    make(chan struct{}),
	}
	for range jobs {
		f.free <- &frameJob{}
	}
	go f.output(f.out, f.free)
	return f, nil
}

// OutputError is a failure to write the archive's bytes where they go (a
// full disk, a file size limit, a closed pipe), as opposed to a failure of
// the content being written: callers tell the user which it was.
type OutputError struct{ Err error }

// Error implements error.
func (e *OutputError) Error() string { return "writing the archive: " + e.Err.Error() }

// Unwrap returns the write's own error.
func (e *OutputError) Unwrap() error { return e.Err }

// output writes the frames in order as each is ready, and records them.
// Once the writer has failed, been cancelled or abandoned (f.err), the
// frames still queued are dropped, not written: it waits only for their
// compression to end, so that their buffers are free again.
func (f *frameWriter) output(out <-chan *frameJob, free chan<- *frameJob) {
	defer close(f.done)
	for j := range out {
		<-j.ready
		if f.failure() == nil {
			var n int64
			var err error
			if j.raw {
				n, err = writeRawFrame(f.w, j.src, j.sum)
			} else {
				var k int
				k, err = f.w.Write(j.dst)
				n = int64(k)
			}
			if err != nil {
				f.outputFailed(err)
			} else {
				e := seekEntry{compressed: uint32(n), decompressed: uint32(len(j.src))}
				if j.skippable {
					e.decompressed = 0
				}
				f.table = append(f.table, e)
			}
		}
		free <- j
	}
	// out was closed by Close (abort and cancel set f.err first): the
	// stream ends with the seek table, written here too, so that a cancel
	// need not wait for this write either.
	if f.failure() == nil {
		if _, err := f.w.Write(encodeSeekTable(f.table)); err != nil {
			f.outputFailed(err)
		}
	}
}

// outputFailed records err, a write's, unless the writer failed already.
func (f *frameWriter) outputFailed(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == nil {
		f.err = &OutputError{Err: err}
	}
}

// failure returns the first write error.
func (f *frameWriter) failure() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// cancel fails the writer with err, from any goroutine: a call waiting
// for a job returns, the frames queued are dropped, and Close and abort
// no longer wait for the output goroutine, which may be blocked in a write
// that never returns; done says when it has ended. The first failure
// stays the one reported.
func (f *frameWriter) cancel(err error) {
	f.mu.Lock()
	if f.err == nil {
		f.err = err
	}
	f.mu.Unlock()
	f.quitOnce.Do(func() { close(f.quit) })
}

// job returns a job to fill, waiting while every job is in use, or nil
// once the writer is cancelled.
func (f *frameWriter) job() *frameJob {
	var j *frameJob
	select {
	case j = <-f.free:
	case <-f.quit:
		return nil
	}
	if cap(j.src) < f.size {
		j.src = make([]byte, 0, f.size)
	}
	j.src, j.dst, j.raw, j.skippable = j.src[:0], j.dst[:0], false, false
	j.ready = make(chan struct{})
	return j
}

// Write implements io.Writer.
func (f *frameWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		if err := f.failure(); err != nil {
			return n, err
		}
		if f.cur == nil {
			if f.cur = f.job(); f.cur == nil {
				return n, f.failure()
			}
		}
		src := f.cur.src
		k := copy(src[len(src):cap(src)], p)
		f.cur.src = src[:len(src)+k]
		p = p[k:]
		n += k
		if len(f.cur.src) == cap(f.cur.src) {
			f.endFrame()
		}
	}
	return n, f.failure()
}

// readFrom reads n bytes of r straight into the frames (no copy through
// another buffer), passes them to h as well, and returns how many it read:
// fewer than n when r ended first (with no error) or failed (its error).
func (f *frameWriter) readFrom(r io.Reader, n int64, h hash.Hash) (int64, error) {
	var done int64
	for done < n {
		if err := f.failure(); err != nil {
			return done, err
		}
		if f.cur == nil {
			if f.cur = f.job(); f.cur == nil {
				return done, f.failure()
			}
		}
		src := f.cur.src
		room := src[len(src):cap(src)]
		if left := n - done; int64(len(room)) > left {
			room = room[:left]
		}
		k, err := r.Read(room)
		if k > 0 {
			h.Write(room[:k])
			f.cur.src = src[:len(src)+k]
			done += int64(k)
			if len(f.cur.src) == cap(f.cur.src) {
				f.endFrame()
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return done, err
		}
	}
	return done, f.failure()
}

// endFrame ends the current frame early, at a point that depends only on
// the data (the end of the head, the start of a blob), never on timing.
func (f *frameWriter) endFrame() {
	j := f.cur
	if j == nil || len(j.src) == 0 {
		return
	}
	f.cur = nil
	f.cut++
	select {
	case <-f.quit:
		// Cancelled: it would not be written.
		return
	default:
	}
	if f.conc == 1 {
		f.compress(j)
		close(j.ready)
	} else {
		go func() {
			f.compress(j)
			close(j.ready)
		}()
	}
	// Never waits: out holds every job there is.
	f.out <- j
}

// smallFrame is the size up to which a frame is compressed by
// frameWriter.small: at best, better's encoders. A best encoder's tables
// are 34 MiB, and even a few KiB spread their writes over all of it (a
// hash table's pages are touched at random), so the head and the configs
// of an export of gzip layers, alone, would make its memory 30 MiB larger
// (two encoders, if two configs are compressed at once: 60). Better's are
// 4.5 MiB, and on frames this small it finds what best finds: the same
// bytes for each of 24 manifests, configs and indexes (go-containerregistry's
// layout test data), and 2% more (29 bytes) for the 7.5 KiB of all of them
// in one frame.
const smallFrame = 128 << 10

// compress makes j's frame: Raw blocks if sampling says its bytes do not
// shrink (so no encoder of the level sees them), else the encoder's. The
// choices depend on the bytes only, so the archive does not depend on the
// concurrency.
func (f *frameWriter) compress(j *frameJob) {
	var ok bool
	if ok, j.dst = compressible(f.sampler, j.src, j.dst); !ok {
		j.raw, j.sum = true, xxhash.Sum64(j.src)
		return
	}
	encs := f.encs
	if len(j.src) <= smallFrame {
		encs = f.small
	}
	enc := encs.get()
	defer encs.put(enc)
	if need := enc.MaxEncodedSize(len(j.src)); cap(j.dst) < need {
		j.dst = make([]byte, 0, need)
	}
	j.dst = enc.EncodeAll(j.src, j.dst[:0])
}

// writeSkippable queues a zstd skippable frame holding payload after every
// frame cut so far, recorded in the seek table as decompressing to
// nothing. Decoders, the zstd CLI among them, pass over it.
func (f *frameWriter) writeSkippable(magic uint32, payload []byte) {
	f.endFrame()
	j := f.job()
	if j == nil {
		return
	}
	j.dst = append(j.dst, skippableFrame(magic, payload)...)
	j.skippable = true
	close(j.ready)
	f.cut++
	f.out <- j
}

// wait ends the output goroutine once every queued frame is written (or
// dropped); once the writer is cancelled it does not wait for it.
func (f *frameWriter) wait() {
	if f.out != nil {
		close(f.out)
		f.out = nil
	}
	select {
	case <-f.done:
	case <-f.quit:
	}
}

// Close compresses what is left and waits for every frame, then for the
// output goroutine to end the stream with the seek table (seektable.go),
// unless a write failed; it does not close the underlying writer. It
// always waits, even after an error, so that no goroutine outlives the
// Writer, unless the writer was cancelled: then it returns at once, and
// the output goroutine ends when its write in progress, if any, returns
// (done).
func (f *frameWriter) Close() error {
	f.endFrame()
	f.wait()
	f.cur, f.free = nil, nil
	return f.failure()
}

// errAbandoned is what the output goroutine of an aborted writer sees:
// the frames still queued are dropped.
var errAbandoned = errors.New("archive abandoned")

// abort drops the frames queued and waits for the one being written, if
// any (not once the writer is cancelled: see cancel), and for those being
// compressed; it writes nothing more.
func (f *frameWriter) abort() {
	f.mu.Lock()
	if f.err == nil {
		f.err = errAbandoned
	}
	f.mu.Unlock()
	f.cur = nil
	f.wait()
	f.free = nil
}

// levelEncoders are one level's encoders, one per frame being compressed,
// at most the writer's concurrency at a time. An encoder allocates its
// tables on its first frame and keeps them, so the last one put back is
// the next one handed out: a second encoder is built only when two frames
// are compressed at once (klauspost's own Encoder, given a concurrency of
// 2, hands out its two in turn even to frames compressed one after the
// other).
type levelEncoders struct {
	slots chan struct{} // one token per encoder in use
	mu    sync.Mutex
	idle  []*zstd.Encoder
}

func newLevelEncoders(n int, opts ...zstd.EOption) (*levelEncoders, error) {
	p := &levelEncoders{slots: make(chan struct{}, n)}
	opts = append(opts, zstd.WithEncoderConcurrency(1))
	for range n {
		// Cheap: the encoder's state is allocated on its first EncodeAll.
		enc, err := zstd.NewWriter(nil, opts...)
		if err != nil {
			return nil, err
		}
		p.idle = append(p.idle, enc)
	}
	return p, nil
}

// get takes an idle encoder, waiting while all are in use.
func (p *levelEncoders) get() *zstd.Encoder {
	p.slots <- struct{}{}
	p.mu.Lock()
	defer p.mu.Unlock()
	enc := p.idle[len(p.idle)-1]
	p.idle = p.idle[:len(p.idle)-1]
	return enc
}

// put gives back an encoder that get returned.
func (p *levelEncoders) put(enc *zstd.Encoder) {
	p.mu.Lock()
	p.idle = append(p.idle, enc)
	p.mu.Unlock()
	<-p.slots
}
