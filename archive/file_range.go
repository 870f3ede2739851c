package archive

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"

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
}

// VerifyBlob reads blob d in full, one frame at a time, and checks
// everything Blob checks (the tar header at the start of its frame is d's,
// the bytes have d's size and digest) and also that each frame the blob
// spans decompresses on its own to the size the seek table gives it, with
// a valid zstd checksum. Only then do offsets within the blob, computed
// from the seek table, point at the blob's bytes: a VerifiedBlob reads
// ranges on that basis. It stops with ctx's error when ctx ends.
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
	return v, nil
}

// Digest is the blob's digest.
func (v *VerifiedBlob) Digest() v1.Hash { return v.d }

// Size is the blob's size in bytes.
func (v *VerifiedBlob) Size() int64 { return v.size }

// Range returns a reader of the n bytes of the blob that start at offset
// off. It decompresses from the frame that holds off, discarding what
// precedes off in that frame, and no frame past the one holding the last
// byte. The bytes are not hashed again (VerifyBlob did): each frame is
// still checked against its zstd checksum and its size when read to its
// end. Close releases the decoder.
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
	k := sort.Search(len(frames), func(i int) bool { return frames[i].tarOffset-base+frames[i].tarSize > at })
	if k == len(frames) {
		return nil, fmt.Errorf("archive entry %s: offset %d is beyond its frames", blobName(v.d), off)
	}
	fr, err := v.f.newFrameReader(blobName(v.d), v.first+k)
	if err != nil {
		return nil, err
	}
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

// rangeReader is what Range returns.
type rangeReader struct {
	fr   *frameReader
	left int64  // bytes of the range not given yet
	held []byte // read ahead by CheckFrame, given first
}

// Read implements io.Reader.
func (r *rangeReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), r.left)]
	if len(r.held) > 0 {
		n := copy(p, r.held)
		r.held = r.held[n:]
		r.left -= int64(n)
		return n, nil
	}
	n, err := r.fr.Read(p)
	r.left -= int64(n)
	return n, err
}

// maxHeld bounds what CheckFrame keeps of a frame: a frame of ferry's
// archives (4 MiB) at most.
const maxHeld = 4 << 20

// CheckFrame reads the frame that held the last byte read to its end, so
// that its size and zstd checksum are checked, and keeps what the range
// still needs of it for the reads that follow. A range that ends inside a
// frame is otherwise never checked: its bytes were checked when the blob
// was verified, but the file may have changed since (a failing disk, a
// copy still being written). A caller that gives the last byte of a range
// only after CheckFrame succeeds never gives a whole range of unchecked
// bytes. Of a frame larger than ferry writes, at most maxHeld bytes are
// kept: the reader then ends there, early, and a new Range goes on.
func (r *rangeReader) CheckFrame() error {
	if len(r.held) > 0 || r.fr.done {
		return r.fr.err
	}
	rest := r.f().frames[r.fr.cur].tarSize - r.fr.n
	keep := min(rest, r.left, maxHeld)
	buf := make([]byte, keep)
	n, err := io.ReadFull(r.fr, buf)
	if err != nil {
		if r.fr.err != nil {
			return r.fr.err // names the entry and the frame
		}
		return fmt.Errorf("archive entry %s: %w", r.fr.name, err)
	}
	r.held = buf[:n]
	if r.left > keep && rest > keep {
		r.left = keep // ends early: see above
	}
	return r.fr.endFrame()
}

func (r *rangeReader) f() *File { return r.fr.f }

// Close implements io.Closer.
func (r *rangeReader) Close() error { return r.fr.Close() }

// frameReader reads the tar from frame cur on, decoding each frame on its
// own and checking that it gives exactly the bytes the seek table says.
type frameReader struct {
	f    *File
	name string // the entry being read, for messages
	dec  *zstd.Decoder
	cur  int   // the frame being read
	n    int64 // bytes of it read so far
	done bool  // frame cur is read to its end
	err  error
}

func (f *File) newFrameReader(name string, frame int) (*frameReader, error) {
	dec, err := zstd.NewReader(nil, f.decoderOptions()...)
	if err != nil {
		return nil, fmt.Errorf("archive entry %s: zstd: %w", name, err)
	}
	r := &frameReader{f: f, name: name, dec: dec}
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
	if err := r.dec.Reset(io.NewSectionReader(r.f.ra, fr.offset, fr.size)); err != nil {
		return fmt.Errorf("archive entry %s: frame %d (offset %d): %w", r.name, i, fr.offset, explain(err))
	}
	r.cur, r.n, r.done = i, 0, false
	return nil
}

// Read implements io.Reader: the frames' bytes, one after the other.
func (r *frameReader) Read(p []byte) (int, error) {
	for r.err == nil {
		if r.done {
			if r.err = r.open(r.cur + 1); r.err != nil {
				break
			}
		}
		n, err := r.dec.Read(p)
		if r.err = r.account(n, err); r.err != nil || n > 0 {
			return n, r.err
		}
	}
	return 0, r.err
}

// account records n bytes read from the current frame and the decoder's
// error: at the frame's end, its size is checked.
func (r *frameReader) account(n int, err error) error {
	fr := r.f.frames[r.cur]
	r.n += int64(n)
	switch {
	case r.n > fr.tarSize || (err == io.EOF && r.n != fr.tarSize):
		return fmt.Errorf("archive entry %s: frame %d (offset %d) decompresses to %d bytes or more, the seek table says %d: the seek table is wrong",
			r.name, r.cur, fr.offset, r.n, fr.tarSize)
	case err == io.EOF:
		r.done = true
	case err != nil:
		return fmt.Errorf("archive entry %s: frame %d (offset %d): %w", r.name, r.cur, fr.offset, explain(err))
	}
	return nil
}

// endFrame reads the current frame to its end, so that its checksum and
// size are checked.
func (r *frameReader) endFrame() error {
	var buf [4 << 10]byte
	for r.err == nil && !r.done {
		n, err := r.dec.Read(buf[:])
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
