package relocate

import (
	"context"
	"io"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/internal/parallel"
	"github.com/ferry-dev/ferry/internal/registry"
)

// importFile imports an archive opened for random access (a ferry archive
// with a seek table, or an imgpkg tarball): each blob repo lacks is read
// straight from where it lies in the file, up to Concurrency at once, and
// a failed upload reads it again; blobs repo has are never read. Nothing
// is spooled.
func importFile(ctx context.Context, f RandomArchive, repo name.Repository, opts ImportOptions) (*ImportResult, error) {
	head, err := archiveImportHead(f.Head())
	if err != nil {
		return nil, err
	}
	dst, err := newDestination(ctx, repo, head, opts.DestinationOptions)
	if err != nil {
		return nil, err
	}
	// Bundles' images.yml come from the archive: no download, and a dry
	// run can compute every locations image.
	// (A delta's left-out blobs are read back from the destination.)
	dst.blob = func(ctx context.Context, d v1.Hash) (io.ReadCloser, error) {
		if !f.Has(d) {
			return dst.blobFromDestination(ctx, d)
		}
		return f.Blob(d)
	}
	dst.blobLocal = true
	dst.checkInMove = true
	return dst.commit(ctx, opts.operation(), func(ctx context.Context, dst *destination, _ *ImportResult) error {
		var todo []v1.Descriptor
		for _, b := range dst.head.blobs {
			if !dst.blobPresent[b.Digest] {
				todo = append(todo, b)
			}
		}
		defer dst.headAhead(ctx, todo)()
		return parallel.ForEach(ctx, dst.conc, len(todo), func(ctx context.Context, i int) error {
			b := todo[i]
			if there, err := dst.alreadyThere(ctx, b); there || err != nil {
				return err
			}
			p := &blobProgress{}
			_, err := dst.reg.Upload(ctx, b.Digest, b.Size, func() (io.ReadCloser, error) {
				rc, err := f.Blob(b.Digest)
				if err != nil {
					return nil, registry.Permanent(err)
				}
				return &progressReader{rc: permanentReader{rc}, p: p, rep: dst.rep}, nil
			}, dst.warnRetry(b.Digest))
			if err != nil {
				return err
			}
			p.finish(dst.rep, b.Size)
			return nil
		})
	})
}

// permanentReader marks the errors of an archive blob as permanent: reading
// the same bytes of the same file again gives the same error.
type permanentReader struct{ rc io.ReadCloser }

// Read implements io.Reader.
func (r permanentReader) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	if err != nil && err != io.EOF {
		err = registry.Permanent(err)
	}
	return n, err
}

// Close implements io.Closer.
func (r permanentReader) Close() error { return r.rc.Close() }
