package bundle

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/lock"
)

// maxMetadataSize bounds how much of a metadata file is read into memory, so
// that a hostile or broken image cannot exhaust it. The largest real
// images.yml files are a few MiB.
const maxMetadataSize = 64 << 20

// IsBundle reports whether cfg carries LabelKey. Like imgpkg, it checks
// that the key exists, whatever its value.
func IsBundle(cfg *v1.ConfigFile) bool {
	if cfg == nil {
		return false
	}
	_, ok := cfg.Config.Labels[LabelKey]
	return ok
}

// IsBundleImage reports whether img's config carries LabelKey.
func IsBundleImage(img v1.Image) (bool, error) {
	cfg, err := img.ConfigFile()
	if err != nil {
		return false, fmt.Errorf("reading config: %w", err)
	}
	return IsBundle(cfg), nil
}

// ReadImagesLock reads the .imgpkg/images.yml of the bundle img. source names
// the bundle in errors (its reference, or an archive entry). The bundle must
// have exactly one layer, as imgpkg requires.
func ReadImagesLock(img v1.Image, source string) (*lock.ImagesLock, error) {
	data, ok, err := readLayerFile(img, source, ImagesLockPath)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%s: bundle has no %s", source, ImagesLockPath)
	}
	return lock.ParseImagesLock(data, fileSource(source, ImagesLockPath))
}

// ReadBundleMetadata reads the .imgpkg/bundle.yml of the bundle img, which is
// optional: without one it returns nil and no error.
func ReadBundleMetadata(img v1.Image, source string) (*lock.Bundle, error) {
	data, ok, err := readLayerFile(img, source, BundleMetadataPath)
	if err != nil || !ok {
		return nil, err
	}
	return lock.ParseBundle(data, fileSource(source, BundleMetadataPath))
}

func fileSource(source, file string) string {
	return fmt.Sprintf("%s (%s)", source, file)
}

// readLayerFile returns the content of the regular file named want in the
// only layer of img. Names are compared after cleaning, so "./x" matches "x".
// The whole layer is read even after the file is found: reading to the end
// is what makes go-containerregistry check the layer against its digest, and
// a second entry of the same name (which extraction would let win) is an
// error rather than a silent disagreement with `pull`.
func readLayerFile(img v1.Image, source, want string) (data []byte, found bool, err error) {
	layers, err := img.Layers()
	if err != nil {
		return nil, false, fmt.Errorf("%s: reading layers: %w", source, err)
	}
	if len(layers) != 1 {
		return nil, false, fmt.Errorf("%s: expected exactly one layer, found %d", source, len(layers))
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		return nil, false, fmt.Errorf("%s: reading layer: %w", source, err)
	}
	defer rc.Close()

	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, false, fmt.Errorf("%s: reading layer: %w", source, err)
		}
		if strings.TrimPrefix(path.Clean(h.Name), "/") != want {
			continue
		}
		if h.Typeflag != tar.TypeReg {
			return nil, false, fmt.Errorf("%s: %s in the layer is not a regular file", source, want)
		}
		if found {
			return nil, false, fmt.Errorf("%s: %s appears twice in the layer", source, want)
		}
		if h.Size > maxMetadataSize {
			return nil, false, fmt.Errorf("%s: %s is %d bytes, more than the %d allowed", source, want, h.Size, maxMetadataSize)
		}
		data, err = io.ReadAll(tr)
		if err != nil {
			return nil, false, fmt.Errorf("%s: reading %s: %w", source, want, err)
		}
		found = true
	}
	if _, err := io.Copy(io.Discard, rc); err != nil {
		return nil, false, fmt.Errorf("%s: reading layer: %w", source, err)
	}
	return data, found, nil
}
