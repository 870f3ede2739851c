// Package procfd tells which files a process has open, from Linux's
// /proc/PID/fd, for tests that must see scratch files without a name
// (O_TMPFILE, or removed once opened), which no directory listing shows.
package procfd

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Targets returns what each open descriptor of process pid (0: this
// process) points at, as /proc shows it, without the " (deleted)" suffix
// of a file that has no name: "DIR/#INODE" for an O_TMPFILE file, its old
// path for a removed one. The error is /proc's where there is none.
func Targets(pid int) ([]string, error) {
	dir := "/proc/self/fd"
	if pid != 0 {
		dir = filepath.Join("/proc", strconv.Itoa(pid), "fd")
	}
	fds, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, fd := range fds {
		if target, err := os.Readlink(filepath.Join(dir, fd.Name())); err == nil {
			out = append(out, strings.TrimSuffix(target, " (deleted)"))
		}
	}
	return out, nil
}

// CountUnder counts the files process pid has open directly in dir,
// named or not.
func CountUnder(pid int, dir string) (int, error) {
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	targets, err := Targets(pid)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, t := range targets {
		if filepath.Dir(t) == dir {
			n++
		}
	}
	return n, nil
}
