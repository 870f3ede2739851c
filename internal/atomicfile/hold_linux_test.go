//go:build linux

package atomicfile

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Create never hands out a temporary file that is not locked: when a
// descriptor it needs is not to be had (EMFILE, at each step in turn:
// the directory's lock, the file, the duplicate that keeps its lock), it
// fails and leaves no temporary file; when it succeeds, a clean-up finds
// the file in use and leaves it.
func TestCreateNeverHandsOutAnUnlockedFile(t *testing.T) {
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	for free := range 5 {
		dir := t.TempDir()
		f, err := createWithFreeDescriptors(t, old, free, filepath.Join(dir, "out"))
		if err != nil {
			if !strings.Contains(err.Error(), "too many open files") {
				t.Errorf("%d free descriptors: %v; want an error saying there are too many open files", free, err)
			}
			if left := entries(t, dir); len(left) != 0 {
				t.Errorf("%d free descriptors: Create failed (%v) but left %v", free, err, left)
			}
			continue
		}
		if _, err := f.Write([]byte("live data")); err != nil {
			t.Fatal(err)
		}
		if state, err := RemoveAbandoned(f.Name()); state != TempInUse {
			t.Errorf("%d free descriptors: a clean-up found the live file %v (%v); want TempInUse", free, state, err)
		}
		if err := f.Commit(); err != nil {
			t.Errorf("%d free descriptors: commit: %v", free, err)
		}
		if b, err := os.ReadFile(filepath.Join(dir, "out")); string(b) != "live data" {
			t.Errorf("%d free descriptors: out holds %q, %v", free, b, err)
		}
	}
}

// createWithFreeDescriptors runs Create(path) with the descriptor table
// full but for free descriptors, under a lowered RLIMIT_NOFILE, and
// restores both before it returns.
func createWithFreeDescriptors(t *testing.T, old syscall.Rlimit, free int, path string) (*File, error) {
	t.Helper()
	var fill []*os.File
	defer func() {
		for _, f := range fill {
			f.Close()
		}
	}()
	lim := old
	lim.Cur = 64
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
			t.Fatal(err)
		}
	}()
	for {
		f, err := os.Open(os.DevNull)
		if err != nil {
			break
		}
		fill = append(fill, f)
	}
	if len(fill) < free {
		t.Fatalf("only %d descriptors below the limit", len(fill))
	}
	for _, f := range fill[len(fill)-free:] {
		f.Close()
	}
	fill = fill[:len(fill)-free]
	return Create(path)
}
