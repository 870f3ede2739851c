package relocate_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/ferry-dev/ferry/archive"
	"github.com/ferry-dev/ferry/relocate"
)

// fullDisk is the archive file of a disk with room for room more bytes:
// a write past it stores what fits and fails as the kernel's does, with
// ENOSPC in an *os.PathError naming the file written (the temporary file,
// found in dir when the disk fills up).
type fullDisk struct {
	w    io.Writer
	dir  string
	room int64

	mu      sync.Mutex
	tmp     string // the file being written when the disk filled up
	written int64
}

func (d *fullDisk) Write(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.written+int64(len(p)) <= d.room {
		n, err := d.w.Write(p)
		d.written += int64(n)
		return n, err
	}
	n, err := d.w.Write(p[:d.room-d.written])
	d.written += int64(n)
	if err != nil {
		return n, err
	}
	if d.tmp == "" {
		names, err := os.ReadDir(d.dir)
		if err != nil || len(names) != 1 {
			return n, errors.New("fullDisk: want exactly the temporary file in the output directory")
		}
		d.tmp = filepath.Join(d.dir, names[0].Name())
	}
	return n, &os.PathError{Op: "write", Path: d.tmp, Err: syscall.ENOSPC}
}

// An export to a file on a disk that fills up, at its first byte, in the
// middle of the blobs or at its last byte (the seek table), fails naming
// the archive and the full disk (as an output failure, not the content's),
// and leaves the directory as it found it: no temporary file, nothing
// under the archive's name or its .sha256.
func TestExportFileToAFullDiskFailsAndLeavesNothing(t *testing.T) {
	src := impNewSource(t, 1<<20)
	ctx := context.Background()
	export := func(path string, wrap func(io.Writer) io.Writer) (*relocate.ExportResult, error) {
		p, err := relocate.Resolve(ctx, relocate.Source{Bundle: src.rootTagRef}, relocate.Options{Remote: src.opts})
		if err != nil {
			t.Fatalf("resolve %s: %v", src.rootTagRef, err)
		}
		return relocate.ExportFile(ctx, p, path, relocate.ExportOptions{Remote: src.opts, WrapFile: wrap})
	}
	full, err := export(filepath.Join(t.TempDir(), "bundle.tar.zst"), nil)
	if err != nil {
		t.Fatal(err)
	}
	size := full.ArchiveBytes

	for _, c := range []struct {
		name string
		room int64
	}{{"first byte", 0}, {"mid blobs", size / 2}, {"last byte", size - 1}} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			out := filepath.Join(dir, "bundle.tar.zst")
			var disk *fullDisk
			_, err := export(out, func(w io.Writer) io.Writer {
				disk = &fullDisk{w: w, dir: dir, room: c.room}
				return disk
			})
			if err == nil {
				t.Fatalf("export of %d bytes to a disk with room for %d succeeded", size, c.room)
			}
			if disk == nil || disk.tmp == "" {
				t.Fatalf("the disk never filled up (wrapped: %v); err = %v", disk != nil, err)
			}
			if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), out) || !strings.Contains(err.Error(), "no space left on device") {
				t.Errorf("error %q: want ENOSPC, naming %s and saying no space is left", err, out)
			}
			if oe := (*archive.OutputError)(nil); !errors.As(err, &oe) {
				t.Errorf("error %q is not an archive.OutputError: the user is not told the output failed, not the content", err)
			}
			for _, p := range []string{disk.tmp, out, out + ".sha256"} {
				if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s after the failed export: %v, want it absent", p, err)
				}
			}
			if names := impDirEntries(t, dir); len(names) != 0 {
				t.Errorf("output directory holds %v after the failed export, want nothing", names)
			}
		})
	}
}
