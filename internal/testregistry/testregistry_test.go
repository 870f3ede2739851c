package testregistry_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/internal/testregistry"
)

// noRetry keeps failing pushes fast: go-containerregistry otherwise backs off
// for seconds on 5xx.
var noRetry = remote.WithRetryBackoff(remote.Backoff{Steps: 1})

func randomImage(t *testing.T, layers int64) v1.Image {
	t.Helper()
	img, err := random.Image(512, layers)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// manifestDigest hashes the manifest bytes itself rather than trusting the
// library's Digest method.
func manifestDigest(t *testing.T, img v1.Image) string {
	t.Helper()
	raw, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(raw)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func push(t *testing.T, ref string, img v1.Image, opts ...remote.Option) error {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	return remote.Write(r, img, opts...)
}

// pullDigest fetches ref and returns the sha256 of the manifest bytes served.
func pullDigest(t *testing.T, ref string, opts ...remote.Option) string {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Get(r, opts...)
	if err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
	sum := sha256.Sum256(desc.Manifest)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func statusOf(err error) int {
	var terr *transport.Error
	if errors.As(err, &terr) {
		return terr.StatusCode
	}
	return 0
}

func TestPushPull(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		start func(t *testing.T) *testregistry.Registry
	}{
		{"ggcr", func(t *testing.T) *testregistry.Registry { return testregistry.NewGGCR(t) }},
		{"ggcr-tls", func(t *testing.T) *testregistry.Registry { return testregistry.NewGGCR(t, testregistry.WithTLS()) }},
		{"distribution", func(t *testing.T) *testregistry.Registry { return testregistry.NewDistribution(t) }},
		{"distribution-tls-auth", func(t *testing.T) *testregistry.Registry {
			return testregistry.NewDistribution(t, testregistry.WithTLS(), testregistry.WithAuth("alice", "s3cret"))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reg := tc.start(t)
			img := randomImage(t, 2)
			want := manifestDigest(t, img)

			reg.ResetCounts()
			if err := push(t, reg.Repo("team/app:v1"), img, reg.RemoteOptions(t)...); err != nil {
				t.Fatalf("push: %v", err)
			}
			c := reg.Counts()
			// Two layers and a config, each committed by one PUT, then the
			// manifest.
			if got := c.Get(http.MethodPut, testregistry.KindUpload); got != 3 {
				t.Errorf("blob upload PUTs = %d, want 3 (counts %v)", got, c)
			}
			if got := c.Get(http.MethodPut, testregistry.KindManifest); got != 1 {
				t.Errorf("manifest PUTs = %d, want 1", got)
			}
			if got := c.Get(http.MethodHead, testregistry.KindBlob); got < 3 {
				t.Errorf("blob HEADs = %d, want at least 3 (one existence check per blob)", got)
			}

			if got := pullDigest(t, reg.Repo("team/app:v1"), reg.RemoteOptions(t)...); got != want {
				t.Errorf("pulled manifest digest %s, want %s", got, want)
			}
			if got := pullDigest(t, reg.Repo("team/app@"+want), reg.RemoteOptions(t)...); got != want {
				t.Errorf("pulled by digest %s, want %s", got, want)
			}
			reqs := reg.Requests()
			last := reqs[len(reqs)-1]
			if last.Method != http.MethodGet || last.Kind != testregistry.KindManifest ||
				last.Repo != "team/app" || last.Ref != want || last.Status != http.StatusOK {
				t.Errorf("last request = %+v, want GET manifest team/app@%s 200", last, want)
			}

			reg.ResetCounts()
			if n := reg.Counts().Total(); n != 0 {
				t.Errorf("after ResetCounts total = %d, want 0", n)
			}
		})
	}
}

func TestRepoAndURL(t *testing.T) {
	t.Parallel()
	reg := testregistry.NewGGCR(t)
	if !strings.HasPrefix(reg.Host, "127.0.0.1:") {
		t.Errorf("Host = %q, want 127.0.0.1:PORT", reg.Host)
	}
	if reg.URL != "http://"+reg.Host {
		t.Errorf("URL = %q, want http://%s", reg.URL, reg.Host)
	}
	if got, want := reg.Repo("a/b"), reg.Host+"/a/b"; got != want {
		t.Errorf("Repo = %q, want %q", got, want)
	}
	tlsReg := testregistry.NewGGCR(t, testregistry.WithTLS())
	if tlsReg.URL != "https://"+tlsReg.Host {
		t.Errorf("TLS URL = %q, want https://%s", tlsReg.URL, tlsReg.Host)
	}
}

func TestDistributionFilesystem(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	reg := testregistry.NewDistribution(t, testregistry.WithFilesystem(dir))
	img := randomImage(t, 1)
	want := manifestDigest(t, img)
	if err := push(t, reg.Repo("fs/app:v1"), img, reg.RemoteOptions(t)...); err != nil {
		t.Fatalf("push: %v", err)
	}
	// distribution's filesystem layout keeps each blob's bytes in
	// docker/registry/v2/blobs/sha256/<first two hex>/<hex>/data.
	hexDigest := strings.TrimPrefix(want, "sha256:")
	data := filepath.Join(dir, "docker/registry/v2/blobs/sha256", hexDigest[:2], hexDigest, "data")
	raw, err := os.ReadFile(data)
	if err != nil {
		t.Fatalf("manifest not stored on disk: %v", err)
	}
	if sum := sha256.Sum256(raw); "sha256:"+hex.EncodeToString(sum[:]) != want {
		t.Errorf("stored manifest hashes to %x, want %s", sum, want)
	}

	// A second registry on the same directory serves what the first stored.
	again := testregistry.NewDistribution(t, testregistry.WithFilesystem(dir))
	if got := pullDigest(t, again.Repo("fs/app:v1"), again.RemoteOptions(t)...); got != want {
		t.Errorf("second registry served %s, want %s", got, want)
	}
}

func TestGGCRFilesystem(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	reg := testregistry.NewGGCR(t, testregistry.WithFilesystem(dir))
	layer, err := random.Layer(256, types.DockerLayer)
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(randomImage(t, 0), layer)
	if err != nil {
		t.Fatal(err)
	}
	if err := push(t, reg.Repo("fs/app:v1"), img, reg.RemoteOptions(t)...); err != nil {
		t.Fatalf("push: %v", err)
	}
	rc, err := layer.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	compressed, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(compressed)
	raw, err := os.ReadFile(filepath.Join(dir, "sha256", hex.EncodeToString(sum[:])))
	if err != nil {
		t.Fatalf("layer not stored on disk: %v", err)
	}
	if !bytes.Equal(raw, compressed) {
		t.Errorf("stored layer differs from the pushed bytes")
	}
}

func TestDistributionAuth(t *testing.T) {
	t.Parallel()
	reg := testregistry.NewDistribution(t, testregistry.WithAuth("alice", "s3cret"))
	img := randomImage(t, 1)
	ref := reg.Repo("private/app:v1")

	resp, err := reg.Client().Get(reg.URL + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /v2/ without credentials: %d, want 401", resp.StatusCode)
	}
	if got := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Basic realm=") {
		t.Errorf("WWW-Authenticate = %q, want a Basic challenge", got)
	}

	err = push(t, ref, img, remote.WithAuth(authn.Anonymous), noRetry)
	if statusOf(err) != http.StatusUnauthorized {
		t.Errorf("anonymous push: %v, want a 401", err)
	}
	err = push(t, ref, img, remote.WithAuth(&authn.Basic{Username: "alice", Password: "wrong"}), noRetry)
	if statusOf(err) != http.StatusUnauthorized {
		t.Errorf("push with a wrong password: %v, want a 401", err)
	}
	if err := push(t, ref, img, reg.RemoteOptions(t)...); err != nil {
		t.Fatalf("push with credentials: %v", err)
	}
	if got, want := pullDigest(t, ref, reg.RemoteOptions(t)...), manifestDigest(t, img); got != want {
		t.Errorf("pulled %s, want %s", got, want)
	}
	if reg.Counts().Get("", testregistry.KindBase) == 0 {
		t.Errorf("no /v2/ requests counted")
	}
}

// fatalTB records Fatalf instead of failing the real test, so a test can
// check that misuse is reported.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestGGCRRefusesAuth(t *testing.T) {
	t.Parallel()
	f := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		testregistry.NewGGCR(f, testregistry.WithAuth("a", "b"))
	}()
	<-done
	if !strings.Contains(f.msg, "WithAuth") {
		t.Errorf("NewGGCR with WithAuth: fatal message %q, want one naming WithAuth", f.msg)
	}
}

func TestTLS(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		start func(t *testing.T) *testregistry.Registry
	}{
		{"ggcr", func(t *testing.T) *testregistry.Registry { return testregistry.NewGGCR(t, testregistry.WithTLS()) }},
		{"distribution", func(t *testing.T) *testregistry.Registry {
			return testregistry.NewDistribution(t, testregistry.WithTLS(), testregistry.WithAuth("bob", "pw"))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reg := tc.start(t)
			img := randomImage(t, 1)
			ref := reg.Repo("secure/app:v1")

			// Without the CA: go-containerregistry falls back to plain HTTP
			// for loopback hosts, so the failure alone proves nothing; the
			// certificate error must be what it reports.
			err := push(t, ref, img, remote.WithAuth(reg.Authenticator()), noRetry)
			if err == nil || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
				t.Fatalf("push without the CA: %v, want a certificate error", err)
			}

			if err := push(t, ref, img, reg.RemoteOptions(t)...); err != nil {
				t.Fatalf("push with the CA: %v", err)
			}
			if got, want := pullDigest(t, ref, reg.RemoteOptions(t)...), manifestDigest(t, img); got != want {
				t.Errorf("pulled %s, want %s", got, want)
			}

			// The CA file alone, as a CLI would load it, verifies the server
			// under each loopback name.
			pemBytes, err := os.ReadFile(reg.CACertPath)
			if err != nil {
				t.Fatal(err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pemBytes) {
				t.Fatalf("%s holds no PEM certificate", reg.CACertPath)
			}
			for _, serverName := range []string{"127.0.0.1", "localhost"} {
				conn, err := tls.Dial("tcp", reg.Host, &tls.Config{RootCAs: pool, ServerName: serverName})
				if err != nil {
					t.Errorf("TLS as %s: %v", serverName, err)
					continue
				}
				conn.Close()
			}
		})
	}
}

func TestTLSCAsAreIndependent(t *testing.T) {
	t.Parallel()
	a := testregistry.NewGGCR(t, testregistry.WithTLS())
	b := testregistry.NewGGCR(t, testregistry.WithTLS())
	_, err := a.Client().Get(b.URL + "/v2/")
	var verr *tls.CertificateVerificationError
	if !errors.As(err, &verr) {
		t.Errorf("registry b trusted with registry a's CA: %v", err)
	}
}

func TestForeignLayerURLs(t *testing.T) {
	t.Parallel()
	foreign := func(t *testing.T) v1.Image {
		layer, err := random.Layer(128, types.DockerForeignLayer)
		if err != nil {
			t.Fatal(err)
		}
		img, err := mutate.Append(randomImage(t, 0), mutate.Addendum{
			Layer:     layer,
			URLs:      []string{"https://foreign.example/layer.tgz"},
			MediaType: types.DockerForeignLayer,
		})
		if err != nil {
			t.Fatal(err)
		}
		return img
	}

	strict := testregistry.NewDistribution(t)
	err := push(t, strict.Repo("f/app:v1"), foreign(t), append(strict.RemoteOptions(t), noRetry)...)
	// distribution v3.1.2 answers 500 here, naming the cause in the body.
	if err == nil || !strings.Contains(err.Error(), "invalid URL on layer") {
		t.Errorf("foreign layer on a default registry: %v, want an invalid URL rejection", err)
	}

	lenient := testregistry.NewDistribution(t, testregistry.WithForeignLayerURLs(`^https://foreign\.example/`))
	img := foreign(t)
	if err := push(t, lenient.Repo("f/app:v1"), img, lenient.RemoteOptions(t)...); err != nil {
		t.Fatalf("foreign layer with its URL allowed: %v", err)
	}
	if got, want := pullDigest(t, lenient.Repo("f/app:v1"), lenient.RemoteOptions(t)...), manifestDigest(t, img); got != want {
		t.Errorf("pulled %s, want %s", got, want)
	}
}

func TestClose(t *testing.T) {
	t.Parallel()
	reg := testregistry.NewDistribution(t)
	reg.Close()
	reg.Close()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, reg.URL+"/v2/", nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := reg.Client().Do(req); err == nil {
		resp.Body.Close()
		t.Errorf("closed registry answered %d", resp.StatusCode)
	}
}

// TestWithoutMounts: distribution mounts a blob another repository holds
// (201); WithoutMounts makes it open an upload session instead (202 and a
// Location), and the recorded request still shows the mount asked.
func TestWithoutMounts(t *testing.T) {
	for _, mounts := range []bool{true, false} {
		var opts []testregistry.Option
		if !mounts {
			opts = append(opts, testregistry.WithoutMounts())
		}
		reg := testregistry.NewDistribution(t, opts...)
		layer, err := random.Layer(64, types.OCILayer)
		if err != nil {
			t.Fatal(err)
		}
		repo, err := name.NewRepository(reg.Repo("src/a"))
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.WriteLayer(repo, layer, reg.RemoteOptions(t)...); err != nil {
			t.Fatal(err)
		}
		d, err := layer.Digest()
		if err != nil {
			t.Fatal(err)
		}
		resp, err := reg.Client().Post(reg.URL+"/v2/dst/b/blobs/uploads/?mount="+d.String()+"&from=src/a", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		want := http.StatusCreated
		if !mounts {
			want = http.StatusAccepted
		}
		if resp.StatusCode != want || (!mounts && resp.Header.Get("Location") == "") {
			t.Errorf("mounts %v: %s, Location %q; want %d", mounts, resp.Status, resp.Header.Get("Location"), want)
		}
		reqs := reg.Requests()
		if last := reqs[len(reqs)-1]; last.Method != http.MethodPost || last.Status != want {
			t.Errorf("mounts %v: recorded %+v", mounts, last)
		}
	}
}
