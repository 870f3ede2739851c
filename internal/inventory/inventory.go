// Package inventory reads and writes the document `ferry inventory` makes
// on the far side of an air gap: every manifest and blob some repositories
// hold, digests and sizes only. Sent back to the near side, it tells `ferry
// export --since` which blobs need not travel again (a delta archive).
// docs/inventory.md describes the format.
package inventory

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
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

// Sniff reports whether b, the first bytes of a file, may be an inventory
// document rather than an archive: JSON, an object. Whether it is one is
// for Parse or Decode to say, wherever its mediaType key comes (an archive
// never starts with '{': zstd, gzip and tar do not).
func Sniff(b []byte) bool {
	b = bytes.TrimLeft(b, " \t\r\n")
	return len(b) > 0 && b[0] == '{'
}

// ErrNotInventory is matched (errors.Is) by the error of Parse and Decode
// for a JSON document that is not an inventory at all: another media
// type, or none.
var ErrNotInventory = errors.New("not a ferry inventory")

// Parse reads a document and checks it: see Decode.
func Parse(b []byte, source string) (*Document, error) {
	return Decode(bytes.NewReader(b), source)
}

// Decode reads one document from r, to r's end, and checks it: the media
// type, a version this package reads, registries and repositories named
// as image references name them, sha256 digests and sizes that are not
// negative. source names the document in errors. r is read to its end;
// encoding/json holds the document's bytes while it decodes them, so a
// document costs its size plus what it decodes to.
func Decode(r io.Reader, source string) (*Document, error) {
	var d Document
	dec := json.NewDecoder(r)
	if err := dec.Decode(&d); err != nil {
		// A field of the wrong type leaves the others decoded: JSON that
		// does not even say it is an inventory is another document.
		if errors.As(err, new(*json.UnmarshalTypeError)) && d.MediaType != MediaType {
			return nil, fmt.Errorf("inventory %s: media type %q, want %q: %w", source, short(d.MediaType), MediaType, ErrNotInventory)
		}
		return nil, fmt.Errorf("inventory %s: %w", source, err)
	}
	// One document: a second one (two inventories joined with cat) would
	// otherwise be dropped without a word.
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("inventory %s: more after the document's end at byte %d: one inventory per file", source, dec.InputOffset())
	}
	switch {
	case d.MediaType != MediaType:
		return nil, fmt.Errorf("inventory %s: media type %q, want %q: %w", source, short(d.MediaType), MediaType, ErrNotInventory)
	case d.FormatVersion < 1:
		return nil, fmt.Errorf("inventory %s: format version %d", source, d.FormatVersion)
	case d.FormatVersion > FormatVersion:
		return nil, fmt.Errorf("inventory %s: format version %d is newer than this ferry reads (%d); upgrade ferry", source, d.FormatVersion, FormatVersion)
	}
	for i, r := range d.Repositories {
		if err := checkName(r); err != nil {
			return nil, fmt.Errorf("inventory %s: repository %d (registry %q, repository %q): %w", source, i, short(r.Registry), short(r.Repository), err)
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

// maxRegistry and maxRepository bound the names of a repository: a DNS
// name is at most 253 bytes, and no registry serves a repository path of
// a kilobyte. Unbounded, a crafted inventory would carry megabytes into
// every delta's index.json.
const (
	maxRegistry   = 255
	maxRepository = 1024
)

// checkName accepts a repository named as an image reference names one:
// registry host[:port] (a DNS name or an IP address; name.NewRegistry
// alone lets through characters no host has) and a repository path that
// name.NewRepository accepts, strictly.
func checkName(r Repository) error {
	switch {
	case r.Registry == "" || r.Repository == "":
		return errors.New("a registry and a repository must be named")
	case len(r.Registry) > maxRegistry:
		return fmt.Errorf("registry name of %d bytes, more than %d", len(r.Registry), maxRegistry)
	case len(r.Repository) > maxRepository:
		return fmt.Errorf("repository name of %d bytes, more than %d", len(r.Repository), maxRepository)
	}
	host := r.Registry
	if h, port, err := net.SplitHostPort(r.Registry); err == nil {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
			return fmt.Errorf("registry %q: port %q", r.Registry, port)
		}
		host = h
	}
	ip := host
	if len(host) > 2 && host[0] == '[' && host[len(host)-1] == ']' {
		ip = host[1 : len(host)-1]
	}
	if net.ParseIP(ip) == nil {
		for _, c := range host {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
				return fmt.Errorf("registry %q is not a host name, host:port, or an IP address", short(r.Registry))
			}
		}
	}
	if _, err := name.NewRegistry(r.Registry, name.StrictValidation); err != nil {
		return err
	}
	if _, err := name.NewRepository(r.Name(), name.StrictValidation); err != nil {
		return err
	}
	return nil
}

// short returns s, or its start and its length when it is long: an error
// names a bad value without copying megabytes of it.
func short(s string) string {
	if len(s) <= 80 {
		return s
	}
	return fmt.Sprintf("%s… (%d bytes)", s[:64], len(s))
}

// Read reads and checks the document at path (Decode), at most MaxSize
// bytes.
func Read(path string) (*Document, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	if fi.Size() > MaxSize {
		return nil, fmt.Errorf("inventory %s: %d bytes, more than %d", path, fi.Size(), MaxSize)
	}
	return Decode(io.LimitReader(f, MaxSize), path)
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
