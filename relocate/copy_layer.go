package relocate

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/internal/progress"
)

// copyLayer presents a blob of the source registry to go-containerregistry's
// uploader. Every Compressed is a fresh GET, so an upload that is retried
// (by the transport or by go-containerregistry) reads the blob again from
// the start instead of from a half-consumed stream; nothing is buffered
// beyond what the HTTP client holds in flight.
type copyLayer struct {
	ctx  context.Context
	pull *remote.Puller
	blob Blob
	st   *copyState
	rep  progress.Reporter
}

// errCopyNoDiffID is returned by copyLayer.DiffID: an upload never needs
// it, and computing it would mean decompressing the blob.
var errCopyNoDiffID = errors.New("diff ID of a blob being copied is not known")

// Digest implements v1.Layer.
func (l *copyLayer) Digest() (v1.Hash, error) { return l.blob.Digest, nil }

// DiffID implements v1.Layer.
func (l *copyLayer) DiffID() (v1.Hash, error) { return v1.Hash{}, errCopyNoDiffID }

// Uncompressed implements v1.Layer; uploads do not use it.
func (l *copyLayer) Uncompressed() (io.ReadCloser, error) { return nil, errCopyNoDiffID }

// Size implements v1.Layer, with the size the manifest gives (the source
// is not asked: a HEAD per blob would buy nothing, since a wrong size
// fails the digest check anyway).
func (l *copyLayer) Size() (int64, error) { return l.blob.Size, nil }

// MediaType implements v1.Layer. As for imports, no type is given:
// go-containerregistry silently skips a layer whose type says
// non-distributable, and a plan made with IncludeNonDistributable holds
// such layers on purpose.
func (l *copyLayer) MediaType() (types.MediaType, error) {
	return types.MediaType("application/octet-stream"), nil
}

// Compressed implements v1.Layer: a new download of the blob from its
// source, verified by go-containerregistry against the digest as it is
// read.
func (l *copyLayer) Compressed() (io.ReadCloser, error) {
	l.st.opened.Store(true)
	rl, err := l.pull.Layer(l.ctx, l.blob.Source)
	if err != nil {
		return nil, fmt.Errorf("read blob %s: %w", l.blob.Source, err)
	}
	rc, err := rl.Compressed()
	if err != nil {
		return nil, fmt.Errorf("read blob %s: %w", l.blob.Source, err)
	}
	return &copyReader{progressReader: progressReader{rc: rc, p: &l.st.progress, rep: l.rep}, src: l.blob.Source, st: l.st}, nil
}

// copyReader reports progress as a blob streams through (see
// blobProgress) and marks a failure of the source part way (a cut
// download, a digest that does not match) so that the upload is started
// again rather than given up.
type copyReader struct {
	progressReader
	src name.Digest
	st  *copyState
}

// Read implements io.Reader.
func (r *copyReader) Read(p []byte) (int, error) {
	n, err := r.progressReader.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		serr := error(&copySourceError{src: r.src, err: err})
		r.st.streamErr.Store(&serr)
		return n, serr
	}
	return n, err
}

// copySourceError is a failure of the source part way through a blob. It
// deliberately does not unwrap to the network error beneath: the HTTP
// transport would otherwise take it for a failure of the destination and
// replay the upload request into the same session, on top of the bytes
// that already arrived. The copy starts the blob afresh instead.
type copySourceError struct {
	src name.Digest
	err error
}

func (e *copySourceError) Error() string {
	return fmt.Sprintf("reading %s from its source failed part way: %v", e.src, e.err)
}
