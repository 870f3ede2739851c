package relocate_test

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/relocate"
)

// cancelGuard bounds the waits of the cancellation tests: long enough never
// to fail a slow run, there only to turn a hang into a failure.
const cancelGuard = 10 * time.Second

// stalledOutput passes writes until after bytes have gone through, then
// holds the write that would go past them until released, as a pipe nobody
// reads or a stalled disk does.
type stalledOutput struct {
	w       io.Writer
	after   int64
	stalled chan struct{}
	release chan struct{}
	once    sync.Once
	n       int64 // only the writing goroutine touches it
}

func newStalledOutput(w io.Writer, after int64) *stalledOutput {
	return &stalledOutput{w: w, after: after, stalled: make(chan struct{}), release: make(chan struct{})}
}

func (s *stalledOutput) Write(p []byte) (int, error) {
	if s.n+int64(len(p)) > s.after {
		s.once.Do(func() { close(s.stalled) })
		<-s.release
	}
	n, err := s.w.Write(p)
	s.n += int64(n)
	return n, err
}

// cancelWhenStalled runs export, cancels its context once out stalls and
// returns its error, failing the test if it does not return within
// cancelGuard. check runs once it has returned, while the write is still
// held; out is released after.
func cancelWhenStalled(t *testing.T, out *stalledOutput, export func(context.Context) error, check func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- export(ctx) }()
	select {
	case <-out.stalled:
	case err := <-done:
		t.Fatalf("export ended before its output stalled: %v", err)
	case <-time.After(cancelGuard):
		t.Fatal("the output never stalled")
	}
	// Let the writer fill every frame it may and wait for a free one.
	time.Sleep(200 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("export cancelled while its output stalls: %v, want context.Canceled", err)
		}
	case <-time.After(cancelGuard):
		close(out.release)
		t.Fatalf("export still running %v after it was cancelled while its output stalls", cancelGuard)
	}
	check()
	close(out.release)
}

// An export whose output stalls (a slow disk, `export -o -` into a pipe
// nobody reads) ends when cancelled, without waiting for the write that
// does not return, and an export to a file leaves nothing behind: no
// temporary file, nothing under the final name, before and after that
// write returns.
func TestExportCancelledWhileOutputStalls(t *testing.T) {
	src := impNewSource(t, 12<<20)
	opts := relocate.ExportOptions{Remote: src.opts}

	t.Run("stream", func(t *testing.T) {
		out := newStalledOutput(io.Discard, 64<<10)
		p := cpPlan(t, src)
		cancelWhenStalled(t, out, func(ctx context.Context) error {
			_, err := relocate.Export(ctx, p, out, opts)
			return err
		}, func() {})
	})
	for _, split := range []int64{0, 3 << 20} {
		name := "file"
		if split > 0 {
			name = "volumes"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "bundle.tar.zst")
			out := newStalledOutput(nil, 64<<10)
			o := opts
			o.SplitSize = split
			o.WrapFile = func(w io.Writer) io.Writer {
				out.w = w // before the first write
				return out
			}
			p := cpPlan(t, src)
			cancelWhenStalled(t, out, func(ctx context.Context) error {
				_, err := relocate.ExportFile(ctx, p, path, o)
				return err
			}, func() {
				if names := impDirEntries(t, dir); len(names) > 0 {
					t.Errorf("left in the output directory while the stalled write is held: %v", names)
				}
			})
			// Once the write returns, the file is closed: still nothing.
			time.Sleep(200 * time.Millisecond)
			if names := impDirEntries(t, dir); len(names) > 0 {
				t.Errorf("left in the output directory once the stalled write returned: %v", names)
			}
		})
	}
}

// slowOutput takes its time over every write, and counts the bytes of the
// writes that start once cancelled is set.
type slowOutput struct {
	w     io.Writer
	delay time.Duration

	mu        sync.Mutex
	n         int64
	cancelled bool
	after     int64
	onWrite   func(total int64)
}

func (s *slowOutput) Write(p []byte) (int, error) {
	s.mu.Lock()
	if s.cancelled {
		s.after += int64(len(p))
	}
	s.mu.Unlock()
	time.Sleep(s.delay)
	n, err := s.w.Write(p)
	s.mu.Lock()
	s.n += int64(n)
	total := s.n
	s.mu.Unlock()
	s.onWrite(total)
	return n, err
}

// An export cancelled while its output is slow writes at most the rest of
// the frame it is writing: the frames queued behind it are dropped.
func TestExportCancelledDropsQueuedFrames(t *testing.T) {
	src := impNewSource(t, 24<<20)
	p := cpPlan(t, src)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &slowOutput{w: io.Discard, delay: 2 * time.Millisecond}
	out.onWrite = func(total int64) {
		// Into the big layer: the frames behind it are queued by now.
		if total >= 6<<20 {
			out.mu.Lock()
			first := !out.cancelled
			out.cancelled = true
			out.mu.Unlock()
			if first {
				cancel()
			}
		}
	}
	done := make(chan error, 1)
	go func() {
		_, err := relocate.Export(ctx, p, out, relocate.ExportOptions{Remote: src.opts})
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("export: %v, want context.Canceled", err)
		}
	case <-time.After(cancelGuard):
		t.Fatal("export still running after it was cancelled")
	}
	// The write in progress when cancelled may be the first of its frame:
	// at most one frame (4 MiB of tar, a few bytes of block headers) after.
	time.Sleep(500 * time.Millisecond)
	out.mu.Lock()
	after := out.after
	out.mu.Unlock()
	if after > 4<<20+64<<10 {
		t.Errorf("%d bytes written after the export was cancelled, want at most the frame in progress (4 MiB)", after)
	}
}
