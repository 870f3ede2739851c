//go:build unix

package volumes

import (
	"fmt"
	"os"
	"syscall"
)

// openRegular opens the file at path for reading, and refuses it unless it
// is a regular file (symbolic links followed). It opens with O_NONBLOCK:
// open(2) of a FIFO for reading otherwise waits for a writer, for ever,
// and no signal ends the wait for ferry. The flag is cleared once the file
// is known to be regular, for which it changes nothing anyway.
func openRegular(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	if err := checkRegular(f, path); err != nil {
		f.Close()
		return nil, err
	}
	rc, err := f.SyscallConn()
	if err == nil {
		if cerr := rc.Control(func(fd uintptr) { err = syscall.SetNonblock(int(fd), false) }); cerr != nil {
			err = cerr
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return f, nil
}
