package e2e

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/ferry-dev/ferry/internal/testregistry"
)

// tarEntry is one entry of an archive's tar as read back, to be rewritten
// into a damaged archive.
type tarEntry struct {
	Header tar.Header
	Data   []byte
}

// readEntries decompresses a .tar.zst and returns its entries in order.
func readEntries(t *testing.T, archive string) []tarEntry {
	t.Helper()
	raw, err := os.ReadFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zstd.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	return readTarEntries(t, archive, zr)
}

// readTarEntries reads every entry of the plain tar r; name names it in
// errors.
func readTarEntries(t *testing.T, name string, r io.Reader) []tarEntry {
	t.Helper()
	tr := tar.NewReader(r)
	var out []tarEntry
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("reading %s: %v", name, err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tarEntry{Header: *h, Data: b})
	}
}

// writeTar writes entries as a tar; each header's size is its data's,
// except for entries that carry no data (links, devices).
func writeTar(t *testing.T, entries []tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.Header
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.Data))
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("entry %s: %v", h.Name, err)
		}
		if _, err := tw.Write(e.Data); err != nil {
			t.Fatalf("entry %s: %v", h.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// zstdOf compresses b in one ordinary zstd stream (with its checksum, which
// then covers the damage: only ferry's own checks can catch it).
func zstdOf(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, err := zstd.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(b)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Hand-made zstd frames (RFC 8878 §3.1.1), for decompression bombs no
// encoder would write. A frame header here is the magic number, a frame
// header descriptor of 0 (no single segment, no content size, no checksum,
// no dictionary) and a window descriptor: exponent<<3, window 2^(10+exponent).
var zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}

const (
	window128K = 7 << 3  // 2^17: ferry's reader accepts it
	window2G   = 21 << 3 // 2^31: zstd --long=31, what a bomb declares
	maxBlock   = 128 << 10
)

// blockHeader is a 3-byte block header: size, type (0 raw, 1 RLE), last.
func blockHeader(size int, typ byte, last bool) []byte {
	h := uint32(size)<<3 | uint32(typ)<<1
	if last {
		h |= 1
	}
	return []byte{byte(h), byte(h >> 8), byte(h >> 16)}
}

// rawFrame stores data uncompressed in a frame declaring the given window.
func rawFrame(window byte, data []byte) []byte {
	out := append(append([]byte{}, zstdMagic...), 0, window)
	for len(data) > 0 {
		n := min(len(data), maxBlock)
		out = append(out, blockHeader(n, 0, n == len(data))...)
		out = append(out, data[:n]...)
		data = data[n:]
	}
	return out
}

// zeroFrame is a frame of n zero bytes in RLE blocks of 128 KiB: 4 bytes per
// block, so 4 GiB fit in 128 KiB.
func zeroFrame(n int64) []byte {
	out := append(append([]byte{}, zstdMagic...), 0, window128K)
	for n > 0 {
		sz := min(n, maxBlock)
		n -= sz
		out = append(out, blockHeader(int(sz), 1, n == 0)...)
		out = append(out, 0)
	}
	return out
}

// TestHandMadeZstdFramesDecode checks the bomb builders themselves: with an
// admissible window their frames decode to what they claim, so a refusal of
// the bombs below is a refusal of the bomb and not of a malformed frame.
func TestHandMadeZstdFramesDecode(t *testing.T) {
	data := bytes.Repeat([]byte("ferry "), 50000) // 300 000 bytes: three blocks
	stream := append(rawFrame(window128K, data), zeroFrame(3*maxBlock+5)...)
	zr, err := zstd.NewReader(bytes.NewReader(stream))
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	got, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	want := append(append([]byte{}, data...), make([]byte, 3*maxBlock+5)...)
	if !bytes.Equal(got, want) {
		t.Fatalf("decoded %d bytes, want %d", len(got), len(want))
	}
}

func blobEntryName(d string) string { return "blobs/sha256/" + hexOf(d) }

func sha256Name(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "blobs/sha256/" + hex.EncodeToString(sum[:])
}

// entryIndex returns the position of the entry called name.
func entryIndex(t *testing.T, entries []tarEntry, name string) int {
	t.Helper()
	for i, e := range entries {
		if e.Header.Name == name {
			return i
		}
	}
	t.Fatalf("the archive has no entry %s", name)
	return -1
}

func without(entries []tarEntry, i int) []tarEntry {
	return append(append([]tarEntry{}, entries[:i]...), entries[i+1:]...)
}

// withEntry appends e after every entry of the archive, so that ferry has
// uploaded every blob before it meets e: the last moment a failure could
// still be mistaken for success.
func withEntry(entries []tarEntry, e tarEntry) []tarEntry {
	return append(append([]tarEntry{}, entries...), e)
}

// configOf reads, from the archive's own bytes, the config digest of the
// manifest d.
func configOf(t *testing.T, entries []tarEntry, d string) string {
	t.Helper()
	var m struct {
		Config struct{ Digest string }
	}
	if err := json.Unmarshal(entries[entryIndex(t, entries, blobEntryName(d))].Data, &m); err != nil || m.Config.Digest == "" {
		t.Fatalf("manifest %s: config %q, %v", d, m.Config.Digest, err)
	}
	return m.Config.Digest
}

// badCase is a damaged archive and what ferry's refusal must say: every
// element of want must appear in stderr; an element "a|b" is satisfied by
// either.
type badCase struct {
	data []byte
	want []string
}

func badArchives(t *testing.T, f *exportFixture, archive string) map[string]badCase {
	t.Helper()
	raw, err := os.ReadFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	entries := readEntries(t, archive)
	good := writeTar(t, entries)
	if !bytes.Equal(good, mustDecompress(t, raw)) {
		// The rewrites below start from a faithful copy, or their
		// failures could come from the copy instead of the damage.
		t.Fatal("re-writing the archive's entries does not give its tar back")
	}
	last := entries[len(entries)-1]
	lastDigest := "sha256:" + strings.TrimPrefix(last.Header.Name, "blobs/sha256/")
	if !f.allBlobs[lastDigest] {
		t.Fatalf("the last entry %s is not a layer of the fixture", last.Header.Name)
	}

	flipped := append([]tarEntry{}, entries...)
	data := append([]byte{}, last.Data...)
	data[len(data)/2] ^= 0xff
	flipped[len(flipped)-1] = tarEntry{Header: last.Header, Data: data}

	app3Config := configOf(t, entries, f.app3.DigestStr())

	invalidIndex := append([]tarEntry{}, entries...)
	ii := entryIndex(t, entries, "index.json")
	invalidIndex[ii] = tarEntry{Header: entries[ii].Header, Data: []byte(`{"schemaVersion":2,"manifests":[{"mediaType":`)}

	link := func(name string, typ byte, target string) tarEntry {
		return tarEntry{Header: tar.Header{Name: name, Typeflag: typ, Linkname: target, Mode: 0o644, Format: tar.FormatPAX}}
	}
	device := tarEntry{Header: tar.Header{Name: sha256Name("device"), Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3, Mode: 0o644, Format: tar.FormatPAX}}
	regular := func(name string) tarEntry {
		return tarEntry{Header: tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Format: tar.FormatPAX}, Data: []byte("payload\n")}
	}

	// Bombs. A 4 GiB index.json: a tar header declaring it, then 4 GiB of
	// zeros in 128 KiB of RLE blocks.
	var head bytes.Buffer
	tw := tar.NewWriter(&head)
	for _, e := range entries[:1] { // oci-layout
		h := e.Header
		tw.WriteHeader(&h)
		tw.Write(e.Data)
	}
	hugeIndex := entries[ii].Header
	hugeIndex.Size = 4 << 30
	if err := tw.WriteHeader(&hugeIndex); err != nil {
		t.Fatal(err)
	}
	tw.Flush()
	indexBomb := append(zstdOf(t, head.Bytes()), zeroFrame(4<<30)...)

	return map[string]badCase{
		"truncated":      {raw[:len(raw)*2/3], []string{"truncated"}},
		"not an archive": {[]byte("hello, this is not a ferry archive at all, not even close\n"), []string{"not a ferry archive"}},
		"flipped byte in a blob": {zstdOf(t, writeTar(t, flipped)),
			[]string{lastDigest, last.Header.Name}},
		"layer missing": {zstdOf(t, writeTar(t, entries[:len(entries)-1])),
			[]string{lastDigest, "missing|absent|not in"}},
		"config of a manifest missing": {zstdOf(t, writeTar(t, without(entries, entryIndex(t, entries, blobEntryName(app3Config))))),
			[]string{app3Config, "missing|absent|not in"}},
		"index.json names an absent manifest": {zstdOf(t, writeTar(t, without(entries, entryIndex(t, entries, blobEntryName(f.app1.DigestStr()))))),
			[]string{f.app1.DigestStr(), "missing|absent|not in"}},
		"index.json is not JSON": {zstdOf(t, writeTar(t, invalidIndex)),
			[]string{"index.json", "JSON"}},
		"same entry twice": {zstdOf(t, writeTar(t, withEntry(entries, last))),
			[]string{last.Header.Name, "twice|duplicate"}},
		"entry ../x": {zstdOf(t, writeTar(t, withEntry(entries, regular("../x")))),
			[]string{`"../x"`}},
		"absolute entry": {zstdOf(t, writeTar(t, withEntry(entries, regular("/tmp/ferry-e2e-absolute")))),
			[]string{"/tmp/ferry-e2e-absolute"}},
		"symlink": {zstdOf(t, writeTar(t, withEntry(entries, link(sha256Name("symlink"), tar.TypeSymlink, "/etc/passwd")))),
			[]string{sha256Name("symlink"), "symlink"}},
		"hard link": {zstdOf(t, writeTar(t, withEntry(entries, link(sha256Name("hardlink"), tar.TypeLink, last.Header.Name)))),
			[]string{sha256Name("hardlink"), "link"}},
		"device": {zstdOf(t, writeTar(t, withEntry(entries, device))),
			[]string{sha256Name("device"), "device"}},
		// Bombs: refused quickly and in bounded memory.
		"bomb: zstd frame declaring a 2 GiB window": {rawFrame(window2G, good),
			[]string{"window"}},
		"bomb: 4 GiB of zeros after the tar": {append(zstdOf(t, good), zeroFrame(4<<30)...),
			[]string{"after the end of the tar"}},
		"bomb: 4 GiB index.json": {indexBomb,
			[]string{"index.json", "bytes"}},
	}
}

func mustDecompress(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := zstd.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Limits a hostile archive must stay within: far below the gigabytes the
// bombs expand to, far above what an honest small import needs (even built
// with -race).
const (
	badArchiveMaxTime = 30 * time.Second
	badArchiveMaxRSS  = 512 << 20
)

func TestImportRefusesBadArchivesWithoutTagging(t *testing.T) {
	f, archive := exported(t)
	dst := testregistry.NewDistribution(t)
	for label, tc := range badArchives(t, f, archive) {
		t.Run(label, func(t *testing.T) {
			repo := dst.Repo("bad/" + repoSafe(label))
			r := ferryIn(t, nil, bytes.NewReader(tc.data), "import", "-f", "-", "--to-repo", repo)
			if r.Code != 1 {
				t.Fatalf("want exit 1: %s", r)
			}
			for _, w := range tc.want {
				if !containsAny(r.Stderr, strings.Split(w, "|")) {
					t.Errorf("the error does not say %q: %s", w, r.Stderr)
				}
			}
			if r.Elapsed > badArchiveMaxTime {
				t.Errorf("refusing took %s", r.Elapsed)
			}
			if r.MaxRSS > badArchiveMaxRSS {
				t.Errorf("refusing took %d MiB of memory", r.MaxRSS>>20)
			}
			if d, ok := tagsOf(t, dst, repo)["v1"]; ok {
				t.Fatalf("the original tag was written (%s) by a failed import", d)
			}
		})
	}
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// repoSafe turns a label into a repository path component.
func repoSafe(label string) string {
	var b strings.Builder
	for _, c := range strings.ToLower(label) {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			b.WriteRune(c)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
	}
	return strings.TrimSuffix(b.String(), "-")
}
