package atomicfile

import (
	"fmt"
	"os"
)

// Anonymous returns a new file in dir (os.TempDir when empty) for scratch
// data that no one else is to see: without a name where the system allows
// it (Linux's O_TMPFILE; elsewhere the name is removed at once, which
// leaves it a moment), so that whatever ends the process, SIGKILL
// included, the system frees it. name is the file's name when it could
// not be removed, for the caller to remove once done with it; "" when it
// has none.
func Anonymous(dir, pattern string) (f *os.File, name string, err error) {
	if dir == "" {
		dir = os.TempDir()
	}
	if f, ok := unnamed(dir); ok {
		return f, "", nil
	}
	f, err = os.CreateTemp(dir, pattern)
	if err != nil {
		return nil, "", fmt.Errorf("create a scratch file in %s: %w", dir, err)
	}
	if os.Remove(f.Name()) != nil {
		return f, f.Name(), nil
	}
	return f, "", nil
}
