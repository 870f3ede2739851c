//go:build !unix

package relocate

import (
	"context"
	"os"
)

// openPipe opens the named pipe at path for reading.
func openPipe(_ context.Context, path string) (*os.File, error) {
	return os.Open(path)
}
