//go:build unix

package atomicfile

import (
	"errors"
	"os"
	"syscall"
)

// lockDir takes an exclusive flock on dir and returns what releases it.
// flock(2) locks taken through different open files exclude each other
// even within one process, so goroutines and processes are serialized
// alike. When dir cannot be locked (a file system without flock on
// directories), it returns at once and the caller runs unlocked.
func lockDir(dir string) (unlock func()) {
	d, err := os.Open(dir)
	if err != nil {
		return func() {}
	}
	for {
		err = syscall.Flock(int(d.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		d.Close()
		return func() {}
	}
	// Closing the last descriptor of the open file releases the lock.
	return func() { d.Close() }
}
