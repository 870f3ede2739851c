// Package inventory reads and writes the document `ferry inventory` makes
// on the far side of an air gap: every manifest and blob some repositories
// hold, digests and sizes only. Sent back to the near side, it tells `ferry
// export --since` which blobs need not travel again (a delta archive).
// docs/inventory.md describes the format.
package inventory

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/internal/atomicfile"
)

// MediaType identifies an inventory document (its "mediaType" field).
const MediaType = "application/vnd.ferry.inventory.v1+json"

// FormatVersion is the version this package writes and the newest it
// reads.
const FormatVersion = 1

// MaxSize bounds the document Read accepts: about a million entries.
const MaxSize = 256 << 20

// Document is an inventory.
type Document struct {
	// MediaType is always MediaType.
	MediaType string `json:"mediaType"`
	// FormatVersion is FormatVersion.
	FormatVersion int `json:"formatVersion"`
	// CreatedBy names the program that wrote it ("ferry v1.2.3").
	CreatedBy string `json:"createdBy"`
	// Created is when the repositories were walked (UTC).
	Created time.Time `json:"created"`
	// Repositories are the repositories walked, in the order given.
	Repositories []Repository `json:"repositories"`
}

// Repository is what one repository holds.
type Repository struct {
	// Registry is the registry's host[:port].
	Registry string `json:"registry"`
	// Repository is the repository's path in it.
	Repository string `json:"repository"`
	// Tags is how many tags were followed.
	Tags int `json:"tags"`
	// Manifests are the manifests and indexes reached, sorted by digest.
	Manifests []Item `json:"manifests"`
	// Blobs are the configs and layers they reference, sorted by digest
	// (non-distributable layers, which registries do not hold, left out).
	Blobs []Item `json:"blobs"`
}

// Name returns registry/repository.
func (r Repository) Name() string { return r.Registry + "/" + r.Repository }

// Item is one manifest or blob.
type Item struct {
	Digest v1.Hash `json:"digest"`
	Size   int64   `json:"size"`
}

// Sniff reports whether b, the first bytes of a file, look like an
// inventory document rather than an archive: JSON naming MediaType.
func Sniff(b []byte) bool {
	b = bytes.TrimLeft(b, " \t\r\n")
	return len(b) > 0 && b[0] == '{' && bytes.Contains(b, []byte(MediaType))
}

// Parse reads a document and checks it: the media type, a version this
// package reads, repositories named, sha256 digests and sizes that are not
// negative.
func Parse(b []byte, source string) (*Document, error) {
	var d Document
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("inventory %s: %w", source, err)
	}
	// One document: a second one (two inventories joined with cat) would
	// otherwise be dropped without a word.
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("inventory %s: more after the document's end at byte %d: one inventory per file", source, dec.InputOffset())
	}
	switch {
	case d.MediaType != MediaType:
		return nil, fmt.Errorf("inventory %s: media type %q, want %q", source, d.MediaType, MediaType)
	case d.FormatVersion < 1:
		return nil, fmt.Errorf("inventory %s: format version %d", source, d.FormatVersion)
	case d.FormatVersion > FormatVersion:
		return nil, fmt.Errorf("inventory %s: format version %d is newer than this ferry reads (%d); upgrade ferry", source, d.FormatVersion, FormatVersion)
	}
	for i, r := range d.Repositories {
		if r.Registry == "" || r.Repository == "" || strings.ContainsAny(r.Registry+r.Repository, " \t\n") {
			return nil, fmt.Errorf("inventory %s: repository %d: registry %q, repository %q", source, i, r.Registry, r.Repository)
		}
		for _, list := range [][]Item{r.Manifests, r.Blobs} {
			for _, it := range list {
				if it.Digest.Algorithm != "sha256" || len(it.Digest.Hex) != 64 || it.Size < 0 {
					return nil, fmt.Errorf("inventory %s: %s: entry %s of %d bytes is not a sha256 digest and a size", source, r.Name(), it.Digest, it.Size)
				}
			}
		}
	}
	return &d, nil
}

// Read reads and checks the document at path.
func Read(path string) (*Document, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	if fi.Size() > MaxSize {
		return nil, fmt.Errorf("inventory %s: %d bytes, more than %d", path, fi.Size(), MaxSize)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	return Parse(b, path)
}

// Marshal returns the document as indented JSON, its lists sorted so that
// the same holdings give the same bytes (but for Created). An empty list
// is written [], as docs/inventory.md says, never null: a repository that
// is empty or missing holds no manifests, which is a list.
func (d *Document) Marshal() ([]byte, error) {
	if d.Repositories == nil {
		d.Repositories = []Repository{}
	}
	for i := range d.Repositories {
		r := &d.Repositories[i]
		if r.Manifests == nil {
			r.Manifests = []Item{}
		}
		if r.Blobs == nil {
			r.Blobs = []Item{}
		}
		for _, list := range [][]Item{r.Manifests, r.Blobs} {
			slices.SortFunc(list, func(a, b Item) int { return strings.Compare(a.Digest.String(), b.Digest.String()) })
		}
	}
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// WriteFile writes the document to path atomically.
func (d *Document) WriteFile(path string) error {
	b, err := d.Marshal()
	if err != nil {
		return fmt.Errorf("inventory %s: %w", path, err)
	}
	f, err := atomicfile.Create(path)
	if err != nil {
		return fmt.Errorf("inventory: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Abort()
		return fmt.Errorf("inventory %s: %w", path, err)
	}
	return f.Commit()
}

// Holder is where a blob is held: the first repository that lists it.
type Holder struct {
	Repository string
	Size       int64
}

// Blobs returns every blob the document lists, with the first repository
// (registry/path) that holds it.
func (d *Document) Blobs() map[v1.Hash]Holder {
	out := map[v1.Hash]Holder{}
	for _, r := range d.Repositories {
		for _, it := range r.Blobs {
			if _, ok := out[it.Digest]; !ok {
				out[it.Digest] = Holder{Repository: r.Name(), Size: it.Size}
			}
		}
	}
	return out
}
