//go:build unix

package safetar

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// umask is the process umask, read once before any test runs (reading it
// means setting it, which is only safe while nothing else runs).
var umask fs.FileMode

func TestMain(m *testing.M) {
	old := syscall.Umask(0)
	syscall.Umask(old)
	umask = fs.FileMode(old)
	os.Exit(m.Run())
}

func modeOf(t *testing.T, p string) fs.FileMode {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestExtractModesLikeImgpkg(t *testing.T) {
	// imgpkg's pull copies the owner bits to group and others, then the
	// umask applies: https://carvel.dev/imgpkg/docs/latest/commands/ .
	_, out := workspace(t)
	if err := Extract(context.Background(), bytes.NewReader(goldenLayer(t)), out, Options{}); err != nil {
		t.Fatal(err)
	}
	want := map[string]fs.FileMode{
		".imgpkg": 0o777, ".imgpkg/bundle.yml": 0o666, ".imgpkg/images.yml": 0o666,
		"README.txt": 0o666, "config": 0o777, "config/app.yml": 0o666,
		"config/nested": 0o777, "config/nested/private.txt": 0o666, "config/run.sh": 0o777,
	}
	for p, m := range want {
		if got := modeOf(t, filepath.Join(out, p)); got != m&^umask {
			t.Errorf("%s mode %o, want %o (umask %o)", p, got, m&^umask, umask)
		}
	}
	if got := modeOf(t, out); got != 0o755 {
		t.Errorf("output directory mode changed to %o by the \".\" entry", got)
	}
}

func TestExtractModesSpreadOwnerBits(t *testing.T) {
	tarball := buildTar(t,
		entry{name: "ro", typ: '5', mode: 0o500},
		entry{name: "ro/f", typ: '0', mode: 0o400, body: "f"},
		entry{name: "x", typ: '0', mode: 0o700, body: "x"},
	)
	_, out := workspace(t)
	if err := Extract(context.Background(), bytes.NewReader(tarball), out, Options{}); err != nil {
		t.Fatal(err)
	}
	// A directory is 0777 less the umask whatever its header says, as in
	// imgpkg's pull; so it keeps owner rwx and the entries after it can be
	// written.
	for p, m := range map[string]fs.FileMode{"ro": 0o777, "ro/f": 0o444, "x": 0o777} {
		if got := modeOf(t, filepath.Join(out, p)); got != m&^umask {
			t.Errorf("%s mode %o, want %o", p, got, m&^umask)
		}
	}
}

// imgpkg's pull (image.DirImage.extractTarEntry) creates a file with its
// header's mode when that mode has any group or other bit (a bundle pushed
// with --preserve-permissions), and otherwise with the owner bits copied to
// group and other; a directory, declared or implied by a path, is made by
// os.MkdirAll(…, 0777) and its header's mode is ignored. The umask applies
// to all of it. Under umask 002, imgpkg v0.43's pull of such entries gives
// exactly the modes below. ferry used to spread the owner bits of every
// file (0640 became 0664) and to derive a directory's mode from its header.
func TestExtractModesKeepGroupAndOtherBitsLikeImgpkg(t *testing.T) {
	tarball := buildTar(t,
		entry{name: "d750", typ: '5', mode: 0o750},
		entry{name: "d750/f640", typ: '0', mode: 0o640, body: "f"},
		entry{name: "d750/f750", typ: '0', mode: 0o750, body: "f"},
		entry{name: "d750/f604", typ: '0', mode: 0o604, body: "f"},
		entry{name: "d750/f666", typ: '0', mode: 0o666, body: "f"},
		entry{name: "d750/f600", typ: '0', mode: 0o600, body: "f"},
		entry{name: "d750/f700", typ: '0', mode: 0o700, body: "f"},
		entry{name: "d300", typ: '5', mode: 0o300},
		entry{name: "d300/f", typ: '0', mode: 0o600, body: "f"},
		entry{name: "implied/f", typ: '0', mode: 0o640, body: "f"},
	)
	out := extractUnderUmask(t, tarball, 0o002, Options{})
	wantModes(t, out, map[string]fs.FileMode{
		"d750": 0o775, "d750/f640": 0o640, "d750/f750": 0o750, "d750/f604": 0o604,
		"d750/f666": 0o664, "d750/f600": 0o664, "d750/f700": 0o775,
		"d300": 0o775, "d300/f": 0o664, "implied": 0o775, "implied/f": 0o640,
	})
}

// extractUnderUmask extracts tarball into a new output directory with the
// process umask set to umask, and returns that directory.
func extractUnderUmask(t *testing.T, tarball []byte, umask int, opts Options) string {
	t.Helper()
	_, out := workspace(t)
	old := syscall.Umask(umask)
	err := Extract(context.Background(), bytes.NewReader(tarball), out, opts)
	syscall.Umask(old)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// wantModes checks the permission bits of paths below dir.
func wantModes(t *testing.T, dir string, want map[string]fs.FileMode) {
	t.Helper()
	for p, m := range want {
		if got := modeOf(t, filepath.Join(dir, filepath.FromSlash(p))); got != m {
			t.Errorf("%s mode %o, want %o", p, got, m)
		}
	}
}

// The output directory and a nested bundle's directory are made as
// imgpkg's pull makes them: os.MkdirAll(…, 0777), less the umask.
func TestPrepareAndResetDirMakeDirectoriesLikeImgpkg(t *testing.T) {
	parent := t.TempDir()
	out := filepath.Join(parent, "a", "out")
	old := syscall.Umask(0o002)
	err := PrepareDir(out, false)
	var replaced bool
	if err == nil {
		replaced, err = ResetDir(out, filepath.Join(".imgpkg", "bundles", "sha256-x"))
	}
	syscall.Umask(old)
	if err != nil || replaced {
		t.Fatalf("replaced %v, err %v", replaced, err)
	}
	wantModes(t, parent, map[string]fs.FileMode{
		"a": 0o775, "a/out": 0o775, "a/out/.imgpkg": 0o775, "a/out/.imgpkg/bundles": 0o775, "a/out/.imgpkg/bundles/sha256-x": 0o775,
	})
}

func TestExtractPreservePermissions(t *testing.T) {
	tarball := buildTar(t,
		file("ro/inside.txt", "i"), // before its directory's header
		entry{name: "ro", typ: '5', mode: 0o555},
		entry{name: "ro/sub", typ: '5', mode: 0o750},
		entry{name: "ro/sub/f", typ: '0', mode: 0o640, body: "f"},
		entry{name: "setuid", typ: '0', mode: 0o4755, body: "s"},
		entry{name: "private", typ: '0', mode: 0o600, body: "p"},
		entry{name: "open", typ: '0', mode: 0o666, body: "o"},
	)
	// A umask that would narrow every mode: preserved modes ignore it.
	out := extractUnderUmask(t, tarball, 0o077, Options{PreservePermissions: true})
	wantModes(t, out, map[string]fs.FileMode{
		"ro": 0o555, "ro/sub": 0o750, "ro/sub/f": 0o640, "ro/inside.txt": 0o600,
		"setuid": 0o755, "private": 0o600, "open": 0o666,
	})
	fi, _ := os.Lstat(filepath.Join(out, "setuid"))
	if fi.Mode()&fs.ModeSetuid != 0 {
		t.Errorf("setuid bit kept: %v", fi.Mode())
	}
}

func TestExtractRefusesParentSymlink(t *testing.T) {
	tests := []struct{ name, target, entry string }{
		{"to outside", "../outside", "link/escape.txt"},
		{"to an absolute outside", "", "link/escape.txt"}, // target set below
		{"to inside", "real", "link/inside.txt"},
		{"deeper", "../outside", "link/a/b.txt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parent, out := workspace(t)
			outside := filepath.Join(parent, "outside")
			for _, d := range []string{outside, filepath.Join(out, "real")} {
				if err := os.Mkdir(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			target := tt.target
			if target == "" {
				target = outside
			}
			if err := os.Symlink(target, filepath.Join(out, "link")); err != nil {
				t.Fatal(err)
			}
			for _, opts := range []Options{{}, {PreservePermissions: true}} {
				err := Extract(context.Background(), bytes.NewReader(buildTar(t, file(tt.entry, "x"))), out, opts)
				if !errors.Is(err, ErrUnsafePath) || !strings.Contains(err.Error(), tt.entry) || !strings.Contains(err.Error(), "symbolic link") {
					t.Fatalf("Extract error = %v, want ErrUnsafePath naming %s and the link", err, tt.entry)
				}
			}
			assertNames(t, outside)
			assertNames(t, filepath.Join(out, "real"))
			assertNames(t, parent, "out", "outside")
		})
	}
}

func TestExtractRefusesDirectoryOverSymlink(t *testing.T) {
	parent, out := workspace(t)
	outside := filepath.Join(parent, "outside")
	if err := os.Mkdir(outside, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(out, "d")); err != nil {
		t.Fatal(err)
	}
	tarball := buildTar(t, entry{name: "d", typ: '5', mode: 0o777})
	err := Extract(context.Background(), bytes.NewReader(tarball), out, Options{PreservePermissions: true})
	if !errors.Is(err, ErrUnsafePath) || !strings.Contains(err.Error(), `"d"`) {
		t.Fatalf("Extract error = %v, want ErrUnsafePath naming d", err)
	}
	if got := modeOf(t, outside); got != 0o700 {
		t.Errorf("mode of the directory outside changed to %o", got)
	}
}

func TestExtractNeverWritesThroughExistingSymlink(t *testing.T) {
	parent, out := workspace(t)
	victim := filepath.Join(parent, "victim")
	if err := os.WriteFile(victim, []byte("original"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(out, "f")); err != nil {
		t.Fatal(err)
	}
	err := Extract(context.Background(), bytes.NewReader(buildTar(t, file("f", "evil"))), out, Options{})
	if err == nil || !strings.Contains(err.Error(), `"f"`) {
		t.Fatalf("Extract error = %v, want one naming f", err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "original" {
		t.Errorf("victim outside the directory became %q", b)
	}
	if target, err := os.Readlink(filepath.Join(out, "f")); err != nil || target != victim {
		t.Errorf("symlink replaced: %q, %v", target, err)
	}
}

func TestPrepareDirReplaceDoesNotFollowSymlinks(t *testing.T) {
	parent, out := workspace(t)
	outside := filepath.Join(parent, "outside")
	if err := os.MkdirAll(filepath.Join(outside, "keep"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outside, "keep", "k.txt"), []byte("k"), 0o600); err != nil {
		t.Fatal(err)
	}
	must(t, os.Symlink(outside, filepath.Join(out, "to-outside")))
	must(t, os.Symlink(filepath.Join(outside, "keep", "k.txt"), filepath.Join(out, "to-file")))
	must(t, os.MkdirAll(filepath.Join(out, "ro", "sub"), 0o755))
	must(t, os.WriteFile(filepath.Join(out, "ro", "sub", "f"), []byte("f"), 0o400))
	must(t, os.Chmod(filepath.Join(out, "ro", "sub"), 0o500))
	must(t, os.Chmod(filepath.Join(out, "ro"), 0o500))

	if err := PrepareDir(out, true); err != nil {
		t.Fatal(err)
	}
	assertNames(t, out)
	if b, err := os.ReadFile(filepath.Join(outside, "keep", "k.txt")); err != nil || string(b) != "k" {
		t.Errorf("file behind a symlink removed or changed: %q, %v", b, err)
	}
}

func TestPrepareDirThroughSymlinkedOutputDir(t *testing.T) {
	// The user's own -o path may be a link; its target's contents go.
	parent, real := workspace(t)
	link := filepath.Join(parent, "link")
	must(t, os.Symlink(real, link))
	must(t, os.WriteFile(filepath.Join(real, "old"), []byte("o"), 0o600))
	if err := PrepareDir(link, true); err != nil {
		t.Fatal(err)
	}
	assertNames(t, real)
	assertNames(t, parent, "link", "out")
}
