// Package ctxio ties readers to a context, so that long copies (a large
// file, a layer, an archive) stop soon after their context is done rather
// than at the end of the stream.
package ctxio

import (
	"context"
	"errors"
	"io"
	"sync"
)

// NewReader returns a reader of r that fails with ctx.Err() once ctx is
// done. It checks before each Read, so it stops within one buffer; a Read
// already blocked in r is not interrupted (r must be closed for that),
// unless r is a ContextReader (a Detached), whose reads it makes through
// ReadContext with ctx: so a caller can end, with a context of its own, a
// read of a Detached tied to a longer-lived one.
func NewReader(ctx context.Context, r io.Reader) io.Reader {
	return &reader{ctx: ctx, r: r}
}

// ContextReader is a reader whose reads a context other than its own can
// end, even while one is blocked: Detached.
type ContextReader interface {
	io.Reader
	// ReadContext is Read, but returns ctx.Err() as soon as ctx is done.
	ReadContext(ctx context.Context, p []byte) (int, error)
}

type reader struct {
	ctx context.Context
	r   io.Reader
}

func (c *reader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	if cr, ok := c.r.(ContextReader); ok {
		return cr.ReadContext(c.ctx, p)
	}
	return c.r.Read(p)
}

// ErrReader is a reader of R that keeps the first error, other than
// io.EOF, that R returned: a consumer's error (a decompressor's, an
// upload's) can then be told apart from a failure of its source.
type ErrReader struct {
	R   io.Reader
	Err error // the first error R returned, io.EOF aside
}

// Read reads from R, noting its first error.
func (s *ErrReader) Read(p []byte) (int, error) {
	n, err := s.R.Read(p)
	if err != nil && err != io.EOF && s.Err == nil {
		s.Err = err
	}
	return n, err
}

// Detached is a reader of R whose reads happen on a goroutine of its own,
// so that a Read returns once its context is done even while R is blocked:
// standard input fed by a sender that stopped without closing the pipe
// (ssh, a slow copy), which no Read can be told to give up on (a pipe
// inherited as standard input is in blocking mode: it has no deadline to
// set, and closing it does not wake a read in progress). A command that
// reads an archive from standard input reads it through a Detached, so
// that Ctrl-C, SIGTERM or SIGHUP end it and its cleanup (temporary files,
// spools) runs.
//
// The goroutine reads one buffer at a time, only when a Read finds nothing
// left of the last one: it never reads ahead of its caller by more than a
// buffer. It ends when a read of R fails (io.EOF included),
// when the context is done and its read in progress (if any) returns, or
// when Close is called. A read of R that never returns keeps it, blocked,
// for the life of the process: there is no way to take it back. That is
// only acceptable where the process ends soon after (a command whose
// context is done is about to exit); a library reading a caller's pipe
// should not use Detached.
type Detached struct {
	ctx  context.Context
	want chan struct{}
	got  chan detachedRead
	quit chan struct{}
	// ended is closed when the goroutine returns.
	ended chan struct{}
	once  sync.Once

	buf     []byte // the goroutine's buffer, read only between got and want
	pending []byte // what the last read gave that no Read has taken yet
	err     error  // R's error (or io.EOF), once pending is empty
	asked   bool   // a read of R is in progress or its answer not yet taken
	started bool
	r       io.Reader
}

type detachedRead struct {
	n   int
	err error
}

// detachedBuffer is the size of the reads the goroutine makes.
const detachedBuffer = 64 << 10

// NewDetached returns a Detached reader of r, tied to ctx. Its goroutine
// starts at the first Read.
func NewDetached(ctx context.Context, r io.Reader) *Detached {
	return &Detached{
		ctx:  ctx,
		r:    r,
		want: make(chan struct{}, 1),
		// Buffered: the goroutine never waits to hand over a read that
		// nobody takes any more (the context ended meanwhile).
		got:   make(chan detachedRead, 1),
		quit:  make(chan struct{}),
		ended: make(chan struct{}),
	}
}

// Read reads what the goroutine read, asking it for more when there is
// nothing left. Once ctx is done it fails with ctx.Err(), at once, whatever
// R is doing.
func (d *Detached) Read(p []byte) (int, error) {
	return d.ReadContext(d.ctx, p)
}

// ReadContext is Read, and also fails with ctx.Err() as soon as ctx is
// done, whatever R is doing: the read of R in progress goes on, and its
// bytes are for the next Read. It implements ContextReader.
func (d *Detached) ReadContext(ctx context.Context, p []byte) (int, error) {
	select {
	case <-d.quit:
		return 0, errDetachedClosed
	default:
	}
	if len(d.pending) > 0 {
		n := copy(p, d.pending)
		d.pending = d.pending[n:]
		return n, nil
	}
	if d.err != nil {
		return 0, d.err
	}
	if err := d.ctx.Err(); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if !d.started {
		d.started = true
		d.buf = make([]byte, detachedBuffer)
		go d.run()
	}
	if !d.asked {
		d.asked = true
		d.want <- struct{}{}
	}
	select {
	case res := <-d.got:
		d.asked = false
		d.pending = d.buf[:res.n]
		if res.err != nil {
			d.err = res.err
		}
		n := copy(p, d.pending)
		d.pending = d.pending[n:]
		if len(d.pending) == 0 && d.err != nil {
			return n, d.err
		}
		return n, nil
	case <-d.ctx.Done():
		return 0, d.ctx.Err()
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-d.quit:
		return 0, errDetachedClosed
	}
}

// run reads R into buf each time Read asks.
func (d *Detached) run() {
	defer close(d.ended)
	for {
		select {
		case <-d.want:
		case <-d.ctx.Done():
			return
		case <-d.quit:
			return
		}
		// select picks at random among what is ready: a request can be
		// taken though the context is done meanwhile, and R must not be
		// read for a Read that has already failed.
		if d.ctx.Err() != nil {
			return
		}
		n, err := d.r.Read(d.buf)
		d.got <- detachedRead{n, err}
		if err != nil {
			return
		}
	}
}

var errDetachedClosed = errors.New("read after close")

// Close stops the goroutine once its read in progress, if any, returns.
// It does not close R. Reads after Close fail.
func (d *Detached) Close() error {
	d.once.Do(func() { close(d.quit) })
	return nil
}
