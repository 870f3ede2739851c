//go:build unix

package bundle

import (
	"context"
	"path/filepath"
	"syscall"
	"testing"
)

func TestBuildRefusesNamedPipe(t *testing.T) {
	dir := writeTree(t, [2]string{"a.txt", "a"})
	fifo := filepath.Join(dir, "pipe")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skip("mkfifo:", err)
	}
	_, err := Build(context.Background(), []string{dir}, BuildOptions{TempDir: t.TempDir()})
	wantErr(t, err, fifo, "named pipe")
}
