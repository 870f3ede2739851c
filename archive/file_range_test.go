package archive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
)

// bigBlob returns the seekable fixture's blob that spans several frames.
func (fx *fixture) bigBlob(t *testing.T) testBlob {
	t.Helper()
	for _, b := range fx.blobs {
		if len(b.b) > 256<<10 {
			return b
		}
	}
	t.Fatal("the fixture has no blob of several frames")
	return testBlob{}
}

func openBytes(t *testing.T, data []byte) *File {
	t.Helper()
	f, err := OpenFile(bytes.NewReader(data), int64(len(data)), ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func readRange(v *VerifiedBlob, off, n int64) ([]byte, error) {
	rc, err := v.Range(off, n)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func TestVerifiedBlobReadsAnyRange(t *testing.T) {
	fx, data := seekableFixture(t)
	f := openBytes(t, data)
	var wg sync.WaitGroup
	for _, b := range fx.blobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := f.VerifyBlob(t.Context(), b.d)
			if err != nil {
				t.Errorf("blob %s: %v", b.d, err)
				return
			}
			size := int64(len(b.b))
			if v.Size() != size || v.Digest() != b.d {
				t.Errorf("blob %s: VerifiedBlob says %s, %d bytes", b.d, v.Digest(), v.Size())
			}
			// Offsets on both sides of every 64 KiB frame boundary of the
			// tar (the blob's bytes start 512 bytes into its first frame),
			// the first and the last byte, and lengths that cross frames.
			const frame = 64 << 10
			offsets := []int64{0, 1, size / 2, size - 1}
			for k := int64(1); k*frame < size+512; k++ {
				offsets = append(offsets, k*frame-512-1, k*frame-512, k*frame-512+1)
			}
			for _, off := range offsets {
				if off < 0 || off >= size {
					continue
				}
				for _, n := range []int64{1, 100, frame + 7, size - off} {
					n = min(n, size-off)
					got, err := readRange(v, off, n)
					if err != nil || !bytes.Equal(got, b.b[off:off+n]) {
						t.Errorf("blob %s: %d bytes at %d: %v; the bytes differ: %v", b.d, n, off, err, !bytes.Equal(got, b.b[off:off+n]))
					}
				}
			}
			if got, err := readRange(v, size, 0); err != nil || len(got) != 0 {
				t.Errorf("blob %s: empty range at the end: %v, %d bytes", b.d, err, len(got))
			}
			for _, r := range [][2]int64{{-1, 1}, {0, size + 1}, {size, 1}, {1, -1}} {
				if _, err := v.Range(r[0], r[1]); err == nil {
					t.Errorf("blob %s: range %d+%d outside %d bytes accepted", b.d, r[0], r[1], size)
				}
			}
		}()
	}
	wg.Wait()
	if _, err := f.VerifyBlob(t.Context(), digestOf([]byte("not in the archive"))); err == nil {
		t.Error("VerifyBlob of an unknown digest: no error")
	}
}

func TestVerifyBlobStopsWithTheContext(t *testing.T) {
	fx, data := seekableFixture(t)
	f := openBytes(t, data)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := f.VerifyBlob(ctx, fx.bigBlob(t).d); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v, want context.Canceled", err)
	}
}

// spliceFrame returns data with tar frame i replaced by frame, the seek
// table rewritten to match (its compressed size) and the table of contents
// unchanged.
func spliceFrame(t *testing.T, data []byte, i int, frame []byte) []byte {
	t.Helper()
	frames, err := readSeekTable(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	toc := frames[len(frames)-1]
	fr := frames[i]
	out := bytes.Clone(data[:fr.offset])
	out = append(out, frame...)
	out = append(out, data[fr.offset+fr.size:toc.offset+toc.size]...)
	var table []seekEntry
	for _, f := range frames {
		table = append(table, seekEntry{compressed: uint32(f.size), decompressed: uint32(f.tarSize)})
	}
	table[i].compressed = uint32(len(frame))
	return append(out, encodeSeekTable(table)...)
}

// blobFrames returns the index of the big blob's first frame and the
// frames of the file.
func blobFrames(t *testing.T, data []byte, b testBlob) (int, []frameLoc) {
	t.Helper()
	frames, toc := trailerOf(t, data)
	for _, e := range toc {
		if e.Digest == b.d {
			return e.Frame, frames
		}
	}
	t.Fatalf("blob %s is not in the table of contents", b.d)
	return 0, nil
}

func TestVerifyBlobRefusesDamage(t *testing.T) {
	fx, data := seekableFixture(t)
	big := fx.bigBlob(t)
	first, frames := blobFrames(t, data, big)
	name := "blobs/sha256/" + big.d.Hex
	verify := func(b []byte) error {
		_, err := openBytes(t, b).VerifyBlob(t.Context(), big.d)
		return err
	}
	if err := verify(spliceFrame(t, data, first+2, data[frames[first+2].offset:frames[first+2].offset+frames[first+2].size])); err != nil {
		t.Fatalf("spliced unchanged: %v", err)
	}

	// A flipped byte: the frame's zstd checksum catches it.
	flipped := bytes.Clone(data)
	flipped[frames[first+2].offset+frames[first+2].size/2] ^= 0x20
	wantErr(t, verify(flipped), name)

	// Other content in a valid frame (a frame re-made around one changed
	// byte, as a tool rewriting the archive would): only the digest
	// catches it, and Blob agrees.
	fr := frames[first+2]
	plain, err := unzstdErr(data[fr.offset : fr.offset+fr.size])
	if err != nil {
		t.Fatal(err)
	}
	plain[len(plain)/2] ^= 0x20
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderCRC(true))
	if err != nil {
		t.Fatal(err)
	}
	other := spliceFrame(t, data, first+2, enc.EncodeAll(plain, nil))
	wantErr(t, verify(other), name, "digest", big.d.String())
	rc, err := openBytes(t, other).Blob(big.d)
	if err == nil {
		_, err = io.ReadAll(rc)
		rc.Close()
	}
	wantErr(t, err, name, "digest")

	// A seek table whose decompressed sizes are shifted between two of
	// the blob's frames (the compressed sizes, which OpenFile checks, are
	// right): ranges computed from it would point at other bytes.
	shifted := withTrailer(t, data, nil, func(s []seekEntry) {
		s[first+1].decompressed += 512
		s[first+2].decompressed -= 512
	})
	wantErr(t, verify(shifted), name, "seek table is wrong")

}

// TestVerifyBlobRefusesAnotherEntryOfItsSize: a table of contents that
// points each of two blobs of one size at the other's frame passes
// OpenFile's checks (every blob listed once, at its size, frames in
// order). The tar header each frame starts names the other blob: VerifyBlob
// and Blob refuse it there, saying the table of contents is wrong, before
// reading any byte of the other blob.
func TestVerifyBlobRefusesAnotherEntryOfItsSize(t *testing.T) {
	cfg := newBlob(types.DockerConfigJSON, []byte(`{"config":{}}`))
	layer := newBlob(types.DockerLayer, []byte("thirteen byte"))
	if len(cfg.b) != len(layer.b) {
		t.Fatalf("the config has %d bytes, the layer %d: want one size", len(cfg.b), len(layer.b))
	}
	data := tinyArchiveOf(t, cfg, layer)
	swapped := withTrailer(t, data, func(b []tocBlob) []tocBlob {
		if len(b) != 2 {
			t.Fatalf("table of contents of %d blobs, want the config and the layer", len(b))
		}
		b[0].Digest, b[1].Digest = b[1].Digest, b[0].Digest
		return b
	}, nil)
	f := openBytes(t, swapped)
	for _, b := range []testBlob{cfg, layer} {
		name := "blobs/sha256/" + b.d.Hex
		_, err := f.VerifyBlob(t.Context(), b.d)
		wantErr(t, err, name, "starts entry", "the table of contents is wrong")
		_, err = f.Blob(b.d)
		wantErr(t, err, name, "starts entry", "the table of contents is wrong")
	}
	// The archive as written reads.
	for _, b := range []testBlob{cfg, layer} {
		if _, err := openBytes(t, data).VerifyBlob(t.Context(), b.d); err != nil {
			t.Errorf("blob %s of the sound archive: %v", b.d, err)
		}
	}
}

// readChecked reads n bytes at off as serve does: each frame the range
// touches is read to its end and checked before any of its bytes is given.
func readChecked(v *VerifiedBlob, off, n int64) error {
	rc, err := v.Range(off, n)
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = io.ReadAll(rc)
	return err
}

// changingFile is a file whose bytes a test replaces while it is open, as
// `cp` over an archive being served rewrites it in place.
type changingFile struct {
	mu   sync.Mutex
	data []byte
}

func (c *changingFile) ReadAt(p []byte, off int64) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.NewReader(c.data).ReadAt(p, off)
}

func (c *changingFile) set(data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.data = data
}

// swapFrames returns data with frames i and j, of one compressed size,
// traded places: each is still a valid zstd frame of the sizes the seek
// table gives, with a valid checksum if it has one.
func swapFrames(t *testing.T, data []byte, frames []frameLoc, i, j int) []byte {
	t.Helper()
	a, b := frames[i], frames[j]
	if a.size != b.size || a.tarSize != b.tarSize {
		t.Fatalf("frames %d and %d differ in size (%d/%d and %d/%d bytes)", i, j, a.size, a.tarSize, b.size, b.tarSize)
	}
	out := bytes.Clone(data)
	copy(out[a.offset:a.offset+a.size], data[b.offset:b.offset+b.size])
	copy(out[b.offset:b.offset+b.size], data[a.offset:a.offset+a.size])
	return out
}

// TestVerifiedBlobRefusesAFrameSwappedAfterTheCheck: after VerifyBlob, two
// frames of the blob trade places in the file. Each passes its own zstd
// checksum and size, so only the fingerprints VerifyBlob recorded tell
// that the bytes are not the blob's: every range reading one of them
// fails, naming the entry and the frame, and never returns other bytes.
// Frames without a content checksum are fingerprinted too.
func TestVerifiedBlobRefusesAFrameSwappedAfterTheCheck(t *testing.T) {
	fx, data := seekableFixture(t)
	big := fx.bigBlob(t)
	name := "blobs/sha256/" + big.d.Hex
	first, _ := blobFrames(t, data, big)

	// Frames first+1 and first+2 re-made as frames of Raw blocks (as an
	// export stores a random layer), so that they have one compressed
	// size: with and without a content checksum.
	remade := func(crc bool) ([]byte, []frameLoc) {
		out := data
		for _, i := range []int{first + 1, first + 2} {
			fr, _ := trailerOf(t, out)
			plain, err := unzstdErr(out[fr[i].offset : fr[i].offset+fr[i].size])
			if err != nil {
				t.Fatal(err)
			}
			var raw bytes.Buffer
			if _, err := writeRawFrame(&raw, plain, xxhash.Sum64(plain)); err != nil {
				t.Fatal(err)
			}
			re := raw.Bytes()
			if !crc {
				re[4] &^= 1 << 2 // Content_Checksum_flag
				re = re[:len(re)-4]
			}
			out = spliceFrame(t, out, i, re)
		}
		fr, _ := trailerOf(t, out)
		return out, fr
	}
	withCRC, withCRCFrames := remade(true)
	noCRC, noCRCFrames := remade(false)

	for _, c := range []struct {
		what   string
		data   []byte
		frames []frameLoc
	}{{"with checksums", withCRC, withCRCFrames}, {"without checksums", noCRC, noCRCFrames}} {
		t.Run(c.what, func(t *testing.T) {
			file := &changingFile{data: c.data}
			f, err := OpenFile(file, int64(len(c.data)), ReaderOptions{})
			if err != nil {
				t.Fatal(err)
			}
			v, err := f.VerifyBlob(t.Context(), big.d)
			if err != nil {
				t.Fatal(err)
			}
			size := int64(len(big.b))
			if got, err := readRange(v, 0, size); err != nil || !bytes.Equal(got, big.b) {
				t.Fatalf("before the swap: %v", err)
			}
			file.set(swapFrames(t, c.data, c.frames, first+1, first+2))
			// Frame first+1 holds the blob's bytes from 64 KiB - 512 on
			// (its tar header takes the first 512 bytes of frame first).
			const frame = 64 << 10
			for _, r := range [][2]int64{
				{0, size},                  // the whole blob
				{frame - 512, frame},       // frame first+1 exactly
				{frame + 100, 10},          // a few bytes inside it
				{2*frame - 512 + 10, 1000}, // inside frame first+2
			} {
				wantErr(t, readChecked(v, r[0], r[1]), name, "frame", "the archive changed since the blob was checked")
			}
			// The frames not swapped still read.
			if got, err := readRange(v, 3*frame, 1000); err != nil || !bytes.Equal(got, big.b[3*frame:3*frame+1000]) {
				t.Errorf("a range of an unchanged frame: %v", err)
			}
		})
	}
}

// Frames larger than ferry writes (another writer's, or a hand-made
// archive): Range once gave the first MaxRangeFrame bytes of such a frame
// and a clean io.EOF, a short read that ferry serve took for the archive
// changing under it, marking an intact blob damaged for every client, and
// decoded the whole frame again for every MaxRangeFrame bytes given.
// CheckRanges names the frame from the seek table alone, for serve to
// refuse the archive at its start, and Range refuses it with an error.
func TestRangeRefusesFramesLargerThanItHolds(t *testing.T) {
	fx := newFixture(t, fixtureOptions{bigLayer: 3 * MaxRangeFrame, random: true})
	b := fx.bigBlob(t)

	ferrys := openBytes(t, fx.writeFrames(t, WriterOptions{Concurrency: 2}, frameSize, nil))
	if err := ferrys.CheckRanges(); err != nil {
		t.Errorf("CheckRanges of an archive of ferry's frames: %v", err)
	}

	f := openBytes(t, fx.writeFrames(t, WriterOptions{Concurrency: 2}, 8*MaxRangeFrame, nil))
	err := f.CheckRanges()
	if err == nil || !strings.Contains(err.Error(), "decompresses to") || !strings.Contains(err.Error(), fmt.Sprint(MaxRangeFrame)) {
		t.Errorf("CheckRanges of frames of %d bytes: %v; want the first one named", 8*MaxRangeFrame, err)
	}
	// The blob itself is right: its check passes, its ranges are refused.
	v, err := f.VerifyBlob(t.Context(), b.d)
	if err != nil {
		t.Fatalf("VerifyBlob: %v", err)
	}
	for _, off := range []int64{0, MaxRangeFrame + 10} {
		got, err := readRange(v, off, v.Size()-off)
		if err == nil || !strings.Contains(err.Error(), "more than") {
			t.Errorf("Range at %d of a blob in a frame of %d bytes: %d bytes, %v; want an error, never a short read", off, 8*MaxRangeFrame, len(got), err)
		}
	}
}
