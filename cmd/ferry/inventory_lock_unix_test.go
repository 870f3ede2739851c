//go:build unix

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/internal/atomicfile"
	"github.com/ferry-dev/ferry/internal/testregistry"
)

// inventory -o into a directory another process keeps locked (a ferry
// stopped with ^Z) says that it waits for that lock, naming the directory,
// and writes its file once the lock is released.
func TestInventorySaysItWaitsForALockedDirectory(t *testing.T) {
	reg := testregistry.NewGGCR(t)
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "app.yml"), []byte("replicas: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runFerry("push", "-i", reg.Repo("team/app")+":v1", "-f", src); code != 0 {
		t.Fatalf("push: exit %d: %s", code, stderr)
	}
	dir := t.TempDir()
	unlock, err := atomicfile.LockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	released := make(chan struct{})
	go func() {
		defer close(released)
		time.Sleep(2 * time.Second) // past the second WarnIfBusy grants
		unlock()
	}()
	out := filepath.Join(dir, "have.json")
	code, _, stderr := runFerry("inventory", "--repo", reg.Repo("team/app"), "-o", out)
	<-released
	if code != 0 {
		t.Fatalf("inventory: exit %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "waiting for the lock on "+dir) {
		t.Errorf("stderr does not say it waits for the lock on %s:\n%s", dir, stderr)
	}
	if _, err := os.Stat(out); err != nil {
		t.Errorf("no inventory written: %v", err)
	}
}
