//go:build linux

package e2e

import (
	"os"
	"syscall"
)

// maxRSS is the peak resident set of a finished process, in bytes (Linux
// reports kilobytes).
func maxRSS(ps *os.ProcessState) int64 {
	if ps == nil {
		return -1
	}
	ru, ok := ps.SysUsage().(*syscall.Rusage)
	if !ok {
		return -1
	}
	return ru.Maxrss << 10
}
