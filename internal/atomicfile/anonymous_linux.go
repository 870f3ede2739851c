package atomicfile

import (
	"os"

	"golang.org/x/sys/unix"
)

// unnamed opens a file in dir that has no name (O_TMPFILE); ok is false
// where the file system or kernel does not offer it.
func unnamed(dir string) (*os.File, bool) {
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, false
	}
	return os.NewFile(uintptr(fd), dir+"/(unnamed)"), true
}
