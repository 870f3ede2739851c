//go:build unix

package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
	"time"
)

// lockDir takes an exclusive flock on dir and returns what releases it.
// flock(2) locks taken through different open files exclude each other
// even within one process, so goroutines and processes are serialized
// alike. Where the file system has no flock on directories (lockUnsupported)
// it returns at once and the caller runs unlocked, and so where dir may be
// written but not read (a drop box, mode 0733): creating and renaming need
// no more, and this user's clean-up cannot list such a directory either.
// Any other failure (no descriptor left) is an error.
func lockDir(dir string) (unlock func(), err error) {
	d, err := os.Open(dir)
	if errors.Is(err, fs.ErrPermission) {
		return func() {}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lock directory %s: %w", dir, err)
	}
	if err := flock(d, syscall.LOCK_EX); err != nil {
		d.Close()
		if lockUnsupported(err) {
			return func() {}, nil
		}
		return nil, fmt.Errorf("lock directory %s: %w", dir, err)
	}
	// Closing the last descriptor of the open file releases the lock.
	return func() { d.Close() }, nil
}

func busy(dir string, grace time.Duration) bool {
	d, err := os.Open(dir)
	if err != nil {
		return false
	}
	defer d.Close()
	deadline := time.Now().Add(grace)
	for {
		err := flock(d, syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			// Taken (and released by the close), or no lock to be had.
			return false
		}
		if time.Now().After(deadline) {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
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

// lockUnsupported reports whether err, from flock(2) on a file this
// package just opened, says that the file system cannot lock it, rather
// than that something went wrong: ENOLCK, EOPNOTSUPP/ENOTSUP and EINVAL
// (no flock there), and EBADF, which for a descriptor just opened means
// that flock is emulated by fcntl(2) locks (NFS) and the open mode does not
// allow the lock's kind (an exclusive lock on a file opened read-only).
func lockUnsupported(err error) bool {
	return errors.Is(err, syscall.ENOLCK) || errors.Is(err, syscall.EOPNOTSUPP) ||
		errors.Is(err, syscall.ENOTSUP) || errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.EBADF)
}

// holdTemp takes an exclusive flock on f, the temporary file just
// created, through its own descriptor, so that there is no moment when the
// file exists unlocked under its name but for the directory's lock, and
// returns a duplicate of the descriptor that keeps the lock once f is
// closed (Sync), until it is closed itself: flock(2) locks belong to the
// open file, which every duplicate shares. It returns nil, nil where the
// file system cannot lock (lockUnsupported), and an error for any other
// failure: the caller must then not hand out the file, which a clean-up
// would take for abandoned.
func holdTemp(f *os.File) (*os.File, error) {
	if err := flock(f, syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		if lockUnsupported(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	fd, err := dupCloexec(int(f.Fd()))
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	return os.NewFile(uintptr(fd), f.Name()), nil
}

// dupCloexec duplicates fd, close-on-exec, as the os package does: under
// syscall.ForkLock, so that no child started meanwhile inherits it.
func dupCloexec(fd int) (int, error) {
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	nfd, err := syscall.Dup(fd)
	if err != nil {
		return -1, err
	}
	syscall.CloseOnExec(nfd)
	return nfd, nil
}

// openTempFlags open a temporary file for RemoveAbandoned without
// following a symbolic link or blocking on a FIFO swapped in under its
// name since the directory was listed.
const openTempFlags = os.O_RDONLY | syscall.O_NONBLOCK | syscall.O_NOFOLLOW | syscall.O_CLOEXEC

func removeAbandoned(path string) (TempState, error) {
	h, err := os.OpenFile(path, openTempFlags, 0)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return TempGone, nil
	case err != nil:
		return TempUnknown, fmt.Errorf("cannot tell which: %w", err)
	}
	defer h.Close()
	switch fi, err := h.Stat(); {
	case err != nil:
		return TempUnknown, fmt.Errorf("cannot tell which: %w", err)
	case !fi.Mode().IsRegular():
		return TempUnknown, fmt.Errorf("cannot tell which: %s is not a regular file (%v)", path, fi.Mode().Type())
	}
	switch err := flock(h, syscall.LOCK_EX|syscall.LOCK_NB); {
	case errors.Is(err, syscall.EWOULDBLOCK):
		return TempInUse, nil
	case lockUnsupported(err):
		return TempUnknown, fmt.Errorf("cannot tell which: its file system cannot lock it: lock %s: %w", path, err)
	case err != nil:
		return TempUnknown, fmt.Errorf("cannot tell which: lock %s: %w", path, err)
	}
	// Removed while locked: a File cannot take it meanwhile.
	switch err := os.Remove(path); {
	case errors.Is(err, fs.ErrNotExist):
		return TempGone, nil
	case err != nil:
		return TempUnknown, fmt.Errorf("no export is writing it, but it cannot be removed: %w", err)
	}
	return TempRemoved, nil
}
