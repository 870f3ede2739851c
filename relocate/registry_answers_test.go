package relocate_test

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"

	"github.com/ferry-dev/ferry/internal/registry"
	"github.com/ferry-dev/ferry/internal/testregistry"
	"github.com/ferry-dev/ferry/relocate"
)

// answering is go-containerregistry's registry behind hook, which answers
// the requests it returns true for in the registry's place: a registry, or
// a proxy in front of one, that answers wrong.
type answering struct {
	ep    testregistry.Endpoint
	inner http.Handler
}

func newAnswering(t *testing.T, hook func(w http.ResponseWriter, r *http.Request) bool) *answering {
	t.Helper()
	a := &answering{inner: ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !hook(w, r) {
			a.inner.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	u := impMust(url.Parse(srv.URL))
	a.ep = testregistry.Endpoint{Host: u.Host, URL: srv.URL}
	return a
}

func (a *answering) importInto(t *testing.T, archive io.Reader) error {
	t.Helper()
	repo := impMust(name.NewRepository(a.ep.Repo("dst/imported")))
	_, err := relocate.Import(context.Background(), archive, repo, relocate.ImportOptions{DestinationOptions: relocate.DestinationOptions{
		Remote: a.ep.RemoteOptions(t),
		Client: registry.New(a.ep.ClientOptions()),
	}})
	return err
}

// tag asks the registry itself, past the hook, what tag points to.
func (a *answering) tag(tag string) string {
	rec := httptest.NewRecorder()
	a.inner.ServeHTTP(rec, httptest.NewRequest(http.MethodHead, "/v2/dst/imported/manifests/"+tag, nil))
	return rec.Header().Get("Docker-Content-Digest")
}

// A destination that answers 200 to every blob HEAD, saying nothing of the
// blob, does not make an import skip blobs and tag what it lacks: such an
// answer vouches for nothing, every blob is sent, and the registry holds
// them all under v1.
func TestImportDoesNotBelieveABlobHEADThatSaysNothing(t *testing.T) {
	src := impNewSource(t, 0)
	archive := src.export(t)
	for _, via := range impVias {
		t.Run(via.name, func(t *testing.T) {
			dst := newAnswering(t, func(w http.ResponseWriter, r *http.Request) bool {
				if r.Method == http.MethodHead && strings.Contains(r.URL.Path, "/blobs/") {
					w.WriteHeader(http.StatusOK)
					return true
				}
				return false
			})
			if err := dst.importInto(t, via.open(archive)); err != nil {
				t.Fatalf("import: %v", err)
			}
			for d := range src.blobs(t) {
				rec := httptest.NewRecorder()
				dst.inner.ServeHTTP(rec, httptest.NewRequest(http.MethodHead, "/v2/dst/imported/blobs/"+d.String(), nil))
				if rec.Code != http.StatusOK {
					t.Errorf("blob %s: the registry answers %d: never sent", d, rec.Code)
				}
			}
			if got, want := dst.tag("v1"), impMust(src.root.Digest()).String(); got != want {
				t.Errorf("v1 is %q, want %s", got, want)
			}
		})
	}
}

// A destination that redirects manifest PUTs to a page answering GET with
// 200 (a login page) gets an import that fails naming the redirect, not
// one that reports the tags written.
func TestImportRefusesARedirectedManifestPUT(t *testing.T) {
	src := impNewSource(t, 0)
	archive := src.export(t)
	dst := newAnswering(t, func(w http.ResponseWriter, r *http.Request) bool {
		switch {
		case r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/"):
			http.Redirect(w, r, "/login", http.StatusFound)
			return true
		case r.URL.Path == "/login":
			_, _ = io.WriteString(w, "<html>please log in</html>")
			return true
		}
		return false
	})
	err := dst.importInto(t, impVias[0].open(archive))
	if err == nil || !strings.Contains(err.Error(), "302 Found") || !strings.Contains(err.Error(), "/login") {
		t.Errorf("import: %v; want an error naming the redirect", err)
	}
	if got := dst.tag("v1"); got != "" {
		t.Errorf("v1 written: %s", got)
	}
}

// A proxy in front of a registry that does not check a manifest's blobs
// (go-containerregistry's) drops every blob PUT and answers 202: the
// import fails, naming the blob it was told was stored, and writes no
// tag, though every manifest PUT would have been accepted.
func TestImportConfirmsABlobPUTAnswered202(t *testing.T) {
	src := impNewSource(t, 0)
	archive := src.export(t)
	for _, via := range impVias {
		t.Run(via.name, func(t *testing.T) {
			dst := impNewDest(t, true)
			dst.proxy.SetRules(testregistry.Rule{Method: http.MethodPut, Kind: testregistry.KindUpload, Fault: testregistry.FaultStatus, Status: http.StatusAccepted})
			_, err := relocate.Import(context.Background(), via.open(archive), dst.repo, dst.options(t))
			if err == nil || !strings.Contains(err.Error(), "does not hold blob sha256:") || !strings.Contains(err.Error(), "202") {
				t.Errorf("import through PUTs answered 202 and dropped: %v; want an error naming a blob the registry does not hold", err)
			}
			if tags := dst.tags(t); len(tags) != 0 {
				t.Errorf("tags written over blobs never stored: %v", tags)
			}
		})
	}
}
