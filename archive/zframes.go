package archive

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
)

// A Reader decodes a zstd stream one frame at a time, each frame handed
// to the decoder on its own, found by walking its structure (header, block
// headers, checksum) as its bytes go by: no byte is read twice. It records
// where each frame ends and how much tar it holds, which the seek table at
// the end of the archive must repeat frame by frame. A blob's range reads
// (File.VerifyBlob, serve) decode each frame the seek table lists on its
// own and rely on its sizes; verify, which reads everything front to back,
// checks them all this way, without a second pass (CheckTrailer).

// frameExtent is one frame of a zstd stream as a Reader found it: its
// compressed size and the bytes of tar it holds (0 for a skippable frame).
type frameExtent struct {
	size, tarSize int64
}

// maxHeadFrames bounds the frames recorded before the head is read, when
// nothing yet bounds them: a stream of empty frames could otherwise keep
// a Reader recording without end. A ferry archive's head is in frames of
// megabytes.
const maxHeadFrames = 1 << 20

// frameStream is the decompressed stream of a zstd stream, frame by frame.
type frameStream struct {
	src io.Reader
	dec *zstd.Decoder
	cut *frameCut // the frame being decoded; nil between frames
	out int64     // bytes it has given so far
	err error

	// frames are the frames read so far, at most max of them: past that,
	// overflow is set and no more are recorded.
	frames   []frameExtent
	max      int
	overflow bool
}

func newFrameStream(src io.Reader, dec *zstd.Decoder) *frameStream {
	return &frameStream{src: src, dec: dec, max: maxHeadFrames}
}

// Read implements io.Reader.
func (s *frameStream) Read(p []byte) (int, error) {
	for s.err == nil {
		if s.cut == nil {
			cut, err := s.nextFrame()
			if err != nil {
				s.err = err
				break
			}
			// A frame of its own for each decoder: one reading ahead may
			// still hold the last one.
			if err := s.dec.Reset(cut); err != nil {
				s.err = err
				break
			}
			s.cut, s.out = cut, 0
		}
		n, err := s.dec.Read(p)
		s.out += int64(n)
		switch {
		case err == io.EOF:
			if !s.cut.ended() {
				// Cannot happen: the decoder reads a frame to its end.
				s.err = fmt.Errorf("zstd: the decoder stopped %d bytes into a frame", s.cut.n)
				break
			}
			s.record(frameExtent{size: s.cut.n, tarSize: s.out})
			s.cut = nil
		case err != nil:
			s.err = err
		}
		if n > 0 || s.err != nil {
			return n, s.err
		}
	}
	return 0, s.err
}

// nextFrame reads up to the next zstd frame, recording the skippable
// frames before it, and returns it; io.EOF at the end of the stream.
func (s *frameStream) nextFrame() (*frameCut, error) {
	for {
		var hdr [maxFrameHeader]byte
		if n, err := io.ReadFull(s.src, hdr[:4]); err != nil {
			if err == io.EOF && n == 0 {
				return nil, io.EOF
			}
			return nil, unexpected(err)
		}
		magic := binary.LittleEndian.Uint32(hdr[:])
		if magic&0xfffffff0 == 0x184D2A50 {
			if _, err := io.ReadFull(s.src, hdr[4:8]); err != nil {
				return nil, unexpected(err)
			}
			size := int64(binary.LittleEndian.Uint32(hdr[4:]))
			if n, err := io.CopyN(io.Discard, s.src, size); n != size {
				return nil, unexpected(err)
			}
			s.record(frameExtent{size: skippableHeaderSize + size})
			continue
		}
		if magic != binary.LittleEndian.Uint32(zstdMagic) {
			return nil, fmt.Errorf("%w (%#x)", zstd.ErrMagicMismatch, magic)
		}
		if _, err := io.ReadFull(s.src, hdr[4:5]); err != nil {
			return nil, unexpected(err)
		}
		// Frame_Header_Descriptor (RFC 8878 section 3.1.1.1.1): the
		// fields that follow it and their sizes.
		fhd := hdr[4]
		single := fhd&(1<<5) != 0
		n := 5 + [4]int{0, 1, 2, 4}[fhd&3] + [4]int{0, 2, 4, 8}[fhd>>6]
		if single && fhd>>6 == 0 {
			n++ // a one-byte Frame_Content_Size
		}
		if !single {
			n++ // Window_Descriptor
		}
		if _, err := io.ReadFull(s.src, hdr[5:n]); err != nil {
			return nil, unexpected(err)
		}
		cut := &frameCut{src: s.src, checksum: fhd&(1<<2) != 0, n: int64(n)}
		cut.pend = append(cut.buf[:0], hdr[:n]...)
		return cut, nil
	}
}

// record adds f to the frames, unless there are already max of them.
func (s *frameStream) record(f frameExtent) {
	if len(s.frames) >= s.max {
		s.overflow = true
		return
	}
	s.frames = append(s.frames, f)
}

// bound records at most max frames from now on.
func (s *frameStream) bound(max int64) {
	s.max = int(min(max, maxSeekFrames+1))
	if len(s.frames) > s.max {
		s.frames, s.overflow = nil, true
	}
}

// maxFrameHeader is the longest zstd frame header: magic number,
// descriptor, window descriptor, dictionary ID and content size.
const maxFrameHeader = 4 + 1 + 1 + 4 + 8

// unexpected is err for a stream cut short inside a frame.
func unexpected(err error) error {
	if err == nil || err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// frameCut is one zstd frame of src, as a reader that ends where the
// frame ends: what the decoder reads. It hands on the frame header first
// (read by frameStream.nextFrame), then each block header and the block's
// bytes, then the checksum.
type frameCut struct {
	src      io.Reader
	buf      [maxFrameHeader]byte
	pend     []byte // read from src, not yet handed on
	left     int64  // bytes of the current block not yet handed on
	state    cutState
	checksum bool  // the frame ends with a content checksum
	n        int64 // the frame's bytes read so far
}

type cutState int

const (
	cutBlock    cutState = iota // a block header is next
	cutChecksum                 // the checksum is next
	cutEnd                      // the frame has ended
)

// ended reports whether the frame has been read to its end.
func (c *frameCut) ended() bool { return c.state == cutEnd && len(c.pend) == 0 && c.left == 0 }

// Read implements io.Reader.
func (c *frameCut) Read(p []byte) (int, error) {
	for {
		if len(c.pend) > 0 {
			n := copy(p, c.pend)
			c.pend = c.pend[n:]
			return n, nil
		}
		if c.left > 0 {
			if int64(len(p)) > c.left {
				p = p[:c.left]
			}
			n, err := c.src.Read(p)
			c.left -= int64(n)
			c.n += int64(n)
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return n, err
		}
		switch c.state {
		case cutBlock:
			// Block_Header (RFC 8878 section 3.1.1.2): Last_Block,
			// Block_Type, Block_Size; an RLE block holds one byte.
			if _, err := io.ReadFull(c.src, c.buf[:3]); err != nil {
				return 0, unexpected(err)
			}
			h := uint32(c.buf[0]) | uint32(c.buf[1])<<8 | uint32(c.buf[2])<<16
			switch size := int64(h >> 3); (h >> 1) & 3 {
			case 0, 2: // Raw, Compressed
				c.left = size
			case 1: // RLE
				c.left = 1
			default:
				return 0, zstd.ErrReservedBlockType
			}
			c.pend, c.n = c.buf[:3], c.n+3
			if h&1 == 0 {
				break
			}
			c.state = cutEnd
			if c.checksum {
				c.state = cutChecksum
			}
		case cutChecksum:
			if _, err := io.ReadFull(c.src, c.buf[:4]); err != nil {
				return 0, unexpected(err)
			}
			c.pend, c.n, c.state = c.buf[:4], c.n+4, cutEnd
		default:
			return 0, io.EOF
		}
	}
}

// checkFrameExtents checks the frames a Reader recorded (the seek table's
// own last) against the seek table's frames (the table of contents last):
// one by one, the same compressed size and the same bytes of tar. A
// File's range reads rely on each; the sums alone would let sizes move
// from frame to frame.
func checkFrameExtents(read []frameExtent, overflow bool, frames []frameLoc) error {
	if overflow || len(read) != len(frames)+1 {
		n := fmt.Sprint(len(read))
		if overflow {
			n = "more"
		}
		return fmt.Errorf("seek table: lists %d frames and itself, the archive has %s", len(frames), n)
	}
	for i, f := range frames {
		if r := read[i]; r.size != f.size || r.tarSize != f.tarSize {
			return fmt.Errorf("seek table: frame %d (offset %d) is %d bytes holding %d bytes of tar, the seek table says %d bytes holding %d",
				i, f.offset, r.size, r.tarSize, f.size, f.tarSize)
		}
	}
	return nil
}
