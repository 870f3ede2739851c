package regopts

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/crypto/bcrypt"

	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
)

// quietRegistry is go-containerregistry's in-process registry without its
// request log.
func quietRegistry() http.Handler {
	return registry.New(registry.Logger(log.New(io.Discard, "", 0)))
}

// faults sits in front of a real registry and lets a test answer some of the
// requests itself (an error status, a dropped connection, a stall); every
// other request reaches the registry untouched.
type faults struct {
	next http.Handler
	// match selects the requests the test is interested in.
	match func(*http.Request) bool
	// inject sees the n-th (1-based) matching request; it returns true when
	// it answered the request itself.
	inject func(n int, w http.ResponseWriter, r *http.Request) bool

	// armed is off while a test seeds the registry.
	armed atomic.Bool

	mu   sync.Mutex
	hits []time.Time
}

// arm starts injecting; requests before it pass untouched and uncounted.
func (f *faults) arm() { f.armed.Store(true) }

func (f *faults) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f.armed.Load() && f.match != nil && f.match(r) {
		f.mu.Lock()
		f.hits = append(f.hits, time.Now())
		n := len(f.hits)
		f.mu.Unlock()
		if f.inject != nil && f.inject(n, w, r) {
			return
		}
	}
	f.next.ServeHTTP(w, r)
}

func (f *faults) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.hits)
}

func (f *faults) times() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.hits...)
}

// recorder notes the Authorization and User-Agent headers of every request
// before passing it on.
type recorder struct {
	next http.Handler

	mu     sync.Mutex
	auths  []string
	agents []string
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec.mu.Lock()
	if a := r.Header.Get("Authorization"); a != "" {
		rec.auths = append(rec.auths, a)
	}
	rec.agents = append(rec.agents, r.Header.Get("User-Agent"))
	rec.mu.Unlock()
	rec.next.ServeHTTP(w, r)
}

func (rec *recorder) authorizations() []string {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]string(nil), rec.auths...)
}

func (rec *recorder) userAgents() []string {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]string(nil), rec.agents...)
}

// serve starts h on loopback and returns the server's host:port.
func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// htpasswdRegistry starts the CNCF distribution registry with htpasswd auth
// accepting only user:pass, behind a header recorder.
func htpasswdRegistry(t *testing.T, user, pass string) (string, *recorder) {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	htpasswd := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(htpasswd, []byte(user+":"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := &configuration.Configuration{
		Storage: configuration.Storage{"inmemory": configuration.Parameters{}},
		Auth: configuration.Auth{"htpasswd": configuration.Parameters{
			"realm": "ferry-test",
			"path":  htpasswd,
		}},
	}
	cfg.Log.AccessLog.Disabled = true
	cfg.HTTP.Secret = "ferry-test-secret"
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	rec := &recorder{next: handlers.NewApp(ctx, cfg)}
	return serve(t, rec), rec
}

// pushRandom writes a small random image to ref with plain
// go-containerregistry options and returns the sha256 of its manifest bytes,
// computed here rather than taken from the registry.
func pushRandom(t *testing.T, ref string, opts ...remote.Option) v1.Hash {
	t.Helper()
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img, opts...); err != nil {
		t.Fatalf("seed %s: %v", ref, err)
	}
	raw, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(raw)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}

// head resolves ref with o's options, as every ferry command will.
func head(t *testing.T, ctx context.Context, ref string, o Options) (*v1.Descriptor, error) {
	t.Helper()
	r, err := name.ParseReference(ref, o.NameOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	opts, err := o.RemoteOptions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return remote.Head(r, opts...)
}

// hermeticDockerConfig points the Docker keychain at an empty home, with
// auths (registry → "user:pass") in its config.json when given.
func hermeticDockerConfig(t *testing.T, auths map[string]string) {
	t.Helper()
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
	t.Setenv("XDG_RUNTIME_DIR", "")
	t.Setenv("REGISTRY_AUTH_FILE", "")
	dir := filepath.Join(home, ".docker")
	t.Setenv("DOCKER_CONFIG", dir)
	if len(auths) == 0 {
		return
	}
	var b strings.Builder
	b.WriteString(`{"auths":{`)
	first := true
	for host, userPass := range auths {
		if !first {
			b.WriteString(",")
		}
		first = false
		b.WriteString(`"` + host + `":{"auth":"` + basicValue(userPass) + `"}`)
	}
	b.WriteString("}}")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

// basicValue is the base64 of "user:pass", as in a Basic header or a Docker
// config "auth" field; built with the standard library so the expectation
// does not come from go-containerregistry's own encoding.
func basicValue(userPass string) string {
	return base64.StdEncoding.EncodeToString([]byte(userPass))
}
