package hashing

import (
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"testing"
)

// Sums of segments written in chunks of any size are the sums of the
// segments' bytes, whatever the queue does with the chunks' buffers.
func TestAsyncSumsEachSegment(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	h := NewAsync()
	defer h.Close()
	buf := make([]byte, 1<<16)
	for _, size := range []int{0, 1, 4096, 300_000} {
		seg := make([]byte, size)
		for i := range seg {
			seg[i] = byte(r.Uint32())
		}
		for p := seg; len(p) > 0; {
			n := min(len(p), 1+r.IntN(70_000))
			// The caller reuses its buffer at once, as a reader does.
			c := copy(buf, p[:min(n, len(buf))])
			if _, err := h.Write(buf[:c]); err != nil {
				t.Fatal(err)
			}
			for i := range buf[:c] {
				buf[i] = 0xff
			}
			p = p[c:]
		}
		want := sha256.Sum256(seg)
		if got := h.Sum(); got != hex.EncodeToString(want[:]) {
			t.Errorf("segment of %d bytes: sum %s, want %x", size, got, want)
		}
	}
}

// A write larger than Chunk (a 4 MiB compressed frame) is queued in pieces
// of at most Chunk bytes, so the queue holds a few MiB, not a few frames.
func TestAsyncQueuesInChunks(t *testing.T) {
	h := NewAsync()
	defer h.Close()
	frame := make([]byte, 4<<20+5)
	for i := range frame {
		frame[i] = byte(i * 7)
	}
	for range 3 {
		if _, err := h.Write(frame); err != nil {
			t.Fatal(err)
		}
	}
	sh := sha256.New()
	for range 3 {
		sh.Write(frame)
	}
	if got, want := h.Sum(), hex.EncodeToString(sh.Sum(nil)); got != want {
		t.Fatalf("sum %s, want %s", got, want)
	}
	if len(h.free) == 0 {
		t.Fatal("no buffer came back to the free list")
	}
	for len(h.free) > 0 {
		if b := <-h.free; cap(b) > Chunk {
			t.Errorf("a queued buffer holds %d bytes, more than Chunk (%d)", cap(b), Chunk)
		}
	}
}
