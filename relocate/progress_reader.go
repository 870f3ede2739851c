package relocate

import (
	"io"
	"sync/atomic"

	"github.com/ferry-dev/ferry/internal/progress"
)

// blobProgress is how many bytes of one blob have been reported to a
// progress.Reporter, shared by every attempt to send the blob. Each attempt
// reads the blob from its start; only bytes beyond the furthest any attempt
// reached are reported, so a retried upload never counts twice.
type blobProgress struct {
	reported atomic.Int64
}

// reach reports that an attempt has sent the first n bytes.
func (p *blobProgress) reach(rep progress.Reporter, n int64) {
	for {
		prev := p.reported.Load()
		if n <= prev {
			return
		}
		if p.reported.CompareAndSwap(prev, n) {
			rep.Add(n - prev)
			return
		}
	}
}

// finish reports whatever of a size-byte blob has not been reported, once
// it is at the destination: a mount, or a registry that already had it,
// reads nothing, and the bar must still complete.
func (p *blobProgress) finish(rep progress.Reporter, size int64) {
	if rest := size - p.reported.Swap(size); rest > 0 {
		rep.Add(rest)
	}
}

// progressReader reports through p the bytes read from rc.
type progressReader struct {
	rc  io.ReadCloser
	p   *blobProgress
	rep progress.Reporter
	n   int64
}

// Read implements io.Reader.
func (r *progressReader) Read(b []byte) (int, error) {
	n, err := r.rc.Read(b)
	if n > 0 {
		r.n += int64(n)
		r.p.reach(r.rep, r.n)
	}
	return n, err
}

// Close implements io.Closer.
func (r *progressReader) Close() error { return r.rc.Close() }

// reportReader adds every byte read through it to rep: for a stream read
// once, where no attempt can repeat bytes (an export's blobs, `ferry
// verify`'s archive).
type reportReader struct {
	r   io.Reader
	rep progress.Reporter
}

// Read implements io.Reader.
func (c *reportReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 {
		c.rep.Add(int64(n))
	}
	return n, err
}
