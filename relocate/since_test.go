package relocate

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/internal/progress"
)

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
			_, err := ReadSince(t.Context(), tc.path, nil)
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
