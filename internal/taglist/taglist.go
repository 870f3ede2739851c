// Package taglist lists a repository's tags, hiding the ones imgpkg and
// cosign write for their own bookkeeping unless asked.
package taglist

import (
	"context"
	"fmt"
	"sort"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferry-dev/ferry/internal/parallel"
	"github.com/ferry-dev/ferry/tags"
)

// Options control a listing.
type Options struct {
	// Digests also resolves every tag to the digest it points at.
	Digests bool
	// Internal includes imgpkg's and cosign's internal tags.
	Internal bool
	// Concurrency bounds the digest look-ups (default 8).
	Concurrency int
	// Remote configures registry access.
	Remote []remote.Option
}

// Tag is one listed tag.
type Tag struct {
	Name   string `json:"tag"`
	Digest string `json:"digest,omitempty"`
}

// List returns repo's tags sorted by name.
func List(ctx context.Context, repo name.Repository, opts Options) ([]Tag, error) {
	ropts := append([]remote.Option{remote.WithContext(ctx)}, opts.Remote...)
	names, err := remote.List(repo, ropts...)
	if err != nil {
		return nil, fmt.Errorf("list tags of %s: %w", repo, err)
	}
	sort.Strings(names)
	var out []Tag
	for _, n := range names {
		if !opts.Internal && tags.IsInternal(n) {
			continue
		}
		out = append(out, Tag{Name: n})
	}
	if !opts.Digests {
		return out, nil
	}
	workers := opts.Concurrency
	if workers <= 0 {
		workers = 8
	}
	err = parallel.ForEach(ctx, workers, len(out), func(ctx context.Context, i int) error {
		t := &out[i]
		desc, err := remote.Head(repo.Tag(t.Name), append([]remote.Option{remote.WithContext(ctx)}, opts.Remote...)...)
		if err != nil {
			return fmt.Errorf("resolve %s:%s: %w", repo, t.Name, err)
		}
		t.Digest = desc.Digest.String()
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
