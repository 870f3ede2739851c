//go:build linux

package volumes

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// OpenArchive of a named pipe no writer has opened waits for one, and
// returns ctx.Err() once ctx is done: a plain open(2) waited for the writer
// whatever signal came (`ferry inspect FIFO` ignored Ctrl-C). Once a
// writer comes, the archive's bytes are read as they come.
func TestOpenArchiveOfAFIFOEndsWithItsContext(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "a.tar.zst")
	mkfifo(t, fifo)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	promptly(t, []string{fifo}, func() {
		rc, err := OpenArchive(ctx, fifo)
		if err == nil {
			rc.Close()
		}
		if !errors.Is(err, context.Canceled) {
			t.Errorf("OpenArchive of a FIFO without a writer, its context cancelled: %v, want context.Canceled", err)
		}
	})

	// With a writer, it reads what comes.
	done := make(chan error, 1)
	go func() { done <- writeFIFO(fifo, "the bytes") }()
	promptly(t, []string{fifo}, func() {
		rc, err := OpenArchive(context.Background(), fifo)
		if err != nil {
			t.Error(err)
			return
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		if err != nil || string(b) != "the bytes" {
			t.Errorf("read %q (%v), want %q", b, err, "the bytes")
		}
	})
	if err := <-done; err != nil {
		t.Error(err)
	}
}

// writeFIFO opens the FIFO at path for writing (waiting for its reader),
// writes s and closes it.
func writeFIFO(path, s string) error {
	w, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := w.WriteString(s); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}
