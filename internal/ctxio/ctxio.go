// Package ctxio ties readers to a context, so that long copies (a large
// file, a layer, an archive) stop soon after their context is done rather
// than at the end of the stream.
package ctxio

import (
	"context"
	"io"
)

// NewReader returns a reader of r that fails with ctx.Err() once ctx is
// done. It checks before each Read, so it stops within one buffer; a Read
// already blocked in r is not interrupted (r must be closed for that).
func NewReader(ctx context.Context, r io.Reader) io.Reader {
	return &reader{ctx: ctx, r: r}
}

type reader struct {
	ctx context.Context
	r   io.Reader
}

func (c *reader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
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
