package testregistry

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// PagedLinks is how a PagedReferrers registry links its pages.
type PagedLinks int

const (
	// LinksEnd: the last page has no rel="next" link.
	LinksEnd PagedLinks = iota
	// LinksLoop: the last page links back to the first.
	LinksLoop
	// LinksEndless: every page links to a new one, past the end empty.
	LinksEndless
)

// PagedReferrers is go-containerregistry's registry with the OCI 1.1
// referrers API, whose referrers answers come in pages of PageSize
// descriptors linked by `Link: <...>; rel="next"` headers, as the
// distribution spec lets a registry answer a list that does not fit in
// one response. Each page is a slice of the registry's own whole answer.
type PagedReferrers struct {
	*Registry
	// PageSize is how many descriptors a page lists.
	PageSize int

	mu    sync.Mutex
	links PagedLinks
}

// NewPagedReferrers starts a PagedReferrers registry on loopback.
func NewPagedReferrers(t testing.TB, pageSize int) *PagedReferrers {
	t.Helper()
	p := &PagedReferrers{PageSize: pageSize}
	inner := ggcrregistry.New(ggcrregistry.WithReferrersSupport(true), ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if kind, _, _ := classify(r.URL.Path); kind != KindReferrers || r.Method != http.MethodGet {
			inner.ServeHTTP(w, r)
			return
		}
		p.serve(w, r, inner)
	})
	p.Registry = start(t, options{}, h, nil)
	return p
}

// SetLinks changes how the pages are linked from now on.
func (p *PagedReferrers) SetLinks(l PagedLinks) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.links = l
}

// serve answers page ?page=N (1 without it) of the inner registry's
// referrers answer.
func (p *PagedReferrers) serve(w http.ResponseWriter, r *http.Request, inner http.Handler) {
	page := 1
	if s := r.URL.Query().Get("page"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			http.Error(w, "bad page", http.StatusBadRequest)
			return
		}
		page = n
	}
	whole := r.Clone(r.Context())
	whole.URL.RawQuery = ""
	rec := httptest.NewRecorder()
	inner.ServeHTTP(rec, whole)
	var idx v1.IndexManifest
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &idx) != nil {
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
		return
	}
	p.mu.Lock()
	links := p.links
	p.mu.Unlock()
	// go-containerregistry lists them in no set order; pages of a
	// listing are slices of one order.
	all := idx.Manifests
	slices.SortFunc(all, func(a, b v1.Descriptor) int { return strings.Compare(a.Digest.String(), b.Digest.String()) })
	from := min((page-1)*p.PageSize, len(all))
	to := min(from+p.PageSize, len(all))
	idx.Manifests = append([]v1.Descriptor{}, all[from:to]...)
	next := 0
	switch {
	case to < len(all), links == LinksEndless:
		next = page + 1
	case links == LinksLoop:
		next = 1
	}
	if next > 0 {
		w.Header().Set("Link", fmt.Sprintf(`<%s?page=%d>; rel="next"`, r.URL.Path, next))
	}
	raw, err := json.Marshal(idx)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", string(types.OCIImageIndex))
	_, _ = w.Write(raw)
}
