package lock

import (
	"fmt"
	"sort"
)

// ImageLocations is the image-locations.yml inside a bundle's locations
// image: the bundle's own lock entries, recording that they now live in the
// repository the locations image is in. `pull` uses it to rewrite images.yml.
type ImageLocations struct {
	// APIVersion is always APIVersion.
	APIVersion string `json:"apiVersion" yaml:"apiVersion"`
	// Kind is always KindImageLocations.
	Kind string `json:"kind" yaml:"kind"`
	// Images has no omitempty, like imgpkg's: with no images imgpkg writes
	// "images: null", and the locations image digest depends on it.
	Images []ImageLocation `json:"images" yaml:"images"`
}

// ImageLocation is one entry of ImageLocations.
type ImageLocation struct {
	// Image is a reference of the bundle's images.yml in the fully
	// qualified form imgpkg writes it in (see NormalizeDigestRef); a
	// document written by another tool may hold it as written there.
	Image string `json:"image" yaml:"image"`
	// IsBundle says whether the image is itself a bundle (nested bundle).
	IsBundle bool `json:"isBundle" yaml:"isBundle"`
}

// ParseImageLocations parses and validates an ImageLocations document.
// source names the document in errors (typically the locations image).
func ParseImageLocations(data []byte, source string) (*ImageLocations, error) {
	doc, err := load(data, source, KindImageLocations)
	if err != nil {
		return nil, err
	}
	var l ImageLocations
	if err := doc.decode(&l); err != nil {
		return nil, err
	}
	for i, img := range l.Images {
		path := []any{"images", i, "image"}
		if img.Image == "" {
			return nil, doc.errorf(path, "images[%d].image is empty", i)
		}
		if _, err := NormalizeDigestRef(img.Image); err != nil {
			return nil, doc.errorf(path, "images[%d].image: %v", i, err)
		}
	}
	if len(l.Images) == 0 {
		l.Images = nil
	}
	return &l, nil
}

// ReadImageLocations reads and parses the ImageLocations at path.
func ReadImageLocations(path string) (*ImageLocations, error) {
	return readDoc(path, "image locations", ParseImageLocations)
}

// Validate reports whether l can be written.
func (l ImageLocations) Validate() error {
	if err := checkHeader(&l.APIVersion, &l.Kind, KindImageLocations); err != nil {
		return err
	}
	for i, img := range l.Images {
		if _, err := NormalizeDigestRef(img.Image); err != nil {
			return fmt.Errorf("images[%d].image: %w", i, err)
		}
	}
	return nil
}

// Marshal returns l exactly as imgpkg writes it into a locations image, so
// the image gets the digest imgpkg would give it: images sorted by Image
// (l itself is not modified), and "images: null" when there are none. An
// empty APIVersion or Kind is filled in.
func (l ImageLocations) Marshal() ([]byte, error) {
	if err := checkHeader(&l.APIVersion, &l.Kind, KindImageLocations); err != nil {
		return nil, fmt.Errorf("marshal image locations: %w", err)
	}
	if err := l.Validate(); err != nil {
		return nil, fmt.Errorf("marshal image locations: %w", err)
	}
	if len(l.Images) == 0 {
		l.Images = nil
	} else {
		l.Images = append([]ImageLocation(nil), l.Images...)
		sort.SliceStable(l.Images, func(i, j int) bool { return l.Images[i].Image < l.Images[j].Image })
	}
	b, err := marshal(l)
	if err != nil {
		return nil, fmt.Errorf("marshal image locations: %w", err)
	}
	return b, nil
}

// WriteFile writes l to path atomically.
func (l ImageLocations) WriteFile(path string) error {
	return writeDoc(path, "image locations", l)
}
