package regopts

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

type rawIndex []byte

func (m rawIndex) RawManifest() ([]byte, error)        { return m, nil }
func (m rawIndex) MediaType() (types.MediaType, error) { return types.OCIImageIndex, nil }

// paddedIndex is an OCI index of exactly size bytes.
func paddedIndex(t *testing.T, size int) rawIndex {
	t.Helper()
	empty, _ := json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Annotations: map[string]string{"pad": ""}})
	b, _ := json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex,
		Annotations: map[string]string{"pad": strings.Repeat("x", size-len(empty))}})
	if len(b) != size {
		t.Fatalf("index of %d bytes, want %d", len(b), size)
	}
	return b
}

// TestManifestsAboveTheLimitAreRefused (issue 13, item 2):
// go-containerregistry reads up to 100 MiB of a manifest; ferry's
// transport refuses one above MaxManifestSize, from its Content-Length
// when the registry sends one and as soon as it passes the limit when it
// does not. A manifest of exactly MaxManifestSize bytes is read.
func TestManifestsAboveTheLimitAreRefused(t *testing.T) {
	f := &faults{next: quietRegistry(), match: isManifest(http.MethodGet)}
	host := serve(t, f)
	put := func(tag string, m rawIndex) name.Reference {
		ref, err := name.ParseReference(host + "/app:" + tag)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Put(ref, m); err != nil {
			t.Fatal(err)
		}
		return ref
	}
	atLimit := put("at", paddedIndex(t, MaxManifestSize))
	over := paddedIndex(t, MaxManifestSize+1)
	overRef := put("over", over)
	ropts, err := Options{}.RemoteOptions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Get(atLimit, ropts...); err != nil {
		t.Errorf("a manifest of exactly %d bytes: %v", MaxManifestSize, err)
	}

	_, err = remote.Get(overRef, ropts...)
	if want := fmt.Sprintf("declares %d bytes; a manifest may have at most %d", len(over), MaxManifestSize); err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "/v2/app/manifests/over") {
		t.Errorf("err = %v, want one naming the manifest and saying %q", err, want)
	}

	// Without a Content-Length (chunked), the read stops past the limit.
	f.inject = func(_ int, w http.ResponseWriter, r *http.Request) bool {
		if !strings.HasSuffix(r.URL.Path, "/over") {
			return false
		}
		w.Header().Set("Content-Type", string(types.OCIImageIndex))
		w.WriteHeader(http.StatusOK)
		for b := bytes.NewReader(over); b.Len() > 0; {
			chunk := make([]byte, 64<<10)
			n, _ := b.Read(chunk)
			w.Write(chunk[:n])
			w.(http.Flusher).Flush()
		}
		return true
	}
	f.arm()
	_, err = remote.Get(overRef, ropts...)
	if err == nil || !strings.Contains(err.Error(), "sends more than that") {
		t.Errorf("err = %v, want the chunked manifest refused", err)
	}
}

// tagListFaults serves a registry holding app:v1 whose tag list answers
// f may replace (armed), and returns the options of a client of it.
func tagListFaults(t *testing.T) (*faults, name.Reference, []remote.Option) {
	t.Helper()
	f := &faults{next: quietRegistry(), match: func(r *http.Request) bool { return strings.HasSuffix(r.URL.Path, "/tags/list") }}
	host := serve(t, f)
	ref, err := name.ParseReference(host + "/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Put(ref, paddedIndex(t, 1000)); err != nil {
		t.Fatal(err)
	}
	ropts, err := Options{}.RemoteOptions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	f.arm()
	return f, ref, ropts
}

// A tag list page is decoded whole by go-containerregistry: one that
// declares more than MaxTagPageSize, or sends more, is refused before it
// is read, naming the page; a page within the bound is listed.
func TestTagListPagesAboveTheLimitAreRefused(t *testing.T) {
	f, ref, ropts := tagListFaults(t)
	if got, err := remote.List(ref.Context(), ropts...); err != nil || len(got) != 1 {
		t.Fatalf("a page within the bound: %v, %v", got, err)
	}
	for how, chunked := range map[string]bool{"declared": false, "sent": true} {
		f.inject = func(_ int, w http.ResponseWriter, r *http.Request) bool {
			w.Header().Set("Content-Type", "application/json")
			if !chunked {
				w.Header().Set("Content-Length", fmt.Sprint(MaxTagPageSize+1))
				w.WriteHeader(http.StatusOK)
				return true
			}
			w.WriteHeader(http.StatusOK)
			w.Write([]byte(`{"name":"app","tags":["`))
			chunk := bytes.Repeat([]byte("a"), 1<<20)
			for sent := 0; sent <= MaxTagPageSize; sent += len(chunk) {
				if _, err := w.Write(chunk); err != nil {
					return true
				}
			}
			return true
		}
		_, err := remote.List(ref.Context(), ropts...)
		if err == nil || !strings.Contains(err.Error(), "tag list page") || !strings.Contains(err.Error(), "/v2/app/tags/list") {
			t.Errorf("%s: err = %v, want the page refused, named", how, err)
		}
	}
}

// A registry's headers take a few KiB; headers past MaxResponseHeaderBytes
// (a Link of megabytes, page after page, was a registry filling memory)
// fail the request rather than being read whole.
func TestHeadersAboveTheLimitAreRefused(t *testing.T) {
	f, ref, ropts := tagListFaults(t)
	for _, tc := range []struct {
		size int
		ok   bool
	}{{MaxResponseHeaderBytes / 2, true}, {MaxResponseHeaderBytes + 1, false}} {
		f.inject = func(_ int, w http.ResponseWriter, r *http.Request) bool {
			w.Header().Set("X-Padding", strings.Repeat("p", tc.size))
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"name":"app","tags":["v1"]}`))
			return true
		}
		got, err := remote.List(ref.Context(), ropts...)
		if tc.ok != (err == nil) || (err == nil && len(got) != 1) {
			t.Errorf("a header of %d bytes: %v, %v; want ok %v", tc.size, got, err, tc.ok)
		}
	}
}

// What was asked for decides how an answer is bounded, not where a
// registry's redirect led: a manifest or a tag list page redirected to
// another path is still bounded in size, and a manifest redirected to a
// blob's path is still a document, held to MinDocumentRate. Both once
// escaped: a 1000 MiB tag page read whole, a manifest trickled for ever.
func TestRedirectedDocumentsAreBoundedAsDocuments(t *testing.T) {
	inner := quietRegistry()
	const elsewhere = "/v2/team/app/blobs/sha256:" + "0000000000000000000000000000000000000000000000000000000000000000"
	var trickleManifest atomic.Bool
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method != http.MethodGet:
		case strings.HasSuffix(r.URL.Path, "/tags/list"), strings.HasSuffix(r.URL.Path, "/manifests/v1"):
			http.Redirect(w, r, elsewhere+"?was="+r.URL.Path, http.StatusTemporaryRedirect)
			return
		case r.URL.Path == elsewhere && strings.HasSuffix(r.URL.Query().Get("was"), "/tags/list"):
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", fmt.Sprint(MaxTagPageSize+1))
			w.WriteHeader(http.StatusOK)
			return
		case r.URL.Path == elsewhere && !trickleManifest.Load():
			w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
			w.Header().Set("Content-Length", fmt.Sprint(MaxManifestSize+1))
			w.WriteHeader(http.StatusOK)
			return
		case r.URL.Path == elsewhere:
			r.URL.Path = r.URL.Query().Get("was")
			trickle(inner, 20*time.Millisecond, func(string) bool { return true }).ServeHTTP(w, r)
			return
		}
		inner.ServeHTTP(w, r)
	})
	host := serve(t, h)
	ref := host + "/team/app:v1"
	pushRandom(t, ref)
	o := Options{ResponseHeaderTimeout: 300 * time.Millisecond, RetryCount: 1}
	opts, err := o.RemoteOptions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_, err = remote.List(mustRef(t, ref).Context(), opts...)
	if err == nil || !strings.Contains(err.Error(), "tag list page") {
		t.Errorf("a tag list page of %d bytes behind a redirect: %v; want it refused", MaxTagPageSize+1, err)
	}
	_, err = remote.Get(mustRef(t, ref), opts...)
	if err == nil || !strings.Contains(err.Error(), "a manifest may have at most") {
		t.Errorf("a manifest of %d bytes behind a redirect: %v; want it refused", MaxManifestSize+1, err)
	}
	trickleManifest.Store(true)
	start := time.Now()
	_, err = remote.Get(mustRef(t, ref), opts...)
	if err == nil || !strings.Contains(err.Error(), "too slowly") {
		t.Errorf("a manifest trickled behind a redirect to a blob's path: %v; want it refused as too slow", err)
	}
	if d := time.Since(start); d > 6*time.Second {
		t.Errorf("the trickled manifest took %s to fail", d)
	}
}
