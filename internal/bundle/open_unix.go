//go:build unix

package bundle

import "syscall"

// nonBlocking opens a named pipe without waiting for a writer, so that one
// put in a file's place is found and refused rather than waited on.
const nonBlocking = syscall.O_NONBLOCK
