//go:build unix

package atomicfile

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// A device, a named pipe or a socket under the name, or a symbolic link to
// one, is refused by Create (ErrNotRegular), and stays as it was: a file
// renamed over it would replace it (as root, /dev/null), and a FIFO's
// reader would wait for ever. Nothing is created beside it.
func TestCreateRefusesDevicesPipesAndSockets(t *testing.T) {
	type special struct {
		name string
		make func(t *testing.T, path string)
	}
	specials := []special{
		{"named pipe", func(t *testing.T, path string) {
			if err := syscall.Mkfifo(path, 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{"socket", func(t *testing.T, path string) {
			l, err := net.Listen("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
		}},
	}
	if os.Geteuid() == 0 {
		// mknod of /dev/null's numbers: what `-o /dev/null` run as root
		// would have replaced.
		specials = append(specials, special{"character device", func(t *testing.T, path string) {
			fi, err := os.Stat("/dev/null")
			if err != nil {
				t.Fatal(err)
			}
			st := fi.Sys().(*syscall.Stat_t)
			if err := syscall.Mknod(path, syscall.S_IFCHR|0o666, int(st.Rdev)); err != nil {
				t.Fatal(err)
			}
		}})
	}
	for _, sp := range specials {
		for _, viaLink := range []bool{false, true} {
			name := sp.name
			if viaLink {
				name += " through a symbolic link"
			}
			t.Run(name, func(t *testing.T) {
				// Short: a socket's path is limited to about 100 bytes.
				dir, err := os.MkdirTemp("", "af")
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { os.RemoveAll(dir) })
				special := filepath.Join(dir, "s")
				sp.make(t, special)
				before, err := os.Lstat(special)
				if err != nil {
					t.Fatal(err)
				}
				path := special
				if viaLink {
					path = filepath.Join(dir, "l")
					if err := os.Symlink("s", path); err != nil {
						t.Fatal(err)
					}
				}
				names := entries(t, dir)
				f, err := Create(path)
				if err == nil {
					f.Abort()
					t.Fatalf("Create(%s) succeeded, want it refused", name)
				}
				if !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), sp.name) {
					t.Errorf("Create: %v, want ErrNotRegular naming %s and saying %q", err, path, sp.name)
				}
				if _, err := Target(path); !errors.Is(err, ErrNotRegular) {
					t.Errorf("Target: %v, want ErrNotRegular", err)
				}
				after, err := os.Lstat(special)
				if err != nil || after.Mode() != before.Mode() || !os.SameFile(before, after) {
					t.Errorf("the %s is now %v (%v), want it as it was (%v)", sp.name, after, err, before.Mode())
				}
				if got := entries(t, dir); !slices.Equal(got, names) {
					t.Errorf("the directory holds %v, want %v", got, names)
				}
			})
		}
	}
}

// A symbolic link to a file in another directory is followed: the new file
// replaces the one it leads to, and the link stays, leading there.
func TestCreateFollowsASymbolicLink(t *testing.T) {
	dir := t.TempDir()
	linkDir, fileDir := filepath.Join(dir, "links"), filepath.Join(dir, "files")
	for _, d := range []string{linkDir, fileDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(fileDir, "out.tar.zst")
	if err := os.WriteFile(file, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(linkDir, "out.tar.zst")
	if err := os.Symlink("../files/out.tar.zst", link); err != nil {
		t.Fatal(err)
	}
	f, err := Create(link)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(f.Name()) != fileDir {
		t.Errorf("temporary file %s, want it in %s, beside the file the link leads to", f.Name(), fileDir)
	}
	if f.Path() != file {
		t.Errorf("Path() = %s, want %s", f.Path(), file)
	}
	if _, err := f.Write([]byte("new")); err != nil {
		t.Fatal(err)
	}
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(file); err != nil || string(got) != "new" {
		t.Errorf("%s holds %q (%v), want %q", file, got, err, "new")
	}
	fi, err := os.Lstat(link)
	if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Fatalf("the link is now %v (%v), want it a symbolic link still", fi, err)
	}
	if dest, err := os.Readlink(link); err != nil || dest != "../files/out.tar.zst" {
		t.Errorf("the link leads to %q (%v), want it unchanged", dest, err)
	}
	if got := entries(t, linkDir); !slices.Equal(got, []string{"out.tar.zst"}) {
		t.Errorf("the link's directory holds %v, want the link alone", got)
	}
}

// A symbolic link that leads nowhere is refused, naming it and where it
// leads: nothing is created there, nor under the link.
func TestCreateRefusesADanglingLink(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, "out.tar.zst")
	dest := filepath.Join(dir, "gone", "x.tar.zst")
	if err := os.Mkdir(filepath.Dir(dest), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(dest, link); err != nil {
		t.Fatal(err)
	}
	f, err := Create(link)
	if err == nil {
		f.Abort()
		t.Fatal("Create of a dangling link succeeded, want it refused")
	}
	if !strings.Contains(err.Error(), link) || !strings.Contains(err.Error(), dest) || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("Create: %v, want an error naming %s and %s, which does not exist", err, link, dest)
	}
	if got := entries(t, filepath.Dir(dest)); len(got) != 0 {
		t.Errorf("the link's destination directory holds %v, want nothing", got)
	}
	if got := entries(t, dir); !slices.Equal(got, []string{"gone", "out.tar.zst"}) {
		t.Errorf("the directory holds %v, want the link and the directory alone", got)
	}
}
