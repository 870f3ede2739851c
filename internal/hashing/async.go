// Package hashing computes sha256 sums on a goroutine of their own, so that
// a reader or writer that must also decompress, compress or hash other
// bytes keeps both cores busy.
package hashing

import (
	"crypto/sha256"
	"encoding/hex"
)

// Async computes the sha256 of the bytes written to it on a goroutine of
// its own: the volumes of a split archive, hashed for their line of the
// checksum file while the whole archive is hashed for its own sum, or an
// archive verify hashes whole while it checks each blob's digest. On one
// goroutine the two passes add up; on two they overlap. A copy of each
// chunk waits in a queue of Queue buffers, reused. Sum ends a segment and
// starts the next, so one Async serves a sequence of files. An Async is not
// safe for concurrent use.
type Async struct {
	cur  []byte // the chunk being filled, of capacity Chunk
	jobs chan job
	free chan []byte
	sums chan string
}

// job is a chunk to hash, or (end) the end of a segment.
type job struct {
	b   []byte
	end bool
}

// Queue bounds the chunks waiting, and Chunk their size: a write larger
// than Chunk (a compressed frame, about 4 MiB) is queued in pieces. The
// memory held is about Queue+2 chunks (queued, being hashed, being
// filled), 6 MiB, where whole 4 MiB frames held up to 16 MiB: what kept a
// split export over its 64 MiB goal.
const (
	Queue = 4
	Chunk = 1 << 20
)

// NewAsync starts an Async; Close ends its goroutine.
func NewAsync() *Async {
	h := &Async{jobs: make(chan job, Queue), free: make(chan []byte, Queue+1), sums: make(chan string)}
	go h.run()
	return h
}

func (h *Async) run() {
	sh := sha256.New()
	for j := range h.jobs {
		if j.end {
			h.sums <- hex.EncodeToString(sh.Sum(nil))
			sh.Reset()
			continue
		}
		sh.Write(j.b)
		select {
		case h.free <- j.b:
		default:
		}
	}
	close(h.sums)
}

// Write copies p into the chunk being filled, queueing each chunk as it
// fills (so that the many small writes of a raw frame cost a copy each, not
// a queued job each); it never fails (io.Writer, for io.TeeReader and
// io.MultiWriter).
func (h *Async) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if h.cur == nil {
			select {
			case h.cur = <-h.free:
				h.cur = h.cur[:0]
			default:
				h.cur = make([]byte, 0, Chunk)
			}
		}
		k := copy(h.cur[len(h.cur):cap(h.cur)], p)
		h.cur = h.cur[:len(h.cur)+k]
		p = p[k:]
		if len(h.cur) == cap(h.cur) {
			h.flush()
		}
	}
	return n, nil
}

// flush queues the chunk being filled, if it holds anything.
func (h *Async) flush() {
	if len(h.cur) == 0 {
		return
	}
	h.jobs <- job{b: h.cur}
	h.cur = nil
}

// Sum ends the current segment and returns its sha256 in hex, once every
// byte written before it is hashed.
func (h *Async) Sum() string {
	h.flush()
	h.jobs <- job{end: true}
	return <-h.sums
}

// Close ends the goroutine; the Async must not be used afterwards.
func (h *Async) Close() {
	close(h.jobs)
	for range h.sums {
	}
}
