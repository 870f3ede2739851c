package relocate

import (
	"context"
	"fmt"

	"github.com/ferry-dev/ferry/internal/atomicfile"
	"github.com/ferry-dev/ferry/internal/progress"
	"github.com/ferry-dev/ferry/internal/volumes"
)

// exportVolumes is ExportFile with ExportOptions.SplitSize: the archive's
// bytes go to volumes of at most SplitSize bytes, each a temporary file
// until the export is complete, then all renamed at once
// (volumes.Writer.Commit), with path.sha256 listing every volume. A failure
// or cancellation leaves no volume under its final name. The bytes are
// exactly those of the unsplit archive: the split is below the format.
func exportVolumes(ctx context.Context, p *Plan, path string, opts ExportOptions) (*ExportResult, error) {
	w, err := volumes.Create(path, opts.SplitSize)
	if err != nil {
		return nil, fmt.Errorf("export to %s: %w", path, err)
	}
	if err := volumes.CheckNames(path, true); err != nil {
		w.Abort()
		return nil, fmt.Errorf("export to %s: %w", path, err)
	}
	// The archive's size is known only at its end (compression), when an
	// export past the last volume fails naming the split size it needs;
	// content that cannot fit unless it compresses is worth saying now.
	// TotalBytes > MaxVolumes × SplitSize, divided rather than multiplied:
	// the product of a huge SplitSize overflows.
	if p.TotalBytes > 0 && (p.TotalBytes-1)/volumes.MaxVolumes >= opts.SplitSize {
		progress.OrNop(opts.Reporter).Warnf("%d bytes to export, more than the %d volumes of %d bytes an export writes: unless they compress, the export will fail at its end, naming the split size it needs",
			p.TotalBytes, volumes.MaxVolumes, opts.SplitSize)
	}
	res, idle, err := export(ctx, p, opts.wrapFile(w), opts)
	if err != nil {
		abortWhenIdle(w, idle)
		return nil, fmt.Errorf("export to %s: %w", path, withHTTPStatus(err))
	}
	sayIfLocked(opts.Reporter, path)
	vols, warnings, err := w.Commit()
	if err != nil {
		return nil, fmt.Errorf("export to %s: %w", path, err)
	}
	warnAll(opts.Reporter, warnings)
	res.Path, res.Volumes = path, vols
	return res, nil
}

// sayIfLocked warns, before a step that takes the lock on path's directory,
// that another process holds it (atomicfile.WarnIfBusy).
func sayIfLocked(rep progress.Reporter, path string) {
	atomicfile.WarnIfBusy(path, progress.OrNop(rep).Warnf)
}

// warnAll reports what was left of an earlier export once the new archive
// was in place: worth knowing, not a failure.
func warnAll(rep progress.Reporter, warnings []error) {
	for _, w := range warnings {
		progress.OrNop(rep).Warnf("%v", w)
	}
}
