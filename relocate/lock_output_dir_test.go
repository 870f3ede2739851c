package relocate_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/internal/atomicfile"
	"github.com/ferry-dev/ferry/relocate"
)

// TestLockOutputInAMissingDirectorySaysSoAsExportDoes: import's and
// copy's --lock-output check names a missing directory in the words of
// the files export, push and inventory create (atomicfile), not as a
// stat error.
func TestLockOutputInAMissingDirectorySaysSoAsExportDoes(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "nodir", "l.yml")
	err := relocate.CheckLockOutput(path)
	want := "lock output " + path + ": directory " + filepath.Join(dir, "nodir") + "/ does not exist"
	if err == nil || err.Error() != want {
		t.Errorf("CheckLockOutput: %v\nwant %s", err, want)
	}
	_, cerr := atomicfile.Create(path)
	if cerr == nil || !strings.HasSuffix(cerr.Error(), strings.TrimPrefix(want, "lock output "+path)) {
		t.Errorf("atomicfile.Create: %v, want the same words", cerr)
	}

	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := relocate.CheckLockOutput(filepath.Join(file, "l.yml")); err == nil || !strings.HasSuffix(err.Error(), ": "+file+"/ is not a directory") {
		t.Errorf("CheckLockOutput under a file: %v", err)
	}
}
