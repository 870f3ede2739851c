package archive

import (
	"context"
	"io"

	"github.com/ferry-dev/ferry/internal/ctxio"
)

// Report is the result of Verify.
type Report struct {
	// Head is the archive's head; nil when it could not be read.
	Head *Head
	// Blobs is the number of configs and layers read and verified.
	Blobs int
	// BlobBytes is their total size.
	BlobBytes int64
}

// Verify reads the whole archive from r once and checks everything a
// Reader checks (`ferry verify`): layout, index, every manifest, blob,
// digest, size, checksum and reference. It returns what it read so far
// with the first error. It stops when ctx is done.
func Verify(ctx context.Context, r io.Reader) (Report, error) {
	var rep Report
	ar, err := NewReader(ctxio.NewReader(ctx, r), ReaderOptions{})
	if err != nil {
		return rep, err
	}
	defer ar.Close()
	rep.Head = ar.Head()
	for {
		_, _, _, err := ar.Next()
		rep.Blobs, rep.BlobBytes = ar.bodyBlobs, ar.bodyBytes
		if err == io.EOF {
			return rep, nil
		}
		if err != nil {
			return rep, err
		}
	}
}

// Inspect reads only the head of the archive in r (`ferry inspect`): it
// stops after the last manifest and never reads a config or layer, so it
// is quick on any archive. It verifies what it reads, but not the rest.
func Inspect(r io.Reader) (*Head, error) {
	ar, err := NewReader(r, ReaderOptions{Concurrency: 1})
	if err != nil {
		return nil, err
	}
	defer ar.Close()
	return ar.Head(), nil
}
