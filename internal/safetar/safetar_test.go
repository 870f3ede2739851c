package safetar

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/fixtures/golden"
)

func TestExtractRefusesUnsafeEntries(t *testing.T) {
	long := strings.Repeat("a", 300)
	deep := strings.Repeat(strings.Repeat("b", 250)+"/", 20) + "f.txt"
	tests := []struct {
		name    string
		entries func(parent string) []entry
		bad     string // the entry the error must name
		want    error
	}{
		{"dotdot", func(string) []entry { return []entry{file("../escape.txt", "x")} }, "../escape.txt", ErrUnsafePath},
		{"dotdot below a dir", func(string) []entry {
			return []entry{dir("a"), file("a/../../escape.txt", "x")}
		}, "a/../../escape.txt", ErrUnsafePath},
		{"dotdot that stays inside", func(string) []entry { return []entry{file("a/../b.txt", "x")} }, "a/../b.txt", ErrUnsafePath},
		{"backslash dotdot", func(string) []entry { return []entry{file(`..\escape.txt`, "x")} }, `..\escape.txt`, ErrUnsafePath},
		{"dotdot directory", func(string) []entry { return []entry{dir("../escaped-dir")} }, "../escaped-dir", ErrUnsafePath},
		{"absolute", func(parent string) []entry {
			return []entry{file(filepath.ToSlash(filepath.Join(parent, "abs.txt")), "x")}
		}, "abs.txt", ErrUnsafePath},
		{"symlink to root, then a file through it", func(parent string) []entry {
			return []entry{
				{name: "link", typ: tar.TypeSymlink, link: "/"},
				file("link"+filepath.ToSlash(parent)+"/through.txt", "x"),
			}
		}, "link", ErrUnsupportedType},
		{"relative symlink out, then a file through it", func(string) []entry {
			return []entry{{name: "up", typ: tar.TypeSymlink, link: ".."}, file("up/escape.txt", "x")}
		}, "up", ErrUnsupportedType},
		{"symlink inside", func(string) []entry {
			return []entry{file("a.txt", "x"), {name: "b.txt", typ: tar.TypeSymlink, link: "a.txt"}}
		}, "b.txt", ErrUnsupportedType},
		{"hardlink out", func(parent string) []entry {
			return []entry{{name: "hl", typ: tar.TypeLink, link: "../victim"}}
		}, "hl", ErrUnsupportedType},
		{"hardlink inside", func(string) []entry {
			return []entry{file("a.txt", "x"), {name: "hl", typ: tar.TypeLink, link: "a.txt"}}
		}, "hl", ErrUnsupportedType},
		{"character device", func(string) []entry { return []entry{{name: "null", typ: tar.TypeChar, mode: 0o666}} }, "null", ErrUnsupportedType},
		{"block device", func(string) []entry { return []entry{{name: "sda", typ: tar.TypeBlock, mode: 0o660}} }, "sda", ErrUnsupportedType},
		{"fifo", func(string) []entry { return []entry{{name: "pipe", typ: tar.TypeFifo, mode: 0o600}} }, "pipe", ErrUnsupportedType},
		{"huge component", func(string) []entry { return []entry{file(long, "x")} }, long[:100], ErrUnsafePath},
		{"huge path", func(string) []entry { return []entry{file(deep, "x")} }, deep[:100], ErrUnsafePath},
		{"file named like the directory", func(string) []entry { return []entry{file(".", "x")} }, ".", ErrUnsafePath},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parent, out := workspace(t)
			victim := filepath.Join(parent, "victim")
			if err := os.WriteFile(victim, []byte("original"), 0o600); err != nil {
				t.Fatal(err)
			}

			err := Extract(context.Background(), bytes.NewReader(buildTar(t, tt.entries(parent)...)), out, Options{})
			if !errors.Is(err, tt.want) {
				t.Fatalf("Extract error = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), strings.Trim(strconv.Quote(tt.bad), `"`)) {
				t.Errorf("error %q does not name entry %q", err, tt.bad)
			}
			assertNames(t, parent, "out", "victim")
			if b, _ := os.ReadFile(victim); string(b) != "original" {
				t.Errorf("file outside the output directory changed to %q", b)
			}
			// Whatever was extracted before the refused entry is regular.
			for p, c := range tree(t, out) {
				if c != "/" && c != "x" {
					t.Errorf("unexpected %s = %q", p, c)
				}
			}
		})
	}
}

func TestExtractGoldenBundleLayer(t *testing.T) {
	_, out := workspace(t)
	if err := Extract(context.Background(), bytes.NewReader(goldenLayer(t)), out, Options{}); err != nil {
		t.Fatal(err)
	}
	// The files imgpkg pushed to make that layer.
	src, err := golden.BundleBasic(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	want := tree(t, src)
	got := tree(t, out)
	if len(got) != len(want) {
		t.Errorf("extracted %d paths, want %d: %v", len(got), len(want), keys(got))
	}
	for p, w := range want {
		if g, ok := got[p]; !ok {
			t.Errorf("%s missing", p)
		} else if g != w {
			t.Errorf("%s = %q, want %q", p, g, w)
		}
	}
}

func TestExtractRegularTar(t *testing.T) {
	big := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB, several reads
	tarball := buildTar(t,
		dir("."),
		dir("./top/"),
		file("./top/a.txt", "a"),
		file("implicit/parents/b.txt", "b"), // no directory entries before it
		dir("implicit"),                     // declared after its contents
		file("empty", ""),
		file("big.bin", big),
		file("dir//with///slashes.txt", "s"),
		file(`win\style.txt`, "w"),
		entry{name: "pax_global_header", typ: tar.TypeXGlobalHeader},
	)
	_, out := workspace(t)
	if err := Extract(context.Background(), bytes.NewReader(tarball), out, Options{}); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"top": "/", "top/a.txt": "a",
		"implicit": "/", "implicit/parents": "/", "implicit/parents/b.txt": "b",
		"empty": "", "big.bin": big,
		"dir": "/", "dir/with": "/", "dir/with/slashes.txt": "s",
		"win": "/", "win/style.txt": "w",
	}
	got := tree(t, out)
	if len(got) != len(want) {
		t.Errorf("extracted %v, want %v", keys(got), keys(want))
	}
	for p, w := range want {
		if got[p] != w {
			t.Errorf("%s: got %d bytes, want %d", p, len(got[p]), len(w))
		}
	}
}

func TestExtractRefusesSparseFile(t *testing.T) {
	// The reader would hand out 64 MiB of zeros for these 2 KiB.
	tarball := sparseTar(t, 64<<20)
	var hdr *tar.Header
	for tr := tar.NewReader(bytes.NewReader(tarball)); ; {
		h, err := tr.Next()
		if err != nil {
			break
		}
		hdr = h
	}
	if hdr == nil || hdr.Name != "s" || hdr.Typeflag != tar.TypeReg || hdr.Size != 64<<20 {
		t.Fatalf("test tar is not the sparse file it should be: %+v", hdr)
	}

	_, out := workspace(t)
	err := Extract(context.Background(), bytes.NewReader(tarball), out, Options{})
	if !errors.Is(err, ErrUnsupportedType) || !strings.Contains(err.Error(), `"s"`) || !strings.Contains(err.Error(), "sparse") {
		t.Fatalf("Extract error = %v, want ErrUnsupportedType naming the sparse entry s", err)
	}
	assertNames(t, out)
}

func TestExtractRefusesDuplicateFile(t *testing.T) {
	_, out := workspace(t)
	err := Extract(context.Background(), bytes.NewReader(buildTar(t, file("a.txt", "first"), file("a.txt", "second"))), out, Options{})
	if err == nil || !strings.Contains(err.Error(), `"a.txt"`) {
		t.Fatalf("Extract error = %v, want one naming a.txt", err)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "a.txt")); string(b) != "first" {
		t.Errorf("a.txt = %q, want the first entry kept", b)
	}
}

func TestExtractRefusesFileOverDirectory(t *testing.T) {
	_, out := workspace(t)
	err := Extract(context.Background(), bytes.NewReader(buildTar(t, dir("d"), file("d", "x"))), out, Options{})
	if err == nil || !strings.Contains(err.Error(), `"d"`) {
		t.Fatalf("Extract error = %v, want one naming d", err)
	}
	err = Extract(context.Background(), bytes.NewReader(buildTar(t, file("f", "x"), dir("f"), file("f/g", "y"))), out, Options{})
	if err == nil || !strings.Contains(err.Error(), `"f"`) {
		t.Fatalf("Extract error = %v, want one naming f", err)
	}
}

func TestExtractTruncatedTar(t *testing.T) {
	tarball := buildTar(t, file("a.txt", strings.Repeat("x", 2000)))
	_, out := workspace(t)
	err := Extract(context.Background(), bytes.NewReader(tarball[:1024]), out, Options{})
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("Extract error = %v, want unexpected EOF", err)
	}
	assertNames(t, out) // the partial file is removed
}

func TestExtractMissingDir(t *testing.T) {
	parent := t.TempDir()
	missing := filepath.Join(parent, "missing")
	err := Extract(context.Background(), bytes.NewReader(buildTar(t, file("a", "a"))), missing, Options{})
	if err == nil || !strings.Contains(err.Error(), missing) {
		t.Fatalf("Extract error = %v, want one naming %s", err, missing)
	}
}

func TestExtractCancelledBeforeStart(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, out := workspace(t)
	err := Extract(ctx, bytes.NewReader(buildTar(t, file("a", "a"))), out, Options{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Extract error = %v, want context.Canceled", err)
	}
	assertNames(t, out)
}

// cancelAt is a reader that cancels a context when it is first read: placed
// between two parts of a tar stream, it cancels mid-extraction.
type cancelAt struct{ cancel context.CancelFunc }

func (c cancelAt) Read([]byte) (int, error) { c.cancel(); return 0, io.EOF }

func TestExtractCancelledBetweenEntries(t *testing.T) {
	// One header block and one data block for a.txt, then b.txt.
	tarball := buildTar(t, file("a.txt", strings.Repeat("a", 512)), file("b.txt", "b"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := io.MultiReader(bytes.NewReader(tarball[:1024]), cancelAt{cancel}, bytes.NewReader(tarball[1024:]))
	_, out := workspace(t)
	err := Extract(ctx, r, out, Options{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Extract error = %v, want context.Canceled", err)
	}
	assertNames(t, out, "a.txt")
}

func TestCleanName(t *testing.T) {
	ok := map[string]string{
		"a":          "a",
		"./a":        "a",
		"a/":         "a",
		"a//b/./c":   "a/b/c",
		`a\b`:        "a/b",
		".":          "",
		"./":         "",
		"..a/b..":    "..a/b..",
		".imgpkg/x":  ".imgpkg/x",
		"sp ace/ü.t": "sp ace/ü.t",
	}
	for in, want := range ok {
		got, err := cleanName(in)
		if err != nil || got != want {
			t.Errorf("cleanName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "..", "../a", "a/..", "a/../b", "/a", "//a", `\a`, `a\..\..\b`, "a\x00b", strings.Repeat("x", 256), strings.Repeat("x/", 2049)} {
		if got, err := cleanName(in); !errors.Is(err, ErrUnsafePath) {
			t.Errorf("cleanName(%.40q) = %q, %v; want ErrUnsafePath", in, got, err)
		}
	}
}

func TestQuoteNameShortensHugeNames(t *testing.T) {
	name := strings.Repeat("n", 1<<20)
	q := quoteName(name)
	if len(q) > 200 || !strings.Contains(q, "1048576 bytes") {
		t.Errorf("quoteName of a 1 MiB name = %.80q (%d bytes)", q, len(q))
	}
}

func keys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}
