package serve_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/archive"
	"github.com/ferry-dev/ferry/fixtures"
	"github.com/ferry-dev/ferry/internal/bundle"
	"github.com/ferry-dev/ferry/internal/push"
	"github.com/ferry-dev/ferry/internal/testregistry"
	"github.com/ferry-dev/ferry/relocate"
	"github.com/ferry-dev/ferry/serve"
)

// bigLayerSize spans three frames of the archive (4 MiB of tar each).
const bigLayerSize = 9<<20 + 12345

// source is what the tests serve: a bundle (src/bundle:v1) locking an
// image (src/app) with a small layer and a big random one, and an SBOM
// artifact whose subject is the image, exported into an archive file.
// Every digest and byte the tests expect is taken from these values.
type source struct {
	app, sbom      v1.Image
	appRef         string // as the bundle locks it
	bundleDigest   v1.Hash
	big            []byte // the big layer's bytes
	bigDigest      v1.Hash
	archive        string // the archive file
	sbomType       string
	bundleTagImage string // src/bundle:v1 at the source
}

var (
	// workDir holds what outlives one test: the source's archive.
	workDir    string
	sourceOnce sync.Once
	shared     *source
	sharedErr  error
)

func TestMain(m *testing.M) {
	var err error
	if workDir, err = os.MkdirTemp("", "ferry-serve-test-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(workDir)
	os.Exit(code)
}

// newSource builds the source once for the package's tests, which only
// read its archive. The source registry lives as long as the first test
// that asks; the archive file, as long as the package's tests.
func newSource(t *testing.T) *source {
	t.Helper()
	sourceOnce.Do(func() { shared, sharedErr = buildSource(t) })
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return shared
}

func buildSource(t *testing.T) (*source, error) {
	ctx := context.Background()
	reg := testregistry.NewGGCR(t)
	opts := []remote.Option{remote.WithContext(ctx)}
	s := &source{sbomType: "application/vnd.example.sbom.v1+json"}

	big, err := fixtures.NewLayer(7, bigLayerSize)
	if err != nil {
		return nil, err
	}
	rc, _ := big.Compressed()
	s.big, err = io.ReadAll(rc)
	if err != nil {
		return nil, err
	}
	s.bigDigest, _ = big.Digest()
	small, err := fixtures.Image(8, 1, 4096)
	if err != nil {
		return nil, err
	}
	if s.app, err = mutate.AppendLayers(small, big); err != nil {
		return nil, err
	}
	appDigest, _ := s.app.Digest()
	appRef, _ := name.NewDigest(reg.Repo("src/app") + "@" + appDigest.String())
	if err := remote.Write(appRef, s.app, opts...); err != nil {
		return nil, err
	}
	s.appRef = appRef.String()

	art := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.MediaType(s.sbomType))
	art, err = mutate.Append(art, mutate.Addendum{Layer: static.NewLayer([]byte(`{"sbom":true}`), "application/spdx+json")})
	if err != nil {
		return nil, err
	}
	appRaw, _ := s.app.RawManifest()
	appMT, _ := s.app.MediaType()
	s.sbom = mutate.Subject(art, v1.Descriptor{MediaType: appMT, Digest: appDigest, Size: int64(len(appRaw))}).(v1.Image)
	sbomDigest, _ := s.sbom.Digest()
	if err := remote.Write(appRef.Context().Digest(sbomDigest.String()), s.sbom, opts...); err != nil {
		return nil, err
	}

	dir := workDir
	bdir := filepath.Join(dir, "bundle")
	if err := fixtures.WriteBundleDir(bdir, []string{s.appRef}); err != nil {
		return nil, err
	}
	s.bundleTagImage = reg.Repo("src/bundle") + ":v1"
	tag, _ := name.NewTag(s.bundleTagImage)
	res, err := push.Push(ctx, tag, []string{bdir}, push.Options{Build: bundle.BuildOptions{Bundle: true, TempDir: dir}, Remote: opts})
	if err != nil {
		return nil, err
	}
	if s.bundleDigest, err = v1.NewHash(res.Digest); err != nil {
		return nil, err
	}
	plan, err := relocate.Resolve(ctx, relocate.Source{Bundle: s.bundleTagImage}, relocate.Options{Remote: opts, Referrers: true})
	if err != nil {
		return nil, err
	}
	s.archive = filepath.Join(dir, "release.tar.zst")
	f, err := os.Create(s.archive)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := relocate.Export(ctx, plan, f, relocate.ExportOptions{Remote: opts}); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	return s, f.Close()
}

// openFile opens an archive file for serving.
func openFile(t *testing.T, path string) *archive.File {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	af, err := archive.OpenFile(f, fi.Size(), archive.ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return af
}

// recorder is a progress.Reporter keeping what it is told.
type recorder struct {
	mu          sync.Mutex
	logs, warns []string
}

func (r *recorder) Start(string, int64) {}
func (r *recorder) Add(int64)           {}
func (r *recorder) Done()               {}
func (r *recorder) Logf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.logs = append(r.logs, fmt.Sprintf(format, args...))
}
func (r *recorder) Warnf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.warns = append(r.warns, fmt.Sprintf(format, args...))
}

// count returns how many lines of what (logs or warnings) contain s.
func (r *recorder) count(warnings bool, s string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	lines := r.logs
	if warnings {
		lines = r.warns
	}
	n := 0
	for _, l := range lines {
		if strings.Contains(l, s) {
			n++
		}
	}
	return n
}

// served is a Registry behind an httptest server.
type served struct {
	url  string
	host string
	rep  *recorder
	reg  *serve.Registry
}

// startServer serves the archive (or imgpkg tarball) at path, opened as
// `ferry serve` opens it.
func startServer(t *testing.T, path string, opts serve.Options) *served {
	t.Helper()
	rep := &recorder{}
	opts.Reporter = rep
	a, closer, err := relocate.OpenSeekable(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closer.Close() })
	reg, err := serve.New(t.Context(), a, opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(reg)
	srv.Listener = smallSendBuffers{srv.Listener}
	srv.Start()
	t.Cleanup(srv.Close)
	return &served{url: srv.URL, host: strings.TrimPrefix(srv.URL, "http://"), rep: rep, reg: reg}
}

// smallSendBuffers is a listener whose connections have a small send
// buffer, so that a client that stops reading blocks the server's writes
// (holding its stream) after a few KiB, whatever the machine's default and
// largest socket buffers: where those reach tens of MiB, the kernel would
// otherwise take the whole of the tests' big layer.
type smallSendBuffers struct{ net.Listener }

func (l smallSendBuffers) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		tc, ok := c.(*net.TCPConn)
		if !ok || tc.SetWriteBuffer(4096) == nil {
			return c, nil
		}
		// The client sees its connection closed: its test fails.
		c.Close()
	}
}

// do sends a request and returns the response with its body read.
func do(t *testing.T, method, url string, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	resp, body, err := tryDo(t.Context(), method, url, header)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// tryDo is do for a goroutine other than the test's, which must not call
// t.Fatal.
func tryDo(ctx context.Context, method, url string, header map[string]string) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return nil, nil, err
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: reading the body: %w", method, url, err)
	}
	return resp, body, nil
}

// wantError checks that a response is the spec's error document with code.
func wantError(t *testing.T, what string, resp *http.Response, body []byte, status int, code string) {
	t.Helper()
	var doc struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	if resp.StatusCode != status {
		t.Errorf("%s: status %d, want %d (%s)", what, resp.StatusCode, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type %q, want application/json", what, ct)
	}
	if err := json.Unmarshal(body, &doc); err != nil || len(doc.Errors) != 1 || doc.Errors[0].Code != code || doc.Errors[0].Message == "" {
		t.Errorf("%s: body %s, want one error with code %s and a message (%v)", what, body, code, err)
	}
}

func sha256Of(b []byte) v1.Hash {
	h, _, _ := v1.SHA256(bytes.NewReader(b))
	return h
}

// exportTo writes plan's archive to a new file named name in a temporary
// directory and returns its path.
func exportTo(t *testing.T, ctx context.Context, plan *relocate.Plan, name string, opts relocate.ExportOptions) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if _, err := relocate.Export(ctx, plan, out, opts); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// viewBlobs returns, from s served as far/release by srv, the locations
// image's config (a blob built for the view) and a small layer, the latter
// fetched once so that it is checked and kept in memory.
func viewBlobs(t *testing.T, s *source, srv *served) (config v1.Descriptor, small string, smallBytes []byte) {
	t.Helper()
	_, body := do(t, http.MethodGet, srv.url+"/v2/far/release/manifests/sha256-"+s.bundleDigest.Hex+".image-locations.imgpkg", nil)
	var m v1.Manifest
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	small, smallBytes = smallLayer(t, s)
	if resp, _ := do(t, http.MethodGet, srv.url+"/v2/far/release/blobs/"+small, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("GET of the small layer: %d", resp.StatusCode)
	}
	return m.Config, small, smallBytes
}
