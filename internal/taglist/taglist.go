// Package taglist lists a repository's tags, hiding the ones imgpkg and
// cosign write for their own bookkeeping unless asked.
package taglist

import (
	"context"
	"fmt"
	"net/url"
	"sort"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferry-dev/ferry/internal/pagination"
	"github.com/ferry-dev/ferry/internal/parallel"
	"github.com/ferry-dev/ferry/tags"
)

// Bounds of a listing; see Limits. A registry paginates its tag list with
// Link headers that it chooses: without bounds, one whose pages link back
// to an earlier page, or on to new pages for ever, keeps a listing (and an
// import's commit phase, which lists its destination's tags) running until
// memory runs out.
const (
	// DefaultMaxPages is more pages than a repository of DefaultMaxTags
	// tags needs at the page size of common registries (100 to 1000 tags).
	DefaultMaxPages = 20_000
	// DefaultMaxTags is far more tags than any repository ferry writes
	// to holds; a million short names take tens of MB.
	DefaultMaxTags = 1 << 20
	// DefaultMaxBytes bounds the names of a listing together: 800,000
	// tags of imgpkg's shape (sha256-<64 hex>.imgpkg, 78 bytes). Without
	// it, a million names of MaxTagBytes each came to a GiB, which a
	// registry listing long names on ever-new pages made ferry hold.
	DefaultMaxBytes = 64 << 20
	// MaxTagBytes bounds one listed name: the spec allows 128 bytes, some
	// registries more (ECR 300); a longer one is no tag, but a registry
	// filling memory.
	MaxTagBytes = 1024
)

// Limits bound a listing; zero values mean the defaults.
type Limits struct {
	MaxPages int
	MaxTags  int
	// MaxBytes bounds the length of the distinct names, summed.
	MaxBytes int
}

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
	// Limits bound the pages and tags read.
	Limits Limits
}

// Names returns every tag of repo, following the registry's pagination. It
// stops with an error naming the registry when a page links to a page
// already read, to another path than the tag list's or by a link longer
// than pagination.MaxLinkBytes, when a listed name is longer than
// MaxTagBytes, or when the listing passes l.MaxPages pages, l.MaxTags tags
// or l.MaxBytes bytes of names, each checked as a name is added (each page
// is bounded in bytes by the transport, regopts.MaxTagPageSize). A tag
// listed on more than one page is returned once.
func Names(ctx context.Context, p *remote.Puller, repo name.Repository, l Limits) ([]string, error) {
	if l.MaxPages <= 0 {
		l.MaxPages = DefaultMaxPages
	}
	if l.MaxTags <= 0 {
		l.MaxTags = DefaultMaxTags
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	lister, err := p.Lister(ctx, repo)
	if err != nil {
		return nil, err
	}
	var out []string
	held := 0 // bytes of the names in out
	seenTag := map[string]bool{}
	// The first page's URL is the one go-containerregistry builds; a link
	// back to it is caught when it comes round the second time.
	var seenPage pagination.Pages
	for pages := 0; lister.HasNext(); {
		page, err := lister.Next(ctx)
		if err != nil {
			return nil, err
		}
		pages++
		for _, t := range page.Tags {
			if len(t) > MaxTagBytes {
				// Some registries allow longer tags than the spec's 128
				// bytes (ECR: 300), and they are listed; none this long.
				return nil, fmt.Errorf("registry %s lists a name of %d bytes (%q…) among the tags of %s, more than the %d a tag may have here; refusing to read on", repo.RegistryStr(), len(t), t[:64], repo, MaxTagBytes)
			}
			if seenTag[t] {
				continue
			}
			seenTag[t] = true
			out = append(out, t)
			held += len(t)
			switch {
			case len(out) > l.MaxTags:
				return nil, fmt.Errorf("registry %s lists more than %d tags for %s (on %d pages); refusing to read on", repo.RegistryStr(), l.MaxTags, repo, pages)
			case held > l.MaxBytes:
				return nil, fmt.Errorf("registry %s lists tags for %s whose names come to more than %d bytes (%d tags on %d pages); refusing to read on", repo.RegistryStr(), repo, l.MaxBytes, len(out), pages)
			}
		}
		if page.Next == "" {
			continue
		}
		again, err := seenPage.Visit(page.Next)
		switch {
		case err == nil && !tagListPath(page.Next, repo):
			// The transport bounds a page by the path asked for: a page
			// elsewhere would escape it.
			return nil, fmt.Errorf("registry %s: page %d of the tag list of %s links to %s, not to the tag list; refusing to follow", repo.RegistryStr(), pages, repo, pagination.Shorten(page.Next))
		case err != nil:
			return nil, fmt.Errorf("registry %s: page %d of the tag list of %s has %w; refusing to follow", repo.RegistryStr(), pages, repo, err)
		case again:
			return nil, fmt.Errorf("registry %s: the tag list of %s loops: page %d links back to %s, already read", repo.RegistryStr(), repo, pages, pagination.Shorten(page.Next))
		case pages >= l.MaxPages:
			return nil, fmt.Errorf("registry %s lists the tags of %s on more than %d pages; refusing to read on", repo.RegistryStr(), repo, l.MaxPages)
		}
	}
	return out, nil
}

// tagListPath says whether link, a next page's URL, is repo's tag list
// (its query, which carries the registry's place in the list, aside).
func tagListPath(link string, repo name.Repository) bool {
	u, err := url.Parse(link)
	return err == nil && u.Path == "/v2/"+repo.RepositoryStr()+"/tags/list"
}

// Tag is one listed tag.
type Tag struct {
	Name   string `json:"tag"`
	Digest string `json:"digest,omitempty"`
}

// List returns repo's tags sorted by name.
func List(ctx context.Context, repo name.Repository, opts Options) ([]Tag, error) {
	puller, err := remote.NewPuller(append([]remote.Option{remote.WithContext(ctx)}, opts.Remote...)...)
	if err != nil {
		return nil, err
	}
	names, err := Names(ctx, puller, repo, opts.Limits)
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
		desc, err := puller.Head(ctx, repo.Tag(t.Name))
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
