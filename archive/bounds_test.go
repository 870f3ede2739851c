package archive

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Trailers and heads shaped by an attacker against the memory of a reader:
// each is refused, and what refusing it allocates is bounded by comparison
// with what reading it whole once cost (GiBs).

// allocated returns what f allocates, in bytes.
func allocated(f func()) uint64 {
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// withTOC is data with its table of contents replaced by payload (any
// bytes), the seek table rewritten to match.
func withTOC(t *testing.T, data, payload []byte) []byte {
	t.Helper()
	frames, _ := trailerOf(t, data)
	last := frames[len(frames)-1]
	b := append(bytes.Clone(data[:last.offset]), skippableFrame(skippableMagicTOC, payload)...)
	var table []seekEntry
	for _, f := range frames[:len(frames)-1] {
		table = append(table, seekEntry{uint32(f.size), uint32(f.tarSize)})
	}
	table = append(table, seekEntry{compressed: uint32(skippableHeaderSize + len(payload))})
	return append(b, encodeSeekTable(table)...)
}

// TestTOCBoundedByTheHead: a table of contents of 22 million empty
// entries (`{}`, 3 bytes each, within the 64 MiB frame limit) was decoded
// whole before anything looked at it: 8.7 GiB allocated, then "blob : is
// not a config". Its size is bounded by the head's blobs before it is
// read, and its entries counted as they are decoded.
func TestTOCBoundedByTheHead(t *testing.T) {
	fx := newFixture(t, fixtureOptions{})
	data := fx.write(t, WriterOptions{}, nil)
	bomb := withTOC(t, data, []byte(`{"mediaType":"`+TOCMediaType+`","blobs":[{}`+strings.Repeat(",{}", (maxTOCSize-200)/3)+`]}`))
	var err error
	n := allocated(func() { _, err = OpenFile(bytes.NewReader(bomb), int64(len(bomb)), ReaderOptions{}) })
	wantErr(t, err, "table of contents", "bytes, more than the")
	if n > 64<<20 {
		t.Errorf("OpenFile allocated %d MiB to refuse the table of contents", n>>20)
	}
	n = allocated(func() { _, err = Verify(context.Background(), bytes.NewReader(bomb)) })
	wantErr(t, err, "table of contents", "bytes, more than the")
	if n > 64<<20 {
		t.Errorf("Verify allocated %d MiB to refuse the table of contents", n>>20)
	}

	// Within the size bound, entries are counted and named.
	_, toc := trailerOf(t, data)
	head, err := Inspect(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		payload string
		want    []string
	}{
		{"an empty entry", `{"mediaType":"` + TOCMediaType + `","blobs":[` + string(mustJSON(toc[0])) + `,{}]}`, []string{"table of contents entry 1 has no digest"}},
		{"more entries than blobs", `{"mediaType":"` + TOCMediaType + `","blobs":[` + strings.Repeat(string(mustJSON(toc[0]))+",", len(head.Blobs)) + string(mustJSON(toc[0])) + `]}`,
			[]string{"table of contents", fmt.Sprintf("more than %d entries", len(head.Blobs))}},
		{"media type after the blobs", `{"blobs":[],"mediaType":"x"}`, []string{`media type "x"`}},
		{"not an object", `[]`, []string{"table of contents"}},
		{"blobs not a list", `{"mediaType":"` + TOCMediaType + `","blobs":{}}`, []string{"table of contents"}},
		{"trailing bytes", `{"mediaType":"` + TOCMediaType + `","blobs":[]} {}`, []string{"table of contents"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := withTOC(t, data, []byte(tc.payload))
			_, err := OpenFile(bytes.NewReader(bad), int64(len(bad)), ReaderOptions{})
			wantErr(t, err, tc.want...)
			_, err = Verify(context.Background(), bytes.NewReader(bad))
			wantErr(t, err, tc.want...)
		})
	}
	// The real one, written with its fields in another order and spaces,
	// is still read.
	var b strings.Builder
	b.WriteString(`{ "blobs" : [ `)
	for i, e := range toc {
		if i > 0 {
			b.WriteString(" , ")
		}
		fmt.Fprintf(&b, `{"frame":%d, "size":%d, "digest":%q, "x":[1]}`, e.Frame, e.Size, e.Digest)
	}
	b.WriteString(` ], "extra": {"a":[]}, "mediaType" : "` + TOCMediaType + `" }`)
	reordered := withTOC(t, data, []byte(b.String()))
	if _, err := OpenFile(bytes.NewReader(reordered), int64(len(reordered)), ReaderOptions{}); err != nil {
		t.Errorf("a table of contents in another field order: %v", err)
	}
	if _, err := Verify(context.Background(), bytes.NewReader(reordered)); err != nil {
		t.Errorf("Verify, a table of contents in another field order: %v", err)
	}
}

// bigClaimHead is a zstd-compressed head whose one image claims a layer of
// 2^44 bytes: enough, once, to lift the seek table's frame limit to the
// format's maximum.
func bigClaimHead(t *testing.T) []byte {
	t.Helper()
	cfg, _ := sharedBlobs()
	m := newBlob(types.OCIManifestSchema1, mustJSON(map[string]any{
		"schemaVersion": 2,
		"mediaType":     string(types.OCIManifestSchema1),
		"config":        cfg.desc(),
		"layers":        []any{map[string]any{"mediaType": string(types.OCILayer), "size": int64(1) << 44, "digest": "sha256:" + strings.Repeat("a", 64)}},
	}))
	return zstdBytes(t, headTar(t, []Entry{{Descriptor: desc(m), Role: RoleImage, OriginalRef: "r.example/big"}}, []testBlob{m}))
}

// claimFile is a file of size bytes that is never held: prefix, zeros,
// then a seek table of n entries of compressed bytes each (no tar).
type claimFile struct {
	prefix     []byte
	size       int64
	n          uint32
	compressed uint32
	tableAt    int64  // where the seek table frame starts
	pattern    []byte // entries, repeated, 64 KiB
}

func newClaimFile(prefix []byte, size int64, n, compressed uint32) *claimFile {
	f := &claimFile{prefix: prefix, size: size, n: n, compressed: compressed}
	f.tableAt = size - (skippableHeaderSize + int64(n)*seekEntrySize + seekFooterSize)
	for range (64 << 10) / seekEntrySize {
		f.pattern = binary.LittleEndian.AppendUint32(f.pattern, compressed)
		f.pattern = binary.LittleEndian.AppendUint32(f.pattern, 0)
	}
	return f
}

// ReadAt implements io.ReaderAt.
func (f *claimFile) ReadAt(p []byte, off int64) (int, error) {
	if off >= f.size {
		return 0, io.EOF
	}
	want := len(p)
	p = p[:min(int64(len(p)), f.size-off)]
	clear(p)
	entries := f.tableAt + skippableHeaderSize
	footer := entries + int64(f.n)*seekEntrySize
	var hdr, foot []byte
	hdr = binary.LittleEndian.AppendUint32(hdr, skippableMagicSeekTable)
	hdr = binary.LittleEndian.AppendUint32(hdr, uint32(int64(f.n)*seekEntrySize+seekFooterSize))
	foot = binary.LittleEndian.AppendUint32(foot, f.n)
	foot = append(foot, 0)
	foot = binary.LittleEndian.AppendUint32(foot, seekableMagic)
	// place copies src, which lies at at in the file, into p.
	place := func(src []byte, at int64) {
		lo, hi := max(at, off), min(at+int64(len(src)), off+int64(len(p)))
		if lo < hi {
			copy(p[lo-off:hi-off], src[lo-at:hi-at])
		}
	}
	place(f.prefix, 0)
	place(hdr, f.tableAt)
	place(foot, footer)
	for at := max(entries, off-(off-entries)%int64(len(f.pattern))); at < min(footer, off+int64(len(p))); at += int64(len(f.pattern)) {
		place(f.pattern[:min(int64(len(f.pattern)), footer-at)], at)
	}
	if len(p) < want {
		return len(p), io.EOF
	}
	return len(p), nil
}

// TestSeekTableBoundedByTheFile: the seek table's frame limit came from
// the sizes the manifests claim, so a layer claiming 2^44 bytes let a
// table of 2^27 frames through: 1 GiB read and 4 GiB of frames allocated
// before their sizes were added up. The file bounds the count (a frame is
// 9 bytes at least), and the sizes are added up, in chunks, before
// anything is allocated per frame.
func TestSeekTableBoundedByTheFile(t *testing.T) {
	head := bigClaimHead(t)
	for _, tc := range []struct {
		name string
		f    *claimFile
		want []string
	}{
		// 2^27 entries of 9 bytes in a file of just over 1 GiB: the table
		// fills the file.
		{"more frames than the file holds", newClaimFile(head, int64(len(head))+(1<<30)+17+4096, maxSeekFrames, 9), []string{"134217728 frames", "do not fit in a"}},
		// 2^24 entries of 9 bytes in a file that could hold them, whose
		// sizes do not add up to it.
		{"sizes that do not add up", newClaimFile(head, 400<<20, 1<<24, 9), []string{"its frames add up to", "before the table"}},
		// Entries too small to be frames.
		{"frames of 4 bytes", newClaimFile(head, 400<<20, 1<<24, 4), []string{"frame 0", "4 bytes"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			n := allocated(func() { _, err = OpenFile(tc.f, tc.f.size, ReaderOptions{}) })
			wantErr(t, err, tc.want...)
			if n > 64<<20 {
				t.Errorf("OpenFile allocated %d MiB to refuse the seek table", n>>20)
			}
			n = allocated(func() { err = CheckFrameStarts(tc.f, tc.f.size) })
			wantErr(t, err, tc.want...)
			if n > 64<<20 {
				t.Errorf("CheckFrameStarts allocated %d MiB to refuse the seek table", n>>20)
			}
		})
	}
}

// TestSeekFramesBoundSaturates: sizes near MaxInt64 once overflowed the
// bound's sum to a negative limit, which refused every table.
func TestSeekFramesBoundSaturates(t *testing.T) {
	d := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("b", 64)}
	for _, sizes := range [][]int64{{math.MaxInt64 - 1}, {math.MaxInt64 / 2, math.MaxInt64 / 2}, {1 << 44}} {
		h := &Head{}
		for _, s := range sizes {
			h.Blobs = append(h.Blobs, v1.Descriptor{Digest: d, Size: s})
		}
		if got := seekFramesBound(h); got != maxSeekFrames {
			t.Errorf("sizes %v: bound %d, want %d", sizes, got, maxSeekFrames)
		}
	}
	if got := seekFramesBound(&Head{}); got <= 0 || got >= maxSeekFrames {
		t.Errorf("an empty head: bound %d", got)
	}
}

// magicLayerArchive is an archive in frames of 64 KiB of one image whose
// layer is random bytes (stored as they are) with the zstd magic number
// written into the middle of its third frame; it returns the archive, the
// layer's digest, and the index of the frame holding the magic number and
// where in the archive it is.
func magicLayerArchive(t *testing.T) (data []byte, layer v1.Hash, frame int, at int64) {
	t.Helper()
	const size = 400 << 10
	b := randomBytes(9, size)
	copy(b[2*(64<<10)+1000:], zstdMagic)
	l := newBlob(types.OCILayer, b)
	cfg := newBlob(types.OCIConfigJSON, []byte(`{"architecture":"amd64","os":"linux"}`))
	m := manifestJSON(types.OCIManifestSchema1, cfg, l)
	idx, err := BuildIndex([]Entry{{Descriptor: desc(m), Role: RoleImage, OriginalRef: "r.example/magic"}}, IndexOptions{CreatedBy: "bounds test"})
	if err != nil {
		t.Fatal(err)
	}
	fx := &fixture{index: idx, manifests: map[v1.Hash][]byte{m.d: m.b}, blobs: []testBlob{cfg, l}}
	data = fx.writeFrames(t, WriterOptions{}, 64<<10, nil)
	frames, _ := trailerOf(t, data)
	for i, f := range frames {
		if j := bytes.Index(data[f.offset+4:f.offset+f.size], zstdMagic); j >= 0 {
			return data, l.d, i, f.offset + 4 + int64(j)
		}
	}
	t.Fatal("no zstd magic number inside a frame")
	return
}

// TestVerifyChecksEveryFrame: verify once checked the seek table's sizes
// added up and each frame started with the zstd magic number, never each
// frame's own sizes, which a blob's range reads (serve) rely on and check:
// an archive verify passed, serve refused. Verify now checks each frame's
// compressed and decompressed size as it reads it.
func TestVerifyChecksEveryFrame(t *testing.T) {
	fx := newFixture(t, fixtureOptions{bigLayer: 10 << 20, random: true})
	data := fx.write(t, WriterOptions{}, nil)
	_, toc := trailerOf(t, data)
	big := fx.blobs[7]
	k := -1
	for _, b := range toc {
		if b.Digest == big.d {
			k = b.Frame
		}
	}
	if k < 0 {
		t.Fatal("the big layer is not in the table of contents")
	}
	magic, layer, mk, at := magicLayerArchive(t)
	mframes, _ := trailerOf(t, magic)
	cut := at - mframes[mk].offset
	for _, tc := range []struct {
		name string
		data []byte
		blob v1.Hash
		want []string
	}{
		{"decompressed sizes moved between frames", withTrailer(t, data, nil, func(tb []seekEntry) {
			tb[k].decompressed -= 512
			tb[k+1].decompressed += 512
		}), big.d, []string{fmt.Sprintf("frame %d ", k), "seek table"}},
		{"compressed sizes moved onto a zstd magic number", withTrailer(t, magic, nil, func(tb []seekEntry) {
			tb[mk+1].compressed += tb[mk].compressed - uint32(cut)
			tb[mk].compressed = uint32(cut)
		}), layer, []string{fmt.Sprintf("frame %d ", mk), "seek table"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// What serve does: refuse the blob.
			f, err := OpenFile(bytes.NewReader(tc.data), int64(len(tc.data)), ReaderOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.VerifyBlob(context.Background(), tc.blob); err == nil {
				t.Fatal("serve accepts the blob: the test proves nothing")
			}
			_, err = Verify(context.Background(), bytes.NewReader(tc.data))
			wantErr(t, err, tc.want...)
		})
	}
	// The archives themselves pass.
	for _, d := range [][]byte{data, magic} {
		if _, err := Verify(context.Background(), bytes.NewReader(d)); err != nil {
			t.Errorf("a sound archive: %v", err)
		}
	}
}

// TestReaderRecordsFrames: the frames a Reader records as it reads are
// the archive's, each at its compressed and decompressed size, the seek
// table's own frame last.
func TestReaderRecordsFrames(t *testing.T) {
	fx := newFixture(t, fixtureOptions{bigLayer: 3 << 20, mixed: true})
	data := fx.writeFrames(t, WriterOptions{}, 256<<10, nil)
	frames, _ := trailerOf(t, data)
	for _, conc := range []int{0, 1} {
		r, err := NewReader(bytes.NewReader(data), ReaderOptions{Concurrency: conc})
		if err != nil {
			t.Fatal(err)
		}
		for {
			_, _, rd, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(io.Discard, rd); err != nil {
				t.Fatal(err)
			}
		}
		got := r.zframes.frames
		if len(got) != len(frames)+1 {
			t.Fatalf("concurrency %d: recorded %d frames, the seek table lists %d and itself", conc, len(got), len(frames))
		}
		for i, f := range frames {
			if got[i] != (frameExtent{size: f.size, tarSize: f.tarSize}) {
				t.Errorf("concurrency %d: frame %d recorded as %+v, the seek table says %d bytes holding %d", conc, i, got[i], f.size, f.tarSize)
			}
		}
		end := frames[len(frames)-1].offset + frames[len(frames)-1].size
		if last := got[len(got)-1]; last.size != int64(len(data))-end || last.tarSize != 0 {
			t.Errorf("concurrency %d: the seek table's frame recorded as %+v, want %d bytes", conc, last, int64(len(data))-end)
		}
		r.Close()
	}
}

// TestRejectIndexOfTooManyEntries: index.json of a million descriptors
// naming one manifest cost inspect ten times its size (265 MB: 2.5 GB).
// Its descriptors are counted before it is decoded, and more than
// MaxIndexEntries are refused, by Reader and Writer alike.
func TestRejectIndexOfTooManyEntries(t *testing.T) {
	cfg, layer := sharedBlobs()
	img, art := smallImage(0, cfg, layer), smallImage(1, cfg, layer)
	last := Entry{Descriptor: desc(img), Role: RoleImage, OriginalRef: "r.example/img@" + img.d.String()}
	idx := rawIndex(MaxIndexEntries, art, func(i int) string { return fmt.Sprintf("r.example/a%d", i) }, v1.Hash{}, &last)
	data := headTarIndex(t, idx, []testBlob{img, art}, cfg, layer)
	var err error
	n := allocated(func() { _, err = Inspect(bytes.NewReader(data)) })
	wantErr(t, err, "index.json", fmt.Sprintf("%d descriptors, more than %d", MaxIndexEntries+1, MaxIndexEntries))
	// Reading index.json's bytes is all it costs.
	if n > 3*uint64(len(idx))+8<<20 {
		t.Errorf("refusing index.json of %d MiB allocated %d MiB", len(idx)>>20, n>>20)
	}
	entries := make([]Entry, MaxIndexEntries+1)
	for i := range entries {
		entries[i] = Entry{Descriptor: desc(art), Role: RoleImage, OriginalRef: fmt.Sprintf("r.example/a%d", i)}
	}
	_, err = BuildIndex(entries, IndexOptions{CreatedBy: "x"})
	wantErr(t, err, fmt.Sprintf("%d entries, more than %d", MaxIndexEntries+1, MaxIndexEntries))

	for _, tc := range []struct {
		json string
		n    int
	}{
		{`{"manifests":[]}`, 0},
		{`{"manifests":[{"a":"],[{,"},{"b":[1,2,{"c":"\"]"}]}]}`, 2},
		{`{"manifests":[1,"2",[3,4],{"x":{}}], "annotations":{"manifests":"[1,2,3]"}}`, 4},
		{`{"manifests":[{}],"Manifests":[{},{}]}`, 3},
		{`{"manifests":null}`, 0},
	} {
		got, err := countIndexDescriptors([]byte(tc.json))
		if err != nil || got != tc.n {
			t.Errorf("%s: %d descriptors (%v), want %d", tc.json, got, err, tc.n)
		}
	}
}
