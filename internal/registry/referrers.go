package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/internal/pagination"
)

// Bounds of a referrers listing; see ReferrersLimits. A registry that
// cannot fit the list in one answer splits it into pages linked by
// `Link: <...>; rel="next"` headers, which it chooses: without bounds, one
// whose pages link back to an earlier one, or on to new ones for ever,
// keeps a listing going until memory runs out, as a tag list would.
const (
	// DefaultMaxReferrerPages is far more pages than DefaultMaxReferrers
	// descriptors take at any page size a registry uses.
	DefaultMaxReferrerPages = 1000
	// DefaultMaxReferrers is far more artifacts than anything carries
	// about one image; each costs a manifest fetch.
	DefaultMaxReferrers = 10_000
	// MaxReferrersPage bounds one page in bytes: the distribution spec has
	// a registry page a list that does not fit in a manifest's 4 MiB.
	MaxReferrersPage = 4 << 20
)

// ReferrersLimits bound a listing; zero values mean the defaults.
type ReferrersLimits struct {
	MaxPages     int
	MaxReferrers int
}

// Referrers lists the manifests whose subject is d: every page of the
// registry's referrers API (GET /v2/<name>/referrers/<digest>, following
// rel="next" links), or, where the registry has no such API (it answers
// 404, 400 or 406, or with something else than an image index), the
// descriptors of the "sha256-<hex>" tag-schema index, none if that tag is
// not there. The descriptors are the registry's word: the caller checks
// each manifest's subject once it has it.
//
// It stops with an error naming the registry when a page links to one
// already read (known by a key of fixed size: pagination.Pages), to
// another host, or by a link longer than pagination.MaxLinkBytes, or when
// the listing passes l.MaxPages pages or l.MaxReferrers descriptors.
func (r *Repo) Referrers(ctx context.Context, d v1.Hash, l ReferrersLimits) ([]v1.Descriptor, error) {
	if l.MaxPages <= 0 {
		l.MaxPages = DefaultMaxReferrerPages
	}
	if l.MaxReferrers <= 0 {
		l.MaxReferrers = DefaultMaxReferrers
	}
	what := "referrers of " + r.name.Name() + "@" + d.String()
	u := r.url("/referrers/" + d.String())
	var out []v1.Descriptor
	var seen pagination.Pages
	seen.Visit(u.String()) //nolint:errcheck // a URL of ours, short
	for pages := 1; ; pages++ {
		descs, next, ok, err := r.referrersPage(ctx, u, pages == 1)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", what, err)
		}
		if !ok {
			return r.referrersFallback(ctx, d)
		}
		out = append(out, descs...)
		switch {
		case len(out) > l.MaxReferrers:
			return nil, fmt.Errorf("list %s: registry %s lists more than %d referrers (after %d pages); refusing to read on", what, r.name.RegistryStr(), l.MaxReferrers, pages)
		case next == nil:
			return out, nil
		case next.Host != u.Host || next.Scheme != u.Scheme:
			return nil, fmt.Errorf("list %s: registry %s links page %d to %s, on another server; refusing to follow", what, r.name.RegistryStr(), pages+1, pagination.Shorten(next.Redacted()))
		}
		again, err := seen.Visit(next.String())
		switch {
		case err != nil:
			return nil, fmt.Errorf("list %s: registry %s: page %d has %w; refusing to follow", what, r.name.RegistryStr(), pages, err)
		case again:
			return nil, fmt.Errorf("list %s: registry %s: the list loops: page %d links back to %s, already read", what, r.name.RegistryStr(), pages, pagination.Shorten(next.Redacted()))
		case pages >= l.MaxPages:
			return nil, fmt.Errorf("list %s: registry %s lists them on more than %d pages; refusing to read on", what, r.name.RegistryStr(), l.MaxPages)
		}
		u = next
	}
}

// referrersPage reads one page of a referrers listing at u: its
// descriptors and the next page's URL (nil on the last). ok is false when
// the first page says the registry has no referrers API.
func (r *Repo) referrersPage(ctx context.Context, u *url.URL, first bool) (descs []v1.Descriptor, next *url.URL, ok bool, err error) {
	resp, err := r.do(ctx, http.MethodGet, u, nil, 0, http.Header{"Accept": {string(types.OCIImageIndex)}})
	if err != nil {
		return nil, nil, false, err
	}
	defer drain(resp)
	if err := transport.CheckError(resp, http.StatusOK, http.StatusNotFound, http.StatusBadRequest, http.StatusNotAcceptable); err != nil {
		return nil, nil, false, err
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if resp.StatusCode != http.StatusOK || types.MediaType(mt) != types.OCIImageIndex {
		if first {
			return nil, nil, false, nil
		}
		return nil, nil, false, fmt.Errorf("page %s: %s, %q: not an image index", u.Redacted(), resp.Status, mt)
	}
	if resp.ContentLength > MaxReferrersPage {
		return nil, nil, false, fmt.Errorf("page %s: the registry says it is %d bytes, more than the %d a page may have", u.Redacted(), resp.ContentLength, MaxReferrersPage)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, MaxReferrersPage+1))
	if err != nil {
		return nil, nil, false, err
	}
	if len(raw) > MaxReferrersPage {
		return nil, nil, false, fmt.Errorf("page %s: more than the %d bytes a page may have", u.Redacted(), MaxReferrersPage)
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(raw, &idx); err != nil {
		return nil, nil, false, fmt.Errorf("page %s: %w", u.Redacted(), err)
	}
	next, err = nextLink(resp)
	if err != nil {
		return nil, nil, false, fmt.Errorf("page %s: %w", u.Redacted(), err)
	}
	return idx.Manifests, next, true, nil
}

// nextLink returns the URL of the Link header's rel="next" target,
// resolved against the request's URL, or nil.
func nextLink(resp *http.Response) (*url.URL, error) {
	for _, h := range resp.Header.Values("Link") {
		for _, link := range strings.Split(h, ",") {
			target, params, found := strings.Cut(strings.TrimSpace(link), ";")
			if !found || !strings.HasPrefix(target, "<") || !strings.HasSuffix(target, ">") {
				continue
			}
			isNext := false
			for _, p := range strings.Split(params, ";") {
				k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
				if strings.EqualFold(k, "rel") && slices.ContainsFunc(strings.Fields(strings.Trim(v, `"`)), isNextRel) {
					isNext = true
				}
			}
			if !isNext {
				continue
			}
			u, err := url.Parse(target[1 : len(target)-1])
			if err != nil {
				return nil, fmt.Errorf("its Link header: %w", err)
			}
			return resp.Request.URL.ResolveReference(u), nil
		}
	}
	return nil, nil
}

// isNextRel reports whether a relation type is "next" (they are
// case-insensitive, RFC 8288).
func isNextRel(rel string) bool { return strings.EqualFold(rel, "next") }

// referrersFallback reads the referrers tag-schema index "sha256-<hex>" of
// a registry without the referrers API.
func (r *Repo) referrersFallback(ctx context.Context, d v1.Hash) ([]v1.Descriptor, error) {
	tag := d.Algorithm + "-" + d.Hex
	raw, mt, _, err := r.GetManifest(ctx, tag, MaxReferrersPage)
	if te := (*transport.Error)(nil); errors.As(err, &te) && te.StatusCode == http.StatusNotFound {
		return nil, nil // nothing refers to d yet
	}
	if err != nil {
		return nil, fmt.Errorf("list referrers of %s@%s by its fallback tag: %w", r.name.Name(), d, err)
	}
	if !mt.IsIndex() {
		return nil, fmt.Errorf("list referrers of %s@%s: its fallback tag %s is %s, not an image index", r.name.Name(), d, r.ref(tag), mt)
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(raw, &idx); err != nil {
		return nil, fmt.Errorf("list referrers of %s@%s: its fallback tag %s: %w", r.name.Name(), d, r.ref(tag), err)
	}
	return idx.Manifests, nil
}
