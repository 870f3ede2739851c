//go:build linux

package e2e

import (
	"path/filepath"
	"syscall"
	"testing"
)

// TestArchiveFIFONobodyWritesEndsOnInterrupt: a FIFO given as the archive
// of inspect, verify, import -f or export --from-tar, whose writer never
// comes: one Ctrl-C ends ferry, naming the FIFO. open(2) of a FIFO waits
// for a writer and no signal ended that wait.
func TestArchiveFIFONobodyWritesEndsOnInterrupt(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "a.tar.zst")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	outDir := t.TempDir()
	for _, args := range [][]string{
		{"inspect", fifo},
		{"verify", fifo},
		{"import", "-f", fifo, "--to-repo", "127.0.0.1:1/x"},
		{"export", "--from-tar", fifo, "-o", filepath.Join(outDir, "o.tar.zst")},
	} {
		t.Run(args[0], func(t *testing.T) { interruptWaitingOnFIFO(t, fifo, outDir, args...) })
	}
}
