package relocate

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/internal/progress"
)

// The checksum file beside a --since base spares hashing it only when it
// states that file's own sum.
func TestSidecarSHA256OnlyForThatFile(t *testing.T) {
	sum := strings.Repeat("ab", 32)
	other := strings.Repeat("cd", 32)
	for _, tc := range []struct {
		name, side string
		want       string
	}{
		{"text mode", sum + "  base.tar.zst\n", sum},
		{"binary mode", sum + " *base.tar.zst\n", sum},
		{"another file", sum + "  other.tar.zst\n", ""},
		{"volumes", sum + "  base.tar.zst.001\n" + other + "  base.tar.zst.002\n", ""},
		{"two lines, one ours", sum + "  base.tar.zst\n" + other + "  base.tar.zst.001\n", ""},
		{"not hex", strings.Repeat("zz", 32) + "  base.tar.zst\n", ""},
		{"empty", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "base.tar.zst")
			if err := os.WriteFile(path+".sha256", []byte(tc.side), 0o644); err != nil {
				t.Fatal(err)
			}
			got, ok := sidecarSHA256(path)
			if got != tc.want || ok != (tc.want != "") {
				t.Errorf("sidecarSHA256 = %q, %v; want %q", got, ok, tc.want)
			}
		})
	}
	if _, ok := sidecarSHA256(filepath.Join(t.TempDir(), "none.tar.zst")); ok {
		t.Error("a sum from a checksum file that does not exist")
	}
}

// A --since path that does not exist, or a directory, is how ferry was
// called, as a file that is neither an archive nor an inventory is: the
// error matches ErrNotABase (export) and ErrNotABaseArchive (verify), and
// names the path.
func TestReadSinceOfNoFileOrADirectory(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, path, want string }{
		{"missing", filepath.Join(dir, "v1.tar.zst"), "no such file"},
		{"directory", dir, "is a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadSince(tc.path)
			if !errors.Is(err, ErrNotABase) || !strings.Contains(err.Error(), tc.path) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ReadSince: %v; want ErrNotABase naming %s, %q", err, tc.path, tc.want)
			}
			_, _, err = openBases(t.Context(), []string{tc.path}, progress.Nop{})
			if !errors.Is(err, ErrNotABaseArchive) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("openBases: %v; want ErrNotABaseArchive, %q", err, tc.want)
			}
		})
	}
}
