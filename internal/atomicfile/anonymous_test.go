package atomicfile

import (
	"io"
	"os"
	"testing"
)

// A scratch file leaves no name in its directory, and reads back what was
// written to it.
func TestAnonymousLeavesNoName(t *testing.T) {
	dir := t.TempDir()
	f, name, err := Anonymous(dir, "scratch-*")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if name != "" {
		t.Errorf("name %q left, want none where the name can be removed", name)
	}
	if ents, err := os.ReadDir(dir); err != nil || len(ents) != 0 {
		t.Errorf("the directory holds %v (%v)", ents, err)
	}
	if _, err := f.WriteString("scratch"); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(io.NewSectionReader(f, 0, 7))
	if err != nil || string(got) != "scratch" {
		t.Errorf("read back %q, %v", got, err)
	}
	if _, _, err := Anonymous("/nonexistent/dir", "x-*"); err == nil {
		t.Error("a scratch file in a directory that does not exist: no error")
	}
}
