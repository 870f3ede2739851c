//go:build unix

package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
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
	if err := flock(d, syscall.LOCK_EX); err != nil {
		d.Close()
		return func() {}
	}
	// Closing the last descriptor of the open file releases the lock.
	return func() { d.Close() }
}

// flock is flock(2) on f, retried on EINTR.
func flock(f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

// holdTemp opens the temporary file tmp and takes an exclusive flock on
// it, held until the returned file is closed; nil when either fails.
func holdTemp(tmp string) *os.File {
	h, err := os.Open(tmp)
	if err != nil {
		return nil
	}
	if err := flock(h, syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		h.Close()
		return nil
	}
	return h
}

func removeAbandoned(path string) (TempState, error) {
	h, err := os.Open(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return TempGone, nil
	case err != nil:
		return TempUnknown, nil
	}
	defer h.Close()
	switch err := flock(h, syscall.LOCK_EX|syscall.LOCK_NB); {
	case errors.Is(err, syscall.EWOULDBLOCK):
		return TempInUse, nil
	case err != nil:
		return TempUnknown, nil
	}
	// Removed while locked: a File cannot take it meanwhile.
	switch err := os.Remove(path); {
	case errors.Is(err, fs.ErrNotExist):
		return TempGone, nil
	case err != nil:
		return TempUnknown, fmt.Errorf("remove %s: %w", path, err)
	}
	return TempRemoved, nil
}
