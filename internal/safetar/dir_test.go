package safetar

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckEmptyDir(t *testing.T) {
	parent := t.TempDir()
	empty := filepath.Join(parent, "empty")
	full := filepath.Join(parent, "full")
	regular := filepath.Join(parent, "regular")
	for _, d := range []string{empty, full} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(full, ".hidden"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(regular, nil, 0o600); err != nil {
		t.Fatal(err)
	}

	for _, tt := range []struct {
		dir  string
		want bool
	}{{empty, true}, {full, false}, {filepath.Join(parent, "missing"), true}} {
		got, err := CheckEmptyDir(tt.dir)
		if err != nil || got != tt.want {
			t.Errorf("CheckEmptyDir(%s) = %v, %v; want %v", tt.dir, got, err, tt.want)
		}
	}
	if _, err := CheckEmptyDir(regular); err == nil || !strings.Contains(err.Error(), regular) {
		t.Errorf("CheckEmptyDir(regular file) error = %v, want one naming it", err)
	}
}

func TestPrepareDirCreatesMissing(t *testing.T) {
	d := filepath.Join(t.TempDir(), "a", "b")
	if err := PrepareDir(d, false); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(d); err != nil || !fi.IsDir() {
		t.Fatalf("%s not created: %v", d, err)
	}
	if err := PrepareDir(d, false); err != nil {
		t.Errorf("PrepareDir on an empty directory: %v", err)
	}
}

func TestPrepareDirRefusesNonEmpty(t *testing.T) {
	_, out := workspace(t)
	keep := filepath.Join(out, "keep.txt")
	if err := os.WriteFile(keep, []byte("k"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := PrepareDir(out, false)
	if !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("PrepareDir error = %v, want ErrNotEmpty", err)
	}
	want := "output directory " + out + " is not empty; use --overwrite to replace its contents"
	if err.Error() != want {
		t.Errorf("error text\n got %q\nwant %q", err, want)
	}
	if b, _ := os.ReadFile(keep); string(b) != "k" {
		t.Errorf("contents touched without replace")
	}
}

func TestPrepareDirReplacesContentsOnly(t *testing.T) {
	parent, out := workspace(t)
	must(t, os.MkdirAll(filepath.Join(out, "a", "b"), 0o755))
	must(t, os.WriteFile(filepath.Join(out, "a", "b", "c.txt"), []byte("c"), 0o600))
	must(t, os.WriteFile(filepath.Join(out, ".hidden"), []byte("h"), 0o600))
	sibling := filepath.Join(parent, "sibling.txt")
	must(t, os.WriteFile(sibling, []byte("s"), 0o600))

	if err := PrepareDir(out, true); err != nil {
		t.Fatal(err)
	}
	assertNames(t, out)
	assertNames(t, parent, "out", "sibling.txt")
}

func TestPrepareDirReplaceRefusesCurrentDirectory(t *testing.T) {
	parent, out := workspace(t)
	must(t, os.WriteFile(filepath.Join(out, "keep.txt"), []byte("k"), 0o600))
	t.Chdir(out)
	for _, d := range []string{".", "..", out, parent, "./"} {
		err := PrepareDir(d, true)
		if err == nil || !strings.Contains(err.Error(), "current directory") {
			t.Errorf("PrepareDir(%q, true) error = %v, want a refusal", d, err)
		}
	}
	assertNames(t, out, "keep.txt")
}

func TestRefuseDangerousRoot(t *testing.T) {
	// Only the check: never let a broken test loose on "/" with replace.
	root := filepath.VolumeName(os.TempDir()) + string(filepath.Separator)
	if err := refuseDangerous(root); err == nil || !strings.Contains(err.Error(), "filesystem root") {
		t.Errorf("refuseDangerous(%q) = %v, want a refusal", root, err)
	}
	if err := refuseDangerous(t.TempDir()); err != nil {
		t.Errorf("refuseDangerous(temp dir) = %v", err)
	}
}

func TestResetDir(t *testing.T) {
	parent, out := workspace(t)
	// A tree with a read-only directory, and a file where a directory goes.
	must(t, os.MkdirAll(filepath.Join(out, "a", "b", "ro"), 0o755))
	must(t, os.WriteFile(filepath.Join(out, "a", "b", "ro", "f"), []byte("f"), 0o600))
	must(t, os.Chmod(filepath.Join(out, "a", "b", "ro"), 0o500))
	must(t, os.WriteFile(filepath.Join(out, "a", "keep"), []byte("k"), 0o600))
	must(t, os.WriteFile(filepath.Join(out, "file"), []byte("x"), 0o600))
	must(t, os.Symlink(parent, filepath.Join(out, "link")))

	for _, tc := range []struct {
		rel      string
		replaced bool
	}{{"a/b", true}, {"file", true}, {"new/x", false}} {
		replaced, err := ResetDir(out, tc.rel)
		if err != nil || replaced != tc.replaced {
			t.Errorf("ResetDir(%s) = %v, %v; want %v", tc.rel, replaced, err, tc.replaced)
			continue
		}
		if fi, err := os.Lstat(filepath.Join(out, tc.rel)); err != nil || !fi.IsDir() {
			t.Errorf("%s is not a directory: %v", tc.rel, err)
			continue
		}
		assertNames(t, filepath.Join(out, tc.rel))
	}
	assertNames(t, filepath.Join(out, "a"), "b", "keep")

	// A link leading out of dir is not followed.
	if _, err := ResetDir(out, "link/x"); err == nil || !strings.Contains(err.Error(), filepath.Join(out, "link", "x")) {
		t.Errorf("ResetDir through a link out of dir = %v, want an error naming the path", err)
	}
	assertNames(t, parent, "out")
}
