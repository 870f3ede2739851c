package serve

import (
	"bytes"
	"context"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/archive"
	"github.com/ferry-dev/ferry/internal/ctxio"
	"github.com/ferry-dev/ferry/relocate"
)

// source is what a Registry reads from its archive: the head (manifests,
// configs and layers by digest) and, for each config or layer, a check of
// the whole blob, after which any range of it is read on its own. A ferry
// archive with a seek table and an imgpkg tarball are served alike through
// it.
type source interface {
	Head() *archive.Head
	// verify reads blob d in full and checks it against its digest; it
	// stops with ctx's error when ctx ends.
	verify(ctx context.Context, d v1.Hash) (verifiedBlob, error)
}

// verifiedBlob is a config or layer read in full and found right.
// *archive.VerifiedBlob is one. It is safe for concurrent use.
type verifiedBlob interface {
	Digest() v1.Hash
	Size() int64
	// Range returns a reader of the n bytes of the blob from offset off.
	Range(off, n int64) (io.ReadCloser, error)
}

// sourceOf returns the source that reads a, which relocate.OpenSeekable
// opened.
func sourceOf(a relocate.RandomArchive) (source, error) {
	switch a := a.(type) {
	case *archive.File:
		// Checked now, from the seek table: otherwise the first range of
		// such a frame would fail in front of a client, and the blob
		// would be taken for damaged.
		if err := a.CheckRanges(); err != nil {
			return nil, fmt.Errorf("serve: %w; serve reads a frame whole before it sends any of it: re-pack the archive with `ferry export --from-tar`, or import it", err)
		}
		return ferryArchive{a}, nil
	case *archive.ImgpkgTar:
		return imgpkgTarball{a}, nil
	}
	return nil, fmt.Errorf("serve: cannot read a %T at random", a)
}

// ferryArchive is a ferry archive with a seek table: a blob is checked
// with its frames (archive.File.VerifyBlob), and a range decodes only the
// frames that hold it.
type ferryArchive struct{ *archive.File }

func (f ferryArchive) verify(ctx context.Context, d v1.Hash) (verifiedBlob, error) {
	vb, err := f.VerifyBlob(ctx, d)
	if err != nil {
		return nil, err
	}
	return vb, nil
}

// imgpkgTarball is a tarball `imgpkg copy --to-tar` wrote: a plain tar, in
// which each layer's bytes lie as they are, so that a range of a layer is
// a range of the file. Its configs are in its manifest.json, held in
// memory.
type imgpkgTarball struct{ *archive.ImgpkgTar }

// verify reads blob d through ImgpkgTar.Blob, which checks its size and
// digest at its end.
func (t imgpkgTarball) verify(ctx context.Context, d v1.Hash) (verifiedBlob, error) {
	rc, err := t.Blob(d)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	n, err := io.Copy(io.Discard, ctxio.NewReader(ctx, rc))
	if err != nil {
		return nil, err
	}
	if c, isConfig := t.Config(d); isConfig {
		// Held in memory by the tarball already, and just checked again:
		// served from there, not copied.
		return heldBlob{d: d, b: c}, nil
	}
	layer, isLayer := t.Layer(d)
	if !isLayer {
		return nil, fmt.Errorf("imgpkg tarball: blob %s is neither a config nor a layer of it", d)
	}
	return imgpkgLayer{t: t.ImgpkgTar, d: d, size: n, bytes: layer}, nil
}

// imgpkgLayer is a layer of an imgpkg tarball, read in full and found
// right.
type imgpkgLayer struct {
	t     *archive.ImgpkgTar
	d     v1.Hash
	size  int64
	bytes *io.SectionReader // where it lies in the tarball
}

func (l imgpkgLayer) Digest() v1.Hash { return l.d }
func (l imgpkgLayer) Size() int64     { return l.size }

// Range reads the whole layer through ImgpkgTar.Blob, which hashes it
// again, and any other range straight from the file. A plain tar has no
// checksum of its own, as a zstd frame has: hashing a whole download
// again means that a file changed since the check fails the response, cut
// short of its last byte, rather than completing it with other bytes. A
// part of the layer can only be checked with the whole: its reader's
// CheckWhole reads the layer again, which blobContent asks for once, before
// the last byte of the response.
func (l imgpkgLayer) Range(off, n int64) (io.ReadCloser, error) {
	if off < 0 || n < 0 || off > l.size || n > l.size-off {
		return nil, fmt.Errorf("layer %s: range of %d bytes at %d is outside its %d bytes", l.d, n, off, l.size)
	}
	if off == 0 && n == l.size {
		rc, err := l.t.Blob(l.d)
		if err != nil {
			return nil, err
		}
		return &lastByteChecked{rc: rc, left: n}, nil
	}
	return imgpkgRange{SectionReader: io.NewSectionReader(l.bytes, off, n), l: l}, nil
}

// imgpkgRange is a part of an imgpkg tarball's layer, read from the file.
type imgpkgRange struct {
	*io.SectionReader
	l imgpkgLayer
}

// CheckWhole reads the whole layer through ImgpkgTar.Blob, which checks
// its size and digest at its end.
func (r imgpkgRange) CheckWhole() error {
	rc, err := r.l.t.Blob(r.l.d)
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = io.Copy(io.Discard, rc)
	return err
}

func (imgpkgRange) Close() error { return nil }

// lastByteChecked reads the left bytes of rc, which checks them at its
// end, and gives the last byte only once rc has reached its end without
// error: a reader of it that gets every byte got the right ones.
type lastByteChecked struct {
	rc   io.ReadCloser
	left int64
	err  error
}

func (c *lastByteChecked) Read(p []byte) (int, error) {
	switch {
	case c.err != nil:
		return 0, c.err
	case len(p) == 0:
		return 0, nil
	case c.left > 1:
		n, err := c.rc.Read(p[:min(int64(len(p)), c.left-1)])
		c.left -= int64(n)
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		c.err = err
		return n, err
	}
	// Read on to rc's end: its check comes with it.
	rest, err := io.ReadAll(io.LimitReader(c.rc, c.left+1))
	switch {
	case err != nil:
		c.err = err
		return 0, err
	case int64(len(rest)) != c.left:
		c.err = fmt.Errorf("%d bytes at the end, want %d", len(rest), c.left)
		return 0, c.err
	}
	c.left, c.err = 0, io.EOF
	return copy(p, rest), io.EOF
}

func (c *lastByteChecked) Close() error { return c.rc.Close() }

// CheckWhole reads rc on to its end, which checks it, for a part of the
// blob that ends before the blob does (the last of a multipart answer read
// on from a first part at the blob's start).
func (c *lastByteChecked) CheckWhole() error {
	if c.err != nil && c.err != io.EOF {
		return c.err
	}
	_, err := io.Copy(io.Discard, c.rc)
	return err
}

// heldBlob is a verified blob held in memory.
type heldBlob struct {
	d v1.Hash
	b []byte
}

func (h heldBlob) Digest() v1.Hash { return h.d }
func (h heldBlob) Size() int64     { return int64(len(h.b)) }

func (h heldBlob) Range(off, n int64) (io.ReadCloser, error) {
	if off < 0 || n < 0 || off > h.Size() || n > h.Size()-off {
		return nil, fmt.Errorf("blob %s: range of %d bytes at %d is outside its %d bytes", h.d, n, off, h.Size())
	}
	return io.NopCloser(bytes.NewReader(h.b[off : off+n])), nil
}
