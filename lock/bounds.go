package lock

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"
)

// MaxDocumentSize bounds every document this package reads: a bundle's
// images.yml (in a registry, an archive or a pulled directory, and in a
// directory being pushed), a lock file given to export or copy, bundle.yml,
// image-locations.yml and BundleLocks. A lock of 10,000 images is about
// 2 MB as imgpkg writes it (3 MB with kbld's origins annotations), so
// 4 MiB admits some 20,000 images while bounding what a hostile bundle can
// make ferry parse: about 100 MB at worst (see the parsing cost below).
const MaxDocumentSize = 4 << 20

// Parsing cost. gopkg.in/yaml.v3 builds a node of about 170 bytes for
// every scalar and collection, and a document can pack one into every two
// bytes ("[a,a,a,…]"), which would cost nearly a hundred times its size.
// A real lock has one node per 20 bytes or more (digests and references are
// long), so a document is refused before it is parsed when a cheap count
// of its tokens (an upper bound on its nodes, see tokenBound) exceeds one
// per maxTokenDensity bytes, and again after parsing if its aliases expand
// it beyond that. What parsing holds is then a small multiple of the
// document's size (measured in TestParseCostIsBounded).
const (
	maxTokenDensity = 6
	// minTokens admits small hand-written documents, whatever their
	// density.
	minTokens = 4096
	// maxMappingKeys bounds one mapping: yaml.v3 compares every key of a
	// mapping with every other, so a mapping of a million keys would take
	// hours. No lock document has more than a handful of fields, or
	// annotations beyond a few dozen.
	maxMappingKeys = 1000
)

// maxNodes is how many nodes a document of n bytes may parse into,
// aliases expanded.
func maxNodes(n int) int { return max(n/maxTokenDensity, minTokens) }

// tokenBound counts, in one pass and without allocating, an upper bound
// on the nodes yaml.v3 can build from data: every run of non-blank
// characters, plus two for every character that can open a collection or
// imply an empty value (flow indicators anywhere; ':', '-' and '?' when a
// blank or the end follows). Quoted text and comments are counted too,
// which only makes the bound looser.
func tokenBound(data []byte) int {
	n := 0
	inRun := false
	for i, c := range data {
		blank := c == ' ' || c == '\t' || c == '\n' || c == '\r'
		if !blank && !inRun {
			n++
		}
		inRun = !blank
		switch c {
		case '[', '{', ',':
			n += 2
		case ':', '-', '?':
			if i+1 == len(data) || data[i+1] == ' ' || data[i+1] == '\t' || data[i+1] == '\n' || data[i+1] == '\r' {
				n += 2
			}
		}
	}
	return n
}

// checkSize refuses, before any parsing, a document too large or too
// dense to be a lock.
func checkSize(data []byte, source string) error {
	if len(data) > MaxDocumentSize {
		return parseErrorf(source, 0, "%d bytes, more than the %d a lock document may have", len(data), MaxDocumentSize)
	}
	if n, limit := tokenBound(data), maxNodes(len(data)); n > limit {
		return parseErrorf(source, 0, "%d YAML tokens in %d bytes, more than the %d a lock document of that size may have", n, len(data), limit)
	}
	return nil
}

// checkTree walks the parsed document once and refuses what would make
// decoding it expensive or ambiguous: aliases that expand it beyond
// maxNodes (or refer to themselves), a mapping of more than maxMappingKeys
// keys, and a key given twice (which yaml.v3 would report once for every
// pair, quadratically).
func checkTree(doc *yaml.Node, source string, size int) error {
	w := treeWalker{source: source, limit: maxNodes(size), sizes: map[*yaml.Node]int{}, open: map[*yaml.Node]bool{}}
	n, err := w.expanded(doc)
	if err != nil {
		return err
	}
	if n > w.limit {
		return parseErrorf(source, 0, "aliases expand the document to %d nodes, more than the %d a lock document of %d bytes may have", n, w.limit, size)
	}
	return nil
}

type treeWalker struct {
	source string
	limit  int
	sizes  map[*yaml.Node]int  // expanded size of each anchored node
	open   map[*yaml.Node]bool // nodes being walked, to find an alias inside its own anchor
}

// expanded returns the number of nodes n stands for, aliases expanded,
// checking the mappings on the way; it stops counting past the limit.
// Anchors come before their aliases in a document, so the walk, in
// document order, has every anchored node's size by the time an alias
// asks for it: chains of aliases cost no recursion.
func (w *treeWalker) expanded(n *yaml.Node) (int, error) {
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			return 1, nil
		}
		if w.open[n.Alias] {
			return 0, parseErrorf(w.source, n.Line, "alias *%s refers to the node that contains it", n.Value)
		}
		if s, ok := w.sizes[n.Alias]; ok {
			return s, nil
		}
		return w.expanded(n.Alias)
	}
	if n.Kind == yaml.MappingNode {
		if err := w.checkMapping(n); err != nil {
			return 0, err
		}
	}
	w.open[n] = true
	defer delete(w.open, n)
	total := 1
	for _, c := range n.Content {
		s, err := w.expanded(c)
		if err != nil {
			return 0, err
		}
		if total += s; total > w.limit {
			break
		}
	}
	if n.Anchor != "" {
		w.sizes[n] = total
	}
	return total, nil
}

func (w *treeWalker) checkMapping(n *yaml.Node) error {
	if len(n.Content)/2 > maxMappingKeys {
		return parseErrorf(w.source, n.Line, "a mapping of %d keys, more than the %d a lock document may have", len(n.Content)/2, maxMappingKeys)
	}
	first := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if k.Kind != yaml.ScalarNode {
			continue
		}
		if line, ok := first[k.Value]; ok {
			return parseErrorf(w.source, k.Line, "mapping key %q already defined at line %d", k.Value, line)
		}
		first[k.Value] = k.Line
	}
	return nil
}

// unknownFields lists, in document order, the mapping keys of n that name
// no field of t, as yaml.v3's KnownFields does, so that a document can be
// decoded from the tree already parsed instead of from its bytes again.
func unknownFields(n *yaml.Node, t reflect.Type, seen map[fieldVisit]bool, out *[]string) {
	n = resolve(n)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Anchor != "" {
		// Aliases to it would walk it again.
		if seen[fieldVisit{n, t}] {
			return
		}
		seen[fieldVisit{n, t}] = true
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return // a type error, which decoding reports
		}
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := resolve(n.Content[i]), n.Content[i+1]
			if k.Kind == yaml.ScalarNode && k.Value == "<<" && k.ShortTag() == "!!merge" {
				// A merge: its mappings are fields of t too.
				if m := resolve(v); m.Kind == yaml.SequenceNode {
					for _, c := range m.Content {
						unknownFields(c, t, seen, out)
					}
				} else {
					unknownFields(m, t, seen, out)
				}
				continue
			}
			ft, ok := fields[k.Value]
			if !ok || k.Kind != yaml.ScalarNode {
				*out = append(*out, fmt.Sprintf("line %d: unknown field %q", k.Line, k.Value))
				continue
			}
			unknownFields(v, ft, seen, out)
		}
	case reflect.Slice, reflect.Array:
		if n.Kind == yaml.SequenceNode {
			for _, c := range n.Content {
				// yaml.v3 drops a null item of a list of structs: an
				// image "-" or "- ~" would vanish from a lock where
				// imgpkg refuses it.
				if rc := resolve(c); rc.Kind == yaml.ScalarNode && rc.ShortTag() == "!!null" && elemKind(t) == reflect.Struct {
					*out = append(*out, fmt.Sprintf("line %d: an empty (null) item in a list; every item needs its fields", rc.Line))
					continue
				}
				unknownFields(c, t.Elem(), seen, out)
			}
		}
	case reflect.Map:
		if n.Kind == yaml.MappingNode {
			for i := 1; i < len(n.Content); i += 2 {
				unknownFields(n.Content[i], t.Elem(), seen, out)
			}
		}
	}
}

type fieldVisit struct {
	n *yaml.Node
	t reflect.Type
}

// yamlFields maps the keys yaml.v3 decodes into t's fields (the yaml tag's
// name, or the field name in lower case) to the fields' types.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		switch key {
		case "-":
			continue
		case "":
			key = strings.ToLower(f.Name)
		}
		out[key] = f.Type
	}
	return out
}

// ReadDocument reads the file at path, refusing one larger than
// MaxDocumentSize without reading more than that, for a caller that needs
// its bytes before choosing a parser (see DocumentKind).
func ReadDocument(path string) ([]byte, error) { return readLimited(path) }

// DocumentKind returns the kind of the document in data without
// validating it, so that the strict parser of that kind can be chosen; ""
// when data is too large or too dense (see MaxDocumentSize), is not YAML,
// or names no kind: the parser then says what is wrong.
func DocumentKind(data []byte) string {
	if checkSize(data, "") != nil {
		return ""
	}
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&doc); err != nil || len(doc.Content) == 0 {
		return ""
	}
	root := resolve(doc.Content[0])
	if root.Kind != yaml.MappingNode {
		return ""
	}
	if k := lookup(root, "kind"); k != nil && k.Kind == yaml.ScalarNode {
		return k.Value
	}
	return ""
}

// ReadDocumentFrom reads r to its end as ReadDocument reads a file, for a
// caller that opened the file itself; source names it in errors.
func ReadDocumentFrom(r io.Reader, source string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxDocumentSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", source, err)
	}
	if len(b) > MaxDocumentSize {
		return nil, parseErrorf(source, 0, "more than the %d bytes a lock document may have", MaxDocumentSize)
	}
	return b, nil
}

// readLimited reads the file at path, refusing one larger than
// MaxDocumentSize without reading more than that.
func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadDocumentFrom(f, path)
}

// elemKind is the kind of the elements of slice or array type t, past
// pointers.
func elemKind(t reflect.Type) reflect.Kind {
	e := t.Elem()
	for e.Kind() == reflect.Pointer {
		e = e.Elem()
	}
	return e.Kind()
}
