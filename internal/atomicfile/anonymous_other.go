//go:build !linux

package atomicfile

import "os"

// unnamed is Linux's O_TMPFILE, which other systems do not have.
func unnamed(string) (*os.File, bool) { return nil, false }
