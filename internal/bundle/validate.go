package bundle

import (
	"fmt"
	"path"
	"path/filepath"
	"strings"

	"github.com/ferry-dev/ferry/lock"
)

// validateBundle applies imgpkg's rules for bundle directories before
// anything is staged: exactly one .imgpkg, directly inside an input
// directory, holding a valid images.yml and, optionally, a valid bundle.yml.
// imgpkg also counts .imgpkg directories inside excluded paths; we count only
// what goes into the layer, since that is what readers of the bundle see.
func validateBundle(inputs []string, entries []entry) error {
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
	if md, ok := byRel[BundleMetadataPath]; ok {
		return parseFile(md, func(data []byte) error {
			_, err := lock.ParseBundle(data, md.shown)
			return err
		})
	}
	return nil
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
