package volumes

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"

	"github.com/ferry-dev/ferry/internal/atomicfile"
)

// Put puts the files of a new archive at path in place: one unsplit file
// (whose name is path) or its volumes (path.001, …), written to temporary
// files by atomicfile, and path.sha256 with sums. It replaces everything an
// earlier export left under that name: an unsplit file, its volumes (gaps
// included; see earlier for which), and the checksum file; a reader never
// finds new files beside old ones. Files an export did not write stay.
//
// It is all or nothing. The slow part, syncing the new files' bytes (the
// checksum file's too), comes first, unlocked. Then, under
// atomicfile.LockDir (two exports to one name never interleave), the old
// files are set aside under hidden names (".NAME.old-<hex>"), the new ones
// renamed in, the checksum file last, and the directory synced once; if
// any step fails, the new files are removed and the old ones put back, so
// a failed export leaves the previous archive as it was. Only then are the
// old files removed. An old file whose name a new one takes is set aside
// by a hard link where the file system has them, so that the name never
// goes missing: an unsplit archive replaced by another is replaced
// atomically for its readers.
//
// A crash between setting the old files aside and the end can leave them
// under their hidden names; rename them back by hand to recover the
// earlier archive. The next Put to the same name removes them, with a
// warning.
//
// The returned warnings say what could not be removed once the new archive
// was in place, what an interrupted Put had left, and which files named
// like a volume of path, that no export of it can be shown to have
// written, stay (beside new volumes readers refuse them as extra volumes;
// beside an unsplit archive a reader given one reads it); they are not
// failures. Such a file whose name a new volume takes fails the Put.
func Put(path string, files []*atomicfile.File, sums []atomicfile.Checksum) (warnings []error, err error) {
	return put(path, files, sums, osOps)
}

// fsOps are the file system calls Put makes, so that tests can fail one.
type fsOps struct {
	rename   func(oldpath, newpath string) error
	link     func(oldpath, newpath string) error
	remove   func(name string) error
	renameIn func(f *atomicfile.File) error
	syncDir  func(dir string) error
}

var osOps = fsOps{
	rename:   os.Rename,
	link:     os.Link,
	remove:   os.Remove,
	renameIn: (*atomicfile.File).Rename,
	syncDir:  atomicfile.SyncDir,
}

func put(path string, files []*atomicfile.File, sums []atomicfile.Checksum, ops fsOps) ([]error, error) {
	// Names are compared as earlier lists them, cleaned: a path typed
	// ./a.tar.zst or dir/./a is the same file as a.tar.zst and dir/a.
	path = filepath.Clean(path)
	side, err := atomicfile.CreateChecksums(path+".sha256", sums)
	if err != nil {
		for _, f := range files {
			f.Abort()
		}
		return nil, err
	}
	// The checksum file goes in last: a reader that finds it finds the
	// files it lists.
	files = append(files[:len(files):len(files)], side)
	abortAll := func() {
		for _, f := range files {
			f.Abort()
		}
	}
	for _, f := range files {
		if err := f.Sync(); err != nil {
			abortAll()
			return nil, err
		}
	}
	dir := filepath.Dir(path)
	unlock, err := atomicfile.LockDir(dir)
	if err != nil {
		abortAll()
		return nil, err
	}
	defer unlock()

	olds, leftovers, strays, err := earlier(path)
	if err != nil {
		abortAll()
		return nil, err
	}
	taken := map[string]bool{}
	for _, f := range files {
		taken[filepath.Clean(f.Path())] = true
	}
	// A stray is no export's that ferry can tell: one whose name a new
	// volume takes (it appeared after CheckNames, while the export ran)
	// fails the export, named, rather than be replaced; the others stay,
	// each named in a warning.
	var strayWarnings []error
	for _, st := range strays {
		switch {
		case taken[st]:
			abortAll()
			if fi, err := os.Lstat(st); err == nil && fi.IsDir() {
				return nil, inTheWay(dir, filepath.Base(st), filepath.Base(path))
			}
			return nil, fmt.Errorf("%s is named like a volume of %s, which the export writes, but no earlier export of it can be shown to have written it (it appeared while the export ran?): remove or move it, or export under another name", st, filepath.Base(path))
		case taken[path]:
			strayWarnings = append(strayWarnings, fmt.Errorf("left %s in place: named like a volume of %s, but no earlier export of it can be shown to have written it; import %s reads the new archive, but a reader given %s, or cat %s.0*, would read it", st, filepath.Base(path), filepath.Base(path), filepath.Base(st), filepath.Base(path)))
		default:
			strayWarnings = append(strayWarnings, fmt.Errorf("left %s in place: named like a volume of %s, but no earlier export of it can be shown to have written it; a reader of the new volumes refuses it as an extra volume", st, filepath.Base(path)))
		}
	}
	type setAside struct {
		name, aside string
		// linked: set aside by a hard link, the name still holding the
		// old file until a new one is renamed over it.
		linked bool
	}
	var aside []setAside
	var in []string
	undo := func(cause error) error {
		var errs []error
		for _, name := range in {
			if err := ops.remove(name); err != nil {
				errs = append(errs, fmt.Errorf("remove the new %s: %w", filepath.Base(name), err))
			}
		}
		abortAll()
		replaced := map[string]bool{}
		for _, name := range in {
			replaced[name] = true
		}
		for i := len(aside) - 1; i >= 0; i-- {
			a := aside[i]
			if a.linked && !replaced[a.name] {
				// Still in place: the link goes. (Renaming one link
				// of a file over another of it does nothing.)
				if err := ops.remove(a.aside); err != nil {
					errs = append(errs, fmt.Errorf("remove %s: %w", a.aside, err))
				}
				continue
			}
			if err := ops.rename(a.aside, a.name); err != nil {
				errs = append(errs, fmt.Errorf("put back %s, which is still %s: %w", filepath.Base(a.name), filepath.Base(a.aside), err))
			}
		}
		if err := ops.syncDir(dir); err != nil {
			errs = append(errs, fmt.Errorf("sync directory %s: %w", dir, err))
		}
		if len(errs) > 0 {
			return fmt.Errorf("%w; undoing it failed, the directory may hold parts of both exports: %w", cause, errors.Join(errs...))
		}
		return cause
	}
	for _, name := range olds {
		a, err := asideName(name)
		if err != nil {
			return nil, undo(err)
		}
		// A name a new file takes keeps the old file until the new
		// one replaces it; the others are set aside at once, the old
		// checksum file too: a crash must not leave it beside new
		// files it would call damaged.
		linked := taken[name] && name != side.Path() && ops.link(name, a) == nil
		if !linked {
			if err := ops.rename(name, a); err != nil {
				return nil, undo(fmt.Errorf("set %s aside: %w", name, err))
			}
		}
		aside = append(aside, setAside{name, a, linked})
	}
	for _, f := range files {
		if err := ops.renameIn(f); err != nil {
			return nil, undo(err)
		}
		in = append(in, filepath.Clean(f.Path()))
	}
	if err := ops.syncDir(dir); err != nil {
		return nil, undo(fmt.Errorf("sync directory %s: %w", dir, err))
	}
	warnings := strayWarnings
	for _, a := range aside {
		if err := ops.remove(a.aside); err != nil {
			warnings = append(warnings, fmt.Errorf("the earlier export's %s is left as %s: %w", filepath.Base(a.name), a.aside, err))
		}
	}
	for _, l := range leftovers {
		if err := ops.remove(l); err != nil {
			warnings = append(warnings, fmt.Errorf("an interrupted export left %s: %w", l, err))
		} else {
			warnings = append(warnings, fmt.Errorf("removed %s, which an interrupted export had set aside", l))
		}
	}
	return warnings, nil
}

// asideHex is the length of the random part of a name set aside.
const asideHex = 12

// setAsideName matches a name Put set a file aside under.
var setAsideName = regexp.MustCompile(`^\.(.+)\.old-[0-9a-f]{12}$`)

// earlier lists what an earlier export left under path's name: path
// itself, path.sha256, and its volumes, and, apart, the files an
// interrupted Put left set aside (".NAME.old-<hex>" of those names). A
// directory under one of those names is refused: it is not an export's,
// and replacing it would lose it.
//
// Only what an export can be shown to have written is replaced: the
// volumes the old path.sha256 lists, or, when a crashed Put set it aside,
// its hidden copy. Without one as an export writes it (lost, not in
// sha256sum format, or made by sha256sum dir/FILE.0*) no file named like
// a volume is taken for an earlier export's, for nothing tells it from a
// user's own (notes.tar.zst.007): ferry deletes no file it cannot tell it
// wrote. A file whose own
// checksum file lists it is an archive of its own (app-1.0.099 beside
// app-1.0) and stays. What stays although named like a volume is returned
// as strays: beside new volumes, readers refuse them as an extra volume.
func earlier(path string) (olds, leftovers, strays []string, err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("list %s: %w", dir, err)
	}
	// Only a file as an export writes it (bare names) says what one
	// wrote; one made by sha256sum dir/FILE.0* does not.
	listed, stripped, err := readChecksums(path + ".sha256")
	if err != nil || stripped {
		listed = nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		// A Put that crashed after setting the old checksum file aside
		// (it goes first) left it under a hidden name: what it lists
		// is still an export's.
		listed = setAsideChecksums(dir, base, entries)
	}
	volume := func(name string) (vol, stray bool) {
		if _, ok := VolumeNumber(name, base); !ok || wholeArchive(filepath.Join(dir, name)) {
			return false, false
		}
		_, vol = listed[name]
		return vol, !vol
	}
	ours := func(name string) bool {
		vol, _ := volume(name)
		return name == base || name == base+".sha256" || vol
	}
	// setAside reports whether name is one Put set aside: a hidden copy
	// of the archive, of its checksum file or of a volume an export may
	// write. Only Put makes such names, so no checksum file is needed.
	setAside := func(name string) bool {
		m := setAsideName.FindStringSubmatch(name)
		if m == nil {
			return false
		}
		i, vol := VolumeNumber(m[1], base)
		// An archive of its own named like a volume (app-1.0.099
		// beside app-1.0) keeps its own copy set aside.
		return m[1] == base || m[1] == base+".sha256" || vol && i <= MaxVolumes && !wholeArchive(filepath.Join(dir, m[1]))
	}
	for _, e := range entries {
		name := e.Name()
		if setAside(name) && !e.IsDir() {
			leftovers = append(leftovers, filepath.Join(dir, name))
			continue
		}
		if _, stray := volume(name); stray {
			strays = append(strays, filepath.Join(dir, name))
		}
		if !ours(name) {
			continue
		}
		if e.IsDir() {
			return nil, nil, nil, inTheWay(dir, name, base)
		}
		olds = append(olds, filepath.Join(dir, name))
	}
	return olds, leftovers, strays, nil
}

// setAsideChecksums reads the checksum files of base that a crashed Put
// set aside (".BASE.sha256.old-<hex>") among entries of dir, and returns
// the names they list together; nil when there are none.
func setAsideChecksums(dir, base string, entries []fs.DirEntry) map[string]string {
	var listed map[string]string
	for _, e := range entries {
		m := setAsideName.FindStringSubmatch(e.Name())
		if m == nil || m[1] != base+".sha256" || e.IsDir() {
			continue
		}
		sums, stripped, err := readChecksums(filepath.Join(dir, e.Name()))
		if err != nil || stripped {
			continue
		}
		if listed == nil {
			listed = map[string]string{}
		}
		maps.Copy(listed, sums)
	}
	return listed
}

// asideName is a hidden name beside name, for the while a new file takes
// its place.
func asideName(name string) (string, error) {
	var rnd [asideHex / 2]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return "", err
	}
	dir, base := filepath.Split(name)
	return filepath.Join(dir, "."+base+".old-"+hex.EncodeToString(rnd[:])), nil
}

// inTheWay is the error for the directory name, in dir, where an export to
// base would write or replace a file.
func inTheWay(dir, name, base string) error {
	path := filepath.Join(dir, name)
	switch {
	case name == base+".sha256":
		return fmt.Errorf("%s is a directory, where the export writes the archive's checksum file", path)
	case name != base:
		return fmt.Errorf("%s is a directory, named as a volume of %s, which an export writes or replaces", path, base)
	}
	return fmt.Errorf("%s is a directory", path)
}

// CheckNames reports whether a directory stands where an export to path
// would write or replace a file, so that it is refused before anything is
// downloaded rather than when the archive is put in place (Put): the
// checksum file path.sha256, the volumes of an earlier export Put would
// replace, and, when the new archive is split, every volume name it may
// take (path.001 to path.099). A directory named as path itself, or one
// that cannot be listed, is left to atomicfile.Create, which says so.
//
// A split export is refused too when files named like volumes of path
// stand there that no earlier export of it can be shown to have written
// (the old path.sha256 does not list them, or there is none): Put would
// leave them, or replace someone else's file with a volume, and readers of
// the new volumes would refuse them as extra volumes (cat path.0* would
// join them in). They are named, for the user to remove or move; nothing is
// deleted. An unsplit export leaves them: path is read as the file it is.
func CheckNames(path string, split bool) error {
	path = filepath.Clean(path)
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return nil
	}
	_, _, strays, err := earlier(path)
	if err != nil {
		return err
	}
	if !split {
		return nil
	}
	// A directory in the way is named as such, the likelier mistake.
	for i := 1; i <= MaxVolumes; i++ {
		if fi, err := os.Stat(Name(path, i)); err == nil && fi.IsDir() {
			return inTheWay(dir, filepath.Base(Name(path, i)), base)
		}
	}
	for _, st := range strays {
		if fi, err := os.Stat(st); err == nil && fi.IsDir() {
			return inTheWay(dir, filepath.Base(st), base)
		}
	}
	if len(strays) > 0 {
		names := make([]string, len(strays))
		for i, st := range strays {
			names[i] = filepath.Base(st)
		}
		sort.Strings(names)
		why := "there is no " + base + ".sha256 to say that an earlier export wrote them"
		if _, err := os.Stat(path + ".sha256"); err == nil {
			why = base + ".sha256, of the earlier export, does not list them"
		}
		return fmt.Errorf("%s: named like volumes of %s, but %s (left by another export?): readers of the new volumes would refuse them as extra volumes, and cat %s.0* would join them in; remove or move them, or export under another name",
			strings.Join(names, ", "), base, why, base)
	}
	return nil
}

// RemoveTemporaries removes, with a warning naming each and its size, the
// temporary files that exports to path interrupted for good left beside it
// (killed, a second signal, a crash): ".NAME.tmp-<16 hex>" as
// atomicfile.Create names them, for NAME path itself, path.sha256 or a
// volume path.001 to path.099. Only those no export is writing any more
// are removed (atomicfile.RemoveAbandoned), under the directory's lock;
// where that cannot be told (no flock(2) on the system or its file
// system, a file another user's, not a regular file), each is only named,
// with its size and the reason, in a warning, and stays. The temporary
// files of a running export to path stay, unnamed. A directory that is
// missing or cannot be opened or listed gives no warning: the export
// itself then fails, saying why.
//
// It relies on flock(2), so on local file systems only. On NFS, where
// flock is emulated by fcntl(2) locks, the temporary files are left with a
// warning; mounted with local_lock, where locks are local to each host, an
// export running on another host is not seen and its temporary files may
// be removed. Temporary files of a ferry older than these locks carry
// none: one of an export of such a ferry, running meanwhile, is removed.
// It must run before this process creates temporary files of its own
// (fcntl locks of one process do not exclude each other, and closing a
// descriptor drops them; see atomicfile.RemoveAbandoned).
func RemoveTemporaries(path string) (warnings []error) {
	return removeTemporaries(path, atomicfile.RemoveAbandoned)
}

// removeTemporaries is RemoveTemporaries with the call that tells and
// removes an abandoned file, so that tests can make it fail.
func removeTemporaries(path string, removeAbandoned func(string) (atomicfile.TempState, error)) (warnings []error) {
	path = filepath.Clean(path)
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	unlock, err := atomicfile.LockDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, fs.ErrPermission), errors.Is(err, syscall.ENOTDIR):
		return nil
	case err != nil:
		return []error{fmt.Errorf("did not look for the temporary files of interrupted exports to %s: %w", base, err)}
	}
	defer unlock()
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	for _, e := range entries {
		target, ok := atomicfile.TempTarget(e.Name())
		if !ok || !e.Type().IsRegular() {
			continue
		}
		if i, vol := VolumeNumber(target, base); target != base && target != base+".sha256" && (!vol || i > MaxVolumes) {
			continue
		}
		name := filepath.Join(dir, e.Name())
		var size int64
		if fi, err := e.Info(); err == nil {
			size = fi.Size()
		}
		switch state, err := removeAbandoned(name); {
		case state == atomicfile.TempRemoved:
			warnings = append(warnings, fmt.Errorf("removed %s (%d bytes), which an interrupted export to %s had left", name, size, base))
		case state == atomicfile.TempUnknown:
			warnings = append(warnings, fmt.Errorf("left %s (%d bytes) in place: a temporary file of an export to %s, interrupted or still running (%w); remove it if no export to %s is running", name, size, base, err, base))
		}
	}
	return warnings
}
