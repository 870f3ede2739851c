//go:build !linux

package fifo

import (
	"context"
	"os"
)

// Open opens the named pipe at path for reading. Where the runtime
// cannot poll a FIFO (darwin never adds one to its poller, so the Linux
// way of waiting would fail), open(2) waits for the writer as it does for
// any program, and a read for its bytes; a second Ctrl-C ends ferry.
func Open(_ context.Context, path string) (*os.File, error) {
	return os.Open(path)
}
