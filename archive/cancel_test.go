package archive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"
)

// hangGuard bounds the waits of these tests: long enough never to fail a
// slow run, there only to turn a hang into a failure.
const hangGuard = 10 * time.Second

// gateWriter passes writes until after bytes have gone through, then holds
// the write that would go past them until release is closed, as a pipe
// nobody reads or a stalled disk does. It counts what is written once
// released.
type gateWriter struct {
	w       io.Writer
	after   int64
	stalled chan struct{} // closed when a write starts waiting
	release chan struct{}

	mu           sync.Mutex
	n            int64
	released     bool
	afterRelease int64 // bytes of the writes that started after release
	once         sync.Once
}

func newGateWriter(after int64) *gateWriter {
	return &gateWriter{w: io.Discard, after: after, stalled: make(chan struct{}), release: make(chan struct{})}
}

func (g *gateWriter) Write(p []byte) (int, error) {
	g.mu.Lock()
	over := g.n+int64(len(p)) > g.after
	if g.released {
		g.afterRelease += int64(len(p))
	}
	g.mu.Unlock()
	if over {
		g.once.Do(func() { close(g.stalled) })
		<-g.release
	}
	n, err := g.w.Write(p)
	g.mu.Lock()
	g.n += int64(n)
	g.mu.Unlock()
	return n, err
}

// open lets the held write, and every later one, through.
func (g *gateWriter) open() {
	g.mu.Lock()
	g.released = true
	g.mu.Unlock()
	close(g.release)
}

func (g *gateWriter) writtenAfterRelease() int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.afterRelease
}

// failingReader gives n bytes of b, then fails.
type failingReader struct {
	r   io.Reader
	n   int64
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, f.err
	}
	if int64(len(p)) > f.n {
		p = p[:f.n]
	}
	n, err := f.r.Read(p)
	f.n -= int64(n)
	return n, err
}

// testFrame is the frame size of these tests: small, so that a blob of a
// few hundred KiB fills more frames than the writer can queue.
const testFrame = 64 << 10

// gatedWriter is a Writer of an archive of one incompressible layer of 16
// test frames (seeded), to a gateWriter, with the head and the config
// written: they go through, the layer's first frame will stall.
func gatedWriter(t *testing.T, seed uint64, conc int) (*Writer, *gateWriter, testBlob) {
	t.Helper()
	layer := newBlob("", randomBytes(seed, 16*testFrame))
	idx, ms, cfg := oneBlobArchive(t, layer.d, int64(len(layer.b)))
	g := newGateWriter(16 << 10)
	w, err := newWriter(g, WriterOptions{Concurrency: conc}, testFrame)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteHeader(idx, ms); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteBlob(cfg.d, int64(len(cfg.b)), bytes.NewReader(cfg.b)); err != nil {
		t.Fatal(err)
	}
	return w, g, layer
}

// The output stalls (a pipe nobody reads) while the writer waits for a
// frame buffer it never gets back: Cancel, from another goroutine, ends
// the call waiting, and Close returns without waiting for the write that
// never returns. Once that write returns, nothing but the rest of its
// frame is written, and Done is closed.
func TestWriterCancelWhileOutputStalls(t *testing.T) {
	for _, conc := range []int{1, 2} {
		t.Run(fmt.Sprint("concurrency ", conc), func(t *testing.T) {
			w, g, layer := gatedWriter(t, 7, conc)
			res := make(chan error, 1)
			go func() { res <- w.WriteBlob(layer.d, int64(len(layer.b)), bytes.NewReader(layer.b)) }()
			select {
			case <-g.stalled:
			case err := <-res:
				t.Fatalf("WriteBlob returned before the output stalled: %v", err)
			}
			// Let the writer fill every frame it may and wait for one.
			time.Sleep(100 * time.Millisecond)
			w.Cancel(context.Canceled)
			select {
			case err := <-res:
				if !errors.Is(err, context.Canceled) {
					t.Errorf("WriteBlob after Cancel: %v, want context.Canceled", err)
				}
			case <-time.After(hangGuard):
				g.open()
				t.Fatal("WriteBlob still waiting for the stalled output after Cancel")
			}
			closed := make(chan error, 1)
			go func() { closed <- w.Close() }()
			select {
			case err := <-closed:
				if !errors.Is(err, context.Canceled) {
					t.Errorf("Close after Cancel: %v, want context.Canceled", err)
				}
			case <-time.After(hangGuard):
				g.open()
				t.Fatal("Close waits for the stalled write after Cancel")
			}
			select {
			case <-w.Done():
				t.Fatal("Done closed while a write is still in progress")
			default:
			}
			g.open()
			select {
			case <-w.Done():
			case <-time.After(hangGuard):
				t.Fatal("Done not closed once the stalled write returned")
			}
			// The held write returned; then at most the rest of its frame
			// (a block header, a checksum): no queued frame, no seek table.
			if n := g.writtenAfterRelease(); n > 64 {
				t.Errorf("%d bytes written after the stalled write returned, want at most the rest of its frame", n)
			}
		})
	}
}

// An archive abandoned (its blob's reader failed) while frames wait to be
// written has them dropped: only the frame being written goes on.
func TestWriterAbandonedDropsQueuedFrames(t *testing.T) {
	w, g, layer := gatedWriter(t, 8, 2)
	// Three jobs (concurrency + 1): the first frame stalls in its write,
	// the second is queued, the third is being filled when the read fails.
	broken := errors.New("source failed")
	r := &failingReader{r: bytes.NewReader(layer.b), n: 2*testFrame + testFrame/2, err: broken}
	res := make(chan error, 1)
	go func() { res <- w.WriteBlob(layer.d, int64(len(layer.b)), r) }()
	var werr error
	select {
	case werr = <-res:
	case <-time.After(hangGuard):
		g.open()
		t.Fatal("WriteBlob did not return")
	}
	if !errors.Is(werr, broken) {
		t.Fatalf("WriteBlob: %v, want the reader's error", werr)
	}
	closed := make(chan error, 1)
	go func() { closed <- w.Close() }()
	// The output goes on once Close has abandoned the archive.
	for deadline := time.Now().Add(hangGuard); w.fw.failure() == nil; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			g.open()
			t.Fatal("Close did not abandon the archive")
		}
	}
	g.open()
	select {
	case err := <-closed:
		if !errors.Is(err, broken) {
			t.Errorf("Close: %v, want the reader's error", err)
		}
	case <-time.After(hangGuard):
		t.Fatal("Close did not return")
	}
	select {
	case <-w.Done():
	default:
		t.Error("Done not closed after Close of a Writer not cancelled")
	}
	// The held write (the first frame's data), then at most the rest of
	// its frame (its checksum): the queued frame is not written.
	if n := g.writtenAfterRelease(); n > 64 {
		t.Errorf("%d bytes written after the held write, want at most the rest of its frame", n)
	}
}
