package volumes

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ferry-dev/ferry/internal/atomicfile"
)

// Put puts the files of a new archive at path in place: one unsplit file
// (whose name is path) or its volumes (path.001, …), written to temporary
// files by atomicfile, and path.sha256 with sums. It replaces everything an
// earlier export left under that name: an unsplit file, volumes of any
// number (gaps included), and the checksum file; a reader never finds new
// files beside old ones.
//
// It is all or nothing. The slow part, syncing the new files' bytes, comes
// first, unlocked. Then, under atomicfile.LockDir (two exports to one name
// never interleave), the old files are moved aside to hidden names, the new
// ones renamed in, the checksum file written and the directory synced; if
// any step fails, the new files are removed and the old ones moved back, so
// a failed export leaves the previous archive as it was. Only then are the
// old files removed. A crash in the middle of those renames can leave the
// previous archive's files under their hidden names (".NAME.old-…") beside
// part of the new one; nothing is lost, and the next export removes the
// new part.
//
// The returned warnings say what could not be removed once the new archive
// was in place (an old file kept under a hidden name); they are not
// failures.
func Put(path string, files []*atomicfile.File, sums []atomicfile.Checksum) (warnings []error, err error) {
	return put(path, files, sums, osOps)
}

// fsOps are the file system calls Put makes, so that tests can fail one.
type fsOps struct {
	rename func(oldpath, newpath string) error
	remove func(name string) error
	// checksums writes the checksum file.
	checksums func(sidecar string, sums []atomicfile.Checksum) error
	syncDir   func(dir string) error
}

var osOps = fsOps{rename: os.Rename, remove: os.Remove, checksums: atomicfile.WriteChecksums, syncDir: atomicfile.SyncDir}

func put(path string, files []*atomicfile.File, sums []atomicfile.Checksum, ops fsOps) ([]error, error) {
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
	unlock := atomicfile.LockDir(dir)
	defer unlock()

	olds, err := earlier(path)
	if err != nil {
		abortAll()
		return nil, err
	}
	type moved struct{ name, aside string }
	var aside []moved
	putBack := func() error {
		var errs []error
		for i := len(aside) - 1; i >= 0; i-- {
			if err := ops.rename(aside[i].aside, aside[i].name); err != nil {
				errs = append(errs, fmt.Errorf("%s is still %s: %w", filepath.Base(aside[i].name), filepath.Base(aside[i].aside), err))
			}
		}
		return errors.Join(errs...)
	}
	var in []string
	undo := func(cause error) error {
		for _, name := range in {
			ops.remove(name)
		}
		abortAll()
		if err := putBack(); err != nil {
			return fmt.Errorf("%w; the earlier export under this name could not all be put back: %v", cause, err)
		}
		ops.syncDir(dir)
		return cause
	}
	for _, name := range olds {
		a, err := asideName(name)
		if err == nil {
			err = ops.rename(name, a)
		}
		if err != nil {
			return nil, undo(fmt.Errorf("move %s aside: %w", name, err))
		}
		aside = append(aside, moved{name, a})
	}
	for _, f := range files {
		if err := f.Rename(); err != nil {
			return nil, undo(err)
		}
		in = append(in, f.Path())
	}
	if err := ops.checksums(path+".sha256", sums); err != nil {
		return nil, undo(fmt.Errorf("checksum file: %w", err))
	}
	in = append(in, path+".sha256")
	if err := ops.syncDir(dir); err != nil {
		return nil, undo(fmt.Errorf("sync directory %s: %w", dir, err))
	}
	var warnings []error
	for _, m := range aside {
		if err := ops.remove(m.aside); err != nil {
			warnings = append(warnings, fmt.Errorf("the earlier export's %s is left as %s: %w", filepath.Base(m.name), m.aside, err))
		}
	}
	return warnings, nil
}

// earlier lists what an earlier export may have left under path's name:
// path itself, path.sha256, and every path.NNN (three digits, as volumes
// are named). A directory under one of those names is refused: it is not
// an export's, and replacing it would lose it.
func earlier(path string) ([]string, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	var out []string
	for _, e := range entries {
		name := e.Name()
		ours := name == base || name == base+".sha256"
		if rest, ok := strings.CutPrefix(name, base+"."); ok && len(rest) == 3 {
			if n, err := strconv.Atoi(rest); err == nil && n >= 1 {
				ours = true
			}
		}
		if !ours {
			continue
		}
		if e.IsDir() {
			return nil, fmt.Errorf("%s is a directory", filepath.Join(dir, name))
		}
		out = append(out, filepath.Join(dir, name))
	}
	return out, nil
}

// asideName is a hidden name beside name, for the while a new file takes
// its place.
func asideName(name string) (string, error) {
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return "", err
	}
	dir, base := filepath.Split(name)
	return filepath.Join(dir, "."+base+".old-"+hex.EncodeToString(rnd[:])), nil
}
