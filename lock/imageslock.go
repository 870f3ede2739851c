package lock

import (
	"fmt"
	"unicode/utf8"

	"github.com/google/go-containerregistry/pkg/name"
)

// ImagesLock is a bundle's .imgpkg/images.yml: the images the bundle's
// configuration refers to, each pinned by digest.
type ImagesLock struct {
	// APIVersion is always APIVersion.
	APIVersion string `json:"apiVersion" yaml:"apiVersion"`
	// Kind is always KindImagesLock.
	Kind string `json:"kind" yaml:"kind"`
	// Images may be empty: a bundle need not refer to any image.
	Images []ImageRef `json:"images,omitempty" yaml:"images"`
}

// ImageRef is one entry of an ImagesLock.
type ImageRef struct {
	// Image is a digest reference exactly as written in the lock, not
	// normalised, so that a lock reads back as written; use Digest for the
	// normalised reference, the form imgpkg compares and records in
	// image-locations.
	Image string `json:"image,omitempty" yaml:"image"`
	// Annotations are free-form data of the tool that wrote the lock (kbld
	// records which configuration value an image came from).
	Annotations map[string]string `json:"annotations,omitempty" yaml:"annotations"`
}

// Digest returns Image normalised (see NormalizeDigestRef).
func (r ImageRef) Digest() (name.Digest, error) {
	return NormalizeDigestRef(r.Image)
}

// ParseImagesLock parses and validates an ImagesLock. source names the
// document in errors (a file name or a bundle reference).
func ParseImagesLock(data []byte, source string) (*ImagesLock, error) {
	doc, err := load(data, source, KindImagesLock)
	if err != nil {
		return nil, err
	}
	var l ImagesLock
	if err := doc.decode(&l); err != nil {
		return nil, err
	}
	for i := range l.Images {
		if err := validateImageRef(doc, "images", i, &l.Images[i]); err != nil {
			return nil, err
		}
	}
	if len(l.Images) == 0 {
		// "images: []", "images:" and no key at all mean the same; keep
		// one representation so parsed values compare equal.
		l.Images = nil
	}
	return &l, nil
}

// ReadImagesLock reads and parses the ImagesLock at path.
func ReadImagesLock(path string) (*ImagesLock, error) {
	return readDoc(path, "images lock", ParseImagesLock)
}

func validateImageRef(doc *document, list string, i int, r *ImageRef) error {
	path := []any{list, i, "image"}
	if r.Image == "" {
		return doc.errorf(path, "%s[%d].image is empty", list, i)
	}
	if _, err := NormalizeDigestRef(r.Image); err != nil {
		return doc.errorf(path, "%s[%d].image: %v", list, i, err)
	}
	if err := checkAnnotations(r.Annotations); err != nil {
		return doc.errorf([]any{list, i, "annotations"}, "%s[%d].annotations: %v", list, i, err)
	}
	if len(r.Annotations) == 0 {
		r.Annotations = nil
	}
	return nil
}

// Validate reports whether l can be written: the header, if set, is an
// ImagesLock's and every image is a digest reference.
func (l ImagesLock) Validate() error {
	if err := checkHeader(&l.APIVersion, &l.Kind, KindImagesLock); err != nil {
		return err
	}
	for i, r := range l.Images {
		if _, err := NormalizeDigestRef(r.Image); err != nil {
			return fmt.Errorf("images[%d].image: %w", i, err)
		}
		if err := checkAnnotations(r.Annotations); err != nil {
			return fmt.Errorf("images[%d].annotations: %w", i, err)
		}
	}
	return nil
}

// Marshal returns l as imgpkg writes it. An empty APIVersion or Kind is
// filled in; anything else invalid is an error.
func (l ImagesLock) Marshal() ([]byte, error) {
	if err := checkHeader(&l.APIVersion, &l.Kind, KindImagesLock); err != nil {
		return nil, fmt.Errorf("marshal images lock: %w", err)
	}
	if err := l.Validate(); err != nil {
		return nil, fmt.Errorf("marshal images lock: %w", err)
	}
	b, err := marshal(l)
	if err != nil {
		return nil, fmt.Errorf("marshal images lock: %w", err)
	}
	return b, nil
}

// WriteFile writes l to path atomically (see Marshal for the format).
func (l ImagesLock) WriteFile(path string) error {
	return writeDoc(path, "images lock", l)
}

// checkAnnotations refuses annotations that the imgpkg writer cannot write
// back unchanged, so a lock ferry accepts is a lock ferry can write.
func checkAnnotations(a map[string]string) error {
	for k, v := range a {
		// A !!binary value can carry bytes that YAML text cannot.
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return fmt.Errorf("%q: not valid UTF-8", k)
		}
		// The writer leaves "<<" unquoted, and YAML reads that as a merge.
		if k == "<<" {
			return fmt.Errorf("key %q cannot be written back as YAML", k)
		}
	}
	return nil
}
