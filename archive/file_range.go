package archive

import (
	"archive/tar"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/cespare/xxhash/v2"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/zstd"
)

// A File reads a blob through its table of contents from the frame that
// starts it (Blob). Reading from the middle of a blob (an HTTP Range
// request to `ferry serve`) needs more: the frame that holds the offset,
// found through the decompressed sizes of the seek table, which OpenFile
// cannot check without decompressing everything. VerifyBlob checks them,
// frame by frame, for the frames of one blob, together with the blob's
// bytes; the VerifiedBlob it returns then reads any range of the blob
// decoding only the frames that hold it.
//
// The file may change after the check (copied over in place, a failing
// disk): a frame that then fails its own zstd checksum or size is
// refused, but one replaced whole by another valid frame of the same sizes
// (two frames of a random layer traded places) passes both. VerifyBlob
// therefore records a fingerprint of each frame of the blob (frameSum, 8
// bytes a frame), and Range compares every frame it reads to its end with
// it: a frame that is not the one verified fails, naming the entry and the
// frame, rather than giving other bytes under the blob's digest.

// VerifiedBlob is a config or layer of a File that VerifyBlob read in full
// and found right: its tar header, its size and digest, and every frame it
// spans decompressing, on its own, to exactly the size the seek table
// gives it. Range reads it again from any offset. It is safe for
// concurrent use.
type VerifiedBlob struct {
	f    *File
	d    v1.Hash
	size int64
	// first is the frame the blob's tar header opens and last the frame
	// that holds its last byte (the header's frame for an empty blob).
	first, last int
	// start is where the blob's bytes begin, counted from the start of
	// frame first: the length of its tar header.
	start int64
	// sums are the fingerprints (frameSum) of frames first to last as
	// VerifyBlob read them.
	sums []uint64
}

// VerifyBlob reads blob d in full, one frame at a time, and checks
// everything Blob checks (the tar header at the start of its frame is d's,
// the bytes have d's size and digest) and also that each frame the blob
// spans decompresses on its own to the size the seek table gives it, with
// a valid zstd checksum. Only then do offsets within the blob, computed
// from the seek table, point at the blob's bytes: a VerifiedBlob reads
// ranges on that basis. It records each frame's fingerprint as it ends
// (frameSum), which Range checks again. It stops with ctx's error when ctx
// ends.
func (f *File) VerifyBlob(ctx context.Context, d v1.Hash) (*VerifiedBlob, error) {
	b, ok := f.blobs[d]
	if !ok {
		return nil, fmt.Errorf("archive: blob %s is not in the archive", d)
	}
	name := blobName(d)
	fr, err := f.newFrameReader(name, b.Frame)
	if err != nil {
		return nil, err
	}
	defer fr.Close()
	fr.first, fr.record = b.Frame, true
	// archive/tar reads exactly the header blocks, so what it has read
	// when Next returns is the header's length.
	cr := &countingReader{r: fr}
	hdr, err := tar.NewReader(cr).Next()
	if err != nil {
		if fr.err != nil {
			// The frame's own error names the entry and the frame.
			return nil, fr.err
		}
		return nil, fmt.Errorf("archive entry %s: at frame %d (offset %d): %w", name, b.Frame, f.frames[b.Frame].offset, explain(err))
	}
	if hdr.Name != name || hdr.Typeflag != tar.TypeReg || hdr.Size != b.Size {
		return nil, fmt.Errorf("archive entry %s: frame %d (offset %d) starts entry %q (type %s, %d bytes), want %s (%d bytes): the table of contents is wrong",
			name, b.Frame, f.frames[b.Frame].offset, hdr.Name, typeName(hdr.Typeflag), hdr.Size, name, b.Size)
	}
	v := &VerifiedBlob{f: f, d: d, size: b.Size, first: b.Frame, start: cr.n}
	check := newEntryCheck(name, d, b.Size)
	buf := make([]byte, 256<<10)
	for left := b.Size; left > 0; {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n, err := io.ReadFull(fr, buf[:min(left, int64(len(buf)))])
		check.add(buf[:n])
		left -= int64(n)
		if err != nil {
			if fr.err != nil {
				return nil, fr.err
			}
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				err = fmt.Errorf("truncated archive: %w", io.ErrUnexpectedEOF)
			}
			return nil, fmt.Errorf("archive entry %s: %w", name, err)
		}
	}
	if err := check.verify(); err != nil {
		return nil, err
	}
	// The rest of the last frame (the tar padding, perhaps the end
	// marker): its size and checksum are checked only at its end.
	v.last = fr.cur
	if err := fr.endFrame(); err != nil {
		return nil, err
	}
	if len(fr.sums) != v.last-v.first+1 {
		// Not reached: every frame from first to last was read to its end.
		return nil, fmt.Errorf("archive entry %s: %d frames fingerprinted of frames %d to %d", name, len(fr.sums), v.first, v.last)
	}
	v.sums = fr.sums
	return v, nil
}

// MaxRangeFrame is the most tar a frame holding a config or layer may
// decompress to for Range to read it: a range reader holds what it gives
// of a frame until the frame is read to its end and checked. ferry's
// writer cuts frames at this size (frameSize).
const MaxRangeFrame = frameSize

// CheckRanges returns an error naming the first frame, from the first
// config or layer on, that holds more than MaxRangeFrame bytes of tar:
// Range refuses to read such a frame, which only a writer other than
// ferry's makes, and a server is to refuse the archive at its start
// rather than a client's request later. It reads nothing but the seek
// table already read.
func (f *File) CheckRanges() error {
	first := len(f.frames)
	for _, b := range f.blobs {
		first = min(first, b.Frame)
	}
	for i := first; i < len(f.frames); i++ {
		if fr := f.frames[i]; fr.tarSize > MaxRangeFrame {
			return fmt.Errorf("archive: frame %d (offset %d) decompresses to %d bytes, more than the %d bytes of the frames ferry writes, which a range is read and checked in", i, fr.offset, fr.tarSize, MaxRangeFrame)
		}
	}
	return nil
}

// Digest is the blob's digest.
func (v *VerifiedBlob) Digest() v1.Hash { return v.d }

// Size is the blob's size in bytes.
func (v *VerifiedBlob) Size() int64 { return v.size }

// Range returns a reader of the n bytes of the blob that start at offset
// off. It decompresses from the frame that holds off, discarding what
// precedes off in that frame, and no frame past the one holding the last
// byte. The bytes are not hashed again (VerifyBlob did): each frame is
// still checked against its zstd checksum, its size and the fingerprint
// VerifyBlob recorded when read to its end. Close releases the decoder.
func (v *VerifiedBlob) Range(off, n int64) (io.ReadCloser, error) {
	if off < 0 || n < 0 || off > v.size || n > v.size-off {
		return nil, fmt.Errorf("archive entry %s: range of %d bytes at %d is outside its %d bytes", blobName(v.d), n, off, v.size)
	}
	if n == 0 {
		return io.NopCloser(eofReader{}), nil
	}
	// Offsets relative to the start of frame first: VerifyBlob checked
	// the sizes of frames first to last, so these are exact.
	base := v.f.frames[v.first].tarOffset
	at := v.start + off
	frames := v.f.frames[v.first : v.last+1]
	for i, fr := range frames {
		if fr.tarSize > MaxRangeFrame {
			return nil, fmt.Errorf("archive entry %s: frame %d (offset %d) decompresses to %d bytes, more than the %d a range is read and checked in (see CheckRanges)", blobName(v.d), v.first+i, fr.offset, fr.tarSize, MaxRangeFrame)
		}
	}
	k := sort.Search(len(frames), func(i int) bool { return frames[i].tarOffset-base+frames[i].tarSize > at })
	if k == len(frames) {
		return nil, fmt.Errorf("archive entry %s: offset %d is beyond its frames", blobName(v.d), off)
	}
	fr, err := v.f.newFrameReader(blobName(v.d), v.first+k)
	if err != nil {
		return nil, err
	}
	fr.first, fr.sums = v.first, v.sums
	if skip := at - (frames[k].tarOffset - base); skip > 0 {
		if _, err := io.CopyN(io.Discard, fr, skip); err != nil {
			fr.Close()
			return nil, fmt.Errorf("archive entry %s: %w", blobName(v.d), err)
		}
	}
	return &rangeReader{fr: fr, left: n}, nil
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// rangeReader is what Range returns. It gives no byte of a frame before
// the frame has been read to its end and checked (checkFrame): the blob
// was checked once, but the file may have changed since (a failing disk,
// another archive copied over it in place), and a reader cut short must
// not have had bytes other than the blob's either. What the range needs
// of a frame, at most MaxRangeFrame bytes (Range refuses larger frames),
// waits in held meanwhile.
type rangeReader struct {
	fr   *frameReader
	left int64  // bytes of the range not given yet
	held []byte // read and checked, given first
	buf  []byte // held's storage, kept from frame to frame
}

// Read implements io.Reader.
func (r *rangeReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), r.left)]
	for len(r.held) == 0 {
		if r.left <= 0 {
			return 0, io.EOF
		}
		if err := r.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, r.held)
	r.held = r.held[n:]
	r.left -= int64(n)
	return n, nil
}

// fill reads what the range needs of the frame under way, or of the next
// one, into held, and checks the frame to its end.
func (r *rangeReader) fill() error {
	if r.fr.err != nil {
		return r.fr.err
	}
	if r.fr.done {
		if r.fr.err = r.fr.open(r.fr.cur + 1); r.fr.err != nil {
			return r.fr.err
		}
	}
	return r.checkFrame()
}

// checkFrame reads the frame under way to its end, so that its size, zstd
// checksum and fingerprint are checked, and keeps what the range needs of
// it in held for the reads that follow.
func (r *rangeReader) checkFrame() error {
	if len(r.held) > 0 || r.fr.done {
		return r.fr.err
	}
	rest := r.f().frames[r.fr.cur].tarSize - r.fr.n
	keep := min(rest, r.left)
	if keep > MaxRangeFrame {
		// Not reached: Range refused the frame.
		return fmt.Errorf("archive entry %s: frame %d holds more than %d bytes", r.fr.name, r.fr.cur, MaxRangeFrame)
	}
	if int64(cap(r.buf)) < keep {
		r.buf = make([]byte, keep)
	}
	buf := r.buf[:keep]
	n, err := io.ReadFull(r.fr, buf)
	if err != nil {
		if r.fr.err != nil {
			return r.fr.err // names the entry and the frame
		}
		return fmt.Errorf("archive entry %s: %w", r.fr.name, err)
	}
	r.held = buf[:n]
	return r.fr.endFrame()
}

func (r *rangeReader) f() *File { return r.fr.f }

// Close implements io.Closer.
func (r *rangeReader) Close() error { return r.fr.Close() }

// frameReader reads the tar from frame cur on, decoding each frame on its
// own and checking that it gives exactly the bytes the seek table says.
// Each frame read to its end has its fingerprint (frameSum) recorded in
// sums (record: VerifyBlob) or compared with it (Range).
type frameReader struct {
	f    *File
	name string // the entry being read, for messages
	dec  *zstd.Decoder
	cur  int   // the frame being read
	n    int64 // bytes of it read so far
	done bool  // frame cur is read to its end
	err  error

	tap *frameTap      // the compressed bytes of frame cur, as the decoder reads them
	xx  *xxhash.Digest // its decoded bytes, hashed when it has no checksum
	// sums[i] is the fingerprint of frame first+i; nil: none compared.
	sums   []uint64
	first  int
	record bool // append each frame's fingerprint to sums
}

func (f *File) newFrameReader(name string, frame int) (*frameReader, error) {
	dec, err := zstd.NewReader(nil, f.decoderOptions()...)
	if err != nil {
		return nil, fmt.Errorf("archive entry %s: zstd: %w", name, err)
	}
	r := &frameReader{f: f, name: name, dec: dec, tap: &frameTap{}, xx: xxhash.New()}
	if err := r.open(frame); err != nil {
		dec.Close()
		return nil, err
	}
	return r, nil
}

// open starts decoding frame i.
func (r *frameReader) open(i int) error {
	if i >= len(r.f.frames) {
		return fmt.Errorf("archive entry %s: truncated archive: no frame %d", r.name, i)
	}
	fr := r.f.frames[i]
	*r.tap = frameTap{r: io.NewSectionReader(r.f.ra, fr.offset, fr.size)}
	r.xx.Reset()
	if err := r.dec.Reset(r.tap); err != nil {
		return fmt.Errorf("archive entry %s: frame %d (offset %d): %w", r.name, i, fr.offset, explain(err))
	}
	r.cur, r.n, r.done = i, 0, false
	return nil
}

// decode reads decoded bytes of the current frame into p, hashing them
// when the frame has no checksum of its own (frameSum).
func (r *frameReader) decode(p []byte) (int, error) {
	n, err := r.dec.Read(p)
	if n > 0 && !r.tap.checksummed() {
		r.xx.Write(p[:n])
	}
	return n, err
}

// frameSum returns the fingerprint of the current frame, read to its
// end: its zstd content checksum (the low 32 bits of the xxhash64 of its
// decoded bytes, which the decoder has just checked them against, read
// for free as the last 4 bytes of the frame) or, for a frame without one,
// the xxhash64 of its decoded bytes with the top bit set, so that the two
// kinds never match each other.
func (r *frameReader) frameSum() uint64 {
	if r.tap.checksummed() {
		return uint64(binary.LittleEndian.Uint32(r.tap.tail[:]))
	}
	return r.xx.Sum64() | 1<<63
}

// checkSum records or compares the fingerprint of the current frame, read
// to its end.
func (r *frameReader) checkSum() error {
	i, sum := r.cur-r.first, r.frameSum()
	switch {
	case r.record:
		if i == len(r.sums) {
			r.sums = append(r.sums, sum)
		}
		return nil
	case r.sums == nil:
		return nil
	case i < 0 || i >= len(r.sums):
		return fmt.Errorf("archive entry %s: frame %d (offset %d) is not one of the frames %d to %d that were verified", r.name, r.cur, r.f.frames[r.cur].offset, r.first, r.first+len(r.sums)-1)
	case r.sums[i] != sum:
		return fmt.Errorf("archive entry %s: frame %d (offset %d) is not the frame that was verified (fingerprint %016x, was %016x): the archive changed since the blob was checked",
			r.name, r.cur, r.f.frames[r.cur].offset, sum, r.sums[i])
	}
	return nil
}

// frameTap reads one frame's compressed bytes for the decoder, keeping
// what frameSum needs: the frame header's descriptor and the last 4 bytes
// read, which, once the decoder has reached the frame's end, are its
// content checksum if it has one.
type frameTap struct {
	r    io.Reader
	n    int64   // bytes read so far
	head [5]byte // the first bytes: magic number and descriptor
	tail [4]byte // the last 4 bytes read
}

// Read implements io.Reader.
func (t *frameTap) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	b := p[:n]
	if t.n < int64(len(t.head)) {
		copy(t.head[t.n:], b)
	}
	t.n += int64(n)
	if len(b) >= len(t.tail) {
		copy(t.tail[:], b[len(b)-len(t.tail):])
	} else {
		keep := copy(t.tail[:], t.tail[len(b):])
		copy(t.tail[keep:], b)
	}
	return n, err
}

// checksummed reports whether the frame is a zstd frame whose header
// sets Content_Checksum_flag (RFC 8878, 3.1.1.1.1).
func (t *frameTap) checksummed() bool {
	return t.n >= int64(len(t.head)) && binary.LittleEndian.Uint32(t.head[:4]) == 0xFD2FB528 && t.head[4]&(1<<2) != 0
}

// Read implements io.Reader: the frames' bytes, one after the other.
func (r *frameReader) Read(p []byte) (int, error) {
	for r.err == nil {
		if r.done {
			if r.err = r.open(r.cur + 1); r.err != nil {
				break
			}
		}
		n, err := r.decode(p)
		if r.err = r.account(n, err); r.err != nil || n > 0 {
			return n, r.err
		}
	}
	return 0, r.err
}

// account records n bytes read from the current frame and the decoder's
// error: at the frame's end, its size and fingerprint are checked.
func (r *frameReader) account(n int, err error) error {
	fr := r.f.frames[r.cur]
	r.n += int64(n)
	switch {
	case r.n > fr.tarSize || (err == io.EOF && r.n != fr.tarSize):
		return fmt.Errorf("archive entry %s: frame %d (offset %d) decompresses to %d bytes or more, the seek table says %d: the seek table is wrong",
			r.name, r.cur, fr.offset, r.n, fr.tarSize)
	case err == io.EOF:
		r.done = true
		return r.checkSum()
	case err != nil:
		return fmt.Errorf("archive entry %s: frame %d (offset %d): %w", r.name, r.cur, fr.offset, explain(err))
	}
	return nil
}

// endFrame reads the current frame to its end, so that its checksum,
// size and fingerprint are checked.
func (r *frameReader) endFrame() error {
	var buf [4 << 10]byte
	for r.err == nil && !r.done {
		n, err := r.decode(buf[:])
		r.err = r.account(n, err)
	}
	return r.err
}

// Close releases the decoder.
func (r *frameReader) Close() error {
	if r.dec != nil {
		r.dec.Close()
		r.dec = nil
	}
	if r.err == nil {
		r.err = errors.New("archive: frame reader is closed")
	}
	return nil
}
