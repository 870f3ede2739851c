package relocate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/ferry-dev/ferry/internal/registry"
)

// copyBlob uploads one blob from its source, mounting it when source and
// destination are one registry, and reports whether it was mounted. Every
// attempt is a fresh download from the source, verified against the digest
// as it streams into the destination; nothing is held in memory or on disk
// beyond what the HTTP client has in flight.
func (c *copier) copyBlob(ctx context.Context, dst *destination, b Blob) (bool, error) {
	srcRepo := b.Source.Context()
	up := dst.reg
	var err error
	if mountable(srcRepo, dst.repo) {
		if up, err = dst.client.Repo(ctx, dst.repo, registry.Access{Push: true, MountFrom: &srcRepo}); err != nil {
			return false, fmt.Errorf("copy blob %s from %s: %w", b.Digest, b.Source, err)
		}
	}
	p := &blobProgress{}
	mounted, err := up.Upload(ctx, b.Digest, b.Size, func() (io.ReadCloser, error) {
		if rc, ok := c.plan.openCached(b.Digest); ok {
			// Read (and verified) while planning: nothing to fetch.
			return &progressReader{rc: rc, p: p, rep: dst.rep}, nil
		}
		rc, err := openSource(ctx, dst.client, b)
		if err != nil {
			if g := blobGone(b, err, ""); g != nil {
				err = registry.Permanent(g)
			}
			return nil, err
		}
		return &progressReader{rc: rc, p: p, rep: dst.rep}, nil
	}, registry.OnRetry(func(attempt, attempts int, err error) {
		dst.rep.Warnf("blob %s failed on its way from %s to %s (%v); sending it again from a fresh download (attempt %d of %d)",
			b.Digest, b.Source, dst.repo, err, attempt, attempts)
	}), registry.OpenEarly())
	if err != nil {
		if ctx.Err() != nil {
			return false, fmt.Errorf("copy blob %s from %s: %w", b.Digest, b.Source, context.Cause(ctx))
		}
		return false, fmt.Errorf("copy blob %s from %s: %w", b.Digest, b.Source, err)
	}
	p.finish(dst.rep, b.Size)
	return mounted, nil
}

// openSource downloads blob b from b.Source, verified against its digest
// as it streams (copySource): a fresh download for each upload attempt.
func openSource(ctx context.Context, client *registry.Client, b Blob) (io.ReadCloser, error) {
	src, err := client.Repo(ctx, b.Source.Context(), registry.Access{})
	if err != nil {
		return nil, err
	}
	rc, err := src.GetBlob(ctx, b.Digest)
	if err != nil {
		if permanentHTTP(err) {
			err = registry.Permanent(err)
		}
		return nil, err
	}
	return copySource{newDigestReader(cutReader{rc}, b.Digest, b.Size, b.Source.String()), b}, nil
}

// permanentHTTP reports a registry refusal that asking again will not
// change: a 4xx other than 408 and 429.
func permanentHTTP(err error) bool {
	var te *transport.Error
	if !errors.As(err, &te) {
		return false
	}
	return te.StatusCode >= 400 && te.StatusCode < 500 &&
		te.StatusCode != http.StatusRequestTimeout && te.StatusCode != http.StatusTooManyRequests
}

// copySource says which source failed and how: a download cut part way
// is started again from a fresh GET (Upload's attempts); one that came
// whole but with other bytes than the blob's digest names, or more than
// its size, is not: the same source, or the cache in front of it, would
// most likely serve the same bytes again, so the copy fails at once, as
// an export does.
type copySource struct {
	rc io.ReadCloser // a digestReader over a cutReader
	b  Blob
}

// Read implements io.Reader.
func (s copySource) Read(p []byte) (int, error) {
	n, err := s.rc.Read(p)
	if err == nil || err == io.EOF {
		return n, err
	}
	if _, ok := errors.AsType[cutError](err); ok {
		return n, fmt.Errorf("reading %s from its source failed part way: %w", s.b.Source, err)
	}
	// The digestReader's check, which names the blob and what came.
	return n, registry.Permanent(fmt.Errorf("the source served other bytes than the blob: %w", err))
}

// Close implements io.Closer.
func (s copySource) Close() error { return s.rc.Close() }

// cutReader marks the errors of a download's connection, to tell them
// from the digestReader's verdict on its bytes.
type cutReader struct{ rc io.ReadCloser }

// Read implements io.Reader.
func (c cutReader) Read(p []byte) (int, error) {
	n, err := c.rc.Read(p)
	if err != nil && err != io.EOF {
		err = cutError{err}
	}
	return n, err
}

// Close implements io.Closer.
func (c cutReader) Close() error { return c.rc.Close() }

// cutError is an error of a download's connection.
type cutError struct{ err error }

func (e cutError) Error() string { return e.err.Error() }
func (e cutError) Unwrap() error { return e.err }

// mountable reports whether a copy tries to mount a blob of src into dst
// rather than send it. Mounting only means something within one registry;
// across two, the mount would name a repository of the wrong registry.
func mountable(src, dst name.Repository) bool {
	return src.RegistryStr() == dst.RegistryStr() && src.String() != dst.String()
}
