package relocate

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/internal/atomicfile"
)

// An export whose directory another writer keeps locked (a ferry stopped
// with ^Z) says that it waits for that lock, naming the directory, rather
// than hanging without a word; and it finishes once the lock is released.
func TestExportFileSaysItWaitsForALockedDirectory(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	p, err := Resolve(context.Background(), Source{Bundle: w.rootTag}, Options{Remote: w.opts})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	unlock, err := atomicfile.LockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	out := filepath.Join(dir, "bundle.tar.zst")
	done := make(chan error, 1)
	go func() {
		_, err := ExportFile(context.Background(), p, out, ExportOptions{Remote: w.opts, Reporter: rec})
		done <- err
	}()
	said := func() bool {
		return slices.ContainsFunc(rec.warned(), func(s string) bool {
			return strings.Contains(s, "waiting for the lock on "+dir) && strings.Contains(s, "another process")
		})
	}
	for deadline := time.Now().Add(30 * time.Second); !said(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			warnings := rec.warned()
			unlock()
			t.Fatalf("no warning of the wait; warnings %q", warnings)
		}
	}
	select {
	case err := <-done:
		t.Fatalf("the export ended while the directory was locked: %v", err)
	default:
	}
	unlock()
	if err := <-done; err != nil {
		t.Fatalf("the export did not finish once the lock was released: %v", err)
	}
	if _, err := os.Stat(out); err != nil {
		t.Errorf("no archive: %v", err)
	}
}
