package archive

import (
	"fmt"
	"io"
	"runtime"

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
// +1.2% at best. 8 MiB is the default window: smaller frames lose more
// ratio, larger ones hold more memory, about (2×concurrency+1)×frameSize.
const frameSize = 8 << 20

// frameWriter compresses what it is written into independent zstd frames
// of frameSize bytes, concurrency of them at a time, written in order.
type frameWriter struct {
	w    io.Writer
	enc  *zstd.Encoder
	conc int
	size int // frameSize, smaller in tests

	cur      []byte      // the frame being filled
	inflight []*frameJob // frames being compressed, oldest first
	freeIn   [][]byte
	freeOut  [][]byte
	syncOut  []byte // the output buffer when conc == 1
	err      error

	// cut counts the frames cut so far (written or being compressed), so
	// that the frame an entry starts in is known when it starts.
	cut int
	// table lists every frame written, in order: the seek table.
	table []seekEntry
}

type frameJob struct {
	src, dst []byte
	done     chan struct{}
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
	enc, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zl),
		zstd.WithEncoderConcurrency(concurrency),
		zstd.WithEncoderCRC(true))
	if err != nil {
		return nil, err
	}
	return &frameWriter{w: w, enc: enc, conc: concurrency, size: size}, nil
}

// Write implements io.Writer.
func (f *frameWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		if f.err != nil {
			return n, f.err
		}
		if f.cur == nil {
			f.cur = f.getIn()
		}
		k := copy(f.cur[len(f.cur):cap(f.cur)], p)
		f.cur = f.cur[:len(f.cur)+k]
		p = p[k:]
		n += k
		if len(f.cur) == cap(f.cur) {
			f.endFrame()
		}
	}
	return n, f.err
}

// endFrame ends the current frame early, at a point that depends only on
// the data (the end of the head), never on timing.
func (f *frameWriter) endFrame() {
	if len(f.cur) == 0 || f.err != nil {
		return
	}
	src := f.cur
	f.cur = nil
	f.cut++
	if f.conc == 1 {
		f.syncOut = f.enc.EncodeAll(src, f.syncOut[:0])
		f.write(f.syncOut, len(src))
		f.freeIn = append(f.freeIn, src[:0])
		return
	}
	if len(f.inflight) == f.conc {
		f.retireOldest()
	}
	j := &frameJob{src: src, dst: f.getOut(), done: make(chan struct{})}
	f.inflight = append(f.inflight, j)
	go func() {
		defer close(j.done)
		j.dst = f.enc.EncodeAll(j.src, j.dst)
	}()
}

func (f *frameWriter) retireOldest() {
	j := f.inflight[0]
	f.inflight[0] = nil
	f.inflight = f.inflight[1:]
	<-j.done
	f.write(j.dst, len(j.src))
	f.freeIn = append(f.freeIn, j.src[:0])
	f.freeOut = append(f.freeOut, j.dst[:0])
}

// write writes one frame, compressed to b from n bytes, and records it in
// the seek table.
func (f *frameWriter) write(b []byte, n int) {
	if f.err != nil {
		return
	}
	if _, err := f.w.Write(b); err != nil {
		f.err = err
		return
	}
	f.table = append(f.table, seekEntry{compressed: uint32(len(b)), decompressed: uint32(n)})
}

// writeSkippable writes a zstd skippable frame holding payload after every
// frame cut so far, and records it in the seek table (it decompresses to
// nothing). Decoders, the zstd CLI among them, pass over it.
func (f *frameWriter) writeSkippable(magic uint32, payload []byte) {
	f.endFrame()
	for len(f.inflight) > 0 {
		f.retireOldest()
	}
	f.cut++
	f.write(skippableFrame(magic, payload), 0)
}

func (f *frameWriter) getIn() []byte {
	if n := len(f.freeIn); n > 0 {
		b := f.freeIn[n-1]
		f.freeIn = f.freeIn[:n-1]
		return b
	}
	return make([]byte, 0, f.size)
}

func (f *frameWriter) getOut() []byte {
	if n := len(f.freeOut); n > 0 {
		b := f.freeOut[n-1]
		f.freeOut = f.freeOut[:n-1]
		return b
	}
	return make([]byte, 0, f.enc.MaxEncodedSize(f.size))
}

// Close compresses what is left and waits for every frame, then, unless a
// write failed, ends the stream with the seek table (seekable.go); it does
// not close the underlying writer. It always waits, even after an error, so
// that no goroutine outlives the Writer.
func (f *frameWriter) Close() error {
	f.endFrame()
	for len(f.inflight) > 0 {
		f.retireOldest()
	}
	f.cur, f.freeIn, f.freeOut, f.syncOut = nil, nil, nil, nil
	if f.err == nil {
		if _, err := f.w.Write(encodeSeekTable(f.table)); err != nil {
			f.err = err
		}
	}
	return f.err
}

// abort waits for the frames being compressed and writes nothing more.
func (f *frameWriter) abort() {
	for len(f.inflight) > 0 {
		j := f.inflight[0]
		f.inflight = f.inflight[1:]
		<-j.done
	}
	f.cur, f.freeIn, f.freeOut, f.syncOut = nil, nil, nil, nil
}
