package lock

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Bundle is a bundle's optional .imgpkg/bundle.yml: who made it and where to
// learn more. Nothing in a copy depends on it; it travels with the bundle.
type Bundle struct {
	// APIVersion is always APIVersion.
	APIVersion string `json:"apiVersion" yaml:"apiVersion"`
	// Kind is always KindBundle.
	Kind string `json:"kind" yaml:"kind"`
	// Metadata names the bundle.
	Metadata BundleMetadata `json:"metadata,omitzero" yaml:"metadata"`
	// Authors lists the people responsible for the bundle.
	Authors []Author `json:"authors,omitempty" yaml:"authors"`
	// Websites lists pages about the bundle.
	Websites []Website `json:"websites,omitempty" yaml:"websites"`
}

// BundleMetadata is the metadata section of a Bundle.
type BundleMetadata struct {
	// Name is a human name for the bundle, not a reference.
	Name string `json:"name,omitempty" yaml:"name"`
}

// Author is one entry of Bundle.Authors.
type Author struct {
	// Name is the author's name.
	Name string `json:"name,omitempty" yaml:"name"`
	// Email is the author's address.
	Email string `json:"email,omitempty" yaml:"email"`
}

// Website is one entry of Bundle.Websites.
type Website struct {
	// URL is kept as written; imgpkg does not require a scheme.
	URL string `json:"url,omitempty" yaml:"url"`
}

// ParseBundle parses and validates a Bundle. source names the document in
// errors.
func ParseBundle(data []byte, source string) (*Bundle, error) {
	doc, err := load(data, source, KindBundle)
	if err != nil {
		return nil, err
	}
	var b Bundle
	if err := doc.decode(&b); err != nil {
		return nil, err
	}
	if err := b.checkText(); err != nil {
		return nil, parseErrorf(source, 0, "%v", err)
	}
	if len(b.Authors) == 0 {
		b.Authors = nil
	}
	if len(b.Websites) == 0 {
		b.Websites = nil
	}
	return &b, nil
}

// IsEmptyDocument reports whether data holds no YAML content: nothing but
// blank lines, comments, document markers or null documents. A bundle.yml
// like that says nothing, and push takes it for no metadata.
func IsEmptyDocument(data []byte) bool {
	if checkSize(data, "") != nil {
		return false
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return true
		}
		if err != nil || !isNull(&doc) {
			return false
		}
	}
}

// ReadBundle reads and parses the Bundle at path.
func ReadBundle(path string) (*Bundle, error) {
	return readDoc(path, "bundle metadata", ParseBundle)
}

// checkText refuses strings that YAML text cannot carry unchanged.
func (b Bundle) checkText() error {
	s := []string{b.Metadata.Name}
	for _, a := range b.Authors {
		s = append(s, a.Name, a.Email)
	}
	for _, w := range b.Websites {
		s = append(s, w.URL)
	}
	for _, v := range s {
		if !utf8.ValidString(v) {
			return fmt.Errorf("not valid UTF-8: %q", v)
		}
	}
	return nil
}

// Validate reports whether b can be written.
func (b Bundle) Validate() error {
	if err := checkHeader(&b.APIVersion, &b.Kind, KindBundle); err != nil {
		return err
	}
	return b.checkText()
}

// Marshal returns b as imgpkg writes it. An empty APIVersion or Kind is
// filled in.
func (b Bundle) Marshal() ([]byte, error) {
	if err := checkHeader(&b.APIVersion, &b.Kind, KindBundle); err != nil {
		return nil, fmt.Errorf("marshal bundle metadata: %w", err)
	}
	if err := b.Validate(); err != nil {
		return nil, fmt.Errorf("marshal bundle metadata: %w", err)
	}
	out, err := marshal(b)
	if err != nil {
		return nil, fmt.Errorf("marshal bundle metadata: %w", err)
	}
	return out, nil
}

// WriteFile writes b to path atomically.
func (b Bundle) WriteFile(path string) error {
	return writeDoc(path, "bundle metadata", b)
}
