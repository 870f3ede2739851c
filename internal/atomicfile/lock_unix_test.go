//go:build unix

package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

// A temporary file is removed only when no File is writing it: one a
// killed process left (no lock; written here by hand), not one being
// written, before or after Sync, until Abort or Rename.
func TestRemoveAbandonedKeepsAFileBeingWritten(t *testing.T) {
	dir := t.TempDir()
	dead := filepath.Join(dir, ".out.tmp-0123456789abcdef")
	if err := os.WriteFile(dead, []byte("half an archive"), 0o644); err != nil {
		t.Fatal(err)
	}
	if state, err := RemoveAbandoned(dead); state != TempRemoved || err != nil {
		t.Errorf("an abandoned file: %v, %v; want TempRemoved", state, err)
	}
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Errorf("the abandoned file is still there: %v", err)
	}
	if state, err := RemoveAbandoned(dead); state != TempGone || err != nil {
		t.Errorf("a file no longer there: %v, %v; want TempGone", state, err)
	}

	f, err := Create(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("being written")); err != nil {
		t.Fatal(err)
	}
	if state, err := RemoveAbandoned(f.Name()); state != TempInUse || err != nil {
		t.Errorf("a file being written: %v, %v; want TempInUse", state, err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if state, err := RemoveAbandoned(f.Name()); state != TempInUse || err != nil {
		t.Errorf("a file synced, waiting for its rename: %v, %v; want TempInUse", state, err)
	}
	if err := f.Rename(); err != nil {
		t.Fatalf("the file was taken from its writer: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "out")); string(b) != "being written" {
		t.Errorf("out holds %q, %v", b, err)
	}

	// Abort releases the lock only once the file is gone.
	g, err := Create(filepath.Join(dir, "other"))
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Abort(); err != nil {
		t.Fatal(err)
	}
	if state, _ := RemoveAbandoned(g.Name()); state != TempGone {
		t.Errorf("an aborted file: %v, want TempGone", state)
	}
}
