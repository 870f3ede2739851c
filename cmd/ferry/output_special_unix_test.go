//go:build unix

package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// An archive to write to a named pipe (-o, --to-tar) is a usage error
// that says to write to standard output and redirect it, before any
// registry is asked (127.0.0.1:1 answers nothing); the pipe stays.
func TestArchiveOutputToANamedPipeIsAUsageError(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	bundleDir := filepath.Join(dir, "bundle")
	if err := os.MkdirAll(filepath.Join(bundleDir, ".imgpkg"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundleDir, ".imgpkg", "images.yml"), []byte("apiVersion: imgpkg.carvel.dev/v1alpha1\nkind: ImagesLock\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	wantUsage(t, []string{"export", "-b", "127.0.0.1:1/b:1", "-o", fifo}, fifo, "named pipe", "-o - >"+fifo)
	wantUsage(t, []string{"copy", "-b", "127.0.0.1:1/b:1", "--to-tar", fifo}, fifo, "named pipe", "--to-tar - >"+fifo)
	wantUsage(t, []string{"push", "-b", "127.0.0.1:1/b:1", "-f", bundleDir, "--to-tar", fifo}, fifo, "named pipe", "--to-tar - >"+fifo)
	if fi, err := os.Lstat(fifo); err != nil || fi.Mode()&fs.ModeNamedPipe == 0 {
		t.Errorf("the FIFO is now %v (%v), want it a FIFO still", fi, err)
	}
}
