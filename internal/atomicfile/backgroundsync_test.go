package atomicfile

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// A file larger than writebackChunk is synced in the background while it
// is written, and Commit still puts every byte under its name.
func TestLargeFileSyncsInTheBackground(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "big")
	f, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Abort()
	var syncs atomic.Int32
	chunk := bytes.Repeat([]byte{7}, 1<<20)
	var want bytes.Buffer
	for i := 0; i < 3*writebackChunk/len(chunk); i++ {
		chunk[0] = byte(i)
		if _, err := f.Write(chunk); err != nil {
			t.Fatal(err)
		}
		want.Write(chunk)
		if i == 0 {
			if f.bg != nil {
				t.Fatal("background sync started before writebackChunk was written")
			}
			// Count the syncs from the first request on.
			file := f.f
			f.bg = startBackgroundSync(func() error { syncs.Add(1); return file.Sync() })
		}
	}
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	if syncs.Load() == 0 {
		t.Error("no background sync ran while the file grew")
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Errorf("committed file: %d bytes, want %d (or different content)", len(got), want.Len())
	}
}

// A background sync's failure fails the final Sync, which alone may not
// see it (Linux reports a write-back error to a descriptor once), and
// leaves no file under either name.
func TestBackgroundSyncFailureFailsCommit(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out")
	f, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Abort()
	injected := errors.New("injected write-back error")
	ran := make(chan struct{})
	f.bg = startBackgroundSync(func() error { close(ran); return injected })
	f.bg.request()
	<-ran // the failure is in; a request still queued at Commit is dropped
	if _, err := f.Write([]byte("data")); err != nil {
		t.Fatal(err)
	}
	err = f.Commit()
	if !errors.Is(err, injected) {
		t.Fatalf("Commit: %v, want the background sync's error", err)
	}
	if names := entries(t, dir); len(names) != 0 {
		t.Errorf("left %q after a failed commit", names)
	}
}

// Abort with a background sync running ends it, without waiting for it,
// and removes the file.
func TestAbortStopsBackgroundSync(t *testing.T) {
	dir := t.TempDir()
	f, err := Create(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(make([]byte, writebackChunk+1)); err != nil {
		t.Fatal(err)
	}
	if f.bg == nil {
		t.Fatal("no background sync after writebackChunk bytes")
	}
	bg := f.bg
	if err := f.Abort(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-bg.done:
	case <-time.After(time.Minute):
		t.Error("background sync still running a minute after Abort")
	}
	if names := entries(t, dir); len(names) != 0 {
		t.Errorf("left %q after Abort", names)
	}
}
