//go:build !unix

package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"time"
)

// lockDir does nothing where flock(2) is not available: LockDir's callers
// then run their steps unlocked.
func lockDir(string) (unlock func(), err error) { return func() {}, nil }

// busy never sees a lock where flock(2) is not available.
func busy(string, time.Duration) bool { return false }

// holdTemp takes no lock where flock(2) is not available.
func holdTemp(*os.File) (*os.File, error) { return nil, nil }

// removeAbandoned cannot tell an abandoned temporary file from one being
// written where flock(2) is not available: it leaves it.
func removeAbandoned(path string) (TempState, error) {
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		return TempGone, nil
	}
	return TempUnknown, errors.New("cannot tell which: no flock(2) on this system")
}
