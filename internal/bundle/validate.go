package bundle

import (
	"fmt"
	"path"
	"path/filepath"
	"strings"

	"github.com/ferry-dev/ferry/internal/progress"
	"github.com/ferry-dev/ferry/lock"
)

// validateBundle applies imgpkg's rules for bundle directories before
// anything is staged: exactly one .imgpkg, directly inside an input
// directory, holding a valid images.yml. imgpkg also counts .imgpkg
// directories inside excluded paths; we count only what goes into the
// layer, since that is what readers of the bundle see.
//
// A bundle.yml is never a reason to refuse: imgpkg v0.43's push never reads
// it (bundle.Contents checks only that images.yml exists), so it pushes one
// with fields ferry does not know, of another kind, or not YAML at all. rep
// is warned about one that ferry cannot read as a Bundle, unless it holds no
// YAML content (empty or comments only), which is simply no metadata.
func validateBundle(inputs []string, entries []entry, rep progress.Reporter) error {
	var found []entry
	byRel := make(map[string]int, len(entries))
	for i, e := range entries {
		if e.rel != "." {
			byRel[e.rel] = i
		}
		if path.Base(e.rel) == MetadataDir {
			found = append(found, e)
		}
	}
	switch len(found) {
	case 0:
		return fmt.Errorf("%s: not a bundle: no %s found", strings.Join(inputs, ", "), ImagesLockPath)
	case 1:
	default:
		shown := make([]string, len(found))
		for i, e := range found {
			shown[i] = e.shown
		}
		return fmt.Errorf("found %d %s directories (%s): a bundle has exactly one", len(found), MetadataDir, strings.Join(shown, ", "))
	}
	meta := found[0]
	if meta.rel != MetadataDir {
		return fmt.Errorf("%s: %s must be at the root of one of the input directories", meta.shown, MetadataDir)
	}
	if !meta.dir {
		return fmt.Errorf("%s is not a directory", meta.shown)
	}

	i, ok := byRel[ImagesLockPath]
	if !ok {
		return fmt.Errorf("%s does not exist: a bundle needs its %s", filepath.Join(meta.shown, path.Base(ImagesLockPath)), ImagesLockPath)
	}
	locks := entries[i]
	data, err := readFile(locks)
	if err != nil {
		return err
	}
	if _, err := lock.ParseImagesLock(data, locks.shown); err != nil {
		return err
	}
	// The layer holds the lock just checked, not whatever the file holds
	// by the time it is copied.
	entries[i].data = data
	i, ok = byRel[BundleMetadataPath]
	if !ok {
		return nil
	}
	md := entries[i]
	if md.dir {
		rep.Warnf("%s: pushed as it is, though it is a directory, not bundle metadata (imgpkg never reads it)", md.shown)
		return nil
	}
	// What cannot be read here (too large, say) is warned about too: the
	// copy reads it again, with the same checks on what it opens.
	data, err = readFile(md)
	if err == nil && lock.IsEmptyDocument(data) {
		return nil
	}
	if err == nil {
		_, err = lock.ParseBundle(data, md.shown)
	}
	if err != nil {
		rep.Warnf("%s: pushed as it is, though ferry cannot read it as bundle metadata (imgpkg never reads it): %v", md.shown, unwrapSource(err, md.shown))
	}
	return nil
}

// unwrapSource is err's message without a leading "source: ", which the
// warning already names.
func unwrapSource(err error, source string) string {
	return strings.TrimPrefix(err.Error(), source+": ")
}

// readFile reads the document e, opened as the copy opens it (entry.open:
// inside its input directory, the file the walk saw), and of the size the
// walk saw.
func readFile(e entry) ([]byte, error) {
	if e.dir {
		return nil, fmt.Errorf("%s is a directory, not a file", e.shown)
	}
	f, err := e.open()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := lock.ReadDocumentFrom(f, e.shown)
	switch n := int64(len(data)); {
	case err != nil:
		return nil, err
	case n < e.size:
		return nil, shrankError(e, n)
	case n > e.size:
		return nil, grewError(e)
	}
	return data, nil
}
