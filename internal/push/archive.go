package push

import (
	"context"
	"fmt"
	"io"

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
