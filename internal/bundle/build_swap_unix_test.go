//go:build unix

package bundle

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The walk lists the inputs, the copy reads them later. A file replaced in
// between must not put other bytes in the layer: ferry used to open the
// path again, following a link out of the input directory, blocking on a
// named pipe, reading whatever file was there. Each case replaces a file
// once the copy starts (onStart), before it is opened.
func TestBuildFileReplacedAfterTheWalkIsRefused(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("the secret, which must stay out of any layer"), 0o600); err != nil {
		t.Fatal(err)
	}
	outsideDir := filepath.Dir(secret)
	for _, tc := range []struct {
		name    string
		victim  string // relative to the input, replaced by swap
		swap    func(t *testing.T, dir, victim string)
		wantErr string
	}{
		{name: "link out of the input", victim: "zz", swap: func(t *testing.T, dir, victim string) {
			mustSymlink(t, secret, victim)
		}, wantErr: "now a symbolic link"},
		{name: "link inside the input", victim: "zz", swap: func(t *testing.T, dir, victim string) {
			mustSymlink(t, "aa", victim)
		}, wantErr: "another file"},
		{name: "another file", victim: "zz", swap: func(t *testing.T, dir, victim string) {
			if err := os.WriteFile(victim, []byte("zz content"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, wantErr: "another file"},
		{name: "a directory", victim: "zz", swap: func(t *testing.T, dir, victim string) {
			mustMkdir(t, victim)
		}, wantErr: "now a directory"},
		{name: "gone", victim: "zz", swap: func(t *testing.T, dir, victim string) {}, wantErr: "gone"},
		{name: "parent replaced by a link out of the input", victim: "sub/zz", swap: func(t *testing.T, dir, victim string) {
			if err := os.RemoveAll(filepath.Dir(victim)); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(outsideDir, "zz"), []byte("zz outside"), 0o600); err != nil {
				t.Fatal(err)
			}
			mustSymlink(t, outsideDir, filepath.Dir(victim))
		}, wantErr: "now a symbolic link"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeTree(t, [2]string{"aa", "aa content"}, [2]string{"sub/zz", "zz content"}, [2]string{"zz", "zz content"})
			victim := filepath.Join(dir, filepath.FromSlash(tc.victim))
			tmp := t.TempDir()
			_, err := Build(context.Background(), []string{dir}, BuildOptions{TempDir: tmp, Reporter: &onStart{fn: func() {
				// Moved away rather than removed, so that its inode number
				// cannot be given to the file that takes its place.
				if err := os.Rename(victim, filepath.Join(t.TempDir(), "old")); err != nil {
					t.Fatal(err)
				}
				tc.swap(t, dir, victim)
			}}})
			shown := victim
			if strings.HasPrefix(tc.name, "parent") {
				shown = filepath.Dir(victim) // the directory entry is checked first
			}
			wantErr(t, err, shown, "changed while push was reading it", tc.wantErr)
			if n := countFiles(t, tmp); n != 0 {
				t.Errorf("%d files left in TempDir, want 0", n)
			}
		})
	}
}

// A named pipe in a file's place used to hold the build in open() until a
// writer came, beyond the reach of a signal; it is refused at once.
func TestBuildFileReplacedByNamedPipeFailsAtOnce(t *testing.T) {
	dir := writeTree(t, [2]string{"aa", "aa content"}, [2]string{"zz", "zz content"})
	victim := filepath.Join(dir, "zz")
	tmp := t.TempDir()
	done := make(chan error, 1)
	go func() {
		_, err := Build(context.Background(), []string{dir}, BuildOptions{TempDir: tmp, Reporter: &onStart{fn: func() {
			if err := os.Remove(victim); err != nil {
				t.Error(err)
			}
			if err := syscall.Mkfifo(victim, 0o600); err != nil {
				t.Error(err)
			}
		}}})
		done <- err
	}()
	select {
	case err := <-done:
		wantErr(t, err, victim, "changed while push was reading it", "named pipe")
	case <-time.After(time.Minute):
		// Not a synchronisation: the build is stuck, and the writer below
		// only lets the goroutine end.
		if f, err := os.OpenFile(victim, os.O_WRONLY, 0); err == nil {
			f.Close()
		}
		t.Fatal("Build blocked on a named pipe put in a file's place")
	}
	if n := countFiles(t, tmp); n != 0 {
		t.Errorf("%d files left in TempDir, want 0", n)
	}
}

// A regular file given as an input (-f FILE) is checked the same way.
func TestBuildInputFileReplacedAfterTheWalkIsRefused(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "app.yml")
	if err := os.WriteFile(victim, []byte("kind: x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Build(context.Background(), []string{victim}, BuildOptions{TempDir: t.TempDir(), Reporter: &onStart{fn: func() {
		if err := os.Rename(victim, filepath.Join(t.TempDir(), "old")); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(victim, []byte("kind: y\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}}})
	wantErr(t, err, victim, "changed while push was reading it", "another file")
}

// images.yml is read to validate it right after the walk: a link put in
// its place is not followed out of the input directory.
func TestBuildImagesLockReplacedAfterTheWalkIsRefused(t *testing.T) {
	outside := filepath.Join(t.TempDir(), "images.yml")
	if err := os.WriteFile(outside, goldenImagesYML(t), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := bundleTree(t)
	victim := filepath.Join(dir, ".imgpkg", "images.yml")
	_, err := Build(context.Background(), []string{dir}, BuildOptions{Bundle: true, TempDir: t.TempDir(), afterWalk: func() {
		if err := os.Remove(victim); err != nil {
			t.Fatal(err)
		}
		mustSymlink(t, outside, victim)
	}})
	wantErr(t, err, victim, "changed while push was reading it", "symbolic link")
}

func mustSymlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}
