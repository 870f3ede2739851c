package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// verifyErr runs a full pass and returns its error.
func verifyErr(data []byte, opts ReaderOptions) error {
	_, _, err := readArchive(data, opts)
	if err == nil {
		// Verify also checks what only a file offers: the seek table.
		_, err = Verify(context.Background(), bytes.NewReader(data))
	}
	return err
}

func wantErr(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("accepted; want an error mentioning %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not mention %q", err, p)
		}
	}
}

// TestRejectEntries damages a correct archive's entry list, one way per
// case, and checks that the Reader refuses it, naming the entry.
func TestRejectEntries(t *testing.T) {
	fx := newFixture(t, fixtureOptions{})
	nHead := 2 + len(fx.manifests) // entries up to the last manifest
	blobEntry := func(es []tarEntry, i int) tarEntry { return es[nHead+i] }

	// A manifest whose bytes are not JSON, referenced by index.json.
	notJSON := newBlob(types.DockerManifestSchema2, []byte("this is not json"))
	notJSONIndex, err := BuildIndex(append(fx.entries[:len(fx.entries):len(fx.entries)],
		Entry{Descriptor: desc(notJSON), Role: RoleImage, OriginalRef: "registry.example/broken@" + notJSON.d.String()}),
		IndexOptions{CreatedBy: "x"})
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		mut  func(es []tarEntry) []tarEntry
		want []string
	}{
		{"dot-dot name", func(es []tarEntry) []tarEntry {
			return insert(es, nHead, tarEntry{name: "../x", body: []byte("x")})
		}, []string{`"../x"`, "not a name"}},
		{"absolute name", func(es []tarEntry) []tarEntry {
			return insert(es, nHead, tarEntry{name: "/etc/passwd", body: []byte("x")})
		}, []string{`"/etc/passwd"`}},
		{"uppercase hex", func(es []tarEntry) []tarEntry {
			e := blobEntry(es, 0)
			es[nHead].name = "blobs/sha256/" + strings.ToUpper(strings.TrimPrefix(e.name, "blobs/sha256/"))
			return es
		}, []string{"not a name"}},
		{"other algorithm", func(es []tarEntry) []tarEntry {
			return insert(es, nHead, tarEntry{name: "blobs/sha512/" + strings.Repeat("a", 128), body: []byte("x")})
		}, []string{"blobs/sha512/"}},
		{"symlink", func(es []tarEntry) []tarEntry {
			es[nHead] = tarEntry{name: es[nHead].name, typ: tar.TypeSymlink, link: "/etc/passwd"}
			return es
		}, []string{es0name(fx, nHead), "symlink"}},
		{"hard link", func(es []tarEntry) []tarEntry {
			es[nHead] = tarEntry{name: es[nHead].name, typ: tar.TypeLink, link: "index.json"}
			return es
		}, []string{es0name(fx, nHead), "hard link"}},
		{"device", func(es []tarEntry) []tarEntry {
			es[nHead] = tarEntry{name: es[nHead].name, typ: tar.TypeChar}
			return es
		}, []string{es0name(fx, nHead), "device"}},
		{"directory after blobs", func(es []tarEntry) []tarEntry {
			return insert(es, nHead, tarEntry{name: "blobs/", typ: tar.TypeDir})
		}, []string{"blobs/", "directories"}},
		{"layer twice", func(es []tarEntry) []tarEntry {
			return append(es, blobEntry(es, 1))
		}, []string{es0name(fx, nHead+1), "twice"}},
		{"manifest twice", func(es []tarEntry) []tarEntry {
			return insert(es, 3, es[2])
		}, []string{es0name(fx, 2), "twice"}},
		{"manifest again among layers", func(es []tarEntry) []tarEntry {
			return append(es, es[2])
		}, []string{es0name(fx, 2), "twice"}},
		{"oci-layout not first", func(es []tarEntry) []tarEntry {
			es[0], es[1] = es[1], es[0]
			return es
		}, []string{"index.json", "first entry must be oci-layout"}},
		{"index.json not second", func(es []tarEntry) []tarEntry {
			es[1], es[2] = es[2], es[1]
			return es
		}, []string{es0name(fx, 2), "second entry must be index.json"}},
		{"layer before a manifest", func(es []tarEntry) []tarEntry {
			l := blobEntry(es, 0)
			es = remove(es, nHead)
			return insert(es, nHead-1, l)
		}, []string{es0name(fx, nHead), "before the last manifest"}},
		{"unreferenced blob in the head", func(es []tarEntry) []tarEntry {
			b := []byte("stray")
			return insert(es, 2, tarEntry{name: "blobs/sha256/" + digestOf(b).Hex, body: b})
		}, []string{"blobs/sha256/" + digestOf([]byte("stray")).Hex, "not referenced"}},
		{"unreferenced blob among layers", func(es []tarEntry) []tarEntry {
			b := []byte("stray")
			return append(es, tarEntry{name: "blobs/sha256/" + digestOf(b).Hex, body: b})
		}, []string{"blobs/sha256/" + digestOf([]byte("stray")).Hex, "not referenced"}},
		{"index.json not JSON", func(es []tarEntry) []tarEntry {
			es[1].body = []byte("{not json")
			return es
		}, []string{"index.json", "not an OCI index"}},
		{"index.json a manifest", func(es []tarEntry) []tarEntry {
			es[1].body = fx.root.b
			return es
		}, []string{"index.json"}},
		{"index.json without version", func(es []tarEntry) []tarEntry {
			es[1].body = bytes.Replace(fx.index, []byte(`"dev.ferry.archive.version":"1"`), []byte(`"x":"1"`), 1)
			return es
		}, []string{"index.json", "dev.ferry.archive.version", "not a ferry archive"}},
		{"index.json bad version", func(es []tarEntry) []tarEntry {
			es[1].body = bytes.Replace(fx.index, []byte(`"dev.ferry.archive.version":"1"`), []byte(`"dev.ferry.archive.version":"one"`), 1)
			return es
		}, []string{"index.json", `"one"`}},
		{"index.json bad skipped list", func(es []tarEntry) []tarEntry {
			es[1].body = bytes.Replace(fx.index, []byte(`"dev.ferry.skipped-layers":"sha256:`), []byte(`"dev.ferry.skipped-layers":"sha256:zz,sha256:`), 1)
			return es
		}, []string{"index.json", "skipped-layers"}},
		{"oci-layout version", func(es []tarEntry) []tarEntry {
			es[0].body = []byte(`{"imageLayoutVersion":"2.0.0"}`)
			return es
		}, []string{"oci-layout", "2.0.0"}},
		{"manifest missing from the head", func(es []tarEntry) []tarEntry {
			// An index's child: reachable only through the index.
			return removeName(es, "blobs/sha256/"+fx.idxChildren[0].d.Hex)
		}, []string{fx.idxChildren[0].d.String(), "index " + fx.idx.d.String()}},
		{"manifest not JSON", func(es []tarEntry) []tarEntry {
			es[1].body = notJSONIndex
			return insert(es, 2, tarEntry{name: "blobs/sha256/" + notJSON.d.Hex, body: notJSON.b})
		}, []string{"blobs/sha256/" + notJSON.d.Hex, "not valid JSON"}},
		{"layer missing", func(es []tarEntry) []tarEntry {
			return removeName(es, "blobs/sha256/"+fx.blobs[1].d.Hex)
		}, []string{fx.blobs[1].d.String(), "manifest " + fx.root.d.String(), "missing"}},
		{"flipped byte in a layer", func(es []tarEntry) []tarEntry {
			e := &es[nHead+1]
			e.body = bytes.Clone(e.body)
			e.body[7] ^= 0x40
			return es
		}, []string{es0name(fx, nHead+1), "digest"}},
		{"flipped byte in a manifest", func(es []tarEntry) []tarEntry {
			e := &es[2]
			e.body = bytes.Clone(e.body)
			e.body[len(e.body)-2] ^= 0x01
			return es
		}, []string{es0name(fx, 2), "digest"}},
		{"layer of the wrong size", func(es []tarEntry) []tarEntry {
			e := &es[nHead+1]
			e.body = append(bytes.Clone(e.body), 0)
			return es
		}, []string{es0name(fx, nHead+1), "bytes"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			es := tc.mut(fx.entries0())
			plain := buildTar(t, es)
			err := verifyErr(plain, ReaderOptions{})
			wantErr(t, err, tc.want...)
			// The same through zstd, and through Verify.
			_, err = Verify(context.Background(), bytes.NewReader(zstdBytes(t, plain)))
			wantErr(t, err, tc.want...)
		})
	}
}

func es0name(fx *fixture, i int) string { return fx.entries0()[i].name }

func insert(es []tarEntry, i int, e tarEntry) []tarEntry {
	return append(es[:i:i], append([]tarEntry{e}, es[i:]...)...)
}

func remove(es []tarEntry, i int) []tarEntry { return append(es[:i:i], es[i+1:]...) }

func removeName(es []tarEntry, name string) []tarEntry {
	for i, e := range es {
		if e.name == name {
			return remove(es, i)
		}
	}
	panic("no entry " + name)
}

func TestRejectNewerVersion(t *testing.T) {
	fx := newFixture(t, fixtureOptions{})
	es := fx.entries0()
	es[1].body = bytes.Replace(fx.index, []byte(`"dev.ferry.archive.version":"1"`), []byte(`"dev.ferry.archive.version":"7"`), 1)
	_, err := NewReader(bytes.NewReader(zstdBytes(t, buildTar(t, es))), ReaderOptions{})
	wantErr(t, err, "archive format version 7 is newer than this ferry understands (2); upgrade ferry")
	if !errors.Is(err, ErrNewerFormat) {
		t.Errorf("%v is not ErrNewerFormat", err)
	}
}

func TestRejectLargeBlobWhereManifestExpected(t *testing.T) {
	fx := newFixture(t, fixtureOptions{})
	es := fx.entries0()
	nHead := 2 + len(fx.manifests)
	// The 200 KiB image layer first, with a manifest limit below it: the
	// Reader refuses at once rather than holding it.
	var li int
	for i, b := range fx.blobs {
		if len(b.b) > 100<<10 {
			li = nHead + i
		}
	}
	l := es[li]
	es = insert(remove(es, li), 2, l)
	_, err := NewReader(bytes.NewReader(buildTar(t, es)), ReaderOptions{MaxManifestSize: 64 << 10})
	wantErr(t, err, l.name, "where a manifest was expected")

	// And the head as a whole is bounded.
	_, err = NewReader(bytes.NewReader(buildTar(t, fx.entries0())), ReaderOptions{MaxHeadSize: 2000})
	wantErr(t, err, "head")
}

func TestRejectTruncated(t *testing.T) {
	fx := newFixture(t, fixtureOptions{})
	data := fx.write(t, WriterOptions{}, nil)
	plain := unzstd(t, data)
	for _, n := range []int{len(data) - 1, len(data) - 4, len(data) - 100, len(data) / 2, 200, 10} {
		if err := verifyErr(data[:n], ReaderOptions{}); err == nil {
			t.Errorf("zstd cut at %d of %d: accepted", n, len(data))
		}
	}
	// Plain tar: cut at block boundaries (every one in the head, then a
	// sample) and in the middle of one.
	for n := 512; n < len(plain); n += 512 {
		if n > 8<<10 {
			n += 512 * 13
		}
		if n >= len(plain) {
			break
		}
		if err := verifyErr(plain[:n], ReaderOptions{}); err == nil {
			t.Fatalf("tar cut at %d of %d: accepted", n, len(plain))
		}
	}
	if err := verifyErr(plain[:len(plain)-700], ReaderOptions{}); err == nil {
		t.Error("tar cut mid-block accepted")
	}
	// Cut exactly at the end marker: archive/tar alone would call it a
	// clean end.
	err := verifyErr(plain[:len(plain)-1024], ReaderOptions{})
	wantErr(t, err, "truncated", "end-of-archive")
}

func TestRejectFlippedCompressedByte(t *testing.T) {
	fx := newFixture(t, fixtureOptions{})
	data := fx.write(t, WriterOptions{}, nil)
	// Every byte position in a sample across the stream, frame headers
	// and checksums included.
	step := len(data) / 97
	for i := 0; i < len(data); i += step {
		bad := bytes.Clone(data)
		bad[i] ^= 0x10
		if err := verifyErr(bad, ReaderOptions{}); err == nil {
			t.Errorf("flipped byte %d of %d: accepted", i, len(data))
		}
	}
	// The zstd content checksum alone catches a flip the blob digests
	// would miss: one in the tar padding after the end marker.
	plain := unzstd(t, data)
	padded := append(bytes.Clone(plain), make([]byte, 512)...)
	enc := zstdBytes(t, padded)
	// zstd stores incompressible zeros compactly; flip a bit of the last
	// byte of the content checksum instead.
	enc[len(enc)-1] ^= 0x01
	wantErr(t, verifyErr(enc, ReaderOptions{}), "checksum")
}

func TestRejectTrailingData(t *testing.T) {
	fx := newFixture(t, fixtureOptions{})
	plain := unzstd(t, fx.write(t, WriterOptions{}, nil))
	wantErr(t, verifyErr(append(bytes.Clone(plain), "garbage"...), ReaderOptions{}), "after the end of the tar")
	wantErr(t, verifyErr(append(bytes.Clone(plain), make([]byte, maxTrailing+1024)...), ReaderOptions{}), "padding")
}

func TestRejectNotAnArchive(t *testing.T) {
	for name, data := range map[string][]byte{
		"empty":  nil,
		"text":   []byte("hello, world"),
		"xz":     {0xfd, '7', 'z', 'X', 'Z', 0, 0, 0},
		"bzip2":  []byte("BZh91AY&SY"),
		"random": randomBytes(9, 4096),
	} {
		if _, err := NewReader(bytes.NewReader(data), ReaderOptions{}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestRejectHugeWindow hands the Reader a zstd frame that declares a 1 GiB
// window: the decoder must refuse it instead of allocating.
func TestRejectHugeWindow(t *testing.T) {
	fx := newFixture(t, fixtureOptions{})
	plain := unzstd(t, fx.write(t, WriterOptions{}, nil))[:1024]
	var frame []byte
	frame = append(frame, 0x28, 0xb5, 0x2f, 0xfd)
	frame = append(frame, 0x00)      // no single segment, no checksum, no size
	frame = append(frame, 20<<3)     // window log 10+20: 1 GiB
	hdr := 1 | uint32(len(plain))<<3 // last block, raw
	frame = append(frame, byte(hdr), byte(hdr>>8), byte(hdr>>16))
	frame = append(frame, plain...)
	_, err := NewReader(bytes.NewReader(frame), ReaderOptions{})
	wantErr(t, err, "window")
	// A 16 MiB window: refused under an 8 MiB cap, decoded under the
	// default one until the (deliberately short) data ends.
	frame[5] = 14 << 3
	_, err = NewReader(bytes.NewReader(frame), ReaderOptions{MaxWindow: 8 << 20})
	wantErr(t, err, "window")
	_, err = NewReader(bytes.NewReader(frame), ReaderOptions{})
	if err == nil || strings.Contains(err.Error(), "window") {
		t.Errorf("with the default cap: %v", err)
	}
}

func TestReaderDetectsSkippableFrame(t *testing.T) {
	fx := newFixture(t, fixtureOptions{})
	data := fx.write(t, WriterOptions{}, nil)
	skip := []byte{0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 'f', 'e', 'r', 'y'}
	if _, _, err := readArchive(append(skip, data...), ReaderOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestWriterRefuses(t *testing.T) {
	fx := newFixture(t, fixtureOptions{})
	newW := func(t *testing.T) (*Writer, *bytes.Buffer) {
		var buf bytes.Buffer
		w, err := NewWriter(&buf, WriterOptions{Concurrency: 1})
		if err != nil {
			t.Fatal(err)
		}
		if err := w.WriteHeader(fx.index, fx.manifests); err != nil {
			t.Fatal(err)
		}
		return w, &buf
	}
	blob := fx.blobs[1]

	t.Run("digest mismatch is final", func(t *testing.T) {
		w, _ := newW(t)
		other := bytes.Clone(blob.b)
		other[0] ^= 1
		err := w.WriteBlob(blob.d, int64(len(other)), bytes.NewReader(other))
		wantErr(t, err, blob.d.String(), "digest")
		wantErr(t, w.WriteBlob(fx.blobs[0].d, int64(len(fx.blobs[0].b)), bytes.NewReader(fx.blobs[0].b)), blob.d.String())
		wantErr(t, w.Close(), blob.d.String())
	})
	t.Run("short reader", func(t *testing.T) {
		w, _ := newW(t)
		wantErr(t, w.WriteBlob(blob.d, int64(len(blob.b)), bytes.NewReader(blob.b[:10])), blob.d.String(), "got 10 bytes")
		w.Close()
	})
	t.Run("failing reader", func(t *testing.T) {
		// The reader's own error is kept, with how far it got.
		w, _ := newW(t)
		r := io.MultiReader(bytes.NewReader(blob.b[:10]), iotest.ErrReader(io.ErrUnexpectedEOF))
		wantErr(t, w.WriteBlob(blob.d, int64(len(blob.b)), r), blob.d.String(), "after 10 of", io.ErrUnexpectedEOF.Error())
		w.Close()
	})
	t.Run("long reader", func(t *testing.T) {
		w, _ := newW(t)
		wantErr(t, w.WriteBlob(blob.d, int64(len(blob.b)), bytes.NewReader(append(bytes.Clone(blob.b), 'x'))), blob.d.String(), "longer")
		w.Close()
	})
	t.Run("refusals before writing leave the Writer usable", func(t *testing.T) {
		w, buf := newW(t)
		stray := []byte("stray")
		wantErr(t, w.WriteBlob(digestOf(stray), 5, bytes.NewReader(stray)), digestOf(stray).String(), "no manifest")
		wantErr(t, w.WriteBlob(blob.d, int64(len(blob.b))+1, bytes.NewReader(blob.b)), blob.d.String(), "size")
		wantErr(t, w.WriteBlob(fx.foreign.d, int64(len(fx.foreign.b)), bytes.NewReader(fx.foreign.b)), fx.foreign.d.String(), "skipped")
		wantErr(t, w.WriteBlob(fx.root.d, int64(len(fx.root.b)), bytes.NewReader(fx.root.b)), fx.root.d.String(), "already")
		for i, b := range fx.blobs {
			if err := w.WriteBlob(b.d, int64(len(b.b)), bytes.NewReader(b.b)); err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				wantErr(t, w.WriteBlob(b.d, int64(len(b.b)), bytes.NewReader(b.b)), b.d.String(), "already")
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if _, _, err := readArchive(buf.Bytes(), ReaderOptions{}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("missing blob at Close", func(t *testing.T) {
		w, _ := newW(t)
		for _, b := range fx.blobs[2:] {
			if err := w.WriteBlob(b.d, int64(len(b.b)), bytes.NewReader(b.b)); err != nil {
				t.Fatal(err)
			}
		}
		wantErr(t, w.Close(), fx.blobs[0].d.String(), "manifest "+fx.root.d.String())
	})
	t.Run("head", func(t *testing.T) {
		w, err := NewWriter(&bytes.Buffer{}, WriterOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		wantErr(t, w.WriteBlob(blob.d, int64(len(blob.b)), bytes.NewReader(blob.b)), "before WriteHeader")
		missing := clone(fx.manifests)
		delete(missing, fx.idxChildren[1].d)
		wantErr(t, w.WriteHeader(fx.index, missing), fx.idxChildren[1].d.String(), "index "+fx.idx.d.String())
		extra := clone(fx.manifests)
		stray := []byte(`{"schemaVersion":2}`)
		extra[digestOf(stray)] = stray
		wantErr(t, w.WriteHeader(fx.index, extra), digestOf(stray).String(), "not reachable")
		wrong := clone(fx.manifests)
		wrong[fx.root.d] = fx.nested.b
		wantErr(t, w.WriteHeader(fx.index, wrong), fx.root.d.String(), "digest")
		wantErr(t, w.WriteHeader([]byte("{}"), fx.manifests), "index.json")
		// A head a reader with the same limit would refuse is not written.
		headSize := int64(len(fx.index))
		for _, b := range fx.manifests {
			headSize += int64(len(b))
		}
		var small bytes.Buffer
		sw, err := NewWriter(&small, WriterOptions{MaxHeadSize: headSize - 1})
		if err != nil {
			t.Fatal(err)
		}
		wantErr(t, sw.WriteHeader(fx.index, fx.manifests), "head limit")
		sw.Close()
		ew, err := NewWriter(&bytes.Buffer{}, WriterOptions{MaxHeadSize: headSize})
		if err != nil {
			t.Fatal(err)
		}
		if err := ew.WriteHeader(fx.index, fx.manifests); err != nil {
			t.Errorf("a head of exactly the limit: %v", err)
		}
		ew.Close()
		if err := w.WriteHeader(fx.index, fx.manifests); err != nil {
			t.Fatal(err)
		}
		wantErr(t, w.WriteHeader(fx.index, fx.manifests), "twice")
	})
	t.Run("write error", func(t *testing.T) {
		w, err := NewWriter(failWriter{}, WriterOptions{Concurrency: 2})
		if err != nil {
			t.Fatal(err)
		}
		err = w.WriteHeader(fx.index, fx.manifests)
		if err == nil {
			for _, b := range fx.blobs {
				if err = w.WriteBlob(b.d, int64(len(b.b)), bytes.NewReader(b.b)); err != nil {
					break
				}
			}
		}
		if err == nil {
			err = w.Close()
		} else {
			w.Close()
		}
		wantErr(t, err, "disk full")
	})
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, fmt.Errorf("disk full") }

func clone(m map[v1.Hash][]byte) map[v1.Hash][]byte {
	out := make(map[v1.Hash][]byte, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
