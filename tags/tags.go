// Package tags names the tags ferry writes into a destination repository.
//
// The names are a contract with imgpkg (docs/destination.md): a repository filled by
// ferry must look to imgpkg exactly as if imgpkg had filled it, so every rule
// here follows imgpkg v0.43 (pkg/imgpkg/internal/util tag generators).
package tags

import (
	"errors"
	"regexp"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

const (
	// Suffix ends every tag imgpkg (and ferry) invent for their own
	// bookkeeping; `tag list` hides such tags by default.
	Suffix = ".imgpkg"

	// locationsSuffix ends the tag of a bundle's image-locations image.
	locationsSuffix = ".image-locations" + Suffix

	// MaxLen is the longest tag the distribution spec allows.
	MaxLen = 128

	// maxRepoPrefix is how much of the source path a repo-based tag keeps:
	// 49 + "-" + "sha256-<64 hex>.imgpkg" is exactly MaxLen.
	maxRepoPrefix = 49
)

// validTag is the distribution spec's rule for a tag.
var validTag = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)

// Valid reports whether tag is a tag the distribution spec allows.
func Valid(tag string) bool { return validTag.MatchString(tag) }

// Imgpkg returns the tag imgpkg gives every image it copies into a
// repository, so that the registry never garbage-collects an image that is
// only referenced from a lock: "sha256-<hex>.imgpkg".
func Imgpkg(d v1.Hash) string {
	return digestPart(d) + Suffix
}

// ImageLocations returns the tag of the image-locations image that records
// where a bundle's images went: "sha256-<hex>.image-locations.imgpkg", where
// d is the digest of the bundle (not of the locations image).
func ImageLocations(d v1.Hash) string {
	return digestPart(d) + locationsSuffix
}

// RepoBased returns the tag `--repo-based-tags` uses instead of Imgpkg:
// "<path>-sha256-<hex>.imgpkg", which keeps a hint of where the image came
// from when many sources share one destination repository.
//
// repoPath is the source repository path without its registry host (for
// example name.Repository.RepositoryStr()). It is made into a valid tag
// prefix the way imgpkg does it: "/" becomes "-", every character outside
// [a-zA-Z0-9._-] is dropped, only the last 49 characters are kept, and then
// leading "." and "-" are dropped, because a tag must start with
// [a-zA-Z0-9_]. An empty prefix gives Imgpkg(d). For sha256 digests the
// result is at most MaxLen characters.
func RepoBased(repoPath string, d v1.Hash) string {
	prefix := cleanPath(repoPath)
	if prefix == "" {
		return Imgpkg(d)
	}
	return prefix + "-" + Imgpkg(d)
}

// IsImgpkgOf reports whether tag is d's own ".imgpkg" tag, plain
// ("sha256-<hex>.imgpkg") or repo-based ("<path>-sha256-<hex>.imgpkg", any
// path): a tag that names d, and that a move may write onto d whatever the
// form of tags it writes. d's locations tag is not one.
func IsImgpkgOf(tag string, d v1.Hash) bool {
	own := Imgpkg(d)
	return tag == own || strings.HasSuffix(tag, "-"+own)
}

// cleanPath turns a repository path into a tag prefix (see RepoBased).
func cleanPath(repoPath string) string {
	var b strings.Builder
	b.Grow(len(repoPath))
	for _, r := range repoPath {
		switch {
		case r == '/':
			b.WriteByte('-')
		case isTagChar(r):
			b.WriteRune(r)
		}
	}
	s := b.String() // ASCII only from here, so byte offsets are characters.
	if len(s) > maxRepoPrefix {
		s = s[len(s)-maxRepoPrefix:]
	}
	// imgpkg strips every leading character that may not start a tag both
	// before and after the cut; doing it once after the cut is equivalent.
	return strings.TrimLeft(s, ".-")
}

func isTagChar(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
		r == '.' || r == '_' || r == '-'
}

// digestPart is "<algorithm>-<hex>", the digest with ':' (not allowed in a
// tag) replaced by '-'.
func digestPart(d v1.Hash) string {
	return d.Algorithm + "-" + d.Hex
}

// IsInternal reports whether tag is bookkeeping rather than a name a person
// chose: any tag ending in ".imgpkg" (which includes image-locations and
// repo-based tags, exactly what imgpkg's `tag list` hides), and cosign's
// "sha256-<hex>.sig", ".att" and ".sbom" tags, which ferry copies alongside
// signed images and hides too.
func IsInternal(tag string) bool {
	if strings.HasSuffix(tag, Suffix) {
		return true
	}
	return isCosignTag(tag)
}

func isCosignTag(tag string) bool {
	rest, ok := strings.CutPrefix(tag, "sha256-")
	if !ok {
		return false
	}
	hex, ext, ok := strings.Cut(rest, ".")
	if !ok || len(hex) != 64 || !isLowerHex(hex) {
		return false
	}
	switch ext {
	case "sig", "att", "sbom":
		return true
	}
	return false
}

// isReferrersTag reports whether tag is "sha256-<hex>", the referrers tag
// schema's.
func isReferrersTag(tag string) bool {
	hex, ok := strings.CutPrefix(tag, "sha256-")
	return ok && len(hex) == 64 && isLowerHex(hex)
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// ErrBookkeeping is wrapped by the refusal of a tag of the shape of a
// bookkeeping tag (NamesADigest) given for a manifest it does not name:
// push's tag, a root's tag at export. It reads "a bookkeeping tag".
var ErrBookkeeping = errors.New("a bookkeeping tag")

// NamesADigest reports whether tag has the shape of a tag that names some
// manifest by its digest for bookkeeping: "[<path>-]sha256-<hex>" followed
// by ".imgpkg", ".image-locations.imgpkg" (imgpkg's and ferry's), or
// ".sig", ".att", ".sbom" (cosign's), or "sha256-<hex>" alone, the index
// of an image's referrers on a registry without the referrers API (the
// distribution spec's tag schema, which go-containerregistry keeps and
// ferry reads). Such a tag belongs to whatever manifest its digest names,
// whoever wrote it, so a tag chosen by a person (an original tag) that has
// this shape could move another image's.
func NamesADigest(tag string) bool {
	if isCosignTag(tag) || isReferrersTag(tag) {
		return true
	}
	rest, ok := strings.CutSuffix(tag, Suffix)
	if !ok {
		return false
	}
	rest = strings.TrimSuffix(rest, strings.TrimSuffix(locationsSuffix, Suffix))
	i := strings.LastIndex(rest, "sha256-")
	if i < 0 || (i > 0 && rest[i-1] != '-') {
		return false
	}
	hex := rest[i+len("sha256-"):]
	return len(hex) == 64 && isLowerHex(hex)
}
