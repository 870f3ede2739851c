//go:build unix

package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/internal/lockwait"
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
	out := filepath.Join(dir, "have.json")
	stderr := newLockedBuffer()
	lockwait.Check(t, dir, func() []string { return strings.Split(stderr.String(), "\n") }, func() error {
		args := []string{"ferry", "inventory", "--repo", reg.Repo("team/app"), "-o", out}
		if code := run(context.Background(), args, strings.NewReader(""), io.Discard, stderr); code != 0 {
			return fmt.Errorf("exit %d: %s", code, stderr.String())
		}
		return nil
	})
	if _, err := os.Stat(out); err != nil {
		t.Errorf("no inventory written: %v", err)
	}
}
