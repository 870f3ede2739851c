package archive

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"runtime"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// tinyArchive is a small valid archive, a seed the fuzzer can mutate
// quickly: one bundle whose index child sorts before it or not.
func tinyArchive(t testing.TB) []byte {
	cfg := newBlob(types.DockerConfigJSON, []byte(`{"config":{}}`))
	layer := newBlob(types.DockerLayer, []byte("layer"))
	return tinyArchiveOf(t, cfg, layer)
}

// tinyArchiveOf is a small valid archive of one bundle image, cfg its
// config and layer its only layer, each in a frame of its own.
func tinyArchiveOf(t testing.TB, cfg, layer testBlob) []byte {
	t.Helper()
	m := manifestJSON(types.DockerManifestSchema2, cfg, layer)
	idx, err := BuildIndex([]Entry{{Descriptor: desc(m), Role: RoleBundle, OriginalRef: "r.example/b:v1", Tag: "v1"}},
		IndexOptions{CreatedBy: "fuzz"})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, err := NewWriter(&buf, WriterOptions{Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteHeader(idx, map[v1.Hash][]byte{m.d: m.b}); err != nil {
		t.Fatal(err)
	}
	for _, b := range []testBlob{cfg, layer} {
		if err := w.WriteBlob(b.d, int64(len(b.b)), bytes.NewReader(b.b)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// FuzzReader feeds the Reader arbitrary input: it must return errors, not
// panic or hang, and whatever it returns without error must match its
// digest and size.
func FuzzReader(f *testing.F) {
	zst := tinyArchive(f)
	plain := unzstd(f, zst)
	f.Add(zst)
	f.Add(plain)
	f.Add(gzipBytes(f, plain))
	f.Add(zst[:len(zst)/2])
	f.Add(plain[:len(plain)-1024])
	flipped := bytes.Clone(plain)
	flipped[len(flipped)/2] ^= 1
	f.Add(flipped)
	// imgpkg's own tarball, which a Reader takes too.
	gold := goldenImgpkg(f)
	f.Add(gold)
	f.Add(gold[:len(gold)-1500])
	f.Add(imgpkgManyArchive(f, 40, true))
	f.Add(imgpkgChainArchive(f, 40, true))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := NewReader(bytes.NewReader(data), ReaderOptions{
			MaxWindow:       1 << 20,
			MaxManifestSize: 64 << 10,
			MaxHeadSize:     256 << 10,
			Concurrency:     1,
		})
		if err != nil {
			return
		}
		defer r.Close()
		for _, e := range r.Entries() {
			if _, ok := r.Manifest(e.Descriptor.Digest); !ok {
				t.Fatalf("entry %s has no manifest", e.Descriptor.Digest)
			}
		}
		for d, b := range r.Head().Manifests {
			if digestOf(b) != d {
				t.Fatalf("manifest %s has digest %s", d, digestOf(b))
			}
		}
		for range 1000 {
			d, size, rd, err := r.Next()
			if err != nil {
				return
			}
			b, err := io.ReadAll(io.LimitReader(rd, 1<<20))
			if err != nil {
				continue // Next returns the error again
			}
			if int64(len(b)) == size && digestOf(b) != d {
				t.Fatalf("blob %s read without error has digest %s", d, digestOf(b))
			}
		}
		t.Fatal("more than 1000 blobs from a fuzz input")
	})
}

// FuzzOpenFile feeds OpenFile arbitrary input, the seek table and the
// table of contents included, which come from the archive and say where
// to read: it must return errors, not panic, and allocate within a bound
// whatever sizes and offsets those tables claim. Every blob VerifyBlob
// accepts must then read, through Range and through Blob, as bytes that
// match its digest and size.
func FuzzOpenFile(f *testing.F) {
	tiny := tinyArchive(f)
	f.Add(tiny)
	frames, err := readSeekTable(bytes.NewReader(tiny), int64(len(tiny)))
	if err != nil {
		f.Fatal(err)
	}
	last := frames[len(frames)-1]
	toc, err := readTOC(bytes.NewReader(tiny), last, maxTOCSize)
	if err != nil {
		f.Fatal(err)
	}
	// The seek table with one bit of a frame's decompressed size flipped:
	// OpenFile cannot see it, VerifyBlob must.
	table := last.offset + last.size + skippableHeaderSize
	sizes := bytes.Clone(tiny)
	sizes[table+int64(toc[0].Frame)*seekEntrySize+4] ^= 1
	f.Add(sizes)
	// One bit of a compressed size flipped: the frames no longer add up.
	compressed := bytes.Clone(tiny)
	compressed[table+int64(toc[0].Frame)*seekEntrySize] ^= 1
	f.Add(compressed)
	// The table of contents with a frame number flipped: the first blob
	// pointed at the head's frame, and the last beyond the frames.
	for _, b := range []tocBlob{toc[0], toc[len(toc)-1]} {
		flipped := bytes.Clone(tiny)
		json := flipped[last.offset+skippableHeaderSize : last.offset+last.size]
		at := bytes.Index(json, []byte(fmt.Sprintf(`"frame":%d`, b.Frame)))
		if at < 0 {
			f.Fatalf("no frame %d in the table of contents %s", b.Frame, json)
		}
		json[at+len(`"frame":`)] ^= 1
		f.Add(flipped)
	}
	// A byte in the middle of the table of contents flipped.
	mid := bytes.Clone(tiny)
	mid[last.offset+last.size/2] ^= 0x20
	f.Add(mid)

	const maxAlloc = 64 << 20
	opts := ReaderOptions{MaxWindow: 1 << 20, MaxManifestSize: 64 << 10, MaxHeadSize: 256 << 10, Concurrency: 1}
	f.Fuzz(func(t *testing.T, data []byte) {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		fuzzOpenFile(t, data, opts)
		runtime.ReadMemStats(&after)
		if n := after.TotalAlloc - before.TotalAlloc; n > maxAlloc {
			t.Fatalf("opening and reading a %d-byte archive allocated %d bytes, more than %d", len(data), n, maxAlloc)
		}
	})
}

// fuzzOpenFile is FuzzOpenFile's check of one input.
func fuzzOpenFile(t *testing.T, data []byte, opts ReaderOptions) {
	af, err := OpenFile(bytes.NewReader(data), int64(len(data)), opts)
	if err != nil {
		return
	}
	for _, b := range af.Head().Blobs {
		if !af.Has(b.Digest) {
			continue // skipped, or left out by a delta
		}
		// A blob's bytes, read through Blob without error, are its own.
		if rc, err := af.Blob(b.Digest); err == nil {
			if d, n, err := digestOfReader(rc, b.Size); err == nil && (d != b.Digest || n != b.Size) {
				t.Fatalf("blob %s read through Blob without error: %d bytes with digest %s", b.Digest, n, d)
			}
			rc.Close()
		}
		v, err := af.VerifyBlob(context.Background(), b.Digest)
		if err != nil {
			continue
		}
		if v.Digest() != b.Digest || v.Size() != b.Size {
			t.Fatalf("blob %s (%d bytes) verified as %s, %d bytes", b.Digest, b.Size, v.Digest(), v.Size())
		}
		rc, err := v.Range(0, v.Size())
		if err != nil {
			t.Fatalf("blob %s verified, then its whole range: %v", b.Digest, err)
		}
		d, n, err := digestOfReader(rc, b.Size)
		rc.Close()
		if err != nil || d != b.Digest || n != b.Size {
			t.Fatalf("blob %s verified, then read through Range: %d bytes with digest %s, %v", b.Digest, n, d, err)
		}
	}
}

// digestOfReader is the sha256 and the length of what r gives, reading at
// most one byte more than size.
func digestOfReader(r io.Reader, size int64) (v1.Hash, int64, error) {
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(r, size+1))
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}, n, err
}

// headSeparator splits FuzzHead's second input into manifests.
const headSeparator = "\n\x00--\x00\n"

// addHead adds a seed to FuzzHead: index.json and the manifests joined by
// headSeparator.
func addHead(f *testing.F, index []byte, manifests []testBlob) {
	var parts []string
	for _, m := range manifests {
		parts = append(parts, string(m.b))
	}
	f.Add(string(index), strings.Join(parts, headSeparator))
}

// FuzzHead feeds the Reader a head built from its parts, index.json and
// the manifests, so that the fuzzer works on their JSON rather than on
// compressed bytes. Whatever the Reader accepts must be consistent: every
// entry's manifest held and matching its digest, every artifact's subject
// an entry, no size negative or summing past int64 (issue 13, items 4
// and 9), and no string past MaxIndexString. The seeds are the shapes of
// that issue, small.
func FuzzHead(f *testing.F) {
	cfg, layer := sharedBlobs()
	tiny := smallImage(0, cfg, layer)
	tinyIndex := mustBuildIndex(f, []Entry{{Descriptor: desc(tiny), Role: RoleBundle, OriginalRef: "r.example/b:v1", Tag: "v1"}})
	addHead(f, tinyIndex, []testBlob{tiny})

	// Referrers of one subject, listed before it.
	art := smallImage(1, cfg, layer)
	last := Entry{Descriptor: desc(tiny), Role: RoleImage, OriginalRef: "r.example/img"}
	addHead(f, rawIndex(20, art, func(i int) string { return fmt.Sprintf("r.example/a%d", i) }, tiny.d, &last), []testBlob{tiny, art})

	// A chain of nested indexes, in digest order.
	chain := []testBlob{tiny}
	for range 12 {
		chain = append(chain, smallIndex(chain[len(chain)-1]))
	}
	top := chain[len(chain)-1]
	addHead(f, mustBuildIndex(f, []Entry{{Descriptor: desc(top), Role: RoleImage, OriginalRef: "r.example/chain"}}), chain)

	// Sizes that overflow, and a negative one.
	for _, size := range []int64{1<<62 + 1, -5} {
		m := newBlob(types.OCIManifestSchema1, mustJSON(map[string]any{
			"schemaVersion": 2, "mediaType": string(types.OCIManifestSchema1), "config": cfg.desc(),
			"layers": []any{
				map[string]any{"mediaType": string(types.OCILayer), "size": size, "digest": "sha256:" + strings.Repeat("a", 64)},
				map[string]any{"mediaType": string(types.OCILayer), "size": size, "digest": "sha256:" + strings.Repeat("b", 64)},
			},
		}))
		addHead(f, mustBuildIndex(f, []Entry{{Descriptor: desc(m), Role: RoleImage, OriginalRef: "r.example/big"}}), []testBlob{m})
	}

	// swap is tinyIndex with one piece of its JSON replaced.
	swap := func(old, new string) []byte {
		b := bytes.Replace(tinyIndex, []byte(old), []byte(new), 1)
		if bytes.Equal(b, tinyIndex) {
			f.Fatalf("index.json has no %s to replace", old)
		}
		return b
	}
	// Terminal control sequences in an original reference and in the tag,
	// JSON-escaped as an attacker writes them (issue 13, item 8).
	addHead(f, swap(`"r.example/b:v1"`, `"r.example/b:v1\u001b[2J\u001b[1;1HALL GOOD\r"`), []testBlob{tiny})
	addHead(f, swap(`"`+AnnotationRefName+`":"v1"`, `"`+AnnotationRefName+`":"v1\u001b]0;x\u0007\u202e"`), []testBlob{tiny})
	// One string of index.json at the per-string cap and one past it: an
	// original reference, and an annotation of no known meaning.
	for _, n := range []int{MaxIndexString, MaxIndexString + 1} {
		long := strings.Repeat("a", n)
		addHead(f, swap(`"r.example/b:v1"`, `"r.example/b:`+long[len("r.example/b:"):]+`"`), []testBlob{tiny})
		addHead(f, swap(`"annotations":{`, `"annotations":{"x.note":"`+long+`",`), []testBlob{tiny})
	}

	f.Fuzz(func(t *testing.T, index, manifests string) {
		var ms []testBlob
		if manifests != "" {
			for _, part := range strings.SplitN(manifests, headSeparator, 257) {
				ms = append(ms, newBlob(types.OCIManifestSchema1, []byte(part)))
			}
		}
		r, err := NewReader(bytes.NewReader(headTarIndex(t, []byte(index), ms)), ReaderOptions{
			MaxManifestSize: 64 << 10,
			MaxHeadSize:     1 << 20,
			Concurrency:     1,
		})
		if err != nil {
			return
		}
		defer r.Close()
		h := r.Head()
		overCap := func(where string, as map[string]string) {
			for k, v := range as {
				if len(k) > MaxIndexString || len(v) > MaxIndexString {
					t.Fatalf("%s: annotation %.40q of %d bytes (value %d) accepted, past the cap", where, k, len(k), len(v))
				}
			}
		}
		overCap("index.json", h.Index.Annotations)
		for _, m := range h.Index.Manifests {
			overCap("index.json entry "+m.Digest.String(), m.Annotations)
		}
		entries := map[v1.Hash]bool{}
		for _, e := range h.Entries {
			if len(e.OriginalRef) > MaxIndexString || len(e.Tag) > MaxIndexString {
				t.Fatalf("entry %s: a string of %d bytes accepted, past the cap", e.Descriptor.Digest, max(len(e.OriginalRef), len(e.Tag)))
			}
			entries[e.Descriptor.Digest] = true
			b, ok := h.Manifests[e.Descriptor.Digest]
			if !ok || digestOf(b) != e.Descriptor.Digest || int64(len(b)) != e.Descriptor.Size {
				t.Fatalf("entry %s: manifest held %v, not matching", e.Descriptor.Digest, ok)
			}
		}
		for _, e := range h.Entries {
			if e.Role.IsArtifact() && !entries[e.Subject] {
				t.Fatalf("artifact %s: subject %s is not an entry", e.Descriptor.Digest, e.Subject)
			}
		}
		var total int64
		for _, b := range h.Blobs {
			if b.Size < 0 || b.Size > math.MaxInt64-total {
				t.Fatalf("blob %s: size %d (total so far %d) accepted", b.Digest, b.Size, total)
			}
			total += b.Size
		}
	})
}

func mustBuildIndex(t testing.TB, entries []Entry) []byte {
	t.Helper()
	idx, err := BuildIndex(entries, IndexOptions{CreatedBy: "fuzz"})
	if err != nil {
		t.Fatal(err)
	}
	return idx
}
