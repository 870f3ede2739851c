package archive

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// zstdMagic starts every zstd data frame.
var zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}

// FrameStartError is CheckFrameStarts' error for a frame that the seek
// table says starts at Offset and does not: the bytes there are not a zstd
// frame's magic number. Offset lets a caller that assembles the archive
// from pieces (volumes) say which piece is out of place.
type FrameStartError struct {
	// Frame is the frame's index in the seek table; Offset where it
	// should start in the archive.
	Frame  int
	Offset int64
}

// Error implements error.
func (e *FrameStartError) Error() string {
	return fmt.Sprintf("seek table: frame %d should start at offset %d, and no zstd frame starts there", e.Frame, e.Offset)
}

// ErrBadHead matches the error CheckFrameStarts returns when an archive
// that ends with a seek table does not start with a head it can read.
var ErrBadHead = errors.New("the archive's head cannot be read")

// CheckFrameStarts reads the seek table at the end of the archive in ra
// (size bytes) and checks that every frame it lists begins where it says:
// four bytes per frame, the zstd magic number (the skippable frame's for
// the table of contents). As OpenFile does, it reads the head first, which
// bounds how many frames the table may list (a hostile table could claim
// millions); it reads nothing else, so it is quick on any archive. A
// damaged archive whose frames all start in place is found by the
// checksums and digests as it is read. It returns ErrNotSeekable when the
// archive does not end with a seek table, an error matching ErrBadHead
// when it does but its head cannot be read, and a *FrameStartError for the
// first frame out of place.
func CheckFrameStarts(ra io.ReaderAt, size int64) error {
	ok, err := hasSeekTable(ra, size)
	if err != nil {
		return err
	}
	if !ok {
		return ErrNotSeekable
	}
	// The first frame starts at the archive's start: a file that does not
	// start with one is named so, rather than as a head that cannot be
	// read, which says less about where the fault is.
	var magic [4]byte
	if _, err := ra.ReadAt(magic[:], 0); err != nil {
		return fmt.Errorf("%w: %w", ErrBadHead, err)
	}
	if !bytes.Equal(magic[:], zstdMagic) {
		return &FrameStartError{Frame: 0, Offset: 0}
	}
	ar, err := NewReader(io.NewSectionReader(ra, 0, size), ReaderOptions{Concurrency: 1})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadHead, err)
	}
	head := ar.Head()
	ar.Close()
	frames, err := readSeekTableMax(ra, size, seekFramesBound(head))
	if err != nil {
		return err
	}
	return checkFrameMagics(ra, frames)
}

// checkFrameMagics checks that each of frames (a seek table's, the table
// of contents last) starts with its magic number in ra: the zstd frame's,
// the skippable frame's for the table of contents. Four bytes a frame: a
// reader that starts decompressing at a frame (OpenFile's blob readers)
// relies on its compressed size being right, which reading the archive
// front to back does not check.
func checkFrameMagics(ra io.ReaderAt, frames []frameLoc) error {
	var magic [4]byte
	for i, f := range frames {
		want := zstdMagic
		if i == len(frames)-1 {
			want = binary.LittleEndian.AppendUint32(nil, skippableMagicTOC)
		}
		if _, err := ra.ReadAt(magic[:], f.offset); err != nil {
			return fmt.Errorf("seek table: frame %d at offset %d: %w", i, f.offset, err)
		}
		if !bytes.Equal(magic[:], want) {
			return &FrameStartError{Frame: i, Offset: f.offset}
		}
	}
	return nil
}
