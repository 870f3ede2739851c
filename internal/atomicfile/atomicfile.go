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
	"regexp"
	"strings"
	"syscall"
	"time"
)

// File is a file being written to a temporary name until Commit.
type File struct {
	f         *os.File
	path, tmp string
	committed bool
	aborted   bool
	// synced is set once the bytes are on stable storage and the file is
	// closed (Sync): what remains is the rename.
	synced bool
	// written is the bytes written so far; flushed, what was written when
	// the background sync was last asked for.
	written, flushed int64
	// bg syncs the file in the background while it grows; nil until the
	// first writebackChunk is written.
	bg *backgroundSync
	// held is a duplicate of f's descriptor, through which the temporary
	// file holds the exclusive flock(2) Create took on f from Create to
	// Rename or Abort (f is closed earlier, by Sync): what tells
	// RemoveAbandoned that the file is being written. nil only where the
	// file system cannot lock it.
	held *os.File
}

// writebackChunk is how much is written between two requests for a
// background sync.
const writebackChunk = 16 << 20

// backgroundSync syncs a file on a goroutine of its own each time it is
// asked to, one sync at a time, requests made meanwhile merged into the
// next: the data of a large file then reaches the disk while the rest is
// still being produced, and the final sync has little left to do. Measured
// on ext4: a 176 MB export's final fsync went from 0.2-0.3 s to under
// 0.02 s, where asking for writeback with sync_file_range(2) left it at
// 0.1-0.2 s (it starts writing the pages but neither allocates their
// blocks nor commits the journal, which the final fsync then waits for).
type backgroundSync struct {
	kick chan struct{}
	done chan struct{}
	// err is the first sync's failure, read once done is closed. It must
	// reach the final Sync: Linux reports a write-back error to each
	// descriptor once, so the background sync may be the only one to see
	// it.
	err error
}

// startBackgroundSync starts the goroutine that calls sync (the file's
// Sync) on request.
func startBackgroundSync(sync func() error) *backgroundSync {
	b := &backgroundSync{kick: make(chan struct{}, 1), done: make(chan struct{})}
	go func() {
		defer close(b.done)
		for range b.kick {
			if err := sync(); err != nil && b.err == nil {
				b.err = err
			}
		}
	}()
	return b
}

// request asks for a sync without waiting for it.
func (b *backgroundSync) request() {
	select {
	case b.kick <- struct{}{}:
	default: // one is already pending
	}
}

// stop ends the goroutine: a request not yet taken is dropped (the final
// sync, or the removal, makes it moot). With wait, it waits for the sync in
// progress, if any, and returns the first sync's failure; without, it
// returns at once and the goroutine ends when that sync does (the file's
// descriptor stays open until then, whatever closes it meanwhile).
func (b *backgroundSync) stop(wait bool) error {
	select {
	case <-b.kick:
	default:
	}
	close(b.kick)
	if !wait {
		return nil
	}
	<-b.done
	return b.err
}

// ErrNotRegular is matched (errors.Is) by the error of Target and Create
// for a path that is, or leads through a symbolic link to, a
// device, a named pipe (FIFO) or a socket: a file renamed over it would
// replace it (as root, /dev/null itself) rather than write to it, and the
// reader of a FIFO would wait on for ever. Such a destination takes a
// stream: a caller that can write to standard output says so.
var ErrNotRegular = errors.New("not a regular file")

// ErrDangling is what Target returns (wrapped) for a symbolic link that
// leads nowhere: the file it would create there is the user's to name.
var ErrDangling = errors.New("a symbolic link to nothing")

// Target returns the file that Create writes for path: path itself or,
// when path is a symbolic link, the file it leads to in the end
// (filepath.EvalSymlinks), the link staying as it is. It refuses a
// symbolic link that leads nowhere (to nothing, or round a loop: the file
// to create is then the user's to name), a directory, and a device, named
// pipe or socket (ErrNotRegular), whether path names it or a link leads to
// it. A path that does not exist, or that cannot be looked at, is returned
// as it is: creating the file says why it cannot be.
func Target(path string) (string, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return path, nil
	}
	what := ""
	if fi.Mode()&fs.ModeSymlink != 0 {
		dest, _ := os.Readlink(path)
		what = "a symbolic link to " + dest + ", "
		if fi, err = os.Stat(path); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return "", fmt.Errorf("%s is a symbolic link to %s, which does not exist: name the file to write itself (%w)", path, dest, ErrDangling)
			}
			return "", fmt.Errorf("%s is a symbolic link to %s, which cannot be followed: %w", path, dest, err)
		}
	}
	if err := regularOrNone(path, what, fi.Mode()); err != nil {
		return "", err
	}
	if what == "" {
		return path, nil
	}
	// /dev/stdout and the like lead to /proc/self/fd/N, which Stat
	// follows to the pipe or terminal and which was refused above; a link
	// that Stat follows to a regular file resolves too.
	target, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", fmt.Errorf("%s is %swhich cannot be followed: %w", path, what, err)
	}
	return target, nil
}

// regularOrNone refuses mode unless it is a regular file's; what says how
// path led to it ("" or "a symbolic link to DEST, ").
func regularOrNone(path, what string, mode fs.FileMode) error {
	var kind string
	switch {
	case mode.IsRegular():
		return nil
	case mode.IsDir():
		return fmt.Errorf("%s is %sa directory", path, what)
	case mode&fs.ModeCharDevice != 0:
		kind = "a character device"
	case mode&fs.ModeDevice != 0:
		kind = "a block device"
	case mode&fs.ModeNamedPipe != 0:
		kind = "a named pipe (FIFO)"
	case mode&fs.ModeSocket != 0:
		kind = "a socket"
	default:
		kind = "a file of type " + mode.Type().String()
	}
	return fmt.Errorf("%s is %s%s, %w: a file written beside it and renamed over it would replace it", path, what, kind, ErrNotRegular)
}

// Create starts writing path. It fails at once, before the caller does any
// expensive work, if path's directory is missing, is not a directory or is
// not writable, or if path is what Target refuses: a directory, a device,
// a named pipe or a socket (ErrNotRegular), or a symbolic link to none or
// to one of these. A symbolic link to a file is followed: the file is
// written where it leads (Target), which Path returns, and the link stays. The file is created with mode
// 0666 less the umask, like os.Create.
//
// The temporary file, named as TempTarget reads, is created under the
// directory's lock (LockDir) and locked at once, through the descriptor
// that writes it, until Rename or Abort: a clean-up holding that lock
// (RemoveAbandoned) tells it from one a killed process left. Create fails,
// leaving no temporary file, if either lock fails for any reason but the
// file system's having no flock(2): it never hands out a file that a
// clean-up would take for abandoned.
func Create(path string) (*File, error) {
	target, err := Target(path)
	if err != nil {
		// It names path.
		return nil, err
	}
	return create(target, path)
}

// CreateName is Create for a name the caller derives from one Target
// returned (a volume of an archive, its checksum file): whatever stands
// under it, but a directory, is replaced, a symbolic link included, so
// that the files of one archive stay side by side.
func CreateName(path string) (*File, error) {
	return create(path, path)
}

// CheckDir reports, as Create does before it creates anything, whether a
// file can go at path: path names a file, and the directory it goes into
// exists. Its errors do not name path ("directory nodir/ does not exist"):
// the caller does.
func CheckDir(path string) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	if base == "" || base == "." || base == ".." {
		return errors.New("not a file name")
	}
	// Without its trailing separator: "f/" of a file f would be ENOTDIR.
	// (Not Clean: "link/../" is where link leads, not ".".)
	at := strings.TrimRight(dir, string(filepath.Separator))
	if at == "" {
		at = dir
	}
	fi, err := os.Stat(at)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("directory %s does not exist", dir)
	case err != nil:
		return err
	case !fi.IsDir():
		return fmt.Errorf("%s is not a directory", dir)
	}
	return nil
}

// create is Create of path, which Target returned for asked (named in
// errors).
func create(path, asked string) (*File, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	if err := CheckDir(path); err != nil {
		return nil, fmt.Errorf("create %s: %w", asked, err)
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return nil, fmt.Errorf("create %s: is a directory", asked)
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	defer unlock()
	for range 10 {
		var rnd [8]byte
		if _, err := rand.Read(rnd[:]); err != nil {
			return nil, fmt.Errorf("create %s: %w", path, err)
		}
		tmp := filepath.Join(dir, "."+base+tempInfix+hex.EncodeToString(rnd[:]))
		f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
		switch {
		case err == nil:
			held, err := holdTemp(f)
			if err != nil {
				f.Close()
				os.Remove(tmp)
				return nil, fmt.Errorf("create %s: %w", path, err)
			}
			return &File{f: f, path: path, tmp: tmp, held: held}, nil
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
	if f.committed || f.aborted || f.synced {
		return 0, fmt.Errorf("write %s: file already synced, committed or aborted", f.path)
	}
	n, err := f.f.Write(p)
	f.written += int64(n)
	if f.written-f.flushed >= writebackChunk {
		if f.bg == nil {
			f.bg = startBackgroundSync(f.f.Sync)
		}
		f.bg.request()
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
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Rename(); err != nil {
		f.Abort()
		return err
	}
	if err := syncDir(filepath.Dir(f.path)); err != nil {
		return fmt.Errorf("commit %s: sync directory: %w", f.path, err)
	}
	return nil
}

// Sync puts the temporary file's bytes on stable storage and closes it,
// without giving it its name: the slow half of Commit, for a caller that
// puts several files in place together (Sync each, then Rename each, then
// SyncDir). On failure the temporary file is removed.
func (f *File) Sync() error {
	switch {
	case f.aborted:
		return fmt.Errorf("commit %s: already aborted", f.path)
	case f.committed:
		return fmt.Errorf("commit %s: already committed", f.path)
	case f.synced:
		return nil
	}
	if f.bg != nil {
		err := f.bg.stop(true)
		f.bg = nil
		if err != nil {
			f.Abort()
			return fmt.Errorf("commit %s: %w", f.path, err)
		}
	}
	if err := f.f.Sync(); err != nil {
		f.Abort()
		return fmt.Errorf("commit %s: %w", f.path, err)
	}
	if err := f.f.Close(); err != nil {
		f.Abort()
		return fmt.Errorf("commit %s: %w", f.path, err)
	}
	f.synced = true
	return nil
}

// Rename gives the synced temporary file (Sync) its name, replacing what
// was there. The rename survives a crash only once the directory is
// synced (SyncDir). On failure the temporary file is left for Abort.
func (f *File) Rename() error {
	if !f.synced || f.committed || f.aborted {
		return fmt.Errorf("rename %s: not synced, or already committed or aborted", f.path)
	}
	if err := os.Rename(f.tmp, f.path); err != nil {
		return fmt.Errorf("commit %s: %w", f.path, err)
	}
	f.committed = true
	f.release()
	return nil
}

// release closes held, releasing the temporary file's lock.
func (f *File) release() {
	if f.held != nil {
		f.held.Close()
		f.held = nil
	}
}

// SyncDir syncs the directory dir, so that the renames in it survive a
// crash. File systems that cannot sync a directory are not an error.
func SyncDir(dir string) error { return syncDir(dir) }

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
	if f.bg != nil {
		// Not waiting: a sync in progress can take long on a slow disk,
		// and what it writes is about to be removed.
		f.bg.stop(false)
		f.bg = nil
	}
	if !f.synced {
		f.f.Close()
	}
	// Removed before its lock is released: a clean-up never finds it
	// unlocked under its name.
	defer f.release()
	if err := os.Remove(f.tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("abort %s: %w", f.path, err)
	}
	return nil
}

// Unlink removes the temporary file's name at once, before Abort: unlike
// every other method it may be called while a Write is in progress in
// another goroutine, one blocked on a stalled disk or writer that the
// caller gives up waiting for. What is written after it goes to a file
// with no name, freed when Abort closes it, and Rename and Commit fail:
// nothing can take the final name any more. Abort must still be
// called, once no Write is in progress, to close the file and release its
// lock. It must not be called after Commit or Rename.
func (f *File) Unlink() error {
	if err := os.Remove(f.tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("abort %s: %w", f.path, err)
	}
	return nil
}

// tempInfix is what Create puts between "."+base and the 16 hex digits of
// a temporary file's name.
const tempInfix = ".tmp-"

// tempName matches the name of a temporary file Create makes.
var tempName = regexp.MustCompile(`^\.(.+)\.tmp-[0-9a-f]{16}$`)

// TempTarget reports whether name (a base name) is one Create gives a
// temporary file, ".<target>.tmp-<16 hex>", and returns target's base name.
func TempTarget(name string) (target string, ok bool) {
	m := tempName.FindStringSubmatch(name)
	if m == nil {
		return "", false
	}
	return m[1], true
}

// TempState is what RemoveAbandoned found of a temporary file.
type TempState int

const (
	// TempRemoved: no File was writing it (its process was killed, or the
	// system crashed); it is removed.
	TempRemoved TempState = iota
	// TempInUse: a File, of this process or another, is writing it; it
	// stays.
	TempInUse
	// TempUnknown: whether one is cannot be told (no flock(2) on this
	// system or its file system, the file cannot be opened, or it is not a
	// regular file), or, abandoned, it cannot be removed; it stays.
	TempUnknown
	// TempGone: it no longer exists.
	TempGone
)

// RemoveAbandoned removes the temporary file at path (a name TempTarget
// accepts) if no File is writing it: every File holds an exclusive
// flock(2) on its temporary file from Create to Rename or Abort, which the
// system releases however its process ends, SIGKILL included. The caller
// holds LockDir on the file's directory, so that no File is being created
// there meanwhile (Create takes that lock too).
//
// With TempUnknown it returns the reason, which says why the file stays.
// It never follows a symbolic link nor waits on a FIFO under the name: it
// locks and removes only a regular file.
//
// The locks are flock(2), local to one machine: a File on another host
// that shares the directory (NFS mounted with local_lock) is not seen. On
// NFS where flock is emulated by fcntl(2) locks, the read-only open this
// takes cannot lock exclusively: such files are TempUnknown. fcntl locks
// of one process do not exclude each other, and closing any descriptor of
// a file drops all the process's locks on it (a File's Sync, or this
// function's own close): a process must therefore clean up before it
// creates its own temporary files, as relocate.ExportFile does.
func RemoveAbandoned(path string) (TempState, error) {
	return removeAbandoned(path)
}

// LockDir takes an exclusive lock on the directory dir, for a writer that
// puts several files and their checksum file in place together (an
// archive, or the volumes of one, and path.sha256), so that two writers to
// one name never leave a mix of both. The lock is flock(2) on unix
// systems, released when the process exits; where the file system cannot
// lock (some network file systems, other systems) the caller runs
// unlocked. Any other failure (dir cannot be opened, no descriptor left) is
// an error. The returned function releases the lock.
func LockDir(dir string) (unlock func(), err error) { return lockDir(dir) }

// Busy reports whether another holder keeps dir's lock (LockDir, which
// Create takes too) for longer than grace, so that a caller can say why
// what follows waits: writers hold it for moments, and one held longer
// belongs to a process that is stopped (^Z) or hung, which LockDir waits
// for without end rather than give up work already done. It takes and
// releases the lock when it is free; false where there are no locks.
func Busy(dir string, grace time.Duration) bool { return busy(dir, grace) }

// busyGrace is how long another writer may hold a directory's lock before
// WarnIfBusy says why the caller waits: writers hold it for moments.
const busyGrace = time.Second

// WarnIfBusy, called before a step that takes the lock on path's directory
// (Create, LockDir), calls warnf when another process has held that lock
// for over a second, so that the user learns why nothing moves. The step
// still waits: giving up would throw away the work done before it, and the
// other process may only be stopped. warnf is a progress reporter's Warnf;
// the message is here so that every command says it alike. A symbolic
// link is followed as Create follows it: the lock is that of the
// directory the file is written in.
func WarnIfBusy(path string, warnf func(format string, args ...any)) {
	if t, err := Target(path); err == nil {
		path = t
	}
	if dir := filepath.Dir(path); busy(dir, busyGrace) {
		warnf("waiting for the lock on %s, which another process holds (another ferry writing there, stopped with ^Z?)", dir)
	}
}

// Checksum is one line of a checksum file: a file and its raw sha256.
type Checksum struct {
	Path string
	Sum  []byte
}

// CreateChecksums writes the checksum file sidecar to its temporary name,
// one sha256sum line per file, naming each by its base name, so that
// `sha256sum -c` run in their directory checks every one; the caller
// commits it, or puts it in place with the files it describes.
func CreateChecksums(sidecar string, sums []Checksum) (*File, error) {
	var b strings.Builder
	for _, c := range sums {
		if len(c.Sum) != sha256.Size {
			return nil, fmt.Errorf("checksum file %s: sum of %s is %d bytes, want %d", sidecar, c.Path, len(c.Sum), sha256.Size)
		}
		line := hex.EncodeToString(c.Sum) + "  " + filepath.Base(c.Path) + "\n"
		if base := filepath.Base(c.Path); strings.ContainsAny(base, "\\\n\r") {
			// GNU sha256sum escapes such names and marks the line with '\'.
			esc := strings.NewReplacer(`\`, `\\`, "\n", `\n`, "\r", `\r`).Replace(base)
			line = `\` + hex.EncodeToString(c.Sum) + "  " + esc + "\n"
		}
		b.WriteString(line)
	}
	f, err := CreateName(sidecar)
	if err != nil {
		return nil, err
	}
	if _, err := f.Write([]byte(b.String())); err != nil {
		f.Abort()
		return nil, fmt.Errorf("write %s: %w", f.path, err)
	}
	return f, nil
}
