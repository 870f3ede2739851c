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
	byRel := make(map[string]entry, len(entries))
	for _, e := range entries {
		if e.rel != "." {
			byRel[e.rel] = e
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

	locks, ok := byRel[ImagesLockPath]
	if !ok {
		return fmt.Errorf("%s does not exist: a bundle needs its %s", filepath.Join(meta.shown, path.Base(ImagesLockPath)), ImagesLockPath)
	}
	if err := parseFile(locks, func(data []byte) error {
		_, err := lock.ParseImagesLock(data, locks.shown)
		return err
	}); err != nil {
		return err
	}
	switch md, ok := byRel[BundleMetadataPath]; {
	case !ok:
	case md.dir:
		rep.Warnf("%s: pushed as it is, though it is a directory, not bundle metadata (imgpkg never reads it)", md.shown)
	default:
		if err := parseFile(md, func(data []byte) error {
			if lock.IsEmptyDocument(data) {
				return nil
			}
			_, err := lock.ParseBundle(data, md.shown)
			return err
		}); err != nil {
			rep.Warnf("%s: pushed as it is, though ferry cannot read it as bundle metadata (imgpkg never reads it): %v", md.shown, unwrapSource(err, md.shown))
		}
	}
	return nil
}

// unwrapSource is err's message without a leading "source: ", which the
// warning already names.
func unwrapSource(err error, source string) string {
	return strings.TrimPrefix(err.Error(), source+": ")
}

func parseFile(e entry, parse func([]byte) error) error {
	if e.dir {
		return fmt.Errorf("%s is a directory, not a file", e.shown)
	}
	data, err := lock.ReadDocument(e.disk)
	if err != nil {
		return err
	}
	return parse(data)
}
