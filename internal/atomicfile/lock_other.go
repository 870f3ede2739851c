//go:build !unix

package atomicfile

// lockDir does nothing where flock(2) is not available: LockDir's callers
// then run their steps unlocked.
func lockDir(string) (unlock func()) { return func() {} }
