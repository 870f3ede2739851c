package regerr

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// TestIsNotFoundAgainstARegistry asks go-containerregistry's registry for
// things that are not there, and for things it refuses to give.
func TestIsNotFoundAgainstARegistry(t *testing.T) {
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	var broken bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if broken && r.URL.Path != "/v2/" {
			http.Error(w, "denied", http.StatusForbidden)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	ctx := context.Background()
	opts := []remote.Option{remote.WithContext(ctx)}

	repo, err := name.NewRepository(host + "/app")
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(100, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(repo.Tag("v1"), img, opts...); err != nil {
		t.Fatal(err)
	}

	_, headErr := remote.Head(repo.Tag("missing"), opts...)
	_, getErr := remote.Get(repo.Tag("missing"), opts...)
	_, listErr := remote.List(mustRepo(t, host+"/nothing-here"), opts...)
	for what, err := range map[string]error{"HEAD of a missing tag": headErr, "GET of a missing tag": getErr, "tags of a missing repository": listErr} {
		if !IsNotFound(err) {
			t.Errorf("%s: IsNotFound(%v) = false", what, err)
		}
		if !IsNotFound(fmt.Errorf("wrapped: %w", err)) {
			t.Errorf("%s, wrapped: IsNotFound = false", what)
		}
	}
	if _, err := remote.Head(repo.Tag("v1"), opts...); err != nil || IsNotFound(err) {
		t.Errorf("HEAD of a tag that exists: %v", err)
	}

	broken = true
	_, err = remote.Head(repo.Tag("missing"), opts...)
	if err == nil || IsNotFound(err) {
		t.Errorf("403 from the registry: IsNotFound(%v) = true, want false", err)
	}
}

func mustRepo(t *testing.T, s string) name.Repository {
	t.Helper()
	r, err := name.NewRepository(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// Codes under a status other than 404, as some registries send them.
func TestIsNotFoundByCode(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&transport.Error{StatusCode: http.StatusBadRequest, Errors: []transport.Diagnostic{{Code: transport.ManifestUnknownErrorCode}}}, true},
		{&transport.Error{StatusCode: http.StatusForbidden, Errors: []transport.Diagnostic{{Code: transport.NameUnknownErrorCode}}}, true},
		{&transport.Error{StatusCode: http.StatusUnauthorized, Errors: []transport.Diagnostic{{Code: transport.UnauthorizedErrorCode}}}, false},
		{&transport.Error{StatusCode: http.StatusInternalServerError}, false},
		{errors.New("dial tcp: connection refused"), false},
		{nil, false},
	} {
		if got := IsNotFound(tc.err); got != tc.want {
			t.Errorf("IsNotFound(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// A manifest's GET that the registry redirects elsewhere (a CDN, storage),
// where it is not found, is still about a manifest: what was asked for
// decides, not where the redirect led. A plain 404 without the registry's
// code once read as a blob's there.
func TestIsManifestNotFoundGoesByWhatWasAsked(t *testing.T) {
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/manifests/") && r.Method == http.MethodGet {
			http.Redirect(w, r, "/storage/blobs/x", http.StatusTemporaryRedirect)
			return
		}
		if strings.HasPrefix(r.URL.Path, "/storage/") {
			http.NotFound(w, r)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	defer srv.Close()
	repo := mustRepo(t, strings.TrimPrefix(srv.URL, "http://")+"/app")
	_, err := remote.Get(repo.Tag("gone"))
	if !IsManifestNotFound(err) {
		t.Errorf("a manifest GET redirected to storage that answers 404: IsManifestNotFound(%v) = false", err)
	}
}
