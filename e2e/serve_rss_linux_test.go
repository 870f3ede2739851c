//go:build linux

package e2e

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// peakRSS is the peak resident set of a running process, in bytes: VmHWM
// of /proc/PID/status, its own address space's high-water mark. The
// rusage of a finished child (maxRSS) cannot say this: Go starts children
// with vfork, and the kernel records the parent's high-water mark in the
// child's when it execs, so a child never reports less than the test
// process itself used.
func peakRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return -1
			}
			return kb << 10
		}
	}
	return -1
}
