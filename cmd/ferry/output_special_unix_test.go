//go:build unix

package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// fifoAndBundle makes in dir a named pipe and a bundle directory locking
// no image, and returns their paths.
func fifoAndBundle(t *testing.T, dir string) (fifo, bundleDir string) {
	t.Helper()
	fifo = filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	bundleDir = filepath.Join(dir, "bundle")
	if err := os.MkdirAll(filepath.Join(bundleDir, ".imgpkg"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundleDir, ".imgpkg", "images.yml"), []byte("apiVersion: imgpkg.carvel.dev/v1alpha1\nkind: ImagesLock\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return fifo, bundleDir
}

// An archive to write to a named pipe (-o, --to-tar) is a usage error
// that says to write to standard output and redirect it, before any
// registry is asked (127.0.0.1:1 answers nothing); the pipe stays.
func TestArchiveOutputToANamedPipeIsAUsageError(t *testing.T) {
	dir := t.TempDir()
	fifo, bundleDir := fifoAndBundle(t, dir)
	wantUsage(t, []string{"export", "-b", "127.0.0.1:1/b:1", "-o", fifo}, fifo, "named pipe", "-o - >"+fifo)
	wantUsage(t, []string{"copy", "-b", "127.0.0.1:1/b:1", "--to-tar", fifo}, fifo, "named pipe", "--to-tar - >"+fifo)
	wantUsage(t, []string{"push", "-b", "127.0.0.1:1/b:1", "-f", bundleDir, "--to-tar", fifo}, fifo, "named pipe", "--to-tar - >"+fifo)
	if fi, err := os.Lstat(fifo); err != nil || fi.Mode()&fs.ModeNamedPipe == 0 {
		t.Errorf("the FIFO is now %v (%v), want it a FIFO still", fi, err)
	}
}

// --lock-output follows -o's rules before any request (127.0.0.1:1
// answers nothing, an archive that is not there is never opened): a named
// pipe, or a symbolic link to nothing, is a usage error naming it, for
// import, copy --tar, copy and push alike; and so is a dangling -o.
func TestLockOutputToANamedPipeOrNowhereIsAUsageError(t *testing.T) {
	dir := t.TempDir()
	fifo, bundleDir := fifoAndBundle(t, dir)
	dangling := filepath.Join(dir, "dangling")
	if err := os.Symlink(filepath.Join(dir, "nowhere", "lock.yml"), dangling); err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(dir, "absent.tar.zst")
	for _, out := range []struct{ path, says string }{{fifo, "named pipe"}, {dangling, "does not exist"}} {
		wantUsage(t, []string{"import", "-f", archive, "--to-repo", "127.0.0.1:1/r", "--lock-output", out.path}, out.path, out.says)
		wantUsage(t, []string{"copy", "--tar", archive, "--to-repo", "127.0.0.1:1/r", "--lock-output", out.path}, out.path, out.says)
		wantUsage(t, []string{"copy", "-b", "127.0.0.1:1/b:1", "--to-repo", "127.0.0.1:1/r", "--lock-output", out.path}, out.path, out.says)
		wantUsage(t, []string{"push", "-b", "127.0.0.1:1/b:1", "-f", bundleDir, "--lock-output", out.path}, out.path, out.says)
	}
	wantUsage(t, []string{"export", "-b", "127.0.0.1:1/b:1", "-o", dangling}, dangling, "does not exist")
}

// inventory's -o is checked before the walk (127.0.0.1:1 answers
// nothing): a named pipe is a usage error, a directory that does not
// exist an error naming it, rather than after every repository was read.
func TestInventoryOutputIsCheckedBeforeTheWalk(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	wantUsage(t, []string{"inventory", "--repo", "127.0.0.1:1/r", "-o", fifo}, fifo, "named pipe")
	missing := filepath.Join(dir, "nodir", "have.json")
	code, _, stderr := runFerry("inventory", "--repo", "127.0.0.1:1/r", "-o", missing)
	if code != 1 || !strings.Contains(stderr, filepath.Join(dir, "nodir")) || strings.Contains(stderr, "127.0.0.1:1") {
		t.Errorf("inventory -o %s: exit %d, %q; want 1, naming the directory, before any request", missing, code, stderr)
	}
}

// --lock-output naming the archive an import reads (the file, its
// checksum file, one of its volumes, or a link to one) is a usage error
// before any request, and the file stays: the lock, written once the
// import succeeded, once replaced the one copy of the release, silently.
func TestLockOutputThatIsTheArchiveIsAUsageError(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	file := write("one.tar.zst", "an archive")
	sum := write("one.tar.zst.sha256", "a checksum")
	vol1, vol2 := write("split.tar.zst.001", "volume 1"), write("split.tar.zst.002", "volume 2")
	link := filepath.Join(dir, "link.yml")
	if err := os.Symlink(file, link); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ in, lock string }{
		{file, file}, {file, sum}, {file, link},
		{vol1, vol2}, {filepath.Join(dir, "split.tar.zst"), vol1},
	} {
		for _, cmd := range [][]string{{"import", "-f"}, {"copy", "--tar"}} {
			wantUsage(t, append(cmd, tc.in, "--to-repo", "127.0.0.1:1/r", "--lock-output", tc.lock), tc.lock, "which this import reads")
		}
	}
	for p, want := range map[string]string{file: "an archive", sum: "a checksum", vol1: "volume 1", vol2: "volume 2"} {
		if got, err := os.ReadFile(p); err != nil || string(got) != want {
			t.Errorf("%s now holds %q (%v)", p, got, err)
		}
	}
}

// An archive written over the --lock file the run reads (the same name, a
// link to it, or its checksum file's name) is a usage error before any
// request, and the lock stays: the archive, renamed into place at the
// end, once replaced the only input of the run, exit 0.
func TestArchiveOverItsLockIsAUsageError(t *testing.T) {
	dir := t.TempDir()
	lock := filepath.Join(dir, "images.yml")
	content := "apiVersion: imgpkg.carvel.dev/v1alpha1\nkind: ImagesLock\nimages: []\n"
	if err := os.WriteFile(lock, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.tar.zst")
	if err := os.Symlink(lock, link); err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{lock, link} {
		wantUsage(t, []string{"export", "--lock", lock, "-o", out}, lock, "which this run reads")
		wantUsage(t, []string{"copy", "--lock", lock, "--to-tar", out}, lock, "which this run reads")
	}
	if got, err := os.ReadFile(lock); err != nil || string(got) != content {
		t.Errorf("the lock now holds %q (%v)", got, err)
	}
}
