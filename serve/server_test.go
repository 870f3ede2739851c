package serve_test

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/crypto/bcrypt"

	"github.com/ferry-dev/ferry/internal/testregistry"
	"github.com/ferry-dev/ferry/serve"
)

func TestBasicAuthFromAnHtpasswdFile(t *testing.T) {
	s := newSource(t)
	users, err := serve.LoadHtpasswd(testregistry.WriteHtpasswd(t, "alice", "s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, s.archive, serve.Options{Users: users})
	for _, c := range []struct {
		what       string
		user, pass string
	}{{"no credentials", "", ""}, {"wrong password", "alice", "guess"}, {"unknown user", "bob", "s3cret"}} {
		for _, path := range []string{"/v2/", "/v2/src/bundle/manifests/v1", "/v2/_catalog", "/v2/src/app/blobs/uploads/"} {
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.url+path, nil)
			if c.user != "" {
				req.SetBasicAuth(c.user, c.pass)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body := readAll(t, resp)
			wantError(t, c.what+" "+path, resp, body, http.StatusUnauthorized, "UNAUTHORIZED")
			if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
				t.Errorf("%s %s: WWW-Authenticate %q", c.what, path, resp.Header.Get("WWW-Authenticate"))
			}
		}
	}
	// go-containerregistry's client answers the challenge.
	ref, _ := name.ParseReference(srv.host + "/src/bundle:v1")
	desc, err := remote.Get(ref, remote.WithAuth(&authn.Basic{Username: "alice", Password: "s3cret"}))
	if err != nil || desc.Digest != s.bundleDigest {
		t.Fatalf("pull with credentials: %v, %v", desc, err)
	}
	if _, err := remote.Get(ref); err == nil {
		t.Error("pull without credentials succeeded")
	}
	if srv.rep.count(false, "user alice") == 0 {
		t.Error("the request log does not name the user")
	}
}

func TestHtpasswdAcceptsOnlyBcrypt(t *testing.T) {
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{
		"sha1":  "alice:{SHA}fDYHuOYbzxlE6ehQOmYPIfS28/E=\n",
		"md5":   "alice:$apr1$x8yF3Qq5$5yLbXoZ0pNGSlbe2pE9/a0\n",
		"plain": "alice:password\n",
		"empty": "# no users\n\n",
		"twice": "alice:" + string(hash) + "\nalice:" + string(hash) + "\n",
	} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), 0o600)
		if _, err := serve.LoadHtpasswd(p); err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: %v, want an error naming the file", name, err)
		}
	}
	if _, err := serve.LoadHtpasswd(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing file was accepted")
	}
}

func TestListenRefusesBeyondLoopbackWithoutTLSAndAuth(t *testing.T) {
	files := testregistry.NewServerFiles(t)
	// Refused before anything listens: these never bind.
	for _, c := range []serve.ListenOptions{
		{Addr: "0.0.0.0:0"},
		{Addr: ":0", Auth: true},
		{Addr: "0.0.0.0:0", TLSCert: files.Cert, TLSKey: files.Key},
	} {
		srv, err := serve.Listen(c)
		if err == nil || !strings.Contains(err.Error(), "--insecure") {
			t.Errorf("%+v: %v, want a refusal naming --insecure", c, err)
		}
		if srv != nil {
			t.Errorf("%+v: a server was returned", c)
		}
	}
	if _, err := serve.Listen(serve.ListenOptions{Addr: "127.0.0.1:0", TLSCert: files.Cert}); err == nil {
		t.Error("a certificate without its key was accepted")
	}
	if _, err := serve.Listen(serve.ListenOptions{Addr: "127.0.0.1:0", TLSCert: files.Key, TLSKey: files.Key}); err == nil || !strings.Contains(err.Error(), files.Key) {
		t.Errorf("a key given as the certificate: %v", err)
	}
}

func TestServeTLSAndShutdown(t *testing.T) {
	s := newSource(t)
	files := testregistry.NewServerFiles(t)
	srv, err := serve.Listen(serve.ListenOptions{Addr: "127.0.0.1:0", TLSCert: files.Cert, TLSKey: files.Key})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(srv.URL(), "https://127.0.0.1:") {
		t.Fatalf("URL %s", srv.URL())
	}
	reg, err := serve.New(t.Context(), openFile(t, s.archive), serve.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, reg) }()

	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: files.Pool}}
	client := &http.Client{Transport: tr}
	resp, err := client.Get(srv.URL() + "/v2/src/bundle/manifests/v1")
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	if resp.StatusCode != 200 || resp.TLS == nil {
		t.Fatalf("over TLS: %d", resp.StatusCode)
	}
	// Plain HTTP gets no registry.
	if resp, err := http.Get(strings.Replace(srv.URL(), "https", "http", 1) + "/v2/"); err == nil && resp.StatusCode == 200 {
		t.Error("plain HTTP was answered")
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve after cancel: %v", err)
		}
	case <-time.After(serve.ShutdownGrace + 5*time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
	tr.CloseIdleConnections()
	if _, err := client.Get(srv.URL() + "/v2/"); err == nil {
		t.Error("still answering after shutdown")
	}
}

func readAll(t *testing.T, resp *http.Response) []byte {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
