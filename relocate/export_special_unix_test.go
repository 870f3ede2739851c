//go:build unix

package relocate

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"github.com/ferry-dev/ferry/internal/atomicfile"
)

// An export to a named pipe, or to a symbolic link to one, is refused
// before anything is downloaded (atomicfile.ErrNotRegular), by
// CheckExportPath and by ExportFile itself, and the pipe stays: renamed
// over, its reader would wait for ever.
func TestExportRefusesANamedPipeBeforeDownloading(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	for _, viaLink := range []bool{false, true} {
		dir := t.TempDir()
		fifo := filepath.Join(dir, "fifo")
		if err := syscall.Mkfifo(fifo, 0o644); err != nil {
			t.Fatal(err)
		}
		path := fifo
		if viaLink {
			path = filepath.Join(dir, "x.tar.zst")
			if err := os.Symlink("fifo", path); err != nil {
				t.Fatal(err)
			}
		}
		before := dirNames(t, dir)
		for _, split := range []int64{0, 1 << 20} {
			opts := ExportOptions{Remote: w.opts, SplitSize: split}
			if err := CheckExportPath(path, opts); !errors.Is(err, atomicfile.ErrNotRegular) {
				t.Errorf("CheckExportPath(%s, split %d): %v, want ErrNotRegular", path, split, err)
			}
			p, err := Resolve(context.Background(), Source{Bundle: w.rootTag}, Options{Remote: w.opts})
			if err != nil {
				t.Fatal(err)
			}
			w.reg.ResetCounts()
			if _, err := ExportFile(context.Background(), p, path, opts); !errors.Is(err, atomicfile.ErrNotRegular) {
				t.Errorf("ExportFile(%s, split %d): %v, want ErrNotRegular", path, split, err)
			}
			if n := w.reg.Counts().Total(); n != 0 {
				t.Errorf("%d registry requests before refusing, want none", n)
			}
		}
		if fi, err := os.Lstat(fifo); err != nil || fi.Mode()&fs.ModeNamedPipe == 0 {
			t.Errorf("the FIFO is now %v (%v), want it a FIFO still", fi, err)
		}
		if got := dirNames(t, dir); !slices.Equal(got, before) {
			t.Errorf("the directory holds %v, want %v as before", got, before)
		}
	}
}

// An export to a symbolic link to a file in another directory writes the
// archive where the link leads, its checksum file beside it, naming it;
// the link stays, and nothing is written beside it.
func TestExportFollowsASymbolicLink(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	linkDir, fileDir := t.TempDir(), t.TempDir()
	file := filepath.Join(fileDir, "real.tar.zst")
	if err := os.WriteFile(file, []byte("an older archive"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(linkDir, "x.tar.zst")
	if err := os.Symlink(file, link); err != nil {
		t.Fatal(err)
	}
	if err := CheckExportPath(link, ExportOptions{}); err != nil {
		t.Fatalf("CheckExportPath: %v", err)
	}
	p, err := Resolve(context.Background(), Source{Bundle: w.rootTag}, Options{Remote: w.opts})
	if err != nil {
		t.Fatal(err)
	}
	res, err := ExportFile(context.Background(), p, link, ExportOptions{Remote: w.opts})
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if sum := fmt.Sprintf("%x", sha256.Sum256(got)); sum != res.SHA256 || res.Path != file {
		t.Errorf("%s has sha256 %s, result %s at %s: want the archive there", file, sum, res.SHA256, res.Path)
	}
	side, err := os.ReadFile(file + ".sha256")
	if want := fmt.Sprintf("%x  real.tar.zst\n", sha256.Sum256(got)); err != nil || string(side) != want {
		t.Errorf("%s.sha256 holds %q (%v), want %q", file, side, err, want)
	}
	if dest, err := os.Readlink(link); err != nil || dest != file {
		t.Errorf("the link leads to %q (%v), want %s still", dest, err, file)
	}
	if names := dirNames(t, linkDir); !slices.Equal(names, []string{"x.tar.zst"}) {
		t.Errorf("the link's directory holds %v, want the link alone", names)
	}
}
