//go:build linux

package e2e

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
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
	for _, args := range [][]string{
		{"inspect", fifo},
		{"verify", fifo},
		{"import", "-f", fifo, "--to-repo", "127.0.0.1:1/x"},
		{"export", "--from-tar", fifo, "-o", filepath.Join(t.TempDir(), "o.tar.zst")},
	} {
		t.Run(args[0], func(t *testing.T) {
			outDir, tmpDir := t.TempDir(), t.TempDir()
			p := startFerry(t, tmpDir, nil, args...)
			waitFor(t, p, "opening the FIFO", func() bool { return hasOpen(p.cmd.Process.Pid, fifo) })
			time.Sleep(200 * time.Millisecond) // waiting for its writer
			if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
				t.Fatal(err)
			}
			ws := p.wait(t, 20*time.Second)
			if ws.Signaled() || ws.ExitStatus() != 1 || !namesCancellation(p.stderr.String()) || !strings.Contains(p.stderr.String(), fifo) {
				t.Fatalf("want exit 1 naming the cancellation and %s, got exit %d:\n%s", fifo, ws.ExitStatus(), p.stderr.String())
			}
			assertNothingLeft(t, outDir, tmpDir)
		})
	}
}
