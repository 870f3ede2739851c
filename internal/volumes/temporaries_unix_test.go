//go:build unix

package volumes

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/ferry-dev/ferry/internal/atomicfile"
)

// The temporary files killed exports to a name left (the archive's, its
// checksum file's, its volumes') are removed, each named in a warning with
// its size; those of a running export to it, and every other file, stay.
func TestRemoveTemporariesRemovesOnlyWhatKilledExportsLeft(t *testing.T) {
	forSpellings(t, "leftovers", func(t *testing.T, dir, path string) {
		dead := map[string]string{
			".a.tmp-0123456789abcdef":        "half an archive",
			".a.sha256.tmp-0123456789abcdef": "sums",
			".a.001.tmp-00000000000000aa":    "volume 1",
			".a.099.tmp-ffffffffffffffff":    "volume 99",
		}
		others := map[string]string{
			".a.tmp-0123456789abcde":       "15 hex digits",
			".a.tmp-0123456789ABCDEF":      "upper case",
			"a.tmp-0123456789abcdef":       "not hidden",
			".b.tmp-0123456789abcdef":      "another archive's",
			".a.100.tmp-0123456789abcdef":  "no volume an export writes",
			".a.2024.tmp-0123456789abcdef": "no volume at all",
			".a.old-0123456789ab":          "set aside by Put",
			"a":                            "the earlier archive",
			"a.sha256":                     "its sums",
		}
		seed(t, dir, dead)
		seed(t, dir, others)
		if err := os.Mkdir(filepath.Join(dir, ".a.002.tmp-0123456789abcdef"), 0o755); err != nil {
			t.Fatal(err)
		}
		// An export to the same name, running.
		live, err := atomicfile.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		defer live.Abort()
		liveVol, err := atomicfile.Create(Name(path, 3))
		if err != nil {
			t.Fatal(err)
		}
		defer liveVol.Abort()
		if _, err := liveVol.Write([]byte("being written")); err != nil {
			t.Fatal(err)
		}
		if err := liveVol.Sync(); err != nil {
			t.Fatal(err)
		}

		warnings := RemoveTemporaries(path)

		want := maps.Clone(others)
		want[filepath.Base(live.Name())] = ""
		want[filepath.Base(liveVol.Name())] = "being written"
		got := map[string]string{}
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.IsDir() {
				if e.Name() != ".a.002.tmp-0123456789abcdef" {
					t.Errorf("unexpected directory %s", e.Name())
				}
				continue
			}
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			got[e.Name()] = string(b)
		}
		if !maps.Equal(got, want) {
			t.Errorf("the directory holds %v, want %v", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
		}
		if len(warnings) != len(dead) {
			t.Errorf("%d warnings, want one per file removed (%d): %v", len(warnings), len(dead), warnings)
		}
		for name, content := range dead {
			found := false
			for _, w := range warnings {
				msg := w.Error()
				found = found || strings.Contains(msg, "removed ") && strings.Contains(msg, name) && strings.Contains(msg, " ("+strconv.Itoa(len(content))+" bytes)")
			}
			if !found {
				t.Errorf("no warning names %s and its %d bytes: %v", name, len(content), warnings)
			}
		}
	})
}

// A temporary file whose state cannot be told is named in a warning with
// the reason RemoveAbandoned gave (here, what it gives for another user's
// file it may not open), not with a guess, and stays.
func TestRemoveTemporariesSaysWhyAFileStays(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a")
	name := ".a.tmp-0123456789abcdef"
	seed(t, dir, map[string]string{name: "someone else's"})
	denied := func(p string) (atomicfile.TempState, error) {
		return atomicfile.TempUnknown, fmt.Errorf("cannot tell which: %w", &fs.PathError{Op: "open", Path: p, Err: syscall.EACCES})
	}
	warnings := removeTemporaries(path, denied)
	if len(warnings) != 1 {
		t.Fatalf("%d warnings, want 1: %v", len(warnings), warnings)
	}
	msg := warnings[0].Error()
	for _, want := range []string{filepath.Join(dir, name), "(14 bytes)", "permission denied", "remove it if no export to a is running"} {
		if !strings.Contains(msg, want) {
			t.Errorf("warning %q does not say %q", msg, want)
		}
	}
	if !errors.Is(warnings[0], fs.ErrPermission) {
		t.Errorf("warning %q does not wrap the reason", msg)
	}
	if strings.Contains(msg, "this system cannot tell") {
		t.Errorf("warning %q blames the system for a permission", msg)
	}
	if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
		t.Errorf("the file is gone: %v", err)
	}
}
