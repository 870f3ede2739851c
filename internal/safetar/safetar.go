// Package safetar extracts a bundle's layer, a tar stream, into a directory
// without ever creating, writing or changing anything outside it.
//
// imgpkg's pull joins entry names onto its output directory, so a layer
// holding "../escape.txt" writes beside the directory. ferry treats a bundle
// layer as untrusted input instead: every name is validated (for an error
// that names the entry), and every filesystem operation goes through an
// [os.Root], so escaping is impossible by construction even if validation
// missed a case or the directory changes under us.
//
// Bundles hold regular files and directories only (imgpkg's push refuses
// anything else), so Extract refuses every other entry type outright,
// including symbolic and hard links whose target would stay inside the
// directory: accepting "harmless" links would mean reasoning about link
// chains, and no bundle imgpkg or ferry writes contains one.
package safetar

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/ferry-dev/ferry/internal/ctxio"
)

// Limits on names, the Linux ones (PATH_MAX, NAME_MAX): a longer name cannot
// be created anyway, and checking up front gives an error naming the entry
// rather than an ENAMETOOLONG from deep inside the walk.
const (
	maxNameLen      = 4096
	maxComponentLen = 255
)

// pullDirMode is the mode a directory is made with, before the umask, whether
// an entry declares it or only needs it as a parent: imgpkg's pull makes
// every directory with os.MkdirAll(…, 0777) and ignores the mode of a
// directory's header.
const pullDirMode fs.FileMode = 0o777

var (
	// ErrUnsafePath is wrapped by the error for an entry whose name is not a
	// plain relative path inside the output directory (absolute, with a ".."
	// component, too long, containing NUL) or whose parent in the output
	// directory is a symbolic link.
	ErrUnsafePath = errors.New("unsafe path")
	// ErrUnsupportedType is wrapped by the error for an entry that is neither
	// a regular file nor a directory: links, devices, FIFOs, sparse files
	// and the like.
	ErrUnsupportedType = errors.New("unsupported entry type")
)

// Options controls how Extract writes files.
type Options struct {
	// PreservePermissions gives each file and directory exactly the
	// permission bits of its header (0o777 only: setuid, setgid and sticky
	// bits from a registry are dropped), regardless of the umask.
	//
	// When false, modes follow imgpkg's pull (image.DirImage): a file whose
	// header has any group or other bit (pushed with --preserve-permissions)
	// gets the header's permission bits, any other file its owner bits
	// copied to group and others, and a directory 0777, whatever its header
	// says; the umask then applies. So with umask 022 a default bundle's
	// 0600 file becomes 0644 and its 0700 script 0755, while a 0640 file
	// stays 0640.
	PreservePermissions bool
	// Created, when set, is called with the name (slash-separated,
	// relative to dir) of each file and directory Extract creates, once
	// created, in that order: what a caller removes, in reverse order, to
	// undo an extraction that failed, leaving alone what another process
	// put in dir meanwhile. A file whose writing fails is removed by
	// Extract itself.
	Created func(rel string)
}

// Extract reads the tar stream r and recreates its regular files and
// directories under dir, which must exist (see PrepareDir).
//
// It returns an error naming the entry for the first entry it refuses: an
// unsafe name (ErrUnsafePath), a type other than a regular file or directory
// (ErrUnsupportedType), or a name that already exists as a file in dir (files
// are created exclusively, so existing files and symbolic links are never
// written through). Nothing is ever created outside dir, but on error the
// entries extracted so far stay in dir; callers that want all or nothing
// extract into an empty directory and remove it on failure.
//
// The mode of dir itself is left alone, and a "." entry is skipped: the
// output directory belongs to the user. Directories always keep owner rwx
// while extracting; with PreservePermissions their header modes are applied
// once every entry is written, so a read-only directory can still be filled.
// Directories are made even when no entry goes in them, where imgpkg's pull
// makes only those that hold a file.
// Modification times and owners are not restored.
//
// ctx is checked between entries and while file contents are copied.
func Extract(ctx context.Context, r io.Reader, dir string, opts Options) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("extract to %s: %w", dir, err)
	}
	defer root.Close()

	x := &extractor{ctx: ctx, root: root, opts: opts, dirs: map[string]bool{}, files: map[string]bool{}}
	if err := x.run(r); err != nil {
		return fmt.Errorf("extract to %s: %w", dir, err)
	}
	return nil
}

// extractor holds the state of one Extract call.
type extractor struct {
	ctx  context.Context
	root *os.Root
	opts Options
	// dirs records directories known to be real directories in root (made
	// or checked by us), so each parent is checked once, not per entry.
	dirs map[string]bool
	// chmods are the header modes of directories, applied at the end when
	// permissions are preserved.
	chmods []dirMode
	// files are the files this extraction created, to tell a duplicate
	// entry from a file something else put in dir.
	files map[string]bool
}

type dirMode struct {
	rel  string
	mode fs.FileMode
}

func (x *extractor) run(r io.Reader) error {
	tr := tar.NewReader(ctxio.NewReader(x.ctx, r))
	for {
		if err := x.ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		// With GODEBUG=tarinsecurepath=0 the reader flags non-local names
		// itself; such a header still reaches our checks so the error says
		// why the entry is refused.
		if err != nil && !(errors.Is(err, tar.ErrInsecurePath) && hdr != nil) {
			return fmt.Errorf("read tar: %w", err)
		}
		if err := x.entry(hdr, tr); err != nil {
			return fmt.Errorf("tar entry %s: %w", quoteName(hdr.Name), err)
		}
	}
	return x.applyDirModes()
}

func (x *extractor) entry(hdr *tar.Header, body io.Reader) error {
	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader:
		// Metadata for the whole archive (git archive writes one); it
		// names nothing on disk.
		return nil
	case tar.TypeReg, tar.TypeDir:
	default:
		return fmt.Errorf("%w: %s (bundles hold regular files and directories only)", ErrUnsupportedType, typeName(hdr.Typeflag))
	}
	if isSparse(hdr) {
		return fmt.Errorf("%w: sparse file (bundles hold regular files and directories only)", ErrUnsupportedType)
	}

	rel, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	mode := fs.FileMode(hdr.Mode) & fs.ModePerm

	if hdr.Typeflag == tar.TypeDir {
		if rel == "" {
			return nil
		}
		if err := x.ensureParents(rel); err != nil {
			return err
		}
		return x.mkdir(rel, mode)
	}

	if rel == "" {
		return fmt.Errorf("%w: a file cannot replace the output directory itself", ErrUnsafePath)
	}
	if err := x.ensureParents(rel); err != nil {
		return err
	}
	return x.writeFile(rel, mode, body)
}

// ensureParents makes every directory above rel, refusing to go through
// anything that is not a real directory: os.Root would keep a symbolic link
// from leading outside, but even a link that stays inside means the files
// would land somewhere other than where the bundle says.
func (x *extractor) ensureParents(rel string) error {
	parent := path.Dir(rel)
	if parent == "." || x.dirs[parent] {
		return nil
	}
	parts := strings.Split(parent, "/")
	for i := range parts {
		p := strings.Join(parts[:i+1], "/")
		if x.dirs[p] {
			continue
		}
		fi, err := x.root.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := x.root.Mkdir(p, pullDirMode); err != nil {
				return err
			}
			x.created(p)
		case err != nil:
			return err
		case fi.Mode()&fs.ModeSymlink != 0:
			return fmt.Errorf("%w: parent %q is a symbolic link", ErrUnsafePath, p)
		case !fi.IsDir():
			return fmt.Errorf("parent %q exists and is not a directory", p)
		}
		x.dirs[p] = true
	}
	return nil
}

func (x *extractor) mkdir(rel string, mode fs.FileMode) error {
	fi, err := x.root.Lstat(rel)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// Owner rwx while extracting, so a directory whose header denies
		// the owner writing can still receive the entries that follow; with
		// PreservePermissions the header's mode comes at the end.
		create := pullDirMode
		if x.opts.PreservePermissions {
			create = 0o700
		}
		if err := x.root.Mkdir(rel, create); err != nil {
			return err
		}
		x.created(rel)
	case err != nil:
		return err
	case fi.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("%w: %q is a symbolic link in the output directory", ErrUnsafePath, rel)
	case !fi.IsDir():
		return fmt.Errorf("%q exists and is not a directory", rel)
	}
	x.dirs[rel] = true
	if x.opts.PreservePermissions {
		x.chmods = append(x.chmods, dirMode{rel: rel, mode: mode})
	}
	return nil
}

func (x *extractor) writeFile(rel string, mode fs.FileMode, body io.Reader) error {
	perm := mode
	if !x.opts.PreservePermissions {
		perm = pullFileMode(mode)
	}
	// O_EXCL: never truncate or write through something already there,
	// least of all a symbolic link planted in the directory.
	f, err := x.root.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if errors.Is(err, fs.ErrExist) {
		switch {
		case x.files[rel]:
			return fmt.Errorf("%q is in the layer twice (a duplicate entry)", rel)
		case x.dirs[rel]:
			return fmt.Errorf("%q is in the layer as a directory, then as a file", rel)
		}
		return fmt.Errorf("%q already exists in the output directory, not written by this extraction (another process put it there?)", rel)
	}
	if err != nil {
		return err
	}
	x.files[rel] = true
	x.created(rel)
	_, err = io.Copy(f, body)
	if err == nil && x.opts.PreservePermissions {
		// The umask narrowed the mode given to open; preserving means
		// exactly the header's bits. Through the descriptor, not the name.
		err = f.Chmod(perm)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		// Leave no truncated file that looks complete.
		_ = x.root.Remove(rel)
		return err
	}
	return nil
}

// created reports rel, just created, to Options.Created.
func (x *extractor) created(rel string) {
	if x.opts.Created != nil {
		x.opts.Created(rel)
	}
}

// applyDirModes sets preserved directory modes deepest first, so a parent
// losing its owner x bit cannot stop its children being changed.
func (x *extractor) applyDirModes() error {
	sort.SliceStable(x.chmods, func(i, j int) bool {
		return strings.Count(x.chmods[i].rel, "/") > strings.Count(x.chmods[j].rel, "/")
	})
	for _, c := range x.chmods {
		if err := x.root.Chmod(c.rel, c.mode); err != nil {
			return fmt.Errorf("set mode of %q: %w", c.rel, err)
		}
	}
	return nil
}

// isSparse reports a PAX-format GNU sparse file, which the tar reader
// presents as a regular file: its holes come out as zeros, so a few hundred
// bytes of tar could fill the disk with a terabyte-long file.
func isSparse(hdr *tar.Header) bool {
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// pullFileMode is the mode imgpkg's pull (image.DirImage.extractTarEntry)
// creates a file with, from its header's permission bits: those bits when
// any group or other bit is set, as for a bundle pushed with
// --preserve-permissions, else the owner bits copied to group and others
// (a default push masks modes to 0700). The umask then narrows the result.
func pullFileMode(mode fs.FileMode) fs.FileMode {
	if mode&0o077 != 0 {
		return mode
	}
	u := mode & 0o700
	return u | u>>3 | u>>6
}

// cleanName turns a tar entry name into a slash-separated path relative to
// the output directory ("" for the directory itself), or explains why it is
// not one. Backslashes count as separators, as in imgpkg's pull, because
// older imgpkg releases running on Windows wrote such names into layers.
func cleanName(name string) (string, error) {
	if name == "" {
		return "", fmt.Errorf("%w: empty name", ErrUnsafePath)
	}
	if strings.IndexByte(name, 0) >= 0 {
		return "", fmt.Errorf("%w: name contains a NUL byte", ErrUnsafePath)
	}
	if len(name) > maxNameLen {
		return "", fmt.Errorf("%w: name is %d bytes long, more than %d", ErrUnsafePath, len(name), maxNameLen)
	}
	n := strings.ReplaceAll(name, `\`, "/")
	if strings.HasPrefix(n, "/") {
		return "", fmt.Errorf("%w: absolute path", ErrUnsafePath)
	}
	parts := make([]string, 0, strings.Count(n, "/")+1)
	for _, c := range strings.Split(n, "/") {
		switch c {
		case "", ".":
			continue
		case "..":
			return "", fmt.Errorf("%w: \"..\" component", ErrUnsafePath)
		}
		if len(c) > maxComponentLen {
			return "", fmt.Errorf("%w: a component is %d bytes long, more than %d", ErrUnsafePath, len(c), maxComponentLen)
		}
		parts = append(parts, c)
	}
	rel := strings.Join(parts, "/")
	if rel == "" {
		return "", nil
	}
	// What counts as local differs by system (volume names and reserved
	// names such as NUL on Windows); the standard library knows.
	if !filepath.IsLocal(filepath.FromSlash(rel)) {
		return "", fmt.Errorf("%w: not a local path on this system", ErrUnsafePath)
	}
	return rel, nil
}

// quoteName quotes an entry name for an error, cut short so that a
// megabyte-long hostile name does not become a megabyte-long message.
func quoteName(name string) string {
	const show = 128
	if len(name) <= show {
		return strconv.Quote(name)
	}
	return fmt.Sprintf("%s... (%d bytes)", strconv.Quote(name[:show]), len(name))
}

func typeName(t byte) string {
	switch t {
	case tar.TypeSymlink:
		return "symbolic link"
	case tar.TypeLink:
		return "hard link"
	case tar.TypeChar:
		return "character device"
	case tar.TypeBlock:
		return "block device"
	case tar.TypeFifo:
		return "FIFO"
	case tar.TypeCont:
		return "contiguous file"
	case tar.TypeGNUSparse:
		return "sparse file"
	default:
		return fmt.Sprintf("type flag %q", t)
	}
}
