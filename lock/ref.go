package lock

import (
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
)

// NormalizeDigestRef parses s, which must be a digest reference
// (repo@sha256:…), and returns it in the fully qualified form imgpkg compares
// and copies by: "nginx@sha256:…" becomes
// "index.docker.io/library/nginx@sha256:…". The returned Digest's String()
// is that normalised form too. A tag reference is an error, because a lock
// that names a tag does not pin the image it will copy.
//
// Like imgpkg (which uses name.NewDigest), a reference carrying both a tag
// and a digest ("repo:tag@sha256:…") is accepted and the tag is dropped.
func NormalizeDigestRef(s string) (name.Digest, error) {
	if s == "" {
		return name.Digest{}, fmt.Errorf("empty image reference")
	}
	ref, err := name.ParseReference(s, name.WeakValidation)
	if err != nil {
		return name.Digest{}, fmt.Errorf("malformed image reference %q: %w", s, err)
	}
	d, ok := ref.(name.Digest)
	if !ok {
		return name.Digest{}, fmt.Errorf("image reference %q is a tag, not a digest reference (repo@sha256:…)", s)
	}
	// Parse again so that String() returns the normalised name instead of
	// the text the user wrote; Name() is already normalised.
	n, err := name.NewDigest(d.Name(), name.WeakValidation)
	if err != nil {
		return name.Digest{}, fmt.Errorf("normalise image reference %q: %w", s, err)
	}
	return n, nil
}
