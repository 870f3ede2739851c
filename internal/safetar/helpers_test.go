package safetar

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"testing"

	"github.com/ferry-dev/ferry/fixtures/golden"
)

// Digests from fixtures/golden/README.md: the bundle-basic layer as imgpkg pushed
// it, compressed and uncompressed.
const (
	goldenLayerHex  = "9b0ff7cbb64fc95778032e3957067084a64c3bed42efcf0519f202e2a102392b"
	goldenDiffIDHex = "b97e3c9743e912b5592e0cd27a65744ddf2f9581448eac6b4631a65bebc71a25"
)

// entry describes one tar header for buildTar.
type entry struct {
	name string
	typ  byte
	mode int64
	link string
	body string
}

func file(name, body string) entry {
	return entry{name: name, typ: tar.TypeReg, mode: 0o600, body: body}
}

func dir(name string) entry { return entry{name: name, typ: tar.TypeDir, mode: 0o700} }

func buildTar(t testing.TB, entries ...entry) []byte {
	t.Helper()
	b, err := encodeTar(entries)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// encodeTar writes entries as a tar stream, or says why it cannot.
func encodeTar(entries []entry) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link}
		if e.typ == tar.TypeReg {
			hdr.Size = int64(len(e.body))
		}
		if e.typ == tar.TypeChar || e.typ == tar.TypeBlock {
			hdr.Devmajor, hdr.Devminor = 1, 3
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("write header %q: %w", e.name, err)
		}
		if e.typ == tar.TypeReg {
			if _, err := io.WriteString(tw, e.body); err != nil {
				return nil, fmt.Errorf("write body %q: %w", e.name, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// workspace makes parent/out, the output directory, inside a fresh temp
// directory whose other contents the test can check.
func workspace(t testing.TB) (parent, out string) {
	t.Helper()
	parent = t.TempDir()
	out = filepath.Join(parent, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	// Preserved read-only directory modes would make t.TempDir's cleanup
	// fail; registered after TempDir, this runs before it.
	t.Cleanup(func() { ownerRWX(parent) })
	return parent, out
}

func ownerRWX(p string) {
	_ = filepath.WalkDir(p, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o700)
		}
		return nil
	})
}

func names(t testing.TB, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var ns []string
	for _, de := range des {
		ns = append(ns, de.Name())
	}
	sort.Strings(ns)
	return ns
}

// assertNames fails unless dir holds exactly want.
func assertNames(t testing.TB, dir string, want ...string) {
	t.Helper()
	got := names(t, dir)
	sort.Strings(want)
	if len(got) != len(want) {
		t.Fatalf("%s holds %q, want %q", dir, got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s holds %q, want %q", dir, got, want)
		}
	}
}

// tree maps every path below dir to its content ("/" for a directory) and
// fails on anything that is neither.
func tree(t testing.TB, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		switch {
		case d.IsDir():
			m[rel] = "/"
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			m[rel] = string(b)
		default:
			t.Errorf("%s: unexpected file type %v", rel, d.Type())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// goldenLayer returns the uncompressed bundle-basic layer taken from the
// archive imgpkg wrote, checked against the digests imgpkg reported.
func goldenLayer(t testing.TB) []byte {
	t.Helper()
	f, err := golden.Open("basic.imgpkg.tar")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err != nil {
			t.Fatalf("find layer sha256-%s.tar.gz in basic.imgpkg.tar: %v", goldenLayerHex, err)
		}
		if hdr.Name != "sha256-"+goldenLayerHex+".tar.gz" {
			continue
		}
		gz, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if got := sha256Hex(gz); got != goldenLayerHex {
			t.Fatalf("golden layer digest %s, want %s", got, goldenLayerHex)
		}
		zr, err := gzip.NewReader(bytes.NewReader(gz))
		if err != nil {
			t.Fatal(err)
		}
		raw, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		if got := sha256Hex(raw); got != goldenDiffIDHex {
			t.Fatalf("golden diff_id %s, want %s", got, goldenDiffIDHex)
		}
		return raw
	}
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// sparseTar is a PAX-format GNU sparse (1.0) file "s" of realSize bytes, all
// hole, written by hand because tar.Writer cannot write sparse files. The
// extended header is encoded as a regular file whose type flag is then
// patched to 'x', with the header checksum recomputed.
func sparseTar(t testing.TB, realSize int64) []byte {
	t.Helper()
	rec := func(k, v string) string {
		s := " " + k + "=" + v + "\n"
		n := len(s) + 1
		for len(strconv.Itoa(n))+len(s) != n {
			n = len(strconv.Itoa(n)) + len(s)
		}
		return strconv.Itoa(n) + s
	}
	pax := rec("GNU.sparse.major", "1") + rec("GNU.sparse.minor", "0") +
		rec("GNU.sparse.name", "s") + rec("GNU.sparse.realsize", strconv.FormatInt(realSize, 10))
	sparseMap := make([]byte, 512) // no data segments, one block
	copy(sparseMap, "1\n0\n0\n")
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	must(t, tw.WriteHeader(&tar.Header{Name: "pax", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(pax)), Format: tar.FormatUSTAR}))
	_, err := io.WriteString(tw, pax)
	must(t, err)
	must(t, tw.WriteHeader(&tar.Header{Name: "s", Typeflag: tar.TypeReg, Mode: 0o644, Size: 512, Format: tar.FormatUSTAR}))
	_, err = tw.Write(sparseMap)
	must(t, err)
	must(t, tw.Close())

	b := buf.Bytes()
	b[156] = tar.TypeXHeader
	copy(b[148:156], "        ")
	sum := 0
	for _, c := range b[:512] {
		sum += int(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return b
}
