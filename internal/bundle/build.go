package bundle

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
	"strings"
	"sync"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/ferry-dev/ferry/internal/atomicfile"
	"github.com/ferry-dev/ferry/internal/ctxio"
	"github.com/ferry-dev/ferry/internal/progress"
)

// LabelKey is the config label that makes an image a bundle. imgpkg sets
// it to "true", but readers (imgpkg's and ours) only check that the key is
// there.
const LabelKey = "dev.carvel.imgpkg.bundle"

// Paths inside a bundle's layer, slash-separated and relative to its root.
const (
	// MetadataDir holds a bundle's metadata; it must sit at the root.
	MetadataDir = ".imgpkg"
	// ImagesLockPath is the bundle's ImagesLock, which every bundle has.
	ImagesLockPath = ".imgpkg/images.yml"
	// BundleMetadataPath is the optional bundle.yml (kind: Bundle).
	BundleMetadataPath = ".imgpkg/bundle.yml"
	// LocationsPath is the file inside an image-locations image.
	LocationsPath = "image-locations.yml"
)

// DefaultExclusions returns what a nil BuildOptions.Exclusions means: imgpkg's
// default for --file-exclusion. It is a function so no caller can change the
// default for everyone else.
func DefaultExclusions() []string { return []string{".git"} }

// CheckExclusions refuses the exclusions that cannot mean what they say.
// imgpkg compares each exclusion, as a string, with the clean relative paths
// its walk produces, the input directory itself being ".": "." (or what
// cleans to it) leaves out everything, "" nothing, and an entry that is not
// clean ("./secret", "sub/"), absolute or outside the input never matches,
// so imgpkg pushes what was to be left out. Refusing these, rather than
// reading them differently from imgpkg, keeps every layer Build makes equal
// to imgpkg's for the same command line.
func CheckExclusions(exclusions []string) error {
	for _, e := range exclusions {
		s := filepath.ToSlash(e)
		clean := path.Clean(s)
		switch {
		case clean == ".":
			return fmt.Errorf("exclusion %q would leave out the whole input directory: name a path inside it", e)
		case path.IsAbs(s) || clean == ".." || strings.HasPrefix(clean, "../"):
			return fmt.Errorf("exclusion %q is not inside an input directory: exclusions are paths relative to one (like .git or sub/file.txt)", e)
		case clean != s:
			return fmt.Errorf("exclusion %q would leave out nothing: it is compared with clean relative paths, as imgpkg does; write %q", e, clean)
		}
	}
	return nil
}

// BuildOptions control Build.
type BuildOptions struct {
	// Bundle builds a bundle: the directories must hold exactly one
	// .imgpkg/images.yml and the config gets LabelKey. Without it Build
	// makes a plain image, and a .imgpkg directory is an error (as in imgpkg).
	Bundle bool
	// PreservePermissions keeps each file's full mode instead of mode&0700.
	// Like imgpkg, every directory then gets the mode of the input directory
	// it was found under (imgpkg stats the -f path, not the directory itself),
	// so that the digest still matches imgpkg's.
	PreservePermissions bool
	// Exclusions are paths, relative to an input directory and
	// slash-separated, that are left out with everything under them. As in
	// imgpkg they are compared, as strings, with whole relative paths, not
	// base names or globs: ".git" leaves out dir/.git but not dir/sub/.git,
	// and a regular file given as an input is matched by its base name. An
	// entry CheckExclusions refuses makes Build fail. nil means
	// DefaultExclusions; an empty non-nil slice excludes nothing.
	Exclusions []string
	// Labels are added to the image config. LabelKey is reserved: Bundle
	// decides it.
	Labels map[string]string
	// TempDir is where the layer is staged; "" means os.TempDir().
	TempDir string
	// Reporter receives the bytes read from the input files, and a warning
	// about a bundle.yml that ferry cannot read (pushed all the same, as
	// imgpkg pushes it); nil is fine.
	Reporter progress.Reporter

	// afterWalk, when set (by tests), runs once the inputs are listed and
	// before any file is read: the moment to change them under a build.
	afterWalk func()
}

// Image is an image made by Build. Its layer lives in a scratch file (with
// no name, where the system allows) that the caller owns: use the image
// (push it, export it) and then Close it to free the file. Digest, Manifest and ConfigFile keep working after Close;
// reading the layer does not.
type Image interface {
	v1.Image
	io.Closer
}

// Build makes an image whose single layer holds the given directories (and
// regular files, which land at the root under their base name, as imgpkg's
// -f allows), with the bytes imgpkg would produce: a USTAR stream in lexical
// walk order, each input directory contributing its own "." entry, mtime 0,
// uid/gid 0, no owner names, directories 0700, files mode&0700. The same
// relative path from two inputs is an error, as in imgpkg. The tar is staged
// in a temporary file rather than memory so that large directories work;
// see Image for who removes it.
func Build(ctx context.Context, dirs []string, opts BuildOptions) (Image, error) {
	if len(dirs) == 0 {
		return nil, errors.New("build: no directories given")
	}
	if _, ok := opts.Labels[LabelKey]; ok {
		return nil, fmt.Errorf("build: label %q is reserved: it is set for bundles and only for them", LabelKey)
	}
	entries, roots, err := collect(ctx, dirs, opts)
	if err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	defer roots.Close()
	if opts.afterWalk != nil {
		opts.afterWalk()
	}
	if opts.Bundle {
		if err := validateBundle(dirs, entries, progress.OrNop(opts.Reporter)); err != nil {
			return nil, fmt.Errorf("build bundle: %w", err)
		}
	} else if err := validatePlain(entries); err != nil {
		return nil, fmt.Errorf("build image: %w", err)
	}

	staged, err := stage(ctx, entries, opts)
	if err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	img, err := staged.image(opts)
	if err != nil {
		_ = staged.Close()
		return nil, fmt.Errorf("build: %w", err)
	}
	return img, nil
}

// entry is one tar entry, decided before anything is written so that every
// validation error comes before the (possibly long) copy.
type entry struct {
	rel   string // name in the tar, slash-separated
	disk  string // where it was found (a file given as an input is read from there)
	shown string // how errors name it: input path joined with rel
	dir   bool
	mode  int64
	size  int64
	// info is what the walk saw (not following a link), and root the input
	// directory it was found in, nil for a regular file given as an input.
	// The file read is opened through root, so that nothing outside the
	// input can be read, and must be info's file (see open).
	info fs.FileInfo
	root *os.Root
	// data, once set (images.yml, after it was validated), is what the
	// layer holds: the bytes checked are the bytes pushed.
	data []byte
}

// roots are the input directories opened by collect, closed when the
// build is over.
type roots []*os.Root

func (rs roots) Close() {
	for _, r := range rs {
		_ = r.Close()
	}
}

func collect(ctx context.Context, inputs []string, opts BuildOptions) (_ []entry, opened roots, err error) {
	defer func() {
		if err != nil {
			opened.Close()
			opened = nil
		}
	}()
	exclusions := opts.Exclusions
	if exclusions == nil {
		exclusions = DefaultExclusions()
	}
	if err := CheckExclusions(exclusions); err != nil {
		return nil, nil, err
	}
	excluded := make(map[string]bool, len(exclusions))
	for _, e := range exclusions {
		excluded[filepath.ToSlash(e)] = true
	}

	var entries []entry
	owner := map[string]string{} // rel → the path that first claimed it
	claim := func(e entry) error {
		if e.rel == "." {
			return nil // every input directory has its own root entry, as in imgpkg
		}
		if prev, ok := owner[e.rel]; ok {
			return fmt.Errorf("%s and %s would both be %q in the image", prev, e.shown, e.rel)
		}
		owner[e.rel] = e.shown
		return nil
	}

	for _, input := range inputs {
		info, err := os.Stat(input)
		if err != nil {
			return nil, opened, err
		}
		switch {
		case info.Mode().IsRegular():
			e := fileEntry(filepath.Base(input), input, input, info, opts.PreservePermissions)
			if excluded[e.rel] {
				continue
			}
			if err := claim(e); err != nil {
				return nil, opened, err
			}
			entries = append(entries, e)
		case info.IsDir():
			found, root, err := walk(ctx, input, info, excluded, opts.PreservePermissions)
			if root != nil {
				opened = append(opened, root)
			}
			if err != nil {
				return nil, opened, err
			}
			for _, e := range found {
				if err := claim(e); err != nil {
					return nil, opened, err
				}
			}
			entries = append(entries, found...)
		default:
			return nil, opened, fmt.Errorf("%s is a %s: only directories and regular files can be pushed", input, kind(info.Mode()))
		}
	}
	return entries, opened, nil
}

// walk lists the input directory input and opens it as an os.Root, through
// which its files are read later; the caller closes the root, returned even
// with an error.
func walk(ctx context.Context, input string, rootInfo fs.FileInfo, excluded map[string]bool, preserve bool) ([]entry, *os.Root, error) {
	// A symlink given on the command line is followed (os.Stat above did),
	// while links found inside are refused.
	root, err := filepath.EvalSymlinks(input)
	if err != nil {
		return nil, nil, err
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, nil, err
	}
	dirMode := int64(0o700)
	if preserve {
		// imgpkg writes the input directory's os.FileMode, ModeDir bit
		// included, for every directory; the bit forces a GNU base-256 mode
		// field, and matching it is what keeps the digest equal to imgpkg's.
		dirMode = int64(rootInfo.Mode())
	}

	var entries []entry
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		shown := filepath.Join(input, filepath.FromSlash(rel))
		if excluded[rel] {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.IsDir() {
			entries = append(entries, entry{rel: rel, disk: p, shown: shown, dir: true, mode: dirMode, info: info, root: r})
			return nil
		}
		if !info.Mode().IsRegular() {
			return fmt.Errorf("%s is a %s: bundles and images hold only regular files and directories", shown, kind(info.Mode()))
		}
		e := fileEntry(rel, p, shown, info, preserve)
		e.root = r
		entries = append(entries, e)
		return nil
	})
	if err != nil {
		return nil, r, err
	}
	return entries, r, nil
}

func fileEntry(rel, disk, shown string, info fs.FileInfo, preserve bool) entry {
	mode := int64(info.Mode() & 0o700)
	if preserve {
		mode = int64(info.Mode())
	}
	return entry{rel: rel, disk: disk, shown: shown, mode: mode, size: info.Size(), info: info}
}

// open opens e's file for reading: through e.root, which refuses a path
// that leaves the input directory, without blocking (a named pipe put in
// the file's place would otherwise hold the open until a writer came), and
// then checks that what it opened is the regular file the walk saw, the
// same device and inode. A file replaced after the walk (by a link to a
// file elsewhere, a pipe, another file) is an error naming it, rather than
// other bytes in the layer.
func (e entry) open() (*os.File, error) {
	var f *os.File
	var err error
	if e.root != nil {
		f, err = e.root.OpenFile(filepath.FromSlash(e.rel), os.O_RDONLY|nonBlocking, 0)
	} else {
		f, err = os.OpenFile(e.disk, os.O_RDONLY|nonBlocking, 0)
	}
	if err != nil {
		if changed := e.changed(); changed != nil {
			return nil, changed
		}
		return nil, fmt.Errorf("opening %s: %w", e.shown, err)
	}
	info, err := f.Stat()
	if err == nil && (!info.Mode().IsRegular() || !os.SameFile(e.info, info)) {
		err = changedError(e, info)
	}
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	return f, nil
}

// checkDir checks that the directory entry e is still the directory the
// walk saw, looked up through its root: a directory replaced by a link
// after the walk would have had its listing taken elsewhere.
func (e entry) checkDir() error {
	info, err := e.root.Lstat(filepath.FromSlash(e.rel))
	if err != nil {
		if changed := e.changed(); changed != nil {
			return changed
		}
		return fmt.Errorf("adding %s: %w", e.shown, err)
	}
	if !info.IsDir() || !os.SameFile(e.info, info) {
		return changedError(e, info)
	}
	return nil
}

// changed is the error for e when its path no longer names what the walk
// saw, nil when it still does (or cannot be looked at).
func (e entry) changed() error {
	lstat := os.Lstat
	if e.root == nil {
		lstat = os.Stat // a file given as an input is followed
	}
	info, err := lstat(e.disk)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s changed while push was reading it: it is gone", e.shown)
	case err != nil:
		return nil
	case os.SameFile(e.info, info) && info.Mode().Type() == e.info.Mode().Type():
		return nil
	}
	return changedError(e, info)
}

func changedError(e entry, now fs.FileInfo) error {
	switch {
	case now.Mode().Type() != e.info.Mode().Type():
		return fmt.Errorf("%s changed while push was reading it: it is now a %s", e.shown, describe(now.Mode()))
	default:
		return fmt.Errorf("%s changed while push was reading it: it is another file", e.shown)
	}
}

// describe names the type of a file of mode m.
func describe(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return "regular file"
	case m.IsDir():
		return "directory"
	}
	return kind(m)
}

func kind(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "symbolic link"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeDevice != 0:
		return "device"
	default:
		return "special file (" + m.Type().String() + ")"
	}
}

func validatePlain(entries []entry) error {
	for _, e := range entries {
		if e.rel == MetadataDir && e.dir {
			return fmt.Errorf("%s: a directory holding %s is a bundle: push it with -b, not -i", e.shown, MetadataDir)
		}
	}
	return nil
}

// staged is a layer written to a scratch file that has no name where the
// system allows (atomicfile.Anonymous), so that a push killed outright
// leaves nothing behind; name is set only when it kept one.
type staged struct {
	f      *os.File
	name   string
	where  string // the directory, for errors
	size   int64
	closed atomic.Bool
	once   sync.Once
	err    error
}

func (s *staged) Close() error {
	s.once.Do(func() {
		s.closed.Store(true)
		s.err = s.f.Close()
		if s.name != "" {
			if err := os.Remove(s.name); err != nil && !errors.Is(err, fs.ErrNotExist) && s.err == nil {
				s.err = err
			}
		}
	})
	return s.err
}

// open reads the layer from the start; each caller gets its own reader,
// since the image may read the layer more than once, and at once.
func (s *staged) open() (io.ReadCloser, error) {
	if s.closed.Load() {
		return nil, fmt.Errorf("the layer staged in %s was removed (the image was closed)", s.where)
	}
	return io.NopCloser(io.NewSectionReader(s.f, 0, s.size)), nil
}

func stage(ctx context.Context, entries []entry, opts BuildOptions) (_ *staged, err error) {
	f, name, err := atomicfile.Anonymous(opts.TempDir, "ferry-layer-*.tar")
	if err != nil {
		return nil, err
	}
	s := &staged{f: f, name: name, where: opts.TempDir}
	if s.where == "" {
		s.where = os.TempDir()
	}
	defer func() {
		if err != nil {
			_ = s.Close()
		}
	}()

	var total int64
	for _, e := range entries {
		total += e.size
	}
	r := progress.OrNop(opts.Reporter)
	r.Start("build", total)
	defer r.Done()

	tw := tar.NewWriter(f)
	for _, e := range entries {
		if err := writeEntry(ctx, tw, e, r); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("writing the layer staged in %s: %w", s.where, err)
	}
	if s.size, err = f.Seek(0, io.SeekCurrent); err != nil {
		return nil, fmt.Errorf("writing the layer staged in %s: %w", s.where, err)
	}
	return s, nil
}

func writeEntry(ctx context.Context, tw *tar.Writer, e entry, r progress.Reporter) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	hdr := &tar.Header{Name: e.rel, Mode: e.mode, ModTime: time.Time{}, Typeflag: tar.TypeDir}
	if e.dir {
		if e.root != nil {
			if err := e.checkDir(); err != nil {
				return err
			}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("adding %s: %w", e.shown, err)
		}
		return nil
	}
	hdr.Typeflag, hdr.Size = tar.TypeReg, e.size
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("adding %s: %w", e.shown, err)
	}
	if e.data != nil {
		n, err := tw.Write(e.data)
		r.Add(int64(n))
		if err != nil {
			return fmt.Errorf("adding %s: %w", e.shown, err)
		}
		return nil
	}
	f, err := e.open()
	if err != nil {
		return err
	}
	defer f.Close()
	in := ctxio.NewReader(ctx, f)
	n, err := io.CopyN(tw, in, e.size)
	r.Add(n)
	if errors.Is(err, io.EOF) {
		return shrankError(e, n)
	}
	if err != nil {
		return fmt.Errorf("adding %s: %w", e.shown, err)
	}
	// The header has promised e.size bytes: a file that grew since the walk
	// would be cut, silently, to its earlier size.
	switch _, err := io.ReadFull(in, make([]byte, 1)); {
	case err == nil:
		return grewError(e)
	case !errors.Is(err, io.EOF):
		return fmt.Errorf("adding %s: %w", e.shown, err)
	}
	return nil
}

func shrankError(e entry, n int64) error {
	return fmt.Errorf("%s shrank from %d to %d bytes while push was reading it", e.shown, e.size, n)
}

func grewError(e entry) error {
	return fmt.Errorf("%s grew beyond its %d bytes while push was reading it", e.shown, e.size)
}

func (s *staged) image(opts BuildOptions) (Image, error) {
	layer, err := tarball.LayerFromOpener(s.open)
	if err != nil {
		return nil, fmt.Errorf("layer staged in %s: %w", s.where, err)
	}
	var labels map[string]string
	if len(opts.Labels) > 0 || opts.Bundle {
		labels = make(map[string]string, len(opts.Labels)+1)
		for k, v := range opts.Labels {
			labels[k] = v
		}
		if opts.Bundle {
			labels[LabelKey] = "true"
		}
	}
	img, err := imgpkgImage(layer, labels)
	if err != nil {
		return nil, err
	}
	return &builtImage{Image: img, staged: s}, nil
}

type builtImage struct {
	v1.Image
	staged *staged
}

// Close implements io.Closer: it frees the staged layer.
func (b *builtImage) Close() error { return b.staged.Close() }
