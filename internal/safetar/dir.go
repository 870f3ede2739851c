package safetar

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// OverwriteFlag is the command-line flag that lets pull replace the contents
// of a non-empty output directory; PrepareDir's error tells the user about
// it. imgpkg has no such flag (its pull silently deletes the directory), so
// the name is ferry's own.
const OverwriteFlag = "--overwrite"

// ErrNotEmpty is matched (errors.Is) by PrepareDir's error for a non-empty
// directory when replacing was not asked for.
var ErrNotEmpty = errors.New("output directory is not empty")

// notEmptyError carries the exact message users see while still matching
// ErrNotEmpty.
type notEmptyError struct{ dir string }

func (e *notEmptyError) Error() string {
	return fmt.Sprintf("output directory %s is not empty; use %s to replace its contents", e.dir, OverwriteFlag)
}

func (e *notEmptyError) Is(target error) bool { return target == ErrNotEmpty }

// CheckEmptyDir reports whether dir has no entries. A directory that does not
// exist counts as empty, since extracting would create it; a path that exists
// but is not a directory is an error.
func CheckEmptyDir(dir string) (empty bool, err error) {
	f, err := os.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("output directory %s: %w", dir, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return false, fmt.Errorf("output directory %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return false, fmt.Errorf("output directory %s: not a directory", dir)
	}
	if _, err := f.Readdirnames(1); err == io.EOF {
		return true, nil
	} else if err != nil {
		return false, fmt.Errorf("output directory %s: %w", dir, err)
	}
	return false, nil
}

// PrepareDir makes dir ready for Extract: it creates dir (mode 0777 before
// the umask, as imgpkg's pull does) if it does not exist and leaves an empty one alone. A non-empty
// dir is an error matching ErrNotEmpty unless replace is true; then its
// contents, never dir itself, are removed. Removal works below an [os.Root]
// and removes symbolic links rather than following them, so nothing outside
// dir is touched.
//
// Replacing refuses a dir that is the filesystem root or holds the current
// working directory, as imgpkg refuses "/", "." and "..": those are typing
// mistakes, not requests.
func PrepareDir(dir string, replace bool) error {
	empty, err := CheckEmptyDir(dir)
	if err != nil {
		return err
	}
	if empty {
		if err := os.MkdirAll(dir, pullDirMode); err != nil {
			return fmt.Errorf("output directory %s: %w", dir, err)
		}
		return nil
	}
	if !replace {
		return &notEmptyError{dir: dir}
	}
	if err := refuseDangerous(dir); err != nil {
		return err
	}
	if err := removeContents(dir); err != nil {
		return fmt.Errorf("output directory %s: remove contents: %w", dir, err)
	}
	return nil
}

// ResetDir makes rel, a path below dir, an empty directory: whatever is there
// (a file or a whole tree) is removed, then rel and its missing parents are
// created (0777 before the umask, as imgpkg's pull does). Both steps work below an [os.Root] at dir,
// so nothing outside dir is touched. It reports whether something was there.
func ResetDir(dir, rel string) (replaced bool, err error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return false, err
	}
	defer root.Close()
	_, err = root.Lstat(rel)
	switch {
	case err == nil:
		replaced = true
		if err := removeAll(root, rel); err != nil {
			return true, fmt.Errorf("%s: %w", filepath.Join(dir, rel), err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return false, fmt.Errorf("%s: %w", filepath.Join(dir, rel), err)
	}
	if err := root.MkdirAll(rel, pullDirMode); err != nil {
		return replaced, fmt.Errorf("%s: %w", filepath.Join(dir, rel), err)
	}
	return replaced, nil
}

func refuseDangerous(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("output directory %s: %w", dir, err)
	}
	// Compare real paths: a link named "out" may point at "/" or at home.
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return fmt.Errorf("output directory %s: %w", dir, err)
	}
	if filepath.Dir(real) == real {
		return fmt.Errorf("output directory %s is the filesystem root; refusing to replace its contents", dir)
	}
	wd, err := os.Getwd()
	if err != nil {
		return fmt.Errorf("output directory %s: %w", dir, err)
	}
	if realWD, err := filepath.EvalSymlinks(wd); err == nil {
		wd = realWD
	}
	if isWithin(real, wd) {
		return fmt.Errorf("output directory %s holds the current directory; refusing to replace its contents", dir)
	}
	return nil
}

func removeContents(dir string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	d, err := root.Open(".")
	if err != nil {
		return err
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return err
	}
	for _, name := range names {
		if err := removeAll(root, name); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

// removeAll removes name below root and everything under it.
func removeAll(root *os.Root, name string) error {
	err := root.RemoveAll(name)
	if errors.Is(err, fs.ErrPermission) {
		// A tree extracted with preserved read-only directory modes
		// cannot be emptied until its directories are writable again.
		if err = ownerWritable(root, name); err == nil {
			err = root.RemoveAll(name)
		}
	}
	return err
}

// ownerWritable gives the owner rwx on every real directory under name,
// without following symbolic links.
func ownerWritable(root *os.Root, name string) error {
	fi, err := root.Lstat(name)
	if err != nil || !fi.IsDir() {
		return err
	}
	return fs.WalkDir(root.FS(), name, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		// Called before WalkDir reads the directory, so the chmod is what
		// lets it be listed.
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.Mode().Perm()&0o700 == 0o700 {
			return nil
		}
		return root.Chmod(p, info.Mode().Perm()|0o700)
	})
}

// isWithin reports whether p is base or lies below it.
func isWithin(base, p string) bool {
	rel, err := filepath.Rel(base, p)
	return err == nil && filepath.IsLocal(rel)
}
