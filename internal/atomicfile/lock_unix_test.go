//go:build unix

package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A temporary file is removed only when no File is writing it: one a
// killed process left (no lock; written here by hand), not one being
// written, before or after Sync, until Abort or Rename.
func TestRemoveAbandonedKeepsAFileBeingWritten(t *testing.T) {
	dir := t.TempDir()
	dead := filepath.Join(dir, ".out.tmp-0123456789abcdef")
	if err := os.WriteFile(dead, []byte("half an archive"), 0o644); err != nil {
		t.Fatal(err)
	}
	if state, err := RemoveAbandoned(dead); state != TempRemoved || err != nil {
		t.Errorf("an abandoned file: %v, %v; want TempRemoved", state, err)
	}
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Errorf("the abandoned file is still there: %v", err)
	}
	if state, err := RemoveAbandoned(dead); state != TempGone || err != nil {
		t.Errorf("a file no longer there: %v, %v; want TempGone", state, err)
	}

	f, err := Create(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("being written")); err != nil {
		t.Fatal(err)
	}
	if state, err := RemoveAbandoned(f.Name()); state != TempInUse || err != nil {
		t.Errorf("a file being written: %v, %v; want TempInUse", state, err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if state, err := RemoveAbandoned(f.Name()); state != TempInUse || err != nil {
		t.Errorf("a file synced, waiting for its rename: %v, %v; want TempInUse", state, err)
	}
	if err := f.Rename(); err != nil {
		t.Fatalf("the file was taken from its writer: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "out")); string(b) != "being written" {
		t.Errorf("out holds %q, %v", b, err)
	}

	// Abort releases the lock only once the file is gone.
	g, err := Create(filepath.Join(dir, "other"))
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Abort(); err != nil {
		t.Fatal(err)
	}
	if state, _ := RemoveAbandoned(g.Name()); state != TempGone {
		t.Errorf("an aborted file: %v, want TempGone", state)
	}
}

// A FIFO or a symbolic link under a temporary file's name (swapped in
// after the clean-up listed the directory) is neither waited on nor
// followed: it stays, and RemoveAbandoned says why.
func TestRemoveAbandonedLeavesWhatIsNotARegularFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, ".out.tmp-0123456789abcdef")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	type result struct {
		state TempState
		err   error
	}
	done := make(chan result, 1)
	go func() {
		state, err := RemoveAbandoned(fifo)
		done <- result{state, err}
	}()
	select {
	case r := <-done:
		if r.state != TempUnknown || r.err == nil || !strings.Contains(r.err.Error(), "not a regular file") {
			t.Errorf("a FIFO: %v, %v; want TempUnknown, not a regular file", r.state, r.err)
		}
	case <-time.After(10 * time.Second):
		// Unblock the open, so that the test ends.
		if w, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			w.Close()
		}
		<-done
		t.Fatal("RemoveAbandoned blocked on a FIFO")
	}
	if _, err := os.Lstat(fifo); err != nil {
		t.Errorf("the FIFO is gone: %v", err)
	}

	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("not a temporary file"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, ".out.tmp-00000000000000aa")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if state, err := RemoveAbandoned(link); state != TempUnknown || err == nil {
		t.Errorf("a symbolic link: %v, %v; want TempUnknown and why", state, err)
	}
	if _, err := os.Lstat(link); err != nil {
		t.Errorf("the symbolic link is gone: %v", err)
	}
}

// Busy says no at once for a free directory, and for one whose holder
// lets go within the grace; yes for one held past it. It leaves the lock
// free either way.
func TestBusyTellsALockHeldPastTheGrace(t *testing.T) {
	dir := t.TempDir()
	if Busy(dir, time.Second) {
		t.Fatal("a free directory is busy")
	}
	unlock, err := LockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !Busy(dir, 50*time.Millisecond) {
		t.Error("a directory locked past the grace is not busy")
	}
	released := make(chan struct{})
	go func() {
		defer close(released)
		time.Sleep(100 * time.Millisecond)
		unlock()
	}()
	if Busy(dir, 10*time.Second) {
		t.Error("a lock released within the grace is busy")
	}
	<-released
	again, err := LockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	again()
}

// WarnIfBusy says nothing for a path whose directory is free, and, for one
// whose directory is held past its second of grace, names that directory.
func TestWarnIfBusyNamesTheLockedDirectory(t *testing.T) {
	dir := t.TempDir()
	var said []string
	warnf := func(format string, args ...any) { said = append(said, fmt.Sprintf(format, args...)) }
	WarnIfBusy(filepath.Join(dir, "a.tar.zst"), warnf)
	if len(said) != 0 {
		t.Fatalf("a free directory: %q", said)
	}
	unlock, err := LockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	WarnIfBusy(filepath.Join(dir, "a.tar.zst"), warnf)
	if len(said) != 1 || !strings.Contains(said[0], "waiting for the lock on "+dir) {
		t.Errorf("a locked directory: %q", said)
	}
	// A link in a free directory to a file in the locked one: the lock
	// Create would wait for is the locked directory's.
	if err := os.WriteFile(filepath.Join(dir, "a.tar.zst"), []byte("an earlier archive"), 0o644); err != nil {
		t.Fatal(err)
	}
	elsewhere := t.TempDir()
	link := filepath.Join(elsewhere, "link.tar.zst")
	if err := os.Symlink(filepath.Join(dir, "a.tar.zst"), link); err != nil {
		t.Fatal(err)
	}
	said = nil
	WarnIfBusy(link, warnf)
	if len(said) != 1 || !strings.Contains(said[0], "waiting for the lock on "+dir) {
		t.Errorf("a link into a locked directory: %q", said)
	}
}
