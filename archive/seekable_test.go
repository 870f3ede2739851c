package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/zstd"
)

// zframe is one frame of a zstd stream, found by walking the stream.
type zframe struct {
	offset, size int
	skippable    bool
	raw          bool // a data frame of Raw blocks only
}

// walkFrames splits a zstd stream into its frames by reading frame and
// block headers (zstd format spec, section 3.1), independently of the
// package's own seek table.
func walkFrames(t *testing.T, b []byte) []zframe {
	t.Helper()
	var out []zframe
	off := 0
	for off < len(b) {
		rest := b[off:]
		if len(rest) >= 8 && rest[0]&0xf0 == 0x50 && bytes.Equal(rest[1:4], []byte{0x2a, 0x4d, 0x18}) {
			n := 8 + int(binary.LittleEndian.Uint32(rest[4:]))
			out = append(out, zframe{offset: off, size: n, skippable: true})
			off += n
			continue
		}
		if !bytes.Equal(rest[:4], []byte{0x28, 0xb5, 0x2f, 0xfd}) {
			t.Fatalf("offset %d: no frame magic", off)
		}
		fhd := rest[4]
		single := fhd&0x20 != 0
		pos := 5
		if !single {
			pos++
		}
		pos += []int{0, 1, 2, 4}[fhd&3]
		fcs := []int{0, 2, 4, 8}[fhd>>6]
		if fcs == 0 && single {
			fcs = 1
		}
		pos += fcs
		raw := true
		for {
			h := uint32(rest[pos]) | uint32(rest[pos+1])<<8 | uint32(rest[pos+2])<<16
			pos += 3
			size := int(h >> 3)
			if (h>>1)&3 == 1 {
				size = 1
			}
			raw = raw && (h>>1)&3 == 0
			pos += size
			if h&1 == 1 {
				break
			}
		}
		if fhd&0x04 != 0 {
			pos += 4
		}
		out = append(out, zframe{offset: off, size: pos, raw: raw})
		off += pos
	}
	return out
}

// tarOffsets walks a plain tar and returns where each blob entry's header
// starts.
func tarOffsets(t *testing.T, plain []byte) map[v1.Hash]int64 {
	t.Helper()
	cr := &countingReader{r: bytes.NewReader(plain)}
	tr := tar.NewReader(cr)
	out := map[v1.Hash]int64{}
	end := int64(0)
	for {
		at := (end + 511) &^ 511
		hdr, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if d, ok := parseBlobName(hdr.Name); ok {
			out[d] = at
		}
		end = cr.n + hdr.Size
	}
}

// seekableFixture writes the fixture with a big layer and 64 KiB frames:
// several frames per large blob, every blob in frames of its own.
func seekableFixture(t *testing.T) (*fixture, []byte) {
	t.Helper()
	const small = 64 << 10
	fx := newFixture(t, fixtureOptions{bigLayer: 5*small + small/3})
	return fx, fx.writeFrames(t, WriterOptions{Concurrency: 2}, small, nil)
}

func TestSeekTableDescribesTheFrames(t *testing.T) {
	fx, data := seekableFixture(t)
	walked := walkFrames(t, data)
	n := len(walked)
	if n < 3 || !walked[n-1].skippable || !walked[n-2].skippable {
		t.Fatalf("the stream must end with two skippable frames; frames: %+v", walked)
	}
	frames, err := readSeekTable(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	// The table lists every frame but itself, with each one's compressed
	// size and what it decompresses to.
	if len(frames) != n-1 {
		t.Fatalf("seek table lists %d frames, the stream has %d before it", len(frames), n-1)
	}
	var tarOff int64
	for i, f := range frames {
		w := walked[i]
		if f.offset != int64(w.offset) || f.size != int64(w.size) {
			t.Errorf("frame %d: table says offset %d size %d, the stream %d and %d", i, f.offset, f.size, w.offset, w.size)
		}
		var plain []byte
		if !w.skippable {
			if plain, err = unzstdErr(data[w.offset : w.offset+w.size]); err != nil {
				t.Fatalf("frame %d alone: %v", i, err)
			}
		}
		if f.tarSize != int64(len(plain)) || f.tarOffset != tarOff {
			t.Errorf("frame %d: table says %d bytes of tar at %d, it holds %d at %d", i, f.tarSize, f.tarOffset, len(plain), tarOff)
		}
		tarOff += int64(len(plain))
	}

	// Every blob starts a frame, and the table of contents names it.
	offsets := tarOffsets(t, unzstd(t, data))
	toc, err := readTOC(bytes.NewReader(data), frames[len(frames)-1], maxTOCSize)
	if err != nil {
		t.Fatal(err)
	}
	if len(toc) != len(fx.blobs) {
		t.Fatalf("table of contents lists %d blobs, the fixture has %d", len(toc), len(fx.blobs))
	}
	for i, b := range fx.blobs {
		e := toc[i]
		if e.Digest != b.d || e.Size != int64(len(b.b)) {
			t.Errorf("toc entry %d: %s (%d bytes), want %s (%d bytes)", i, e.Digest, e.Size, b.d, len(b.b))
		}
		if got := frames[e.Frame].tarOffset; got != offsets[b.d] {
			t.Errorf("blob %s: frame %d starts at tar offset %d, its header is at %d", b.d, e.Frame, got, offsets[b.d])
		}
	}
}

func unzstdErr(b []byte) ([]byte, error) {
	dec, err := zstd.NewReader(nil)
	if err != nil {
		return nil, err
	}
	defer dec.Close()
	return dec.DecodeAll(b, nil)
}

func TestOpenFileReadsEachBlobAlone(t *testing.T) {
	fx, data := seekableFixture(t)
	f, err := OpenFile(bytes.NewReader(data), int64(len(data)), ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want, _, err := readArchive(data, ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Head().Entries) != len(want.Entries) || len(f.Head().Blobs) != len(want.Blobs) || len(f.Head().Manifests) != len(want.Manifests) {
		t.Errorf("head: %d entries, %d blobs, %d manifests; a Reader reads %d, %d, %d",
			len(f.Head().Entries), len(f.Head().Blobs), len(f.Head().Manifests), len(want.Entries), len(want.Blobs), len(want.Manifests))
	}
	// In reverse order and all at once: no blob depends on another.
	var wg sync.WaitGroup
	for i := len(fx.blobs) - 1; i >= 0; i-- {
		b := fx.blobs[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 2 { // twice: every reader is independent
				rc, err := f.Blob(b.d)
				if err != nil {
					t.Errorf("blob %s: %v", b.d, err)
					return
				}
				got, err := io.ReadAll(rc)
				rc.Close()
				if err != nil || !bytes.Equal(got, b.b) {
					t.Errorf("blob %s: %v; %d bytes, want %d", b.d, err, len(got), len(b.b))
				}
			}
		}()
	}
	wg.Wait()
	if !f.Has(fx.blobs[0].d) || f.Has(digestOf([]byte("not in the archive"))) {
		t.Error("Has is wrong")
	}
	if _, err := f.Blob(digestOf([]byte("not in the archive"))); err == nil {
		t.Error("Blob of an unknown digest: no error")
	}
}

func TestOpenFileNotSeekable(t *testing.T) {
	fx, data := seekableFixture(t)
	plain := unzstd(t, data)
	for name, b := range map[string][]byte{
		"plain tar":       plain,
		"gzip":            gzipBytes(t, plain),
		"one zstd frame":  zstdBytes(t, plain),
		"old ferry":       zstdBytes(t, buildTar(t, fx.entries0())),
		"table cut short": data[:len(data)-3],
	} {
		if _, err := OpenFile(bytes.NewReader(b), int64(len(b)), ReaderOptions{}); !errors.Is(err, ErrNotSeekable) {
			t.Errorf("%s: %v, want ErrNotSeekable", name, err)
		}
	}
}

// trailerOf reads the seek table and table of contents of data.
func trailerOf(t *testing.T, data []byte) ([]frameLoc, []tocBlob) {
	t.Helper()
	frames, err := readSeekTable(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	toc, err := readTOC(bytes.NewReader(data), frames[len(frames)-1], maxTOCSize)
	if err != nil {
		t.Fatal(err)
	}
	return frames, toc
}

// withTrailer rebuilds data with its table of contents edited by edit and
// the seek table's entries edited by editTable, both optional.
func withTrailer(t *testing.T, data []byte, edit func([]tocBlob) []tocBlob, editTable func([]seekEntry)) []byte {
	t.Helper()
	frames, toc := trailerOf(t, data)
	last := frames[len(frames)-1]
	if edit != nil {
		toc = edit(toc)
	}
	payload := mustJSON(tocDoc{MediaType: TOCMediaType, Blobs: toc})
	out := append(bytes.Clone(data[:last.offset]), skippableFrame(skippableMagicTOC, payload)...)
	var table []seekEntry
	for _, f := range frames[:len(frames)-1] {
		table = append(table, seekEntry{compressed: uint32(f.size), decompressed: uint32(f.tarSize)})
	}
	table = append(table, seekEntry{compressed: uint32(8 + len(payload))})
	if editTable != nil {
		editTable(table)
	}
	return append(out, encodeSeekTable(table)...)
}

// TestOpenFileRefusesAWrongTrailer: each damaged table of contents or
// seek table is refused by OpenFile (what import, inspect and serve open
// a file with) and by Verify alike, with the same reason: verify must not
// pass a table they refuse.
func TestOpenFileRefusesAWrongTrailer(t *testing.T) {
	fx, data := seekableFixture(t)
	open := func(b []byte) error {
		_, err := OpenFile(bytes.NewReader(b), int64(len(b)), ReaderOptions{})
		return err
	}
	verify := func(b []byte) error {
		_, err := Verify(context.Background(), bytes.NewReader(b))
		return err
	}
	if err := open(withTrailer(t, data, nil, nil)); err != nil {
		t.Fatalf("rebuilt unchanged: %v", err)
	}
	if err := verify(withTrailer(t, data, nil, nil)); err != nil {
		t.Fatalf("verify, rebuilt unchanged: %v", err)
	}
	for _, tc := range []struct {
		name  string
		toc   func([]tocBlob) []tocBlob
		table func([]seekEntry)
		want  string
	}{
		{"blob left out", func(b []tocBlob) []tocBlob { return b[1:] }, nil, "not in the table of contents"},
		{"blob listed twice", func(b []tocBlob) []tocBlob { return append(b, b[len(b)-1]) }, nil, "twice"},
		{"unknown blob", func(b []tocBlob) []tocBlob { b[0].Digest = digestOf([]byte("x")); return b }, nil, "not a config or layer"},
		{"wrong size", func(b []tocBlob) []tocBlob { b[0].Size++; return b }, nil, "bytes, the manifests say"},
		{"frames out of order", func(b []tocBlob) []tocBlob { b[0].Frame, b[1].Frame = b[1].Frame, b[0].Frame; return b }, nil, "out of order"},
		{"entries reversed", func(b []tocBlob) []tocBlob { slices.Reverse(b); return b }, nil, "out of order"},
		{"frame beyond the tar", func(b []tocBlob) []tocBlob { b[len(b)-1].Frame = 1 << 20; return b }, nil, "beyond"},
		{"compressed size", nil, func(s []seekEntry) { s[0].compressed++ }, "add up to"},
	} {
		bad := withTrailer(t, data, tc.toc, tc.table)
		if err := open(bad); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error mentioning %q", tc.name, err, tc.want)
		}
		if err := verify(bad); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("verify, %s: %v, want an error mentioning %q", tc.name, err, tc.want)
		}
	}

	// A table of contents that names a frame in the middle of another
	// blob passes the checks OpenFile can make cheaply; reading the blob
	// through it fails, naming the entry, and never returns other bytes.
	var big v1.Hash
	for _, b := range fx.blobs {
		if len(b.b) > 64<<10 {
			big = b.d
		}
	}
	bad := withTrailer(t, data, func(b []tocBlob) []tocBlob {
		for i := range b {
			if b[i].Digest == big && i+1 < len(b) && b[i].Frame+1 < b[i+1].Frame {
				b[i].Frame++
			}
		}
		return b
	}, nil)
	f, err := OpenFile(bytes.NewReader(bad), int64(len(bad)), ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rc, err := f.Blob(big)
	if err == nil {
		_, err = io.ReadAll(rc)
		rc.Close()
	}
	wantErr(t, err, "blobs/sha256/"+big.Hex)
	// Verify, which reads the whole file, catches it without reading
	// through the table.
	_, err = Verify(context.Background(), bytes.NewReader(bad))
	wantErr(t, err, "table of contents", big.String())
}

// TestVerifyChecksEveryFrameStart: a seek table that moves bytes from one
// frame's compressed size to the next one's adds up, and reading the
// archive front to back never looks at it; but a blob read through the
// table (import, serve) starts decompressing where no frame starts. Verify
// refuses it, naming the frame.
func TestVerifyChecksEveryFrameStart(t *testing.T) {
	_, data := seekableFixture(t)
	frames, toc := trailerOf(t, data)
	k := toc[1].Frame
	bad := withTrailer(t, data, nil, func(s []seekEntry) {
		s[k-1].compressed += 4
		s[k].compressed -= 4
	})
	f, err := OpenFile(bytes.NewReader(bad), int64(len(bad)), ReaderOptions{})
	if err != nil {
		t.Fatalf("OpenFile: %v (it reads no frame but the head's)", err)
	}
	if rc, err := f.Blob(toc[1].Digest); err == nil {
		_, err = io.ReadAll(rc)
		rc.Close()
		if err == nil {
			t.Fatalf("blob %s read through the moved frame", toc[1].Digest)
		}
	}
	_, err = Verify(context.Background(), bytes.NewReader(bad))
	var fse *FrameStartError
	if !errors.As(err, &fse) || fse.Frame != k || fse.Offset != frames[k].offset+4 {
		t.Errorf("Verify: %v; want frame %d at offset %d named", err, k, frames[k].offset+4)
	}
}

func TestFileBlobCatchesDamagedBytes(t *testing.T) {
	fx, data := seekableFixture(t)
	frames, toc := trailerOf(t, data)
	b := fx.blobs[len(fx.blobs)-1]
	fr := frames[toc[len(toc)-1].Frame]
	bad := bytes.Clone(data)
	bad[fr.offset+fr.size/2] ^= 0x20
	f, err := OpenFile(bytes.NewReader(bad), int64(len(bad)), ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rc, err := f.Blob(b.d)
	if err == nil {
		_, err = io.ReadAll(rc)
		rc.Close()
	}
	wantErr(t, err, "blobs/sha256/"+b.d.Hex)
}

func TestVerifySeekTableStatus(t *testing.T) {
	fx, data := seekableFixture(t)
	rep, err := Verify(context.Background(), bytes.NewReader(data))
	if err != nil || rep.SeekTable != SeekTableChecked {
		t.Errorf("file: %v, %s; want checked", err, rep.SeekTable)
	}
	// A pipe cannot be read again at its end.
	rep, err = Verify(context.Background(), io.MultiReader(bytes.NewReader(data)))
	if err != nil || rep.SeekTable != SeekTableUnchecked {
		t.Errorf("pipe: %v, %s; want unchecked", err, rep.SeekTable)
	}
	// An archive from before seek tables: its index does not declare one.
	old := zstdBytes(t, buildTar(t, fx.entries0Undeclared(t)))
	rep, err = Verify(context.Background(), bytes.NewReader(old))
	if err != nil || rep.SeekTable != SeekTableAbsent {
		t.Errorf("older archive: %v, %s; want absent", err, rep.SeekTable)
	}
	// One whose index declares a seek table that is not there was damaged
	// or recompressed.
	re := zstdBytes(t, unzstd(t, data))
	_, err = Verify(context.Background(), bytes.NewReader(re))
	wantErr(t, err, "seek table")
}

// entries0Undeclared is entries0 with an index.json that does not declare
// a seek table, as archives written before it did.
func (fx *fixture) entries0Undeclared(t *testing.T) []tarEntry {
	t.Helper()
	es := fx.entries0()
	var idx map[string]any
	if err := json.Unmarshal(es[1].body, &idx); err != nil {
		t.Fatal(err)
	}
	delete(idx["annotations"].(map[string]any), AnnotationSeekable)
	body := mustJSON(idx)
	es[1].body = body
	return es
}

// TestSeekTableClaimingTooManyFrames: a seek table may claim up to 2^27
// frames; a hostile one would make a reader allocate gigabytes to hold
// them. The head bounds what a real table can list, and a longer one is
// refused before it is read.
func TestSeekTableClaimingTooManyFrames(t *testing.T) {
	_, data := seekableFixture(t)
	frames, err := readSeekTable(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	end := frames[len(frames)-1].offset + frames[len(frames)-1].size
	const n = 300000
	table := make([]seekEntry, n)
	for i := range table {
		table[i] = seekEntry{compressed: 9}
	}
	bad := append(bytes.Clone(data[:end]), encodeSeekTable(table)...)
	_, err = OpenFile(bytes.NewReader(bad), int64(len(bad)), ReaderOptions{})
	wantErr(t, err, "300000 frames, more than the")
	_, err = Verify(context.Background(), bytes.NewReader(bad))
	wantErr(t, err, "300000 frames, more than the")
}
