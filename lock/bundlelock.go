package lock

import (
	"fmt"

	"github.com/ferry-dev/ferry/tags"
	"github.com/google/go-containerregistry/pkg/name"
)

// BundleLock is what `push --lock-output` writes: the bundle just pushed,
// pinned by digest, and the tag it was pushed with.
type BundleLock struct {
	// APIVersion is always APIVersion.
	APIVersion string `json:"apiVersion" yaml:"apiVersion"`
	// Kind is always KindBundleLock.
	Kind string `json:"kind" yaml:"kind"`
	// Bundle is the pushed bundle.
	Bundle BundleRef `json:"bundle" yaml:"bundle"`
}

// BundleRef is the bundle section of a BundleLock.
type BundleRef struct {
	// Image is the bundle's digest reference (repo@sha256:…), as written.
	Image string `json:"image,omitempty" yaml:"image"`
	// Tag is the tag the bundle was pushed with, without the repository.
	Tag string `json:"tag,omitempty" yaml:"tag"`
	// OtherTags is the comma-separated list of further tags newer imgpkg
	// versions record when pushing with several --tag flags; it is accepted
	// so their lock files parse, and kept so they round-trip.
	OtherTags string `json:"otherTags,omitempty" yaml:"otherTags"`
}

// Digest returns Image normalised (see NormalizeDigestRef).
func (r BundleRef) Digest() (name.Digest, error) {
	return NormalizeDigestRef(r.Image)
}

// ParseBundleLock parses and validates a BundleLock. source names the
// document in errors.
func ParseBundleLock(data []byte, source string) (*BundleLock, error) {
	doc, err := load(data, source, KindBundleLock)
	if err != nil {
		return nil, err
	}
	var l BundleLock
	if err := doc.decode(&l); err != nil {
		return nil, err
	}
	if err := l.Bundle.validate(); err != nil {
		return nil, doc.errorf(err.path, "%v", err.err)
	}
	return &l, nil
}

// ReadBundleLock reads and parses the BundleLock at path.
func ReadBundleLock(path string) (*BundleLock, error) {
	return readDoc(path, "bundle lock", ParseBundleLock)
}

type fieldError struct {
	path []any
	err  error
}

func (r BundleRef) validate() *fieldError {
	imagePath := []any{"bundle", "image"}
	if r.Image == "" {
		return &fieldError{imagePath, fmt.Errorf("bundle.image is empty")}
	}
	if _, err := NormalizeDigestRef(r.Image); err != nil {
		return &fieldError{imagePath, fmt.Errorf("bundle.image: %w", err)}
	}
	if r.Tag != "" && !tags.Valid(r.Tag) {
		return &fieldError{[]any{"bundle", "tag"}, fmt.Errorf("bundle.tag %q is not a valid tag", r.Tag)}
	}
	return nil
}

// Validate reports whether l can be written.
func (l BundleLock) Validate() error {
	if err := checkHeader(&l.APIVersion, &l.Kind, KindBundleLock); err != nil {
		return err
	}
	if err := l.Bundle.validate(); err != nil {
		return err.err
	}
	return nil
}

// Marshal returns l as imgpkg writes it. An empty APIVersion or Kind is
// filled in.
func (l BundleLock) Marshal() ([]byte, error) {
	if err := checkHeader(&l.APIVersion, &l.Kind, KindBundleLock); err != nil {
		return nil, fmt.Errorf("marshal bundle lock: %w", err)
	}
	if err := l.Validate(); err != nil {
		return nil, fmt.Errorf("marshal bundle lock: %w", err)
	}
	b, err := marshal(l)
	if err != nil {
		return nil, fmt.Errorf("marshal bundle lock: %w", err)
	}
	return b, nil
}

// WriteFile writes l to path atomically.
func (l BundleLock) WriteFile(path string) error {
	return writeDoc(path, "bundle lock", l)
}
