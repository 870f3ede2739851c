package ctxio

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"
)

func TestReaderStopsWhenContextIsDone(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	r := NewReader(ctx, bytes.NewReader([]byte("0123456789")))
	buf := make([]byte, 4)
	if n, err := r.Read(buf); n != 4 || err != nil || string(buf) != "0123" {
		t.Fatalf("read %d %q, %v", n, buf[:n], err)
	}
	cancel()
	if n, err := r.Read(buf); n != 0 || !errors.Is(err, context.Canceled) {
		t.Errorf("after cancel: read %d, %v; want 0, context.Canceled", n, err)
	}
}

func TestReaderPassesThrough(t *testing.T) {
	b, err := io.ReadAll(NewReader(context.Background(), bytes.NewReader([]byte("all of it"))))
	if err != nil || string(b) != "all of it" {
		t.Errorf("read %q, %v", b, err)
	}
}

// A pipe whose writer stopped without closing it: a Read of the Detached
// returns once the context is done, although the read of the pipe it made
// is still blocked (NewReader's would not).
func TestDetachedReturnsWhenContextEndsDuringABlockedRead(t *testing.T) {
	pr, pw := io.Pipe()
	defer pw.Close()
	ctx, cancel := context.WithCancel(context.Background())
	d := NewDetached(ctx, pr)
	defer d.Close()
	go pw.Write([]byte("head"))
	buf := make([]byte, 16)
	if n, err := d.Read(buf); err != nil || string(buf[:n]) != "head" {
		t.Fatalf("read %q, %v; want \"head\"", buf[:n], err)
	}
	endsOnCancel(t, d, buf, cancel) // the writer sends nothing more
	if _, err := d.Read(buf); !errors.Is(err, context.Canceled) {
		t.Errorf("a later read: %v, want context.Canceled", err)
	}
}

// Everything R gives comes through, in order, whatever the sizes of the
// caller's reads, and R's end (or error) after it.
func TestDetachedPassesThroughInOrder(t *testing.T) {
	want := make([]byte, 3*detachedBuffer+12345)
	for i := range want {
		want[i] = byte(i * 7)
	}
	var got []byte
	d := NewDetached(context.Background(), bytes.NewReader(want))
	defer d.Close()
	for i := 0; ; i++ {
		buf := make([]byte, 1+(i*4099)%(2*detachedBuffer))
		n, err := d.Read(buf)
		got = append(got, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, not the %d given", len(got), len(want))
	}
	broken := errors.New("broken")
	d2 := NewDetached(context.Background(), io.MultiReader(bytes.NewReader([]byte("ab")), iotestErr{broken}))
	defer d2.Close()
	b, err := io.ReadAll(d2)
	if string(b) != "ab" || !errors.Is(err, broken) {
		t.Errorf("read %q, %v; want \"ab\" then R's error", b, err)
	}
}

type iotestErr struct{ err error }

// enteredReader closes entered when its first Read begins.
type enteredReader struct {
	r       io.Reader
	entered chan struct{}
	once    sync.Once
}

func (e *enteredReader) Read(p []byte) (int, error) {
	e.once.Do(func() { close(e.entered) })
	return e.r.Read(p)
}

func (e iotestErr) Read([]byte) (int, error) { return 0, e.err }

// Once the context has ended, its goroutine ends too as soon as the read it
// was blocked in returns: nothing is left behind once the pipe moves.
func TestDetachedGoroutineEndsOnceItsReadReturns(t *testing.T) {
	pr, pw := io.Pipe()
	defer pw.Close()
	entered := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	d := NewDetached(ctx, &enteredReader{r: pr, entered: entered})
	done := make(chan error, 1)
	go func() {
		_, err := d.Read(make([]byte, 8))
		done <- err
	}()
	<-entered // the goroutine is in R's Read, blocked on the pipe
	cancel()
	<-done
	// The blocked read returns; its bytes go nowhere. Written from a
	// goroutine: were the read not blocked, the write would wait forever.
	go pw.Write([]byte("late"))
	select {
	case <-d.ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the reader's goroutine did not end")
	}
}

// A request for a read that the goroutine finds together with the end of
// the context is not served: R is not read once the context is done.
func TestDetachedDoesNotReadOnceContextIsDone(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// select picks at random between the two: run it often enough that a
	// wrong pick would show.
	for range 200 {
		r := &countingReader{}
		d := NewDetached(ctx, r)
		d.started = true
		d.buf = make([]byte, detachedBuffer)
		d.want <- struct{}{}
		d.run()
		if r.reads != 0 {
			t.Fatalf("R was read %d times after the context was done", r.reads)
		}
	}
}

type countingReader struct{ reads int }

func (r *countingReader) Read(p []byte) (int, error) {
	r.reads++
	return len(p), nil
}

// A Detached read through NewReader with a context of the caller's that
// ends before the Detached's own (an import whose uploads failed, reading
// standard input tied to the command's context): the blocked read
// returns, and the bytes that arrive later are still there for the next
// read.
func TestReaderEndsABlockedReadOfADetached(t *testing.T) {
	pr, pw := io.Pipe()
	defer pw.Close()
	d := NewDetached(context.Background(), pr)
	defer d.Close()
	ctx, cancel := context.WithCancel(context.Background())
	r := NewReader(ctx, d)
	buf := make([]byte, 16)
	endsOnCancel(t, r, buf, cancel) // nothing is sent
	// The Detached itself goes on: what is sent now is read.
	go pw.Write([]byte("late"))
	if n, err := d.Read(buf); err != nil || string(buf[:n]) != "late" {
		t.Errorf("read of the Detached after: %q, %v; want \"late\"", buf[:n], err)
	}
}

// endsOnCancel checks that a read of r into buf, to which nothing is sent,
// waits until cancel is called, then fails with context.Canceled.
func endsOnCancel(t *testing.T, r io.Reader, buf []byte, cancel func()) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := r.Read(buf)
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("read returned %v before anything was sent or the context ended", err)
	case <-time.After(50 * time.Millisecond):
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("read after cancel: %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("read still blocked 10s after its context was cancelled")
	}
}
