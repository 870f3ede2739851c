// Package lockwait checks, for tests, that a command writing into a
// directory whose lock another process holds (a ferry stopped with ^Z)
// waits for that lock, says so, and finishes once it is released.
package lockwait

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/internal/atomicfile"
)

// Check takes dir's lock as another writer would, runs work, and fails t
// unless warned (the warnings reported so far) comes to hold one naming dir
// and another process, work has not ended while the lock is held, and work
// ends without error once the lock is released.
func Check(t testing.TB, dir string, warned func() []string, work func() error) {
	t.Helper()
	unlock, err := atomicfile.LockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- work() }()
	said := func() bool {
		return slices.ContainsFunc(warned(), func(s string) bool {
			return strings.Contains(s, "waiting for the lock on "+dir) && strings.Contains(s, "another process")
		})
	}
	for deadline := time.Now().Add(30 * time.Second); !said(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			warnings := warned()
			unlock()
			<-done
			t.Fatalf("no warning of the wait; warnings %q", warnings)
		}
	}
	select {
	case err := <-done:
		t.Fatalf("the work ended while the directory was locked: %v", err)
	default:
	}
	unlock()
	if err := <-done; err != nil {
		t.Fatalf("the work did not finish once the lock was released: %v", err)
	}
}
