package regopts

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

func TestExplainDenied(t *testing.T) {
	denied := func(_ int, w http.ResponseWriter, _ *http.Request) bool {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		_, _ = io.WriteString(w, `{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}`)
		return true
	}
	f := &faults{next: quietRegistry(), match: isManifest(http.MethodGet), inject: denied}
	host := serve(t, f)
	f.arm()
	ref := host + "/team/app:v1"

	r, err := name.ParseReference(ref, Options{}.NameOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	opts, err := fast(1).RemoteOptions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_, err = remote.Get(r, opts...)
	explained := Options{}.Explain(err, ref)
	msg := explained.Error()
	for _, want := range []string{"registry " + host + " refused access for " + ref, "--registry-username", "docker login " + host} {
		if !strings.Contains(msg, want) {
			t.Errorf("Explain = %q, missing %q", msg, want)
		}
	}
	var te *transport.Error
	if !errors.As(explained, &te) || te.StatusCode != http.StatusForbidden {
		t.Errorf("Explain lost the 403 transport.Error: %v", explained)
	}
}

func TestExplainConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := ln.Addr().String()
	ln.Close() // nothing listens there any more

	ref := host + "/app:v1"
	_, err = head(t, context.Background(), ref, fast(3))
	if err == nil {
		t.Fatal("Head against a closed port succeeded")
	}
	explained := Options{}.Explain(err, ref)
	if want := "cannot reach registry " + host; !strings.Contains(explained.Error(), want) {
		t.Errorf("Explain = %q, want it to contain %q", explained, want)
	}
	if !errors.Is(explained, syscall.ECONNREFUSED) {
		t.Errorf("Explain lost ECONNREFUSED: %v", explained)
	}
}

func TestExplainLeavesOtherErrorsAlone(t *testing.T) {
	if (Options{}).Explain(nil, "example.com/a:b") != nil {
		t.Error("Explain(nil) != nil")
	}
	other := errors.New("manifest has no layers")
	if got := (Options{}).Explain(other, "example.com/a:b"); got != other {
		t.Errorf("Explain(%v) = %v, want it unchanged", other, got)
	}
	notFound := &transport.Error{StatusCode: http.StatusNotFound}
	if got := (Options{}).Explain(notFound, "example.com/a:b"); got != error(notFound) {
		t.Errorf("Explain(404) = %v, want it unchanged", got)
	}
}

func TestExplainNamesDockerHubForShortNames(t *testing.T) {
	err := &transport.Error{StatusCode: http.StatusUnauthorized}
	msg := Options{}.Explain(err, "library/nginx:1.27").Error()
	if want := "registry " + name.DefaultRegistry + " refused"; !strings.Contains(msg, want) {
		t.Errorf("Explain = %q, want it to contain %q", msg, want)
	}
}

func TestNameOptions(t *testing.T) {
	const ref = "registry.example.com/team/app:v1"
	secure, err := name.ParseReference(ref, Options{}.NameOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	if got := secure.Context().Scheme(); got != "https" {
		t.Errorf("scheme without --registry-insecure = %s, want https", got)
	}
	insecure, err := name.ParseReference(ref, Options{Insecure: true}.NameOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	if got := insecure.Context().Scheme(); got != "http" {
		t.Errorf("scheme with --registry-insecure = %s, want http", got)
	}
	repo, err := name.NewRepository("registry.example.com/team/app", Options{Insecure: true}.NameOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	if repo.Scheme() != "http" || repo.RepositoryStr() != "team/app" {
		t.Errorf("repository %s (%s), want team/app over http", repo, repo.Scheme())
	}
}

func TestExplainSaysItOnce(t *testing.T) {
	err := &transport.Error{StatusCode: http.StatusUnauthorized}
	once := Options{}.Explain(err, "example.com/a:b")
	twice := Options{}.Explain(once, "example.com/a:b")
	if twice.Error() != once.Error() {
		t.Errorf("explaining twice changed the message:\n%s\n%s", once, twice)
	}
}

// A failure names what the failing request asked for when that is not
// what the command was given (a locked image of a bundle, a blob), and
// only the reference given when the request was about it.
func TestExplainNamesWhatTheRefusedRequestAskedFor(t *testing.T) {
	refused := func(u string) error {
		req, err := http.NewRequest(http.MethodGet, u, nil)
		if err != nil {
			t.Fatal(err)
		}
		return &transport.Error{StatusCode: http.StatusUnauthorized, Request: req}
	}
	d := "sha256:" + strings.Repeat("ab", 32)
	for _, c := range []struct{ url, ref, want string }{
		{"https://b.example/v2/lib/img/manifests/" + d, "bundle a.example/app/bundle:v1",
			" for b.example/lib/img@" + d + " (reached through bundle a.example/app/bundle:v1): "},
		{"https://a.example/v2/lib/img/manifests/v2", "a.example/app:v1",
			" for a.example/lib/img:v2 (reached through a.example/app:v1): "},
		{"https://a.example/v2/app/blobs/" + d, "a.example/app:v1", " for a.example/app:v1: "},
		{"https://a.example/v2/app/manifests/" + d, "bundle a.example/app:v1", " for bundle a.example/app:v1: "},
		// A repository whose name begins with the given one's is another.
		{"https://a.example/v2/app-x/blobs/" + d, "a.example/app:v1",
			" for blob " + d + " of a.example/app-x (reached through a.example/app:v1): "},
		{"https://a.example/token?scope=x", "a.example/app:v1", " for a.example/app:v1: "},
		// Docker Hub's short names are its repositories as requested.
		{"https://index.docker.io/v2/me/app/manifests/v1", "me/app:v1", " for me/app:v1: "},
		{"https://index.docker.io/v2/library/nginx/manifests/1.27", "push nginx:1.27", " for push nginx:1.27: "},
		// A mirror whose host ends with the registry's is another registry.
		{"https://gcr.io/v2/lib/nginx/manifests/1", "mirror.gcr.io/lib/nginx:1",
			" for gcr.io/lib/nginx:1 (reached through mirror.gcr.io/lib/nginx:1): "},
		// A repository whose path holds "blobs".
		{"https://a.example/v2/x/blobs/y/blobs/" + d, "a.example/x/blobs/y:v1", " for a.example/x/blobs/y:v1: "},
	} {
		msg := Options{}.Explain(refused(c.url), c.ref).Error()
		if !strings.Contains(msg, "refused access"+c.want) {
			t.Errorf("%s for %s: %q, want it to contain %q", c.url, c.ref, msg, "refused access"+c.want)
		}
	}
}
