package push

import (
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/ferry-dev/ferry/internal/atomicfile"
	"github.com/ferry-dev/ferry/internal/bundle"
	"github.com/ferry-dev/ferry/relocate"
)

// ArchiveOptions control ToArchive.
type ArchiveOptions struct {
	// Build says how the layer and config are made, as for Push.
	Build bundle.BuildOptions
	// Resolve reaches the registries of the images the bundle locks.
	Resolve relocate.Options
	// Export says how the archive is written (level, split size).
	Export relocate.ExportOptions
	// Path is the archive to write; "-" writes it to Stdout instead.
	Path   string
	Stdout io.Writer
}

// ToArchive builds an image from dirs exactly as Push does (the same
// digest) and, instead of pushing it to ref (REPO:TAG), writes the archive
// `ferry export` would write had it been pushed there first: the bundle
// with every image its images.yml locks (nested bundles too), fetched from
// their registries. Importing the archive gives the bundle the original
// tag TAG, with every tag an import of that export writes. Nothing is
// written to ref's registry, which need not exist.
func ToArchive(ctx context.Context, ref string, dirs []string, opts ArchiveOptions) (*relocate.ExportResult, error) {
	if opts.Path != "-" {
		if err := CheckArchiveOutsideInputs(opts.Path, dirs, opts.Build.Exclusions); err != nil {
			return nil, err
		}
		// An unwritable destination fails before the build and downloads.
		if err := relocate.CheckExportPath(opts.Path, opts.Export); err != nil {
			return nil, err
		}
	}
	img, err := bundle.Build(ctx, dirs, buildOptions(opts.Build, opts.Export.Reporter))
	if err != nil {
		return nil, err
	}
	defer img.Close()
	src := relocate.Source{Image: ref, Local: img}
	if opts.Build.Bundle {
		src = relocate.Source{Bundle: ref, Local: img}
	}
	p, err := relocate.Resolve(ctx, src, opts.Resolve)
	if err != nil {
		return nil, fmt.Errorf("push %s to an archive: %w", ref, err)
	}
	if opts.Path == "-" {
		return relocate.Export(ctx, p, opts.Stdout, opts.Export)
	}
	return relocate.ExportFile(ctx, p, opts.Path, opts.Export)
}

// CheckArchiveOutsideInputs refuses an archive path (ToArchive's Path)
// inside one of the input directories dirs, unless its directory is left
// out by exclusions (as BuildOptions.Exclusions: nil is the default .git):
// the archive, its volumes, its .sha256 and its temporary files, all
// written beside it, would go into the layer of the next push of dirs,
// which would grow with each. Paths are compared with symbolic links
// resolved; a regular file given as an input is no directory to be inside.
func CheckArchiveOutsideInputs(archive string, dirs []string, exclusions []string) error {
	if exclusions == nil {
		exclusions = bundle.DefaultExclusions()
	}
	excluded := make(map[string]bool, len(exclusions))
	for _, e := range exclusions {
		excluded[path.Clean(filepath.ToSlash(e))] = true
	}
	// The archive lands where a symbolic link at its name leads
	// (atomicfile.Target): that place, not the name, must be outside. A
	// name Target refuses is left to the export's own check, which says
	// what to do instead.
	target, err := atomicfile.Target(archive)
	if err != nil {
		return nil
	}
	out := resolved(filepath.Dir(target))
	for _, dir := range dirs {
		if info, err := os.Stat(dir); err != nil || !info.IsDir() {
			continue // the build says what is wrong with it
		}
		rel, err := filepath.Rel(resolved(dir), out)
		if err != nil {
			continue
		}
		rel = filepath.ToSlash(rel)
		if rel == ".." || strings.HasPrefix(rel, "../") || filepath.IsAbs(rel) {
			continue
		}
		if leftOut(rel, excluded) {
			continue
		}
		hint := ""
		if rel != "." {
			hint = fmt.Sprintf(", or leave %s out with --file-exclusion %s", filepath.Join(dir, filepath.FromSlash(rel)), rel)
		}
		return fmt.Errorf("the archive %s is inside the input directory %s: it (and its volumes, checksum and temporary files) would go into the layer of the next push of %s; write it outside %s%s", archive, dir, dir, dir, hint)
	}
	return nil
}

// resolved is p made absolute, its symbolic links resolved where it
// exists.
func resolved(p string) string {
	if abs, err := filepath.Abs(p); err == nil {
		p = abs
	}
	if r, err := filepath.EvalSymlinks(p); err == nil {
		p = r
	}
	return p
}

// leftOut reports whether rel, a clean slash-separated path relative to an
// input directory, or one of its parents is in excluded.
func leftOut(rel string, excluded map[string]bool) bool {
	for ; rel != "." && rel != "/"; rel = path.Dir(rel) {
		if excluded[rel] {
			return true
		}
	}
	return false
}
