package relocate

import (
	"context"
	"errors"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/archive"
	"github.com/ferry-dev/ferry/internal/volumes"
)

// RandomArchive is an archive read at random: its head, and any config or
// layer on its own, verified as it is read. A ferry archive with a seek
// table (archive.File) and an imgpkg tarball (archive.ImgpkgTar) are both
// read this way, by import, inspect, verify, export --from-tar and serve
// alike.
type RandomArchive interface {
	// Head is the archive's index and manifests, read and checked when
	// the archive was opened.
	Head() *archive.Head
	// Has reports whether the archive carries blob d (a delta leaves some
	// out).
	Has(d v1.Hash) bool
	// Blob reads blob d from its start; the reader fails, rather than
	// end, if the bytes do not have digest d. The caller closes it.
	Blob(d v1.Hash) (io.ReadCloser, error)
}

// openRandom opens the archive in r for random access when r is a file (or
// the volumes of one) holding a ferry archive with a seek table or an
// imgpkg tarball. ok is false, with no error, when r must be read front to
// back instead (a pipe, gzip, plain tar, a ferry archive without a seek
// table); r has then not been read from. Volumes are checked first
// (checkVolumes), and, when a checksum file lists them, those whose bytes
// are trusted without a digest of their own are compared with it
// (checkTrusted).
func openRandom(r io.Reader) (RandomArchive, bool, error) {
	ra, size, ok := archive.RandomAccess(r)
	if !ok {
		return nil, false, nil
	}
	vs, split := r.(*volumes.Set)
	if split {
		if err := checkVolumes(vs); err != nil {
			return nil, false, err
		}
	}
	f, err := archive.OpenFile(ra, size, archive.ReaderOptions{})
	switch {
	case err == nil:
		if split {
			if err := checkTrusted(vs, f); err != nil {
				return nil, false, err
			}
		}
		return f, true, nil
	case !errors.Is(err, archive.ErrNotSeekable):
		if split {
			err = sumsFirst(vs, err)
		}
		return nil, false, err
	}
	t, err := archive.OpenImgpkg(ra, size, archive.ReaderOptions{})
	switch {
	case err == nil:
		if split {
			// An imgpkg tarball has no head of its own, at a known place:
			// every volume is compared.
			if err := vs.CheckSums(); err != nil {
				return nil, false, err
			}
		}
		return t, true, nil
	case !errors.Is(err, archive.ErrNotImgpkg):
		return nil, false, err
	}
	// OpenFile and OpenImgpkg read with ReadAt only: r is still at its
	// start.
	return nil, false, nil
}

// OpenSeekable opens for reading at random, as serve reads it, the
// archive at path: a ferry archive with a seek table, the volumes of one
// (volumes.OpenArchive, checked as an import checks them), or an imgpkg
// tarball (a plain tar, whose layers lie as they are in it). A file that
// is not one (a pipe, a directory) is refused; an archive without a seek
// table (gzip, plain tar, zstd from another tool, an older ferry) gives
// archive.ErrNotSeekable: only a front-to-back read, as import makes,
// reaches its blobs. The archive is an *archive.File or an
// *archive.ImgpkgTar. Closing the returned Closer closes the file or the
// volumes. ctx ends the open of a named pipe waiting for its writer.
func OpenSeekable(ctx context.Context, path string) (RandomArchive, io.Closer, error) {
	in, err := volumes.OpenArchive(ctx, path)
	if err != nil {
		return nil, nil, err
	}
	if _, _, ok := archive.RandomAccess(in); !ok {
		in.Close()
		return nil, nil, errors.New("not a regular file")
	}
	a, ok, err := openRandom(in)
	if err == nil && !ok {
		err = archive.ErrNotSeekable
	}
	if err != nil {
		in.Close()
		return nil, nil, err
	}
	return a, in, nil
}

// blameVolume names the volume at fault when err says the archive's bytes
// are damaged (archive.ErrDamaged) and in is the volumes of a split
// archive listed by a checksum file: the read stopped at the damage, maybe
// before the end of the volume holding it, where Read would have compared
// the volume with its line. Every volume is read again for that, which
// costs only an import that failed.
func blameVolume(in io.Reader, err error) error {
	vs, ok := in.(*volumes.Set)
	if !ok || vs.Sidecar() == "" || !errors.Is(err, archive.ErrDamaged) {
		return err
	}
	if serr := vs.CheckSums(); serr != nil {
		return sumBlame(serr, err)
	}
	return err
}

// sumBlame is serr, the checksum error of the volume at fault, with err,
// the read that stopped, after it in parentheses, unless that read stopped
// at the very mismatch (volumes.Set compares each volume with its line as
// its end is read): the same thing is not said twice. Both stay wrapped.
func sumBlame(serr, err error) error {
	if _, ok := errors.AsType[*volumes.SumError](err); ok {
		return &blamedVolume{sum: serr, read: err}
	}
	return fmt.Errorf("%w (reading it: %w)", serr, err)
}

// blamedVolume says sum and wraps both errors.
type blamedVolume struct{ sum, read error }

func (e *blamedVolume) Error() string   { return e.sum.Error() }
func (e *blamedVolume) Unwrap() []error { return []error{e.sum, e.read} }

// checkTrusted compares with the checksum file that lists the volumes of
// f, when there is one, the volumes holding the bytes OpenFile trusted
// without a digest of their own: those the head spans (.001 to the one
// where its last frame ends) and those of the trailer (the table of
// contents and the seek table, in the last volume). Everything else is
// frames of configs and layers, each checked against its digest when it
// is read; so a re-import, which reads none of the blobs the destination
// has, reads those volumes only. Without this, the head volumes of another
// export of the same content (same sizes, another tag) would pass every
// structural check and be imported, though sha256sum -c refuses them.
func checkTrusted(vs *volumes.Set, f *archive.File) error {
	if vs.Sidecar() == "" {
		return nil
	}
	start, end := f.BlobSpan()
	head := 0
	if start > 0 {
		head = vs.Locate(start - 1)
	}
	for i := 1; i <= vs.Len(); i++ {
		if i > head && vs.End(i) <= end {
			continue
		}
		if err := vs.CheckSum(i); err != nil {
			return err
		}
	}
	return nil
}

// checkVolumes checks what volumes.Open cannot from names and sizes alone:
// that the archive the volumes make ends where the last volume ends, and
// that its volumes are in order. The seek table at the end of a ferry
// archive says where every frame starts, and every frame starts with
// zstd's magic number: four bytes read per frame find a volume that is
// not where it belongs (volumes renamed out of order, or from another
// export), or one that follows the archive's end (an extra volume). A
// volume smaller than a frame may hold no frame start; the checksums and
// digests checked as the archive is read still refuse it, without naming
// it, and `ferry verify` compares every volume with the checksum file.
// Archives without a seek table (gzip, plain tar, older ferry) are left to
// the front-to-back read.
//
// When a checksum file lists the volumes and the structure is wrong, every
// volume is compared with its line first (sumsFirst): a volume whose sum
// differs (padded by a copy tool, damaged) is named as such, rather than
// blamed on what its size or place suggests (truncated, out of order).
func checkVolumes(vs *volumes.Set) error {
	return sumsFirst(vs, checkStructure(vs))
}

// sumsFirst returns, when err is not nil and a checksum file lists the
// volumes of vs, the error naming the first volume whose sha256 differs
// from its line, if one does; err otherwise. It reads every volume, which
// costs only an open that failed.
func sumsFirst(vs *volumes.Set, err error) error {
	if err == nil || vs.Sidecar() == "" {
		return err
	}
	if serr := vs.CheckSums(); serr != nil {
		return serr
	}
	return err
}

// checkStructure is checkVolumes without the checksum file.
func checkStructure(vs *volumes.Set) error {
	err := archive.CheckFrameStarts(vs, vs.Size())
	if err == nil {
		// Every frame where it belongs, the last ending the last volume:
		// however the volumes are sized, they make the archive.
		return nil
	}
	notSeekable := errors.Is(err, archive.ErrNotSeekable)
	if notSeekable {
		// No seek table at the end of the last volume: does the archive
		// end with an earlier one?
		for i := vs.Len() - 1; i >= 1; i-- {
			end := vs.End(i)
			if archive.CheckFrameStarts(io.NewSectionReader(vs, 0, end), end) == nil {
				return fmt.Errorf("volume %s is extra: the archive ends with volume %s", volumes.Suffix(i+1), volumes.Suffix(i))
			}
		}
	}
	// A volume of the wrong size says more than the frames after it.
	if err := vs.CheckSizes(); err != nil {
		return err
	}
	var fe *archive.FrameStartError
	switch {
	case errors.As(err, &fe):
		i := vs.Locate(fe.Offset)
		if i == 1 {
			return fmt.Errorf("volume %s does not start the archive (%w): damaged, out of order, or from another export", volumes.Suffix(1), err)
		}
		return fmt.Errorf("volume %s does not continue the archive where volume %s ends (%w): the volumes are out of order, damaged, or from different exports",
			volumes.Suffix(i), volumes.Suffix(i-1), err)
	case errors.Is(err, archive.ErrBadHead):
		// With a small split size the head spans several volumes, and
		// any of them may be the one at fault.
		if n := headVolumes(vs); n > 1 {
			return fmt.Errorf("volumes %s to %s do not start the archive (%w): one of them is damaged, out of order, or from another export",
				volumes.Suffix(1), volumes.Suffix(n), err)
		}
		return fmt.Errorf("volume %s does not start the archive (%w): damaged, out of order, or from another export", volumes.Suffix(1), err)
	case !notSeekable:
		return fmt.Errorf("volumes of %s: %w", vs.Base(), err)
	}
	// A ferry archive that says it has a seek table, and does not end
	// with one, lost the end of its last volume, or the volumes after it.
	if h, err := archive.Inspect(io.NewSectionReader(vs, 0, vs.Size())); err == nil && h.Index.Annotations[archive.AnnotationSeekable] == "true" {
		return fmt.Errorf("the archive does not end with volume %s, the last: it is truncated, or volumes after it are missing (the archive's seek table is not at its end)", volumes.Suffix(vs.Len()))
	}
	return nil
}

// headVolumes returns the number of the last volume that reading the
// archive's head reaches before it fails: what stops it is in one of the
// volumes up to that one. Reads are small, so that the count says where
// the reader stopped, not where it buffered to.
func headVolumes(vs *volumes.Set) int {
	r := &smallReader{r: io.NewSectionReader(vs, 0, vs.Size())}
	if h, err := archive.Inspect(r); err == nil && h != nil {
		// The head reads whole: the volumes it spans are not to blame.
		return 0
	}
	return vs.Locate(max(r.n-1, 0))
}

// smallReader reads at most 512 bytes at a time from r, and counts them.
type smallReader struct {
	r io.Reader
	n int64
}

func (s *smallReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p[:min(len(p), 512)])
	s.n += int64(n)
	return n, err
}

// Archive formats Inspect tells apart.
const (
	FormatFerry  = "ferry"
	FormatImgpkg = "imgpkg"
)

// formatOf says whether h is a ferry archive's head or an imgpkg
// tarball's.
func formatOf(h *archive.Head) string {
	if h.Version == 0 && h.CreatedBy == archive.ImgpkgCreatedBy {
		return FormatImgpkg
	}
	return FormatFerry
}

// inspectHead reads the head of the archive in r: at random when r is a
// file (an imgpkg tarball is read so), otherwise front to back, reading
// nothing past the last manifest.
func inspectHead(r io.Reader) (*archive.Head, error) {
	f, ok, err := openRandom(r)
	if err != nil {
		return nil, err
	}
	if ok {
		return f.Head(), nil
	}
	return archive.Inspect(r)
}

// volumesOf lists the volumes r reads, nil when r is not split.
func volumesOf(r io.Reader) []volumes.Volume {
	if vs, ok := r.(*volumes.Set); ok {
		return vs.Volumes()
	}
	return nil
}
