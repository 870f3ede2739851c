package archive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

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
	// SeekTable says what Verify found of the table of contents and seek
	// table that end an archive of this version: SeekTableChecked (present
	// and consistent with every entry read), SeekTableAbsent (an archive
	// written without one), or SeekTableUnchecked (read from a pipe, whose
	// end cannot be read again).
	SeekTable SeekTableStatus
}

// SeekTableStatus is what Verify found of an archive's seek table.
type SeekTableStatus string

// SeekTableStatus values.
const (
	SeekTableChecked   SeekTableStatus = "checked"
	SeekTableAbsent    SeekTableStatus = "absent"
	SeekTableUnchecked SeekTableStatus = "unchecked"
)

// Verify reads the whole archive from r once and checks everything a
// Reader checks (`ferry verify`): layout, index, every manifest, blob,
// digest, size, checksum and reference. When r is a file (an *os.File, or
// any io.ReaderAt with a Size method) it also checks the table of contents
// and seek table at its end against what it read: every frame accounted
// for at the sizes the table gives it, every blob where the table says. It returns what it read so far
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
			break
		}
		if err != nil {
			return rep, err
		}
	}
	ra, size, ok := RandomAccess(r)
	if !ok {
		ra, size = nil, 0
	}
	rep.SeekTable, err = ar.CheckTrailer(ra, size)
	return rep, err
}

// sizedReaderAt is what bytes.Reader, strings.Reader and io.SectionReader
// are: random access with a known size.
type sizedReaderAt interface {
	io.ReaderAt
	Size() int64
}

// RandomAccess returns r as random access with its size, when it is a file
// (an *os.File of a regular file, or any io.ReaderAt with a Size method):
// what OpenFile needs.
func RandomAccess(r io.Reader) (io.ReaderAt, int64, bool) {
	switch v := r.(type) {
	case *os.File:
		fi, err := v.Stat()
		if err != nil || !fi.Mode().IsRegular() {
			return nil, 0, false
		}
		return v, fi.Size(), true
	case sizedReaderAt:
		return v, v.Size(), true
	}
	return nil, 0, false
}

// CheckTrailer checks, once Next has returned io.EOF, that the table of
// contents and seek table at the end of the archive's file (ra, size
// bytes; nil when it was read from a pipe) agree with what was read:
// every frame starting where the seek table says and of the compressed
// and decompressed sizes it gives (as the Reader found each frame), every
// frame accounted for, every blob where the table says, and a seek table
// wherever index.json declares one. It says what it found; an archive
// that is not zstd-compressed has no frames, hence no table.
func (ar *Reader) CheckTrailer(ra io.ReaderAt, size int64) (SeekTableStatus, error) {
	if !ar.eof {
		return "", errors.New("archive: the trailer is checked once the archive has been read to its end")
	}
	head := ar.Head()
	declared := head.Index.Annotations[AnnotationSeekable] == "true"
	if head.Compression != CompressionZstd {
		// Recompressed with gzip or decompressed: the frames are gone.
		return SeekTableAbsent, nil
	}
	if ra == nil {
		return SeekTableUnchecked, nil
	}
	frames, err := readSeekTableMax(ra, size, seekFramesBound(ar.Head()))
	if errors.Is(err, ErrNotSeekable) && !declared {
		return SeekTableAbsent, nil
	}
	if errors.Is(err, ErrNotSeekable) {
		return "", fmt.Errorf("archive: %s says the archive ends with a seek table, and it does not (damaged, or recompressed by another tool)", indexName)
	}
	if err != nil {
		return "", fmt.Errorf("archive: %w", err)
	}
	if err := checkFrameMagics(ra, frames); err != nil {
		return "", fmt.Errorf("archive: %w", err)
	}
	if err := checkFrames(ra, size, frames, ar); err != nil {
		return "", fmt.Errorf("archive: %w", err)
	}
	if err := checkFrameExtents(ar.zframes.frames, ar.zframes.overflow, frames); err != nil {
		return "", fmt.Errorf("archive: %w", err)
	}
	return SeekTableChecked, nil
}

// checkFrames checks the seek table's frames and the table of contents
// against the entries ar read: the frames cover the whole tar, and each
// blob starts the frame the table of contents names.
func checkFrames(ra io.ReaderAt, size int64, frames []frameLoc, ar *Reader) error {
	if len(frames) == 0 {
		return errors.New("seek table: no frames")
	}
	tocFrame := frames[len(frames)-1]
	frames = frames[:len(frames)-1]
	var tarSize int64
	for _, f := range frames {
		tarSize += f.tarSize
	}
	if tarSize != ar.tarSize {
		return fmt.Errorf("seek table: its frames hold %d bytes of tar, the archive has %d", tarSize, ar.tarSize)
	}
	toc, err := readTOC(ra, tocFrame, len(ar.Head().Blobs))
	if err != nil {
		return err
	}
	// The same checks as OpenFile's (what import, inspect and serve
	// accept), then each blob where the table says, against what was read.
	blobs, err := checkTOC(ar.Head(), frames, toc, ar.skipped)
	if err != nil {
		return err
	}
	for _, b := range toc {
		at, ok := ar.offsets[b.Digest]
		if !ok || !ar.present[b.Digest] {
			return fmt.Errorf("table of contents: blob %s is not a config or layer of the archive", b.Digest)
		}
		if frames[b.Frame].tarOffset != at {
			return fmt.Errorf("table of contents: blob %s: frame %d, but its entry starts at tar offset %d", b.Digest, b.Frame, at)
		}
	}
	if len(blobs) != ar.bodyBlobs {
		return fmt.Errorf("table of contents: lists %d blobs, the archive holds %d", len(blobs), ar.bodyBlobs)
	}
	// This package writes the descriptor as 0; the format lets readers
	// ignore its unused bits, but a changed bit is still a damaged byte.
	var desc [1]byte
	if _, err := ra.ReadAt(desc[:], size-5); err != nil || desc[0] != 0 {
		return fmt.Errorf("seek table: descriptor %#x, want 0", desc[0])
	}
	return nil
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
