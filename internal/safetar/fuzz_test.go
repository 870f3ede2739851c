//go:build unix

package safetar

import (
	"archive/tar"
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fuzzEnv is a fresh parent directory holding the output directory "out"
// and an empty directory "outside"; out holds a symbolic link "link" to
// outside, planted as an attacker who could write to out might.
type fuzzEnv struct{ parent, out, outside, link string }

func newFuzzEnv(t *testing.T) fuzzEnv {
	parent, out := workspace(t)
	e := fuzzEnv{parent: parent, out: out, outside: filepath.Join(parent, "outside"), link: filepath.Join(out, "link")}
	must(t, os.Mkdir(e.outside, 0o755))
	must(t, os.Symlink(e.outside, e.link))
	return e
}

// checkConfined fails if anything exists outside out, or if out holds
// anything but directories, regular files and the planted link.
func (e fuzzEnv) checkConfined(t *testing.T) {
	t.Helper()
	ownerRWX(e.parent) // preserved modes may deny reading
	assertNames(t, e.parent, "out", "outside")
	assertNames(t, e.outside)
	if target, err := os.Readlink(e.link); err != nil || target != e.outside {
		t.Fatalf("planted link changed: %q, %v", target, err)
	}
	err := filepath.WalkDir(e.out, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != e.link && !d.IsDir() && !d.Type().IsRegular() {
			t.Errorf("%s has type %v", p, d.Type())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// FuzzExtract feeds arbitrary bytes to Extract as the tar stream. Each run
// touches the filesystem, so minimizing a large input takes minutes with the
// default budget; fuzz with -fuzzminimizetime=2s.
func FuzzExtract(f *testing.F) {
	f.Add(goldenLayer(f), false)
	f.Add(sparseTar(f, 1<<20), false)
	for _, es := range seedEntries() {
		f.Add(buildTar(f, es...), false)
		f.Add(buildTar(f, es...), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, preserve bool) {
		e := newFuzzEnv(t)
		_ = Extract(context.Background(), bytes.NewReader(data), e.out, Options{PreservePermissions: preserve})
		e.checkConfined(t)
	})
}

// FuzzExtractEntries fuzzes the entries rather than the bytes: random bytes
// rarely get past tar's header checksum, so the names, types and links that
// matter for escaping are generated here and always form a valid tar. spec
// holds one entry per line: a type letter (see specEntries), then the name,
// then optionally " -> " and a link target.
func FuzzExtractEntries(f *testing.F) {
	for _, s := range []string{
		"d .\nd a\nf a/b.txt\nx a/run.sh\nF ro.txt",
		"f ../escape.txt",
		"f /tmp/abs.txt",
		"l up -> ..\nf up/escape.txt",
		"l root -> /\nf root/tmp/x",
		"h hl -> ../victim",
		"f link/through.txt",
		"d link",
		"f link",
		"D ro\nf ro/f\nd ro/sub\nf ro/sub/g",
		"f a\nf a",
		"d d\nf d",
		`f ..\..\escape.txt`,
		"c null\nb sda\np fifo",
		"f a/./b/../../../c",
		"g global\nf ok",
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, spec string, preserve bool) {
		entries := specEntries(spec)
		if entries == nil {
			return
		}
		data, err := encodeTar(entries)
		if err != nil {
			return // not encodable as tar; FuzzExtract covers odd bytes
		}
		e := newFuzzEnv(t)
		err = Extract(context.Background(), bytes.NewReader(data), e.out, Options{PreservePermissions: preserve})
		e.checkConfined(t)
		if err != nil {
			return
		}
		// Success means every file landed where its name says.
		for _, en := range entries {
			if en.typ != tar.TypeReg {
				continue
			}
			rel, cerr := cleanName(en.name)
			if cerr != nil {
				t.Fatalf("Extract accepted %q that cleanName refuses: %v", en.name, cerr)
			}
			b, rerr := os.ReadFile(filepath.Join(e.out, filepath.FromSlash(rel)))
			if rerr != nil || string(b) != en.body {
				t.Fatalf("%q extracted as %q, %v; want %q", en.name, b, rerr, en.body)
			}
		}
	})
}

// specEntries parses FuzzExtractEntries' spec; nil when it has no entries
// or too many to stay fast.
func specEntries(spec string) []entry {
	lines := strings.Split(spec, "\n")
	if len(lines) > 16 {
		return nil
	}
	var es []entry
	for _, l := range lines {
		if len(l) < 3 {
			continue
		}
		name, link, _ := strings.Cut(l[2:], " -> ")
		en := entry{name: name, link: link, body: name}
		switch l[0] {
		case 'f':
			en.typ, en.mode = tar.TypeReg, 0o644
		case 'F':
			en.typ, en.mode = tar.TypeReg, 0o400
		case 'x':
			en.typ, en.mode = tar.TypeReg, 0o4755
		case 'd':
			en.typ, en.mode = tar.TypeDir, 0o755
		case 'D':
			en.typ, en.mode = tar.TypeDir, 0o500
		case 'l':
			en.typ = tar.TypeSymlink
		case 'h':
			en.typ = tar.TypeLink
		case 'c':
			en.typ = tar.TypeChar
		case 'b':
			en.typ = tar.TypeBlock
		case 'p':
			en.typ = tar.TypeFifo
		case 'g':
			en.typ = tar.TypeXGlobalHeader
		default:
			en.typ, en.mode = l[0], 0o644
		}
		if en.typ != tar.TypeReg {
			en.body = ""
		}
		es = append(es, en)
	}
	return es
}

// seedEntries are the hostile layers of the unit tests, as FuzzExtract seeds.
func seedEntries() [][]entry {
	return [][]entry{
		{dir("."), dir("a"), file("a/b.txt", "b"), {name: "a/run.sh", typ: tar.TypeReg, mode: 0o700, body: "#!/bin/sh"}},
		{file("../escape.txt", "x")},
		{file("/tmp/abs.txt", "x")},
		{{name: "link2", typ: tar.TypeSymlink, link: "/"}, file("link2/tmp/through.txt", "x")},
		{{name: "up", typ: tar.TypeSymlink, link: ".."}, file("up/escape.txt", "x")},
		{{name: "hl", typ: tar.TypeLink, link: "../victim"}},
		{{name: "null", typ: tar.TypeChar, mode: 0o666}},
		{{name: "fifo", typ: tar.TypeFifo, mode: 0o600}},
		{file("link/through.txt", "x")},
		{file(strings.Repeat("n", 300), "x")},
		{{name: "ro", typ: tar.TypeDir, mode: 0o500}, file("ro/f", "f")},
	}
}
