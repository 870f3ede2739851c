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
