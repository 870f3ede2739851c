package procfd

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

// A file with a name, one removed once open and one made with O_TMPFILE
// are all counted in their directory, and no longer once closed.
func TestCountUnderSeesFilesWithoutAName(t *testing.T) {
	dir := t.TempDir()
	named, err := os.Create(filepath.Join(dir, "named"))
	if err != nil {
		t.Fatal(err)
	}
	defer named.Close()
	removed, err := os.Create(filepath.Join(dir, "removed"))
	if err != nil {
		t.Fatal(err)
	}
	defer removed.Close()
	if err := os.Remove(removed.Name()); err != nil {
		t.Fatal(err)
	}
	files := []*os.File{named, removed}
	if fd, err := unix.Open(dir, unix.O_RDWR|unix.O_TMPFILE|unix.O_CLOEXEC, 0o600); err == nil {
		tmp := os.NewFile(uintptr(fd), "tmpfile")
		defer tmp.Close()
		files = append(files, tmp)
	}
	if n, err := CountUnder(os.Getpid(), dir); err != nil || n != len(files) {
		t.Fatalf("CountUnder = %d, %v; want %d", n, err, len(files))
	}
	targets, err := Targets(0)
	if err != nil || !slices.Contains(targets, removed.Name()) {
		t.Errorf("Targets(0) = %v, %v; want it to hold %s without \" (deleted)\"", targets, err, removed.Name())
	}
	for _, f := range files {
		f.Close()
	}
	if n, err := CountUnder(0, dir); err != nil || n != 0 {
		t.Errorf("after Close: CountUnder = %d, %v; want 0", n, err)
	}
}
