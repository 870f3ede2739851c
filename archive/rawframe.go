package archive

import (
	"encoding/binary"
	"io"

	"github.com/klauspost/compress/zstd"
)

// A frame of bytes that zstd cannot shrink (most of an export: gzip layers
// are random bytes to it) is stored as a zstd frame of Raw blocks, written
// here rather than by the encoder: klauspost's encoder would search the
// whole frame for matches and only then emit the same Raw blocks, at about
// a CPU-second per GiB at the default level and several at best. A Raw
// frame is a plain zstd frame (RFC 8878, section 3.1.1) that every decoder
// reads, with the same content checksum as the encoder's frames.

// maxRawBlock is the most a block may hold (Block_Maximum_Size, RFC 8878
// section 3.1.1.2.3: the smaller of 128 KiB and the window, which is the
// frame's content size here).
const maxRawBlock = 128 << 10

// appendRawFrameHeader appends the header of a frame of n bytes in Raw
// blocks: the magic number, then a Frame_Header_Descriptor with
// Single_Segment_flag (the window is the content size, so no
// Window_Descriptor follows) and Content_Checksum_flag set and no
// dictionary, then Frame_Content_Size in the fewest bytes it fits
// (RFC 8878 section 3.1.1.1).
func appendRawFrameHeader(dst []byte, n int) []byte {
	const singleSegment, checksum = 1 << 5, 1 << 2
	size := uint64(n)
	dst = append(dst, zstdMagic...)
	switch {
	case size < 256: // Frame_Content_Size_flag 0: one byte
		dst = append(dst, singleSegment|checksum, byte(size))
	case size < 256+1<<16: // flag 1: two bytes, offset by 256
		dst = append(dst, 1<<6|singleSegment|checksum)
		dst = binary.LittleEndian.AppendUint16(dst, uint16(size-256))
	case size < 1<<32: // flag 2: four bytes
		dst = append(dst, 2<<6|singleSegment|checksum)
		dst = binary.LittleEndian.AppendUint32(dst, uint32(size))
	default: // flag 3: eight bytes
		dst = append(dst, 3<<6|singleSegment|checksum)
		dst = binary.LittleEndian.AppendUint64(dst, size)
	}
	return dst
}

// appendRawBlockHeader appends the 3-byte header of a Raw block of n bytes
// (RFC 8878 section 3.1.1.2.1: Last_Block in bit 0, Block_Type 0 in bits
// 1-2, Block_Size in bits 3-23).
func appendRawBlockHeader(dst []byte, n int, last bool) []byte {
	h := uint32(n) << 3
	if last {
		h |= 1
	}
	return append(dst, byte(h), byte(h>>8), byte(h>>16))
}

// writeRawFrame writes src to w as one zstd frame of Raw blocks ending with
// the content checksum, the low 4 bytes of sum, which must be
// xxhash.Sum64(src) (computed by the caller, so that it runs on the
// compressing goroutines rather than the one writing). It writes src in
// place, each block followed by the next one's header, rather than copy it
// into a buffer of its own: that costs a few more writes per frame, not a
// second frame-sized buffer per job. It returns the number of bytes
// written.
func writeRawFrame(w io.Writer, src []byte, sum uint64) (int64, error) {
	var buf [20]byte // the longest header (14) and a block header, or a block header and the checksum
	p := appendRawFrameHeader(buf[:0], len(src))
	var written int64
	for {
		n := min(len(src), maxRawBlock)
		last := n == len(src)
		p = appendRawBlockHeader(p, n, last)
		for _, b := range [][]byte{p, src[:n]} {
			if len(b) == 0 {
				continue
			}
			k, err := w.Write(b)
			written += int64(k)
			if err != nil {
				return written, err
			}
		}
		src = src[n:]
		p = buf[:0]
		if last {
			break
		}
	}
	k, err := w.Write(binary.LittleEndian.AppendUint32(p, uint32(sum)))
	return written + int64(k), err
}

// Sampling decides, from a frame's bytes alone (never from timing), whether
// it is worth compressing: samplesPerFrame slices of sampleSize bytes, each
// centred in an equal part of the frame (the whole frame if it is no
// longer than their sum), are compressed by a small encoder of its own at
// the fastest level, and the frame is compressed only if they shrink by at
// least 1/minGain of their size.
//
// Centred samples miss the frame's edges, where a tar header (first 512
// bytes of a blob's frame) or the tar's end marker (1 KiB of zeros) would
// make random bytes look compressible, and four of them see text that a
// frame holds in places only (an uncompressed layer mixing media and
// text). The sampler entropy-codes literals even where it finds no match:
// its fastest level gives up searching after a stretch of random bytes
// (it skips ahead ever faster), so a frame half random, half text would
// otherwise look incompressible to it.
//
// 1/64 (1.6%) lies above what a sample of random bytes shows (zstd's own
// frame and block headers make it grow; a tar header would be under 0.4%
// of the samples) and below what mildly compressible data shows (a PNG
// screenshot: 2-3% at the fastest level). A frame stored raw because of it
// loses at most that margin at fastest, a little more at best (a PNG the
// fastest level cannot shrink at all, best shrinks by 3%), while its
// compression would have cost 1-7 CPU-seconds per GiB. What sampling
// cannot see is a repeat further apart than a sample's length (an
// uncompressed layer holding the same compressed file twice within one
// 4 MiB frame): such a frame is stored raw.
//
// BenchmarkSampling measures the cost: about 0.1 ms per 4 MiB frame of
// random bytes (four samples), 0.25 ms for text (one sample: it shrinks
// enough at once).
const (
	sampleSize      = 32 << 10
	samplesPerFrame = 4
	minGain         = 64
)

// newSampler returns the encoder sampling uses: the fastest level, a
// window as large as the largest sample (a whole frame up to
// samplesPerFrame × sampleSize), concurrency encoders of a few hundred KiB
// each.
func newSampler(concurrency int) (*zstd.Encoder, error) {
	return zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstd.SpeedFastest),
		zstd.WithEncoderConcurrency(concurrency),
		zstd.WithEncoderCRC(false),
		zstd.WithAllLitEntropyCompression(true),
		zstd.WithWindowSize(windowFor(samplesPerFrame*sampleSize)),
		zstd.WithLowerEncoderMem(true))
}

// compressible reports whether src is worth compressing, by sampling it
// with enc (newSampler); scratch is a buffer for the samples' output,
// returned for reuse.
func compressible(enc *zstd.Encoder, src, scratch []byte) (bool, []byte) {
	if len(src) <= samplesPerFrame*sampleSize {
		scratch = enc.EncodeAll(src, scratch[:0])
		return len(scratch) <= len(src)-len(src)/minGain, scratch
	}
	const (
		in = samplesPerFrame * sampleSize
		// A sample's frame is at most this much longer than the sample
		// (its header without checksum, one Raw block's header).
		growth = 4 + 1 + 1 + 4 + 3
	)
	saved := 0
	for i := range samplesPerFrame {
		centre := (2*i + 1) * len(src) / (2 * samplesPerFrame)
		scratch = enc.EncodeAll(src[centre-sampleSize/2:centre+sampleSize/2], scratch[:0])
		saved += sampleSize - len(scratch)
		// Compressible data shows it in its first sample: stop when
		// the samples left, at their worst, could not change the answer.
		if saved-(samplesPerFrame-1-i)*growth >= in/minGain {
			return true, scratch
		}
	}
	return false, scratch
}
