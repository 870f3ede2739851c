// Package atomicfile writes files that appear complete or not at all: the
// bytes go to a temporary file beside the target, which is synced and
// renamed over it on Commit. A crash, a failed export or a cancelled run
// leaves either the old file or none, never a truncated one that a later
// import would trip over.
package atomicfile

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// File is a file being written to a temporary name until Commit.
type File struct {
	f         *os.File
	path, tmp string
	committed bool
	aborted   bool
	// written is the bytes written so far; flushed, where the last
	// writeback started.
	written, flushed int64
}

// writebackChunk is how much is written between two writeback starts.
const writebackChunk = 16 << 20

// Create starts writing path. It fails at once, before the caller does any
// expensive work, if path's directory is missing, is not a directory or is
// not writable, or if path is a directory. The file is created with mode
// 0666 less the umask, like os.Create.
func Create(path string) (*File, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	if base == "" || base == "." || base == ".." {
		return nil, fmt.Errorf("create %s: not a file name", path)
	}
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("create %s: directory %s does not exist", path, dir)
	case err != nil:
		return nil, fmt.Errorf("create %s: %w", path, err)
	case !fi.IsDir():
		return nil, fmt.Errorf("create %s: %s is not a directory", path, dir)
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return nil, fmt.Errorf("create %s: is a directory", path)
	}
	for range 10 {
		var rnd [8]byte
		if _, err := rand.Read(rnd[:]); err != nil {
			return nil, fmt.Errorf("create %s: %w", path, err)
		}
		tmp := filepath.Join(dir, "."+base+".tmp-"+hex.EncodeToString(rnd[:]))
		f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
		switch {
		case err == nil:
			return &File{f: f, path: path, tmp: tmp}, nil
		case errors.Is(err, fs.ErrExist):
			continue
		case errors.Is(err, fs.ErrPermission), errors.Is(err, syscall.EROFS):
			return nil, fmt.Errorf("create %s: directory %s is not writable: %w", path, dir, err)
		default:
			return nil, fmt.Errorf("create %s: %w", path, err)
		}
	}
	return nil, fmt.Errorf("create %s: no free temporary name in %s", path, dir)
}

// Write writes to the temporary file.
func (f *File) Write(p []byte) (int, error) {
	if f.committed || f.aborted {
		return 0, fmt.Errorf("write %s: file already committed or aborted", f.path)
	}
	n, err := f.f.Write(p)
	f.written += int64(n)
	if f.written-f.flushed >= writebackChunk {
		startWriteback(f.f, f.flushed, f.written-f.flushed)
		f.flushed = f.written
	}
	return n, err
}

// Name returns the temporary file's path.
func (f *File) Name() string { return f.tmp }

// Path returns the path the file will have once committed.
func (f *File) Path() string { return f.path }

// Commit syncs the temporary file, renames it over the target and syncs
// the directory, so that after Commit returns the new file survives a
// crash. On failure the temporary file is removed.
func (f *File) Commit() error {
	switch {
	case f.aborted:
		return fmt.Errorf("commit %s: already aborted", f.path)
	case f.committed:
		return fmt.Errorf("commit %s: already committed", f.path)
	}
	if err := f.f.Sync(); err != nil {
		f.Abort()
		return fmt.Errorf("commit %s: %w", f.path, err)
	}
	if err := f.f.Close(); err != nil {
		f.Abort()
		return fmt.Errorf("commit %s: %w", f.path, err)
	}
	if err := os.Rename(f.tmp, f.path); err != nil {
		f.aborted = true
		os.Remove(f.tmp)
		return fmt.Errorf("commit %s: %w", f.path, err)
	}
	f.committed = true
	if err := syncDir(filepath.Dir(f.path)); err != nil {
		return fmt.Errorf("commit %s: sync directory: %w", f.path, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	// Some filesystems cannot sync a directory; the rename stands anyway.
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOTSUP) {
		return err
	}
	return nil
}

// Abort closes and removes the temporary file. It does nothing after
// Commit or a previous Abort, so it can be deferred unconditionally.
func (f *File) Abort() error {
	if f.committed || f.aborted {
		return nil
	}
	f.aborted = true
	f.f.Close()
	if err := os.Remove(f.tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("abort %s: %w", f.path, err)
	}
	return nil
}

// CommitWithChecksum commits f and writes the sidecar path.sha256 for it
// (see WriteChecksumFile; sum is the sha256 of what was written), so that
// the pair always agrees, even when several writers commit to the same
// path at once: the old sidecar is removed, the file renamed in and its
// sidecar written while holding an exclusive lock on path's directory.
// Without it, two exports to one -o FILE could leave one's checksum beside
// the other's archive. The lock is flock(2) on unix systems, released when
// the process exits; where it cannot be taken (some network file systems,
// other systems) the steps run unlocked, in the same order.
//
// The slow part of a commit, syncing the file's bytes, runs before the lock
// is taken, so writers wait for each other only for a rename and a small
// write.
func (f *File) CommitWithChecksum(sum []byte) error {
	if len(sum) != sha256.Size {
		f.Abort()
		return fmt.Errorf("commit %s: sum is %d bytes, want %d", f.path, len(sum), sha256.Size)
	}
	if f.committed || f.aborted {
		return f.Commit() // its error says which
	}
	if err := f.f.Sync(); err != nil {
		f.Abort()
		return fmt.Errorf("commit %s: %w", f.path, err)
	}
	unlock := lockDir(filepath.Dir(f.path))
	defer unlock()
	// An old checksum must not outlive the file it describes: without
	// this, a crash between the rename and the new sidecar would leave a
	// good file beside a checksum that calls it corrupt.
	if err := os.Remove(f.path + ".sha256"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		f.Abort()
		return fmt.Errorf("commit %s: %w", f.path, err)
	}
	if err := f.Commit(); err != nil {
		return err
	}
	if err := WriteChecksumFile(f.path, sum); err != nil {
		return fmt.Errorf("commit %s: checksum file: %w", f.path, err)
	}
	return nil
}

// LockDir takes the lock CommitWithChecksum takes on dir, for a writer
// that puts several files and their checksum file in place together
// (volumes of a split archive); the returned function releases it.
func LockDir(dir string) (unlock func()) { return lockDir(dir) }

// WriteChecksumFile writes path.sha256, atomically, in the format of
// sha256sum: "<hex>  <base name of path>\n", so that `sha256sum -c` run in
// path's directory checks path. sum is the raw 32-byte digest.
func WriteChecksumFile(path string, sum []byte) error {
	return WriteChecksums(path+".sha256", []Checksum{{Path: path, Sum: sum}})
}

// Checksum is one line of a checksum file: a file and its raw sha256.
type Checksum struct {
	Path string
	Sum  []byte
}

// WriteChecksums writes the checksum file sidecar, atomically, one
// sha256sum line per file, naming each by its base name, so that
// `sha256sum -c` run in their directory checks every one.
func WriteChecksums(sidecar string, sums []Checksum) error {
	var b strings.Builder
	for _, c := range sums {
		if len(c.Sum) != sha256.Size {
			return fmt.Errorf("checksum file %s: sum of %s is %d bytes, want %d", sidecar, c.Path, len(c.Sum), sha256.Size)
		}
		line := hex.EncodeToString(c.Sum) + "  " + filepath.Base(c.Path) + "\n"
		if base := filepath.Base(c.Path); strings.ContainsAny(base, "\\\n\r") {
			// GNU sha256sum escapes such names and marks the line with '\'.
			esc := strings.NewReplacer(`\`, `\\`, "\n", `\n`, "\r", `\r`).Replace(base)
			line = `\` + hex.EncodeToString(c.Sum) + "  " + esc + "\n"
		}
		b.WriteString(line)
	}
	f, err := Create(sidecar)
	if err != nil {
		return err
	}
	if _, err := f.Write([]byte(b.String())); err != nil {
		f.Abort()
		return fmt.Errorf("write %s: %w", f.path, err)
	}
	return f.Commit()
}
