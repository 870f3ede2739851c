//go:build !unix

package bundle

// nonBlocking is 0 where opening a file cannot wait on a writer the way a
// Unix named pipe does.
const nonBlocking = 0
