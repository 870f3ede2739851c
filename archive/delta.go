package archive

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// A delta archive carries every manifest of what it moves but leaves out the
// configs and layers its destination already holds: those a previous
// archive carried, or an inventory of the far side lists (`ferry export
// --since`). It says so in index.json (AnnotationDelta), and it is format
// version 2 (DeltaFormatVersion), so that a ferry that predates deltas
// refuses it at once ("newer than this ferry understands; upgrade ferry")
// instead of reading it as an archive that lacks blobs. Archives that leave
// nothing out stay version 1.

// DeltaFormatVersion is the format version of a delta archive.
const DeltaFormatVersion = 2

// AnnotationDelta is set on the index of a delta archive: its Delta, as
// compact JSON.
const AnnotationDelta = "dev.ferry.delta"

// Delta is what a delta archive records of what it left out.
type Delta struct {
	// Bases are what the export was told the destination holds, in the
	// order given (--since).
	Bases []Base `json:"bases"`
	// LeftOut are the configs and layers left out, sorted by digest.
	LeftOut []LeftOut `json:"leftOut"`
}

// Base kinds.
const (
	BaseArchive   = "archive"
	BaseInventory = "inventory"
)

// MaxBaseRepositories bounds the repositories one base of a delta may name
// (Base.Repositories): an import asks each of them for the left-out blobs
// its destination lacks, so the list is the archive's to choose. An
// inventory names the repositories `ferry inventory --repo` was given,
// each by name; a thousand is far more than any air gap mirrors, and the
// Writer refuses more as the Reader does.
const MaxBaseRepositories = 1000

// Base is one --since: a previous archive, or an inventory.
type Base struct {
	// Kind is BaseArchive or BaseInventory.
	Kind string `json:"kind"`
	// Name is the file's base name, as given.
	Name string `json:"name"`
	// SHA256 is the hex sha256 of the file.
	SHA256 string `json:"sha256"`
	// Created is when an inventory was taken (RFC 3339).
	Created string `json:"created,omitempty"`
	// Repositories are the repositories an inventory lists.
	Repositories []string `json:"repositories,omitempty"`
}

// String names the base in messages.
func (b Base) String() string {
	switch b.Kind {
	case BaseInventory:
		repos := b.Repositories
		if len(repos) > baseStringRepositories {
			repos = append(slices.Clone(repos[:baseStringRepositories]), fmt.Sprintf("and %d more", len(b.Repositories)-baseStringRepositories))
		}
		return fmt.Sprintf("inventory %s of %s (taken %s, sha256 %s)", b.Name, strings.Join(repos, ", "), b.Created, b.SHA256)
	default:
		return fmt.Sprintf("archive %s (sha256 %s)", b.Name, b.SHA256)
	}
}

// baseStringRepositories is how many of an inventory's repositories
// Base.String names; the others are counted.
const baseStringRepositories = 5

// LeftOut is one config or layer left out of a delta archive.
type LeftOut struct {
	Digest v1.Hash `json:"digest"`
	Size   int64   `json:"size"`
	// Base is the index in Bases of the base it is expected from: the
	// first that names a repository holding it, else the first that
	// holds it.
	Base int `json:"base"`
	// Repository is where an inventory found it (registry/path), so that
	// an import into another repository of the same registry can mount it
	// from there; empty for an archive base.
	Repository string `json:"repository,omitempty"`
}

// marshal returns the annotation's value.
func (d *Delta) marshal() (string, error) {
	if err := d.check(); err != nil {
		return "", err
	}
	c := *d
	c.LeftOut = slices.Clone(d.LeftOut)
	slices.SortFunc(c.LeftOut, func(a, b LeftOut) int { return cmpHash(a.Digest, b.Digest) })
	b, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// parseDelta reads the annotation's value.
func parseDelta(s string) (*Delta, error) {
	var d Delta
	if err := json.Unmarshal([]byte(s), &d); err != nil {
		return nil, fmt.Errorf("%s: %w", AnnotationDelta, err)
	}
	if err := d.check(); err != nil {
		return nil, fmt.Errorf("%s: %w", AnnotationDelta, err)
	}
	return &d, nil
}

// check enforces what both the Writer and the Reader require of a Delta.
func (d *Delta) check() error {
	if len(d.Bases) == 0 {
		return errors.New("a delta names no base")
	}
	for i, b := range d.Bases {
		if (b.Kind != BaseArchive && b.Kind != BaseInventory) || !isSHA256Hex(b.SHA256) {
			return fmt.Errorf("base %d: kind %q, sha256 %q: want archive or inventory and 64 lowercase hex", i, b.Kind, b.SHA256)
		}
		if len(b.Repositories) > MaxBaseRepositories {
			return fmt.Errorf("base %d (%s %q, sha256 %s) names %d repositories; a delta may name at most %d per base", i, b.Kind, b.Name, b.SHA256, len(b.Repositories), MaxBaseRepositories)
		}
	}
	seen := make(map[v1.Hash]bool, len(d.LeftOut))
	for _, l := range d.LeftOut {
		if err := checkDigest(l.Digest); err != nil {
			return fmt.Errorf("left-out blob: %w", err)
		}
		if seen[l.Digest] {
			return fmt.Errorf("left-out blob %s listed twice", l.Digest)
		}
		seen[l.Digest] = true
		if l.Size < 0 || l.Base < 0 || l.Base >= len(d.Bases) {
			return fmt.Errorf("left-out blob %s: size %d, base %d of %d", l.Digest, l.Size, l.Base, len(d.Bases))
		}
	}
	return nil
}

// leftOut returns the digests the delta leaves out.
func (d *Delta) leftOut() map[v1.Hash]bool {
	out := map[v1.Hash]bool{}
	if d != nil {
		for _, l := range d.LeftOut {
			out[l.Digest] = true
		}
	}
	return out
}

// checkLeftOut enforces, once the head is complete, what makes a blob
// legitimately left out of a delta: a manifest references it as a config or
// layer, at the size the delta records, and it is not also listed as a
// skipped layer. Without it, the annotation could excuse any missing blob.
func (c *catalog) checkLeftOut(d *Delta, skipped []v1.Hash) error {
	if d == nil {
		return nil
	}
	// A set, not a search per left-out blob: both lists may be hundreds
	// of thousands long.
	isSkipped := make(map[v1.Hash]bool, len(skipped))
	for _, s := range skipped {
		isSkipped[s] = true
	}
	for _, l := range d.LeftOut {
		r, ok := c.blobs[l.Digest]
		if !ok {
			return fmt.Errorf("%s lists %s, which no manifest references as a config or layer", AnnotationDelta, l.Digest)
		}
		if _, isManifest := c.manifests[l.Digest]; isManifest {
			return fmt.Errorf("%s lists %s, a manifest; only configs and layers are left out", AnnotationDelta, l.Digest)
		}
		if r.desc.Size != l.Size {
			return fmt.Errorf("%s lists %s at %d bytes, %s says %d", AnnotationDelta, l.Digest, l.Size, r.from, r.desc.Size)
		}
		if isSkipped[l.Digest] {
			return fmt.Errorf("%s lists %s, which %s also lists", AnnotationDelta, l.Digest, AnnotationSkippedLayers)
		}
	}
	return nil
}
