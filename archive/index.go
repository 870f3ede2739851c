package archive

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/tags"
)

// FormatVersion is the newest archive format this package reads. It writes
// version 1, or DeltaFormatVersion (2) for a delta archive (delta.go).
const FormatVersion = DeltaFormatVersion

// Annotations of index.json (docs/archive-format.md).
const (
	// AnnotationArchiveVersion is set on the index: the format version.
	AnnotationArchiveVersion = "dev.ferry.archive.version"
	// AnnotationCreatedBy is set on the index: the program that wrote it.
	AnnotationCreatedBy = "dev.ferry.archive.created-by"
	// AnnotationSeekable is set on the index ("true") by BuildIndex: the
	// archive ends with a table of contents and a seek table (toc.go,
	// seektable.go). Readers that predate it ignore it; Verify uses it to
	// tell a damaged seek table from an archive written without one.
	AnnotationSeekable = "dev.ferry.archive.seekable"
	// AnnotationSkippedLayers is set on the index when layers were left
	// out: their digests, sorted, joined by ",", with no spaces
	// ("sha256:<hex>,sha256:<hex>"). Absent when nothing was skipped.
	// Writer and Reader accept a digest here only if a manifest references
	// it and every descriptor naming it has a non-distributable layer
	// media type (Docker foreign, OCI nondistributable): otherwise the
	// annotation could excuse any missing layer.
	AnnotationSkippedLayers = "dev.ferry.skipped-layers"
	// AnnotationRole is set on each descriptor: its Role.
	AnnotationRole = "dev.ferry.role"
	// AnnotationOriginalRef is set on each descriptor: the reference as
	// written in the lock or given with -b.
	AnnotationOriginalRef = "dev.ferry.original-ref"
	// AnnotationRefName is the OCI tag annotation, set on the root only.
	AnnotationRefName = "org.opencontainers.image.ref.name"
	// AnnotationSubject is set on signature and referrer descriptors: the
	// digest of the image or bundle the artifact is about.
	AnnotationSubject = "dev.ferry.subject"
	// AnnotationSignatureKind is set on signature descriptors: the suffix
	// of cosign's tag ("sig", "att" or "sbom"), so that an import can
	// write "sha256-<subject hex>.<kind>" again.
	AnnotationSignatureKind = "dev.ferry.signature-kind"
)

// ErrNewerFormat matches (errors.Is) the error a Reader returns for an
// archive written in a format version newer than FormatVersion, so that the
// CLI can tell the user to upgrade rather than suspect a damaged file.
var ErrNewerFormat = errors.New("archive format is newer than this ferry understands")

type newerFormatError struct{ version int }

func (e newerFormatError) Error() string {
	return fmt.Sprintf("archive format version %d is newer than this ferry understands (%d); upgrade ferry", e.version, FormatVersion)
}

func (e newerFormatError) Is(target error) bool { return target == ErrNewerFormat }

// Role says why an image is in the archive. It is a string so that later
// format revisions can add roles (signatures, attestations) that older
// readers pass through.
type Role string

// Roles of format version 1.
const (
	RoleBundle       Role = "bundle"        // the root bundle
	RoleNestedBundle Role = "nested-bundle" // a bundle named by another bundle's lock
	RoleImage        Role = "image"         // an image (manifest or index) named by a lock
	// RoleSignature is a cosign artifact found under the tag
	// "sha256-<subject hex>.<kind>" beside its subject; Entry.Subject and
	// Entry.SignatureKind say which tag. Readers that predate it pass it
	// through as an unknown role, so the format version stays 1.
	RoleSignature Role = "signature"
	// RoleReferrer is an artifact whose manifest names its subject (OCI 1.1
	// referrers API, or the tag-schema fallback); Entry.Subject is set.
	RoleReferrer Role = "referrer"
)

// SignatureKinds returns the cosign tag suffixes a RoleSignature entry may
// record: signatures, attestations and SBOMs. It is a function, not a
// variable, so that no importer can change what an archive may hold.
func SignatureKinds() []string { return []string{"sig", "att", "sbom"} }

// known reports whether r is a role of format version 1, for which an
// original reference is mandatory.
func (r Role) known() bool {
	return r == RoleBundle || r == RoleNestedBundle || r == RoleImage || r == RoleSignature || r == RoleReferrer
}

// IsArtifact reports whether r is a role of an artifact about another
// entry (a signature or a referrer) rather than of content a lock names.
func (r Role) IsArtifact() bool { return r == RoleSignature || r == RoleReferrer }

// Entry is one descriptor of index.json.
type Entry struct {
	// Descriptor is the manifest or index: media type, digest, size, and
	// platform when known. A Reader returns it as found in index.json,
	// ferry's annotations included.
	Descriptor v1.Descriptor
	// Role is recorded as dev.ferry.role.
	Role Role
	// OriginalRef is recorded as dev.ferry.original-ref; required for the
	// roles of format version 1.
	OriginalRef string
	// Tag is the root's original tag, recorded as
	// org.opencontainers.image.ref.name. At most one entry has one: the
	// RoleBundle entry when there is one, otherwise the image an archive
	// of a single image was made from.
	Tag string
	// Subject is the digest of the entry a signature or referrer is about,
	// recorded as dev.ferry.subject; required for those roles and refused
	// on the others.
	Subject v1.Hash
	// SignatureKind is the cosign tag suffix of a signature ("sig", "att",
	// "sbom"), recorded as dev.ferry.signature-kind; required for
	// RoleSignature only.
	SignatureKind string
}

// IndexOptions are the index-level facts BuildIndex records.
type IndexOptions struct {
	// CreatedBy names the writer, e.g. "ferry v1.2.3"; required.
	CreatedBy string
	// SkippedLayers are the non-distributable layers left out of the
	// archive. Only their digests are recorded (AnnotationSkippedLayers):
	// the manifests that reference them carry the rest. Writer.WriteHeader
	// refuses the index unless each is a non-distributable layer (see
	// AnnotationSkippedLayers).
	SkippedLayers []v1.Descriptor
	// Delta, when set, makes the archive a delta (version 2) that leaves
	// out Delta.LeftOut; Writer.WriteHeader refuses the index unless each is
	// a config or layer a manifest references, at that size.
	Delta *Delta
}

// BuildIndex returns index.json for entries: an OCI index whose
// descriptors carry ferry's annotations, compact JSON, deterministic.
//
// Descriptors are ordered with the root (the RoleBundle entry, or the
// entry with a Tag) first, then by OriginalRef, then digest, then role: the
// order a person reading `ferry inspect` expects, and one that depends only
// on the entries, never on the order the caller found them in.
func BuildIndex(entries []Entry, opts IndexOptions) ([]byte, error) {
	if opts.CreatedBy == "" {
		return nil, errors.New("build index.json: IndexOptions.CreatedBy is empty")
	}
	if len(entries) == 0 {
		return nil, errors.New("build index.json: no entries")
	}
	if err := checkEntries(entries); err != nil {
		return nil, fmt.Errorf("build index.json: %w", err)
	}
	sorted := slices.Clone(entries)
	SortEntries(sorted)

	idx := v1.IndexManifest{
		SchemaVersion: 2,
		MediaType:     types.OCIImageIndex,
		Manifests:     make([]v1.Descriptor, 0, len(sorted)),
		Annotations: map[string]string{
			AnnotationArchiveVersion: "1",
			AnnotationCreatedBy:      opts.CreatedBy,
			AnnotationSeekable:       "true",
		},
	}
	skipped := make([]string, 0, len(opts.SkippedLayers))
	for _, s := range opts.SkippedLayers {
		if err := checkDigest(s.Digest); err != nil {
			return nil, fmt.Errorf("build index.json: skipped layer: %w", err)
		}
		skipped = append(skipped, s.Digest.String())
	}
	slices.Sort(skipped)
	if skipped = slices.Compact(skipped); len(skipped) > 0 {
		idx.Annotations[AnnotationSkippedLayers] = strings.Join(skipped, ",")
	}
	if opts.Delta != nil {
		v, err := opts.Delta.marshal()
		if err != nil {
			return nil, fmt.Errorf("build index.json: %w", err)
		}
		idx.Annotations[AnnotationDelta] = v
		idx.Annotations[AnnotationArchiveVersion] = strconv.Itoa(DeltaFormatVersion)
	}
	for _, e := range sorted {
		d := e.Descriptor
		d.Annotations = maps.Clone(d.Annotations)
		if d.Annotations == nil {
			d.Annotations = map[string]string{}
		}
		d.Annotations[AnnotationRole] = string(e.Role)
		delete(d.Annotations, AnnotationOriginalRef)
		if e.OriginalRef != "" {
			d.Annotations[AnnotationOriginalRef] = e.OriginalRef
		}
		delete(d.Annotations, AnnotationRefName)
		if e.Tag != "" {
			d.Annotations[AnnotationRefName] = e.Tag
		}
		delete(d.Annotations, AnnotationSubject)
		if e.Subject != (v1.Hash{}) {
			d.Annotations[AnnotationSubject] = e.Subject.String()
		}
		delete(d.Annotations, AnnotationSignatureKind)
		if e.SignatureKind != "" {
			d.Annotations[AnnotationSignatureKind] = e.SignatureKind
		}
		idx.Manifests = append(idx.Manifests, d)
	}
	b, err := json.Marshal(idx)
	if err != nil {
		return nil, fmt.Errorf("build index.json: %w", err)
	}
	return b, nil
}

// SortEntries sorts entries, stably, in the order BuildIndex writes them to
// index.json, so that a mover working from a plan rather than an archive
// (a copy) visits them, and reports their tags, as an import would.
func SortEntries(entries []Entry) { slices.SortStableFunc(entries, compareEntries) }

func compareEntries(a, b Entry) int {
	ra, rb := a.isRoot(), b.isRoot()
	switch {
	case ra && !rb:
		return -1
	case rb && !ra:
		return 1
	}
	if c := strings.Compare(a.OriginalRef, b.OriginalRef); c != 0 {
		return c
	}
	if c := strings.Compare(a.Descriptor.Digest.String(), b.Descriptor.Digest.String()); c != 0 {
		return c
	}
	if c := strings.Compare(string(a.Role), string(b.Role)); c != 0 {
		return c
	}
	if c := strings.Compare(a.Subject.String(), b.Subject.String()); c != 0 {
		return c
	}
	return strings.Compare(a.SignatureKind, b.SignatureKind)
}

// isRoot reports whether e is the root of its archive; checkEntries
// ensures there is at most one.
func (e Entry) isRoot() bool { return e.Role == RoleBundle || e.Tag != "" }

// checkEntries enforces what both the Writer and the Reader require of
// index.json descriptors, so that the Writer never produces an archive the
// Reader refuses.
func checkEntries(entries []Entry) error {
	type key struct {
		d       v1.Hash
		role    Role
		ref     string
		subject v1.Hash
		kind    string
	}
	if len(entries) > MaxIndexEntries {
		return fmt.Errorf("%d entries, more than %d", len(entries), MaxIndexEntries)
	}
	seen := map[key]bool{}
	roots, tagCount := 0, 0
	var tagged Entry
	for i, e := range entries {
		d := e.Descriptor
		what := fmt.Sprintf("entry %d (%s %s)", i, e.OriginalRef, d.Digest)
		if err := checkDigest(d.Digest); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if d.Size <= 0 {
			return fmt.Errorf("%s: size %d", what, d.Size)
		}
		if !isManifestType(d.MediaType) {
			return fmt.Errorf("%s: media type %q is not an image manifest or index", what, d.MediaType)
		}
		if !validRole(e.Role) {
			return fmt.Errorf("%s: role %q is not lowercase letters and dashes", what, e.Role)
		}
		if e.Role.known() && e.OriginalRef == "" {
			return fmt.Errorf("%s: role %s needs an original reference", what, e.Role)
		}
		if err := checkArtifact(e); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		// What an import writes or parses: refused here, before anything
		// is uploaded, rather than by the registry at the commit point.
		if e.OriginalRef != "" {
			if _, err := name.ParseReference(e.OriginalRef); err != nil {
				return fmt.Errorf("%s: original reference %q is not an image reference: %w", what, e.OriginalRef, err)
			}
		}
		if e.Tag != "" {
			if !tags.Valid(e.Tag) {
				return fmt.Errorf("%s: tag %q is not a valid tag (letters, digits, '_', '.' and '-', at most 128, not starting with '.' or '-')", what, e.Tag)
			}
		}
		if e.Role == RoleBundle {
			roots++
		}
		if e.Tag != "" {
			tagCount++
			tagged = e
		}
		k := key{d.Digest, e.Role, e.OriginalRef, e.Subject, e.SignatureKind}
		if seen[k] {
			return fmt.Errorf("%s: listed twice", what)
		}
		seen[k] = true
	}
	// An artifact travels with what it is about, never alone. A set, not a
	// search per artifact: an index of many referrers must not cost the
	// square of its length.
	digests := make(map[v1.Hash]bool, len(entries))
	for _, e := range entries {
		digests[e.Descriptor.Digest] = true
	}
	for i, e := range entries {
		if e.Role.IsArtifact() && !digests[e.Subject] {
			return fmt.Errorf("entry %d (%s %s): subject %s is not an entry of the index", i, e.OriginalRef, e.Descriptor.Digest, e.Subject)
		}
	}
	if roots > 1 {
		return fmt.Errorf("%d entries have role %s; an archive has one root", roots, RoleBundle)
	}
	if tagCount > 1 {
		return fmt.Errorf("%d entries have a tag; only the root has one", tagCount)
	}
	if tagCount == 1 && roots == 1 && tagged.Role != RoleBundle {
		return fmt.Errorf("%s %s has tag %q; only the root bundle has one", tagged.Role, tagged.OriginalRef, tagged.Tag)
	}
	return nil
}

// checkArtifact enforces the subject and kind of signature and referrer
// entries, and that other known roles carry neither.
func checkArtifact(e Entry) error {
	switch {
	case e.Role.IsArtifact():
		if e.Subject == (v1.Hash{}) {
			return fmt.Errorf("role %s needs a subject (%s)", e.Role, AnnotationSubject)
		}
		if err := checkDigest(e.Subject); err != nil {
			return fmt.Errorf("subject: %w", err)
		}
		if e.Tag != "" {
			return fmt.Errorf("role %s cannot have a tag", e.Role)
		}
	case e.Role.known() && e.Subject != (v1.Hash{}):
		return fmt.Errorf("role %s cannot have a subject", e.Role)
	}
	switch {
	case e.Role == RoleSignature && !slices.Contains(SignatureKinds(), e.SignatureKind):
		return fmt.Errorf("signature kind %q is not one of %s", e.SignatureKind, strings.Join(SignatureKinds(), ", "))
	case e.Role != RoleSignature && e.Role.known() && e.SignatureKind != "":
		return fmt.Errorf("role %s cannot have a signature kind", e.Role)
	}
	return nil
}

func validRole(r Role) bool {
	if r == "" {
		return false
	}
	for _, c := range r {
		if (c < 'a' || c > 'z') && c != '-' {
			return false
		}
	}
	return true
}

// isManifestType reports whether mt is a manifest or index this format
// carries in its head. Docker schema 1 is not: it cannot be pushed by
// digest to current registries.
func isManifestType(mt types.MediaType) bool {
	return mt.IsImage() || mt.IsIndex()
}

// indexInfo is index.json, checked and decoded.
type indexInfo struct {
	index     *v1.IndexManifest
	version   int
	createdBy string
	entries   []Entry
	skipped   []v1.Hash
	delta     *Delta
}

// MaxIndexString bounds one string of index.json (a reference, an
// annotation). ferry writes references and digests, a few hundred bytes;
// without a bound, one annotation as large as the head limit would be held
// twice, in the file's bytes and decoded.
const MaxIndexString = 64 << 10

// MaxIndexList bounds the two index.json annotations whose length grows
// with the archive's content, the list of skipped layers and a delta's
// record (AnnotationSkippedLayers, AnnotationDelta): about 400,000
// left-out blobs.
const MaxIndexList = 64 << 20

// MaxIndexEntries bounds the descriptors of index.json: the images a
// bundle locks, and their signatures and referrers. A release of
// thousands of images, each with a few artifacts, lists tens of
// thousands; a reader holds each descriptor decoded (a few KiB with its
// annotations), so index.json is refused above this count before it is
// decoded, however few bytes its descriptors take.
const MaxIndexEntries = 100_000

// listAnnotations are the keys whose values MaxIndexList bounds instead of
// MaxIndexString.
var listAnnotations = []string{`"` + AnnotationSkippedLayers + `"`, `"` + AnnotationDelta + `"`}

// longestString returns the length (in bytes, escapes as written) and
// offset of the longest JSON string in b that is not the value of one of
// listAnnotations, and the length of the longest such value.
func longestString(b []byte) (n, at, list int) {
	start, prevKey := -1, ""
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case start < 0 && c == '"':
			start = i + 1
		case start >= 0 && c == '\\':
			i++
		case start >= 0 && c == '"':
			l := i - start
			isList := slices.Contains(listAnnotations, prevKey)
			switch {
			case isList && l > list:
				list = l
			case !isList && l > n:
				n, at = l, start-1
			}
			prevKey = string(b[start-1 : i+1])
			if len(prevKey) > 64 {
				prevKey = ""
			}
			start = -1
		case start < 0 && c != ':' && c != ' ' && c != '\n' && c != '\t' && c != '\r':
			// Anything but a colon between a key and its value forgets
			// the key.
			prevKey = ""
		}
	}
	if start >= 0 && len(b)-start > n {
		n, at = len(b)-start, start-1
	}
	return n, at, list
}

// descriptorCount counts the elements of the JSON list it is decoded from,
// adding up over every list decoded into it, without decoding them.
type descriptorCount int

// UnmarshalJSON implements json.Unmarshaler. json.Unmarshal has checked
// that b is valid JSON, so depth and strings are all it tracks.
func (c *descriptorCount) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) < 2 || b[0] != '[' {
		return nil // null, or not a list: json.Unmarshal says so next
	}
	depth, inString, empty := 0, false, true
	for i := 1; i < len(b)-1; i++ {
		switch ch := b[i]; {
		case inString && ch == '\\':
			i++
		case inString:
			inString = ch != '"'
		case ch == '"':
			inString, empty = true, false
		case ch == '[' || ch == '{':
			depth, empty = depth+1, false
		case ch == ']' || ch == '}':
			depth--
		case ch == ',' && depth == 0:
			*c++
		case ch != ' ' && ch != '\t' && ch != '\n' && ch != '\r':
			empty = false
		}
	}
	if !empty {
		*c++
	}
	return nil
}

// countIndexDescriptors counts the descriptors of index.json b (every list
// json.Unmarshal would decode into v1.IndexManifest.Manifests) without
// holding them.
func countIndexDescriptors(b []byte) (int, error) {
	var idx struct {
		Manifests descriptorCount `json:"manifests"`
	}
	if err := json.Unmarshal(b, &idx); err != nil {
		return 0, err
	}
	return int(idx.Manifests), nil
}

// parseIndex checks index.json: an OCI index of a format version this
// package reads, every descriptor a valid Entry.
func parseIndex(b []byte) (*indexInfo, error) {
	n, at, list := longestString(b)
	if n > MaxIndexString {
		return nil, fmt.Errorf("%s: a string of %d bytes at offset %d, more than the %d a string of index.json may have", indexName, n, at, MaxIndexString)
	}
	if list > MaxIndexList {
		return nil, fmt.Errorf("%s: a list annotation of %d bytes, more than %d", indexName, list, MaxIndexList)
	}
	count, err := countIndexDescriptors(b)
	if err != nil {
		return nil, fmt.Errorf("%s: not an OCI index: %w", indexName, err)
	}
	if count > MaxIndexEntries {
		return nil, fmt.Errorf("%s: %d descriptors, more than %d", indexName, count, MaxIndexEntries)
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("%s: not an OCI index: %w", indexName, err)
	}
	if idx.SchemaVersion != 2 {
		return nil, fmt.Errorf("%s: not an OCI index: schemaVersion %d, want 2", indexName, idx.SchemaVersion)
	}
	if idx.MediaType != "" && idx.MediaType != types.OCIImageIndex {
		return nil, fmt.Errorf("%s: not an OCI index: mediaType %q", indexName, idx.MediaType)
	}
	v, ok := idx.Annotations[AnnotationArchiveVersion]
	if !ok {
		return nil, fmt.Errorf("%s: no %s annotation: not a ferry archive", indexName, AnnotationArchiveVersion)
	}
	version, err := strconv.Atoi(v)
	if err != nil || version < 1 {
		return nil, fmt.Errorf("%s: %s %q is not a format version", indexName, AnnotationArchiveVersion, v)
	}
	if version > FormatVersion {
		return nil, fmt.Errorf("%s: %w", indexName, newerFormatError{version})
	}
	info := &indexInfo{index: &idx, version: version, createdBy: idx.Annotations[AnnotationCreatedBy]}
	// A delta is version 2 and version 2 is a delta: an older reader must
	// refuse it rather than take its missing blobs for damage.
	s, isDelta := idx.Annotations[AnnotationDelta]
	switch {
	case isDelta && version < DeltaFormatVersion:
		return nil, fmt.Errorf("%s: %s is set on a version %d index; a delta is version %d", indexName, AnnotationDelta, version, DeltaFormatVersion)
	case !isDelta && version >= DeltaFormatVersion:
		return nil, fmt.Errorf("%s: version %d without %s", indexName, version, AnnotationDelta)
	case isDelta:
		d, err := parseDelta(s)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", indexName, err)
		}
		info.delta = d
	}
	if s := idx.Annotations[AnnotationSkippedLayers]; s != "" {
		seen := map[v1.Hash]bool{}
		for _, part := range strings.Split(s, ",") {
			h, err := v1.NewHash(part)
			if err == nil {
				err = checkDigest(h)
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %s: %q: %w", indexName, AnnotationSkippedLayers, part, err)
			}
			if !seen[h] {
				seen[h] = true
				info.skipped = append(info.skipped, h)
			}
		}
	}
	if len(idx.Manifests) == 0 {
		return nil, fmt.Errorf("%s: lists no images", indexName)
	}
	for i, d := range idx.Manifests {
		e := Entry{
			Descriptor:    d,
			Role:          Role(d.Annotations[AnnotationRole]),
			OriginalRef:   d.Annotations[AnnotationOriginalRef],
			Tag:           d.Annotations[AnnotationRefName],
			SignatureKind: d.Annotations[AnnotationSignatureKind],
		}
		if s, ok := d.Annotations[AnnotationSubject]; ok {
			h, err := v1.NewHash(s)
			if err != nil {
				return nil, fmt.Errorf("%s: entry %d (%s): %s %q: %w", indexName, i, d.Digest, AnnotationSubject, s, err)
			}
			e.Subject = h
		}
		info.entries = append(info.entries, e)
	}
	if err := checkEntries(info.entries); err != nil {
		return nil, fmt.Errorf("%s: %w", indexName, err)
	}
	return info, nil
}
