package archive

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"
)

// readAllBlobs reads every config and layer of r to the end of the archive,
// returning each blob's bytes by digest, or the first error.
func readAllBlobs(r *Reader) (map[string][]byte, error) {
	got := map[string][]byte{}
	for {
		d, size, rd, err := r.Next()
		if err == io.EOF {
			return got, nil
		}
		if err != nil {
			return got, err
		}
		b, err := io.ReadAll(rd)
		if err != nil {
			return got, err
		}
		if int64(len(b)) != size {
			return got, errors.New("size differs from Next's")
		}
		got[d.String()] = b
	}
}

// An imgpkg tarball read front to back (a pipe, or compressed) gives the
// head and the blobs that reading it in place gives.
func TestReaderReadsAnImgpkgTarball(t *testing.T) {
	gold := goldenImgpkg(t)
	inPlace, err := openImgpkgBytes(gold)
	if err != nil {
		t.Fatal(err)
	}
	want := inPlace.Head()
	for name, tc := range map[string]struct {
		b    []byte
		comp Compression
	}{
		"plain": {gold, CompressionNone},
		"gzip":  {gzipBytes(t, gold), CompressionGzip},
	} {
		t.Run(name, func(t *testing.T) {
			r, err := NewReader(bytes.NewReader(tc.b), ReaderOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			h := r.Head()
			if h.Compression != tc.comp || h.CreatedBy != ImgpkgCreatedBy || h.Version != 0 {
				t.Errorf("head: %s, created by %q, version %d", h.Compression, h.CreatedBy, h.Version)
			}
			if string(mustJSON(h.Index)) != string(mustJSON(want.Index)) {
				t.Errorf("index.json differs from the one read in place:\n%s\n%s", mustJSON(h.Index), mustJSON(want.Index))
			}
			if len(h.Manifests) != len(want.Manifests) || len(h.Blobs) != len(want.Blobs) {
				t.Errorf("%d manifests, %d blobs; in place %d, %d", len(h.Manifests), len(h.Blobs), len(want.Manifests), len(want.Blobs))
			}
			got, err := readAllBlobs(r)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want.Blobs) {
				t.Fatalf("read %d blobs, want %d", len(got), len(want.Blobs))
			}
			for _, b := range want.Blobs {
				data, ok := got[b.Digest.String()]
				s := sha256.Sum256(data)
				if !ok || hex.EncodeToString(s[:]) != b.Digest.Hex {
					t.Errorf("blob %s: read %v, %d bytes hashing elsewhere", b.Digest, ok, len(data))
				}
			}
		})
	}
}

// Read front to back, a bad imgpkg tarball is refused as when read in
// place; what only its end shows (a missing layer, a damaged one) by the
// Reader's last Next.
func TestReaderRefusesBadImgpkgTarballs(t *testing.T) {
	// Where the stream's words differ: it never sees the file's size.
	streamWant := map[string]string{"head limit": "head limit", "entry named after a config": "a config manifest.json carries"}
	for _, tc := range badImgpkgTarballs(t) {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.want
			if w, ok := streamWant[tc.name]; ok {
				want = w
			}
			r, err := NewReader(bytes.NewReader(tc.tar), ReaderOptions{})
			if err == nil {
				_, err = readAllBlobs(r)
				r.Close()
			}
			t.Log(err)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("got %v, want an error containing %q", err, want)
			}
		})
	}

	// A damaged layer: its digest, named with its entry.
	_, es := imgpkgEntries(t, goldenImgpkg(t))
	es[2].body = bytes.Clone(es[2].body)
	es[2].body[10] ^= 0xff
	r, err := NewReader(bytes.NewReader(buildTar(t, es)), ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := readAllBlobs(r); err == nil || !strings.Contains(err.Error(), es[2].name) || !strings.Contains(err.Error(), "digest") {
		t.Fatalf("a damaged layer: %v", err)
	}
}

// Whether imgpkg included a non-distributable layer shows only at the
// tarball's end: read front to back, such a tarball is refused before any
// blob, with the way to read it.
func TestReaderRefusesNonDistributableImgpkgStream(t *testing.T) {
	tb, foreign := foreignImgpkg(t)
	if _, err := openImgpkgBytes(tb); err != nil {
		t.Fatalf("in place, the layer is skipped: %v", err)
	}
	_, err := NewReader(bytes.NewReader(tb), ReaderOptions{})
	if err == nil || !strings.Contains(err.Error(), foreign.String()) || !strings.Contains(err.Error(), "as a file") {
		t.Fatalf("NewReader: %v", err)
	}
}

// A ferry archive's name rules are unchanged: manifest.json after the
// first entry, or imgpkg's layer names in a ferry archive, are refused.
func TestReaderKeepsLayoutNamesApartFromImgpkg(t *testing.T) {
	layer := "sha256-" + strings.Repeat("ab", 32) + ".tar.gz"
	for _, es := range [][]tarEntry{
		{{name: "other.json", body: []byte("{}")}},
		{{name: layer, body: []byte("x")}},
		{{name: "oci-layout", body: []byte(`{"imageLayoutVersion":"1.0.0"}`)}, {name: "manifest.json", body: []byte("[]")}},
	} {
		_, err := NewReader(bytes.NewReader(buildTar(t, es)), ReaderOptions{})
		if err == nil || !strings.Contains(err.Error(), "not a name of the layout") {
			t.Fatalf("NewReader of a tar starting with %s: %v", es[0].name, err)
		}
	}
	// Nor does an imgpkg tarball admit the layout's names.
	_, es := imgpkgEntries(t, goldenImgpkg(t))
	es = append(es, tarEntry{name: "index.json", body: []byte("{}")})
	r, err := NewReader(bytes.NewReader(buildTar(t, es)), ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := readAllBlobs(r); err == nil || !strings.Contains(err.Error(), "not a name imgpkg writes") {
		t.Fatalf("index.json in an imgpkg tarball: %v", err)
	}
}
