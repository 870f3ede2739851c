package archive

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/klauspost/compress/zstd"
)

// mixedBytes alternates random and text-like data (textBytes) in runs of
// mixedRun bytes, starting with random, so that a blob of it has frames
// of either kind and frames holding both.
func mixedBytes(seed uint64, n int) []byte {
	b := make([]byte, 0, n)
	for i := 0; len(b) < n; i++ {
		k := min(mixedRun, n-len(b))
		if i%2 == 0 {
			b = append(b, randomBytes(seed+uint64(i), k)...)
		} else {
			b = append(b, textBytes(seed+uint64(i), k)...)
		}
	}
	return b
}

const mixedRun = 96 << 10

// rawFrame is writeRawFrame's frame of src.
func rawFrame(t *testing.T, src []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	n, err := writeRawFrame(&buf, src, xxhash.Sum64(src))
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(buf.Len()) {
		t.Fatalf("%d bytes: writeRawFrame says it wrote %d, it wrote %d", len(src), n, buf.Len())
	}
	return buf.Bytes()
}

// withoutContentSize rewrites the header of a raw frame of n bytes as one
// that does not state the content size: Single_Segment_flag clear, a
// Window_Descriptor, Frame_Content_Size_flag 0 (RFC 8878 section
// 3.1.1.1).
func withoutContentSize(t *testing.T, frame []byte, n int) []byte {
	t.Helper()
	h := 4 + 1 + map[byte]int{0: 1, 1: 2, 2: 4, 3: 8}[frame[4]>>6]
	windowLog := 10
	for 1<<windowLog < n {
		windowLog++
	}
	out := append(bytes.Clone(frame[:4]), 1<<2, byte(windowLog-10)<<3)
	return append(out, frame[h:]...)
}

// decoders are the two ways the package reads frames: DecodeAll as a
// stream does, and a streaming decoder as File does, with File's options.
func decodeBoth(t *testing.T, frame []byte) ([]byte, []byte, error, error) {
	t.Helper()
	opts := []zstd.DOption{zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxWindow(DefaultMaxWindow), zstd.WithDecoderMaxMemory(DefaultMaxWindow)}
	dec, err := zstd.NewReader(nil, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	all, errAll := dec.DecodeAll(frame, nil)
	sdec, err := zstd.NewReader(bytes.NewReader(frame), opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer sdec.Close()
	streamed, errStream := io.ReadAll(sdec)
	return all, streamed, errAll, errStream
}

// needTool returns the path of a command-line tool the test runs, skipping
// when it is missing except on CI, which installs it (.ci/run).
func needTool(t *testing.T, tool string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not installed; .ci/run installs it", tool)
		}
		t.Skipf("no %s on this machine", tool)
	}
	return p
}

func TestRawFrameDecodes(t *testing.T) {
	// Every Frame_Content_Size width, block counts around 128 KiB, a
	// frame of ferry's size.
	sizes := []int{0, 1, 255, 256, 1000, 65791, 65792, 128<<10 - 1, 128 << 10, 128<<10 + 1, 300 << 10, frameSize}
	var stream, want bytes.Buffer
	for _, n := range sizes {
		src := randomBytes(uint64(n), n)
		frame := rawFrame(t, src)

		// The layout, from the spec: magic, descriptor, content size,
		// a 3-byte header per block, the bytes, a 4-byte checksum.
		fcs := 4
		switch {
		case n < 256:
			fcs = 1
		case n < 65792:
			fcs = 2
		}
		blocks := max(1, (n+128<<10-1)/(128<<10))
		if want := 4 + 1 + fcs + 3*blocks + n + 4; len(frame) != want {
			t.Errorf("%d bytes: frame of %d bytes, want %d", n, len(frame), want)
		}
		if sum := binary.LittleEndian.Uint32(frame[len(frame)-4:]); sum != uint32(xxhash.Sum64(src)) {
			t.Errorf("%d bytes: checksum %08x, want the low 32 bits of XXH64 %016x", n, sum, xxhash.Sum64(src))
		}
		var h zstd.Header
		if err := h.Decode(frame); err != nil {
			t.Fatalf("%d bytes: klauspost reads no header: %v", n, err)
		}
		if !h.SingleSegment || !h.HasFCS || h.FrameContentSize != uint64(n) || !h.HasCheckSum || h.DictionaryID != 0 ||
			!h.FirstBlock.OK || h.FirstBlock.Compressed || h.FirstBlock.Last != (blocks == 1) {
			t.Errorf("%d bytes: header %+v", n, h)
		}
		if fs := walkFrames(t, frame); len(fs) != 1 || !fs[0].raw || fs[0].size != len(frame) {
			t.Errorf("%d bytes: walking the blocks gives %+v", n, fs)
		}

		noSize := withoutContentSize(t, frame, n)
		for _, f := range [][]byte{frame, noSize} {
			all, streamed, errAll, errStream := decodeBoth(t, f)
			if errAll != nil || errStream != nil || !bytes.Equal(all, src) || !bytes.Equal(streamed, src) {
				t.Errorf("%d bytes (content size stated: %v): DecodeAll %v, stream %v; same bytes: %v, %v",
					n, len(f) == len(frame), errAll, errStream, bytes.Equal(all, src), bytes.Equal(streamed, src))
			}
			stream.Write(f)
			want.Write(src)
		}
	}

	// The zstd CLI reads all of them, one after the other.
	zstdCLI := needTool(t, "zstd")
	file := filepath.Join(t.TempDir(), "raw.zst")
	if err := os.WriteFile(file, stream.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(zstdCLI, "-d", "-c", "-q", file).Output()
	if err != nil {
		t.Fatalf("zstd -d: %v", err)
	}
	if !bytes.Equal(out, want.Bytes()) {
		t.Fatalf("zstd -d gives %d bytes, not the %d written", len(out), want.Len())
	}
}

func TestRawFrameDamageIsCaught(t *testing.T) {
	src := randomBytes(9, 300<<10)
	frame := rawFrame(t, src)
	zstdCLI := needTool(t, "zstd")
	dir := t.TempDir()
	for name, damage := range map[string]func(f []byte) []byte{
		"a byte of the second block": func(f []byte) []byte { f[len(f)/2] ^= 0x20; return f },
		"a byte of the checksum":     func(f []byte) []byte { f[len(f)-2] ^= 1; return f },
		"the content size, one less": func(f []byte) []byte { f[5]--; return f }, // 4-byte FCS, little-endian
		"the last byte missing":      func(f []byte) []byte { return f[:len(f)-1] },
		"a block header's size":      func(f []byte) []byte { f[6+4] ^= 0x08; return f }, // first block: 1 byte shorter or longer
	} {
		bad := damage(bytes.Clone(frame))
		_, _, errAll, errStream := decodeBoth(t, bad)
		if errAll == nil || errStream == nil {
			t.Errorf("%s: DecodeAll %v, stream %v; want both to fail", name, errAll, errStream)
		}
		if name == "a byte of the second block" && (!errors.Is(errAll, zstd.ErrCRCMismatch) || !errors.Is(errStream, zstd.ErrCRCMismatch)) {
			t.Errorf("%s: %v, %v; want zstd.ErrCRCMismatch", name, errAll, errStream)
		}
		file := filepath.Join(dir, "bad.zst")
		if err := os.WriteFile(file, bad, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := exec.Command(zstdCLI, "-t", "-q", file).Run(); err == nil {
			t.Errorf("%s: zstd -t accepts it", name)
		}
	}
}

func TestCompressible(t *testing.T) {
	sampler, err := newSampler(1)
	if err != nil {
		t.Fatal(err)
	}
	const n = frameSize
	random := randomBytes(1, n)
	text := textBytes(1, n)
	// Random bytes framed as a blob's first frame is: a tar header (the
	// fixture's) first; and as the archive's last: the end marker.
	withEdges := bytes.Clone(random)
	copy(withEdges, unzstd(t, newFixture(t, fixtureOptions{}).write(t, WriterOptions{}, nil))[:512])
	clear(withEdges[n-1024:])
	// Text in one place only, where the second sample lies.
	textInside := bytes.Clone(random)
	copy(textInside[3*n/8-20<<10:], text[:40<<10])
	// Text beside the samples only: nothing sampled shrinks.
	textBeside := bytes.Clone(random)
	copy(textBeside[n/2-100<<10:], text[:64<<10])
	for _, c := range []struct {
		name string
		src  []byte
		want bool
	}{
		{"random", random, false},
		{"text", text, true},
		{"random with a tar header and end marker", withEdges, false},
		{"random with 40 KiB of text under a sample", textInside, true},
		{"random with 64 KiB of text between samples", textBeside, false},
		{"100 random bytes", random[:100], false},
		{"128 KiB random, sampled whole", random[:128<<10], false},
		{"128 KiB random and a tar header, sampled whole", withEdges[:128<<10], false},
		{"100 KiB random and 28 KiB text, sampled whole", append(bytes.Clone(random[:100<<10]), text[:28<<10]...), true},
		{"512 zero bytes", make([]byte, 512), true},
	} {
		if got, _ := compressible(sampler, c.src, nil); got != c.want {
			t.Errorf("%s: compressible %v, want %v", c.name, got, c.want)
		}
	}
}

// TestMixedFrames writes a blob that alternates random and text-like runs
// in frames of 64 KiB: frames of random bytes only are Raw, frames with
// text are compressed, the bytes are the same at any concurrency, and
// every reader reads them and catches damage in a Raw frame.
func TestMixedFrames(t *testing.T) {
	const small = 64 << 10
	fx := newFixture(t, fixtureOptions{bigLayer: 10*small + 20*512, mixed: true})
	for _, level := range []Level{Default, Best} {
		ref := fx.writeFrames(t, WriterOptions{Level: level, Concurrency: 1}, small, nil)
		for _, c := range []int{2, 3, 8} {
			if got := fx.writeFrames(t, WriterOptions{Level: level, Concurrency: c}, small, nil); !bytes.Equal(got, ref) {
				t.Errorf("%s, concurrency %d: %d bytes differ from concurrency 1's %d", level, c, len(got), len(ref))
			}
		}
	}
	// At better and best, klauspost's encoder entropy-codes literals even
	// when it finds no match, so a frame of half random, half text bytes
	// comes out compressed (at default and fastest it may come out as Raw
	// blocks too: the encoder's own, not this package's choice).
	ref := fx.writeFrames(t, WriterOptions{Level: Better, Concurrency: 2}, small, nil)

	// Which frames are Raw: those of the big blob holding random runs
	// only; the ones with any text are compressed. (The blob's size is a
	// multiple of 512, so its last frame holds no tar padding.)
	big := fx.bigBlob(t)
	first, locs := blobFrames(t, ref, big)
	walked := walkFrames(t, ref)
	pos := int64(-512) // where each frame starts in the blob's bytes (its first holds the tar header)
	raws, compressed := 0, 0
	for i := first; pos < int64(len(big.b)); i++ {
		fr, w := locs[i], walked[i]
		if w.offset != int(fr.offset) || w.size != int(fr.size) {
			t.Fatalf("frame %d: walked at %d+%d, the seek table says %d+%d", i, w.offset, w.size, fr.offset, fr.size)
		}
		lo, hi := max(pos, 0), min(pos+fr.tarSize, int64(len(big.b)))
		pos += fr.tarSize
		text := int64(0) // bytes of text runs in the frame
		for r := lo / mixedRun; r*mixedRun < hi; r++ {
			if r%2 == 1 {
				text += min(hi, (r+1)*mixedRun) - max(lo, r*mixedRun)
			}
		}
		// A frame of random bytes and a sliver of text (512 bytes) is not
		// worth compressing either; one with a quarter of text is.
		if text < fr.tarSize/16 && !w.raw || text >= fr.tarSize/4 && w.raw {
			t.Errorf("frame %d (blob bytes %d-%d, %d of text): raw %v", i, lo, hi, text, w.raw)
		}
		if w.raw {
			raws++
			if fr.size-fr.tarSize > 32 {
				t.Errorf("raw frame %d: %d bytes for %d", i, fr.size, fr.tarSize)
			}
		} else {
			compressed++
			if fr.size >= fr.tarSize {
				t.Errorf("compressed frame %d: %d bytes for %d", i, fr.size, fr.tarSize)
			}
		}
	}
	if raws < 3 || compressed < 3 {
		t.Fatalf("%d raw and %d compressed frames in the blob; the test wants several of each", raws, compressed)
	}
	if walked[0].raw {
		t.Error("the head's frame is raw")
	}

	// Every reader: the stream, the seekable file, ranges across frames
	// of both kinds, the zstd CLI.
	_, blobs, err := readArchive(ref, ReaderOptions{})
	if err != nil || len(blobs) != len(fx.blobs) {
		t.Fatalf("read: %v, %d blobs", err, len(blobs))
	}
	for i, b := range blobs {
		if !bytes.Equal(b.b, fx.blobs[i].b) {
			t.Errorf("blob %s: other bytes", b.d)
		}
	}
	f := openBytes(t, ref)
	v, err := f.VerifyBlob(t.Context(), big.d)
	if err != nil {
		t.Fatal(err)
	}
	for off := int64(small - 512 - 700); off < int64(len(big.b)); off += small {
		n := min(1400, int64(len(big.b))-off)
		if got, err := readRange(v, off, n); err != nil || !bytes.Equal(got, big.b[off:off+n]) {
			t.Errorf("range %d+%d: %v, same bytes %v", off, n, err, bytes.Equal(got, big.b[off:off+n]))
		}
	}
	file := filepath.Join(t.TempDir(), "a.tar.zst")
	if err := os.WriteFile(file, ref, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(needTool(t, "zstd"), "-d", "-c", "-q", file).Output()
	if err != nil || !bytes.Equal(out, unzstd(t, ref)) {
		t.Fatalf("zstd -d: %v; same tar: %v", err, bytes.Equal(out, unzstd(t, ref)))
	}

	// A flipped byte in a Raw frame of the blob: each reader names it.
	bad := bytes.Clone(ref)
	i := first
	for !walked[i].raw {
		i++
	}
	bad[walked[i].offset+walked[i].size/2] ^= 0x20
	name := "blobs/sha256/" + big.d.Hex
	_, _, err = readArchive(bad, ReaderOptions{})
	wantErr(t, err, name, "corrupt")
	_, err = openBytes(t, bad).VerifyBlob(t.Context(), big.d)
	wantErr(t, err, name)
	rc, err := openBytes(t, bad).Blob(big.d)
	if err == nil {
		_, err = io.ReadAll(rc)
		rc.Close()
	}
	wantErr(t, err, name)
}

// TestBestLeavesItsEncoderAlone writes at the best level and counts what
// is allocated: incompressible frames never build the level's encoder,
// whose tables alone are 34 MiB, and neither do small frames (the head and
// configs of an export), which better's encoder compresses; large frames
// of text (the plain case) build it.
func TestBestLeavesItsEncoderAlone(t *testing.T) {
	const n = 2 * frameSize
	alloc := func(data []byte, frame int) uint64 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		fw, err := newFrameWriter(io.Discard, Best, 1, frameSize)
		if err != nil {
			t.Fatal(err)
		}
		for off := 0; off < len(data); off += frame {
			if _, err := fw.Write(data[off:min(off+frame, len(data))]); err != nil {
				t.Fatal(err)
			}
			fw.endFrame()
		}
		if err := fw.Close(); err != nil {
			t.Fatal(err)
		}
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}
	random, text := randomBytes(1, n), textBytes(1, n)
	r, s, x := alloc(random, frameSize), alloc(text[:16*smallFrame], smallFrame), alloc(text, frameSize)
	t.Logf("allocated at best: %d MiB of random bytes %d MiB, 16 small frames of text %d MiB, %d MiB of text %d MiB",
		n>>20, r>>20, s>>20, n>>20, x>>20)
	// Random: the two jobs' 4 MiB frames and the sampler's few hundred
	// KiB; small frames: those and better's encoder (4.5 MiB of tables,
	// its 4 MiB window); text: those and best's encoder (34 MiB of
	// tables, its window, the output buffers).
	if r > 12<<20 {
		t.Errorf("random data at best allocates %d MiB", r>>20)
	}
	if s > r+12<<20 {
		t.Errorf("small frames of text at best allocate %d MiB", s>>20)
	}
	if x < r+34<<20 {
		t.Errorf("large frames of text at best allocate %d MiB, random ones %d MiB: the measure misses the encoder", x>>20, r>>20)
	}
}

// TestBestCompressesSmallFramesAsBetter: frames up to smallFrame are the
// same bytes at best and better, larger ones are not.
func TestBestCompressesSmallFramesAsBetter(t *testing.T) {
	fx := newFixture(t, fixtureOptions{bigLayer: 5 << 20})
	if best, better := fx.writeFrames(t, WriterOptions{Level: Best}, smallFrame, nil),
		fx.writeFrames(t, WriterOptions{Level: Better}, smallFrame, nil); !bytes.Equal(best, better) {
		t.Errorf("frames of %d bytes: best gives %d bytes, better %d", smallFrame, len(best), len(better))
	}
	if best, better := fx.write(t, WriterOptions{Level: Best}, nil), fx.write(t, WriterOptions{Level: Better}, nil); len(best) >= len(better) {
		t.Errorf("frames of %d bytes: best gives %d bytes, better %d", frameSize, len(best), len(better))
	}
}
