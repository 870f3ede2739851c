// Package lock reads and writes imgpkg's configuration documents: ImagesLock
// (a bundle's .imgpkg/images.yml), Bundle (.imgpkg/bundle.yml), BundleLock
// (the --lock-output of push) and ImageLocations (the content of a bundle's
// image-locations image). See docs/bundle.md.
//
// Parsing is strict, so a typo in a lock file is reported where it is rather
// than silently dropping an image from a copy: unknown fields, a wrong or
// missing kind or apiVersion, and image references that are not digests are
// errors, each naming the source and, where the YAML gives one, the line.
//
// Writing follows imgpkg byte for byte (a leading "---", keys sorted, the
// sigs.k8s.io/yaml layout), because some of these documents end up inside
// images whose digests must match the ones imgpkg computes.
package lock

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/ferry-dev/ferry/internal/atomicfile"
)

// APIVersion is the apiVersion of every document in this package.
const APIVersion = "imgpkg.carvel.dev/v1alpha1"

// The kinds of document this package knows.
const (
	KindImagesLock     = "ImagesLock"
	KindBundle         = "Bundle"
	KindBundleLock     = "BundleLock"
	KindImageLocations = "ImageLocations"
)

var knownKinds = map[string]bool{
	KindImagesLock:     true,
	KindBundle:         true,
	KindBundleLock:     true,
	KindImageLocations: true,
}

// ParseError is a document that could not be read or is not valid. Source is
// the file name or reference the caller gave; Line is 1-based and 0 when the
// problem has no single position (an empty document, say).
type ParseError struct {
	Source string
	Line   int
	Msg    string
}

// Error implements error.
func (e *ParseError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s: line %d: %s", e.Source, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.Source, e.Msg)
}

func parseErrorf(source string, line int, format string, args ...any) *ParseError {
	return &ParseError{Source: source, Line: line, Msg: fmt.Sprintf(format, args...)}
}

// document is one parsed YAML document whose kind and apiVersion have been
// checked; root keeps node positions so validation can name lines.
type document struct {
	source string
	root   *yaml.Node
}

// load parses data, checks that it is exactly one mapping of kind want and
// our apiVersion, and returns it ready for a strict decode.
func load(data []byte, source, want string) (*document, error) {
	if err := checkSize(data, source); err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, parseErrorf(source, 0, "empty document, expected %s", want)
		}
		return nil, yamlError(source, err)
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, yamlError(source, err)
	case !isNull(&extra):
		// imgpkg would read only the first document and ignore the rest,
		// which hides mistakes such as two locks pasted into one file.
		return nil, parseErrorf(source, extra.Line, "more than one YAML document, expected a single %s", want)
	}

	if len(doc.Content) == 0 || isNull(doc.Content[0]) {
		return nil, parseErrorf(source, doc.Line, "empty document, expected %s", want)
	}
	if err := checkTree(&doc, source, len(data)); err != nil {
		return nil, err
	}
	root := resolve(doc.Content[0])
	if root.Kind != yaml.MappingNode {
		return nil, parseErrorf(source, root.Line, "expected a mapping (%s), got %s", want, describe(root))
	}

	kind, err := scalarField(source, root, "kind")
	if err != nil {
		return nil, err
	}
	switch {
	case kind == nil:
		return nil, parseErrorf(source, root.Line, "missing kind, expected %s", want)
	case kind.Value == want:
	case knownKinds[kind.Value]:
		return nil, parseErrorf(source, kind.Line, "is %s %s, expected %s", article(kind.Value), kind.Value, want)
	default:
		return nil, parseErrorf(source, kind.Line, "unknown kind %q, expected %s", kind.Value, want)
	}

	version, err := scalarField(source, root, "apiVersion")
	if err != nil {
		return nil, err
	}
	switch {
	case version == nil:
		return nil, parseErrorf(source, root.Line, "missing apiVersion, expected %s", APIVersion)
	case version.Value != APIVersion:
		return nil, parseErrorf(source, version.Line, "unsupported apiVersion %q, expected %s", version.Value, APIVersion)
	}
	return &document{source: source, root: root}, nil
}

// decode fills out strictly: every field in the document must exist in out.
// It decodes the tree load parsed and checked (checkTree), rather than the
// bytes again with a Decoder's KnownFields, so a document is parsed once;
// unknownFields reports what KnownFields would.
func (d *document) decode(out any) error {
	var unknown []string
	unknownFields(d.root, reflect.TypeOf(out), map[fieldVisit]bool{}, &unknown)
	if len(unknown) > 0 {
		return yamlError(d.source, &yaml.TypeError{Errors: unknown})
	}
	if err := d.root.Decode(out); err != nil {
		return yamlError(d.source, err)
	}
	return nil
}

// line returns the line of the node reached by following path (mapping keys
// as strings, sequence indexes as ints) from the root, or of the deepest node
// found on the way, so an error always points as close as it can.
func (d *document) line(path ...any) int {
	n := d.root
	for _, step := range path {
		var next *yaml.Node
		switch s := step.(type) {
		case string:
			if n.Kind == yaml.MappingNode {
				next = lookup(n, s)
			}
		case int:
			if n.Kind == yaml.SequenceNode && s < len(n.Content) {
				next = resolve(n.Content[s])
			}
		}
		if next == nil {
			break
		}
		n = next
	}
	return n.Line
}

// errorf reports a validation error at the node path points to.
func (d *document) errorf(path []any, format string, args ...any) error {
	return parseErrorf(d.source, d.line(path...), format, args...)
}

func scalarField(source string, m *yaml.Node, key string) (*yaml.Node, error) {
	n := lookup(m, key)
	if n == nil {
		return nil, nil
	}
	if n.Kind != yaml.ScalarNode || isNull(n) {
		return nil, parseErrorf(source, n.Line, "%s must be a string, got %s", key, describe(n))
	}
	return n, nil
}

// lookup returns the value of key in mapping m, or nil.
func lookup(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if k := resolve(m.Content[i]); k.Kind == yaml.ScalarNode && k.Value == key {
			return resolve(m.Content[i+1])
		}
	}
	return nil
}

func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	if n.Kind == yaml.DocumentNode {
		return len(n.Content) == 0 || isNull(n.Content[0])
	}
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// article is "an" before the kinds that start with a vowel ("an ImagesLock").
func article(kind string) string {
	if strings.HasPrefix(kind, "I") {
		return "an"
	}
	return "a"
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a sequence"
	case yaml.ScalarNode:
		if isNull(n) {
			return "null"
		}
		return fmt.Sprintf("%s %q", n.ShortTag(), n.Value)
	}
	return "an unexpected node"
}

var (
	linePrefix   = regexp.MustCompile(`^line (\d+): (.*)$`)
	unknownField = regexp.MustCompile(`^field (\S+) not found in type \S+$`)
)

// yamlError turns an error of gopkg.in/yaml.v3 into a ParseError, keeping
// the line it names and dropping Go type names the user cannot act on.
func yamlError(source string, err error) error {
	var msgs []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	line := 0
	for i, m := range msgs {
		n := 0
		if sm := linePrefix.FindStringSubmatch(m); sm != nil {
			n, _ = strconv.Atoi(sm[1])
			m = sm[2]
		}
		if sm := unknownField.FindStringSubmatch(m); sm != nil {
			m = "unknown field " + strconv.Quote(sm[1])
		}
		switch {
		case i == 0:
			line = n
		case n > 0:
			m = fmt.Sprintf("line %d: %s", n, m)
		}
		msgs[i] = m
	}
	return &ParseError{Source: source, Line: line, Msg: strings.Join(msgs, "; ")}
}

// checkHeader fills in apiVersion and kind when they are empty and refuses
// values that belong to another document, so a document built in code needs
// no boilerplate but cannot be written under the wrong kind.
func checkHeader(apiVersion, kind *string, want string) error {
	if *apiVersion == "" {
		*apiVersion = APIVersion
	}
	if *kind == "" {
		*kind = want
	}
	if *apiVersion != APIVersion {
		return fmt.Errorf("apiVersion %q, expected %s", *apiVersion, APIVersion)
	}
	if *kind != want {
		return fmt.Errorf("kind %q, expected %s", *kind, want)
	}
	return nil
}

// marshal writes v the way imgpkg does: sigs.k8s.io/yaml (JSON field names,
// keys sorted, compact sequences) after a "---" line.
func marshal(v any) ([]byte, error) {
	b, err := sigsyaml.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append([]byte("---\n"), b...), nil
}

// readDoc reads the file at path and parses it; what names the kind of
// document in errors.
func readDoc[T any](path, what string, parse func(data []byte, source string) (*T, error)) (*T, error) {
	data, err := readLimited(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	return parse(data, path)
}

// writeDoc writes what doc marshals to path atomically; what names the
// kind of document in errors.
func writeDoc(path, what string, doc interface{ Marshal() ([]byte, error) }) error {
	b, err := doc.Marshal()
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := writeFileAtomic(path, b); err != nil {
		return fmt.Errorf("write %s %s: %w", what, path, err)
	}
	return nil
}

// writeFileAtomic replaces path with data through atomicfile, so that a
// reader sees the old file or the new one, never a partial write.
//
// The file is 0600, as imgpkg writes its lock outputs
// (os.WriteFile(path, b, 0600)), rather than atomicfile's os.Create mode:
// these files have always been private and users' scripts may rely on it.
// The mode is set on the still empty temporary file, before any byte of
// data is written to it.
func writeFileAtomic(path string, data []byte) error {
	f, err := atomicfile.Create(path)
	if err != nil {
		return err
	}
	defer f.Abort()
	if err := os.Chmod(f.Name(), 0o600); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	return f.Commit()
}
