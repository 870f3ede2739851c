package archive

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// The seek table ends every archive this package writes: a zstd skippable
// frame in the zstd seekable format (facebook/zstd,
// contrib/seekable_format), listing the compressed and decompressed size of
// every frame before it. Any seekable-format reader can jump to any offset
// of the tar with it; the zstd CLI and every zstd decoder skip it.
//
//	Skippable_Magic_Number 0x184D2A5E | Frame_Size (4 bytes)
//	entries: Compressed_Size (4) | Decompressed_Size (4)   (one per frame)
//	footer:  Number_Of_Frames (4) | Seek_Table_Descriptor (1) | 0x8F92EAB1
//
// All little-endian. The descriptor's Checksum_Flag is off: every data frame
// already carries its own content checksum (the same XXH64 the flag would
// repeat), which the decoder checks.
const (
	skippableMagicSeekTable = 0x184D2A5E
	seekableMagic           = 0x8F92EAB1
	seekFooterSize          = 9
	seekEntrySize           = 8
	skippableHeaderSize     = 8
	// maxSeekFrames is the seekable format's own limit on frames.
	maxSeekFrames = 0x8000000
	// seekChecksumFlag and seekReservedBits are bits of the descriptor.
	seekChecksumFlag = 0x80
	seekReservedBits = 0x7c
)

// seekEntry is one frame of the seek table.
type seekEntry struct {
	compressed, decompressed uint32
}

// skippableFrame returns a zstd skippable frame with the given magic
// (0x184D2A50 to 0x184D2A5F) around payload.
func skippableFrame(magic uint32, payload []byte) []byte {
	b := make([]byte, skippableHeaderSize, skippableHeaderSize+len(payload))
	binary.LittleEndian.PutUint32(b[0:], magic)
	binary.LittleEndian.PutUint32(b[4:], uint32(len(payload)))
	return append(b, payload...)
}

// encodeSeekTable returns the seek table frame for table.
func encodeSeekTable(table []seekEntry) []byte {
	payload := make([]byte, 0, len(table)*seekEntrySize+seekFooterSize)
	for _, e := range table {
		payload = binary.LittleEndian.AppendUint32(payload, e.compressed)
		payload = binary.LittleEndian.AppendUint32(payload, e.decompressed)
	}
	payload = binary.LittleEndian.AppendUint32(payload, uint32(len(table)))
	payload = append(payload, 0) // descriptor: no checksums
	payload = binary.LittleEndian.AppendUint32(payload, seekableMagic)
	return skippableFrame(skippableMagicSeekTable, payload)
}

// frameLoc is where one frame of a seekable archive lies.
type frameLoc struct {
	// offset and size are the frame's place in the compressed file.
	offset, size int64
	// tarOffset and tarSize are the place of its content in the tar.
	tarOffset, tarSize int64
}

// ErrNotSeekable is returned by OpenFile for an archive that does not end
// with a seek table: one written by an older ferry, a gzip or plain tar,
// or one recompressed by another tool. Such an archive is read front to
// back with NewReader instead.
var ErrNotSeekable = errors.New("archive has no seek table")

// readSeekTable reads the seek table at the end of a file of size bytes and
// returns where every frame before it lies.
// It returns ErrNotSeekable when the file does not end with the seekable
// format's footer, and a descriptive error when it does but the table does
// not describe the file exactly.
func readSeekTable(ra io.ReaderAt, size int64) ([]frameLoc, error) {
	return readSeekTableMax(ra, size, maxSeekFrames)
}

// hasSeekTable reports whether the file ends with the seekable format's
// footer magic: a cheap look before anything else is read.
func hasSeekTable(ra io.ReaderAt, size int64) (bool, error) {
	if size < skippableHeaderSize+seekFooterSize {
		return false, nil
	}
	var magic [4]byte
	if _, err := ra.ReadAt(magic[:], size-4); err != nil {
		return false, fmt.Errorf("read seek table footer: %w", err)
	}
	return binary.LittleEndian.Uint32(magic[:]) == seekableMagic, nil
}

// seekFramesBound is the most frames a writer with frames of at least
// minFrameTar bytes of tar could have cut for the head h describes: the
// head's, one more per config and layer (each starts a frame), its bytes
// in frames of that size, and the table of contents. A seek table that
// claims more is refused before anything the size of its claim is
// allocated. The sizes are the manifests' claims: a sum past what the
// format's frames can hold is the format's limit, never an overflow.
func seekFramesBound(h *Head) int64 {
	const (
		minFrameTar = 64 << 10
		maxTar      = maxSeekFrames * minFrameTar
	)
	var tarBytes int64 = 4 << 10
	for _, m := range h.Manifests {
		tarBytes += 1024 + int64(len(m))
	}
	n := int64(len(h.Manifests)) + 8
	for _, b := range h.Blobs {
		if b.Size < 0 || b.Size >= maxTar || tarBytes >= maxTar {
			return maxSeekFrames
		}
		tarBytes += 2048 + b.Size
		n++
	}
	return min(n+tarBytes/minFrameTar, maxSeekFrames)
}

// Frames are at least this long: a zstd frame is its magic number, a frame
// header descriptor, a window descriptor or a one-byte content size, and
// one block header (RFC 8878 section 3.1.1); a skippable frame (the table
// of contents, the last before the seek table) is its magic number and
// size.
const (
	minZstdFrame      = 4 + 1 + 1 + 3
	minSkippableFrame = skippableHeaderSize
)

// seekTableChunk is how many bytes of entries readSeekTableMax reads at a
// time while it adds up their sizes.
const seekTableChunk = 64 << 10

// readSeekTableMax is readSeekTable refusing a table of more than max
// frames. A table is trusted with memory in proportion to its length only
// once it has been found to describe the file: no more frames than the
// file can hold, each large enough to be one, their sizes adding up to the
// bytes before the table (added up a chunk at a time).
func readSeekTableMax(ra io.ReaderAt, size, max int64) ([]frameLoc, error) {
	if size < skippableHeaderSize+seekFooterSize {
		return nil, ErrNotSeekable
	}
	var foot [seekFooterSize]byte
	if _, err := ra.ReadAt(foot[:], size-seekFooterSize); err != nil {
		return nil, fmt.Errorf("read seek table footer: %w", err)
	}
	if binary.LittleEndian.Uint32(foot[5:]) != seekableMagic {
		return nil, ErrNotSeekable
	}
	n := int64(binary.LittleEndian.Uint32(foot[0:]))
	desc := foot[4]
	if desc&seekReservedBits != 0 {
		return nil, fmt.Errorf("seek table: reserved descriptor bits set (%#x)", desc)
	}
	es := int64(seekEntrySize)
	if desc&seekChecksumFlag != 0 {
		es += 4
	}
	if n > max {
		return nil, fmt.Errorf("seek table: %d frames, more than the %d the archive's content can have", n, max)
	}
	frameSize := skippableHeaderSize + n*es + seekFooterSize
	// Every frame but the last is a zstd frame, the last the table of
	// contents.
	if data := size - frameSize; data < 0 || n > 0 && (n-1)*minZstdFrame+minSkippableFrame > data {
		return nil, fmt.Errorf("seek table: %d frames do not fit in a %d-byte file", n, size)
	}
	var hdr [skippableHeaderSize]byte
	if _, err := ra.ReadAt(hdr[:], size-frameSize); err != nil {
		return nil, fmt.Errorf("read seek table: %w", err)
	}
	if m := binary.LittleEndian.Uint32(hdr[0:]); m != skippableMagicSeekTable {
		return nil, fmt.Errorf("seek table: frame magic %#x, want %#x", m, skippableMagicSeekTable)
	}
	if fs := int64(binary.LittleEndian.Uint32(hdr[4:])); fs != frameSize-skippableHeaderSize {
		return nil, fmt.Errorf("seek table: frame size %d, %d frames need %d", fs, n, frameSize-skippableHeaderSize)
	}
	entries := io.NewSectionReader(ra, size-frameSize+skippableHeaderSize, n*es)
	// First pass: the sizes, a chunk at a time.
	var off int64
	err := eachSeekEntry(entries, n, es, func(i, c, _ int64) error {
		least := int64(minZstdFrame)
		if i == n-1 {
			least = minSkippableFrame
		}
		if c < least {
			return fmt.Errorf("seek table: frame %d has %d bytes, fewer than any frame", i, c)
		}
		off += c
		return nil
	})
	if err != nil {
		return nil, err
	}
	if off != size-frameSize {
		return nil, fmt.Errorf("seek table: its frames add up to %d bytes, the file has %d before the table", off, size-frameSize)
	}
	frames := make([]frameLoc, n)
	off = 0
	var tarOff int64
	err = eachSeekEntry(entries, n, es, func(i, c, d int64) error {
		frames[i] = frameLoc{offset: off, size: c, tarOffset: tarOff, tarSize: d}
		off += c
		tarOff += d
		return nil
	})
	if err != nil {
		return nil, err
	}
	return frames, nil
}

// eachSeekEntry calls f with the index, compressed and decompressed size
// of each of the n entries (es bytes each) that r holds, reading them
// seekTableChunk bytes at a time.
func eachSeekEntry(r *io.SectionReader, n, es int64, f func(i, c, d int64) error) error {
	buf := make([]byte, (seekTableChunk/es)*es)
	for i := int64(0); i < n; {
		chunk := buf[:min(int64(len(buf)), (n-i)*es)]
		if _, err := r.ReadAt(chunk, i*es); err != nil {
			return fmt.Errorf("read seek table: %w", err)
		}
		for e := chunk; len(e) > 0; e = e[es:] {
			c := int64(binary.LittleEndian.Uint32(e[0:]))
			d := int64(binary.LittleEndian.Uint32(e[4:]))
			if err := f(i, c, d); err != nil {
				return err
			}
			i++
		}
	}
	return nil
}
