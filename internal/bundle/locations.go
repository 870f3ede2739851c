package bundle

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/ferry-dev/ferry/lock"
)

// LocationsImage builds the image-locations image imgpkg writes beside a
// relocated bundle (docs/destination.md): the layer imgpkg's push of a temporary
// directory holding only image-locations.yml would give, so the digest
// depends on l alone and equals imgpkg's.
func LocationsImage(l lock.ImageLocations) (v1.Image, error) {
	data, err := l.Marshal()
	if err != nil {
		return nil, fmt.Errorf("locations image: %w", err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range []*tar.Header{
		{Name: ".", Mode: 0o700, Typeflag: tar.TypeDir},
		{Name: LocationsPath, Mode: 0o600, Typeflag: tar.TypeReg, Size: int64(len(data))},
	} {
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("locations image: %w", err)
		}
	}
	if _, err := tw.Write(data); err != nil {
		return nil, fmt.Errorf("locations image: %w", err)
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("locations image: %w", err)
	}
	layerBytes := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerBytes)), nil
	})
	if err != nil {
		return nil, fmt.Errorf("locations image: %w", err)
	}
	img, err := imgpkgImage(layer, nil)
	if err != nil {
		return nil, fmt.Errorf("locations image: %w", err)
	}
	return img, nil
}

// ReadLocations reads the image-locations.yml of a locations image. source
// names the image in errors.
func ReadLocations(img v1.Image, source string) (*lock.ImageLocations, error) {
	data, ok, err := readLayerFile(img, source, LocationsPath)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%s: locations image has no %s", source, LocationsPath)
	}
	return lock.ParseImageLocations(data, fileSource(source, LocationsPath))
}
