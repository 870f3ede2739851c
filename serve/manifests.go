package serve

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/relocate"
	"github.com/ferry-dev/ferry/tags"
)

// manifest answers GET and HEAD of /v2/<name>/manifests/<tag or digest>,
// from memory: the head was verified when the archive was opened.
func (r *Registry) manifest(w http.ResponseWriter, req *http.Request, repo *relocate.ViewRepository, ref string) *regError {
	var d v1.Hash
	if strings.Contains(ref, ":") {
		var rerr *regError
		if d, rerr = parseDigest(ref); rerr != nil {
			return rerr
		}
		if !repo.Manifests[d] {
			return newError(http.StatusNotFound, codeManifestUnknown, "manifest %s is not in %s", d, repo.Name)
		}
	} else {
		var ok bool
		if d, ok = repo.Tags[ref]; !ok || !tags.Valid(ref) {
			return newError(http.StatusNotFound, codeManifestUnknown, "%s has no tag %s", repo.Name, echoed(ref))
		}
	}
	m := r.view.Manifests[d]
	h := w.Header()
	h.Set("Content-Type", string(m.MediaType))
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Content-Length", strconv.Itoa(len(m.Raw)))
	h.Set("ETag", `"`+d.String()+`"`)
	if notModified(w, req, d) {
		return nil
	}
	w.WriteHeader(http.StatusOK)
	if req.Method == http.MethodGet {
		w.Write(m.Raw)
	}
	return nil
}

// notModified answers 304, without a body, when req's If-None-Match names
// d's ETag (weakly, RFC 9110 13.1.2) or is "*", as http.ServeContent does
// for the blobs it serves.
func notModified(w http.ResponseWriter, req *http.Request, d v1.Hash) bool {
	etag := `"` + d.String() + `"`
	for _, v := range req.Header.Values("If-None-Match") {
		for _, t := range strings.Split(v, ",") {
			t = strings.TrimPrefix(strings.Trim(t, " \t"), "W/")
			if t == "*" || t == etag {
				h := w.Header()
				h.Del("Content-Type")
				h.Del("Content-Length")
				w.WriteHeader(http.StatusNotModified)
				return true
			}
		}
	}
	return false
}

// tagList answers /v2/<name>/tags/list, with n and last.
func (r *Registry) tagList(w http.ResponseWriter, req *http.Request, repo *relocate.ViewRepository) *regError {
	page, next, rerr := paginate(r.tags[repo.Name], req.URL.Query())
	if rerr != nil {
		return rerr
	}
	if next != "" {
		w.Header().Set("Link", nextLink(req.URL.Path, len(page), next))
	}
	return writeJSON(w, req, "application/json", struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}{repo.Name, page})
}

// catalog answers /v2/_catalog, with n and last.
func (r *Registry) catalog(w http.ResponseWriter, req *http.Request) *regError {
	page, next, rerr := paginate(r.repos, req.URL.Query())
	if rerr != nil {
		return rerr
	}
	if next != "" {
		w.Header().Set("Link", nextLink(req.URL.Path, len(page), next))
	}
	return writeJSON(w, req, "application/json", struct {
		Repositories []string `json:"repositories"`
	}{page})
}

// referrers answers /v2/<name>/referrers/<digest>: an OCI index of the
// manifests of the repository whose subject is digest, filtered by
// artifactType when asked. An unknown subject has no referrers, which is
// not an error.
func (r *Registry) referrers(w http.ResponseWriter, req *http.Request, repo *relocate.ViewRepository, ref string) *regError {
	d, rerr := parseDigest(ref)
	if rerr != nil {
		return rerr
	}
	list := []v1.Descriptor{}
	at := req.URL.Query().Get("artifactType")
	for _, desc := range repo.Referrers[d] {
		if at == "" || desc.ArtifactType == at {
			list = append(list, desc)
		}
	}
	if at != "" {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	return writeJSON(w, req, string(types.OCIImageIndex), v1.IndexManifest{
		SchemaVersion: 2,
		MediaType:     types.OCIImageIndex,
		Manifests:     list,
	})
}

// paginate returns the part of sorted that n and last ask for, and the
// last item returned when more follow.
func paginate(sorted []string, q url.Values) (page []string, next string, rerr *regError) {
	if last := q.Get("last"); last != "" {
		sorted = sorted[sort.SearchStrings(sorted, last):]
		if len(sorted) > 0 && sorted[0] == last {
			sorted = sorted[1:]
		}
	}
	page = sorted
	if s := q.Get("n"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return nil, "", newError(http.StatusBadRequest, codePaginationInvalid, "n=%s is not a number of entries", echoed(s))
		}
		if n < len(sorted) {
			page = sorted[:n]
			if n > 0 {
				next = page[n-1]
			}
		}
	}
	if page == nil {
		page = []string{}
	}
	return page, next, nil
}

// nextLink is the Link header pointing at the page of n entries after
// last.
func nextLink(path string, n int, last string) string {
	next := url.Values{}
	next.Set("n", strconv.Itoa(n))
	next.Set("last", last)
	return fmt.Sprintf(`<%s?%s>; rel="next"`, path, next.Encode())
}

// writeJSON answers v as JSON (its headers only for HEAD).
func writeJSON(w http.ResponseWriter, req *http.Request, contentType string, v any) *regError {
	b, err := json.Marshal(v)
	if err != nil {
		return newError(http.StatusInternalServerError, codeUnknown, "%v", err)
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	if req.Method == http.MethodGet {
		w.Write(b)
	}
	return nil
}
