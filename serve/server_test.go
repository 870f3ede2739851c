package serve_test

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
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
	for _, c := range []struct {
		serve.ListenOptions
		give string // what the message asks for
	}{
		{serve.ListenOptions{Addr: "0.0.0.0:0"}, "needs TLS (--tls-cert and --tls-key) and authentication (--htpasswd); give them,"},
		{serve.ListenOptions{Addr: ":0", Auth: true}, "needs TLS (--tls-cert and --tls-key); give it,"},
		{serve.ListenOptions{Addr: "0.0.0.0:0", TLSCert: files.Cert, TLSKey: files.Key}, "needs authentication (--htpasswd); give it,"},
	} {
		srv, err := serve.Listen(c.ListenOptions)
		if err == nil || !strings.Contains(err.Error(), "--insecure") || !strings.Contains(err.Error(), c.give) {
			t.Errorf("%+v: %v, want a refusal naming --insecure and saying %q", c.ListenOptions, err, c.give)
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

// TestStoppingWithRequestsInFlightSaysSoAndCountsThoseCutShort: asked to
// stop while a request is in flight, the server says how many and how
// long they get, waits that long, then closes their connections, counts
// them and waits for their handlers to end; with none in flight it says
// nothing and counts none.
func TestStoppingWithRequestsInFlightSaysSoAndCountsThoseCutShort(t *testing.T) {
	type stop struct {
		n     int
		grace time.Duration
	}
	stops := make(chan stop, 1)
	const grace = 300 * time.Millisecond
	srv, err := serve.Listen(serve.ListenOptions{Addr: "127.0.0.1:0", Grace: grace, Stopping: func(n int, g time.Duration) { stops <- stop{n, g} }})
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	var ended atomic.Bool
	// A download that never ends by itself: it sends a first part, then
	// waits for its connection to go, and takes a moment to end (as a
	// handler logging itself does).
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() { time.Sleep(50 * time.Millisecond); ended.Store(true) }()
		w.Header().Set("Content-Length", "1000000")
		w.Write(make([]byte, 1000))
		w.(http.Flusher).Flush()
		close(started)
		<-r.Context().Done()
	})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, h) }()
	resp, err := http.Get(srv.URL() + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	<-started

	begun := time.Now()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if took := time.Since(begun); took < grace {
		t.Errorf("Serve returned after %s, before the grace of %s", took, grace)
	}
	if !ended.Load() {
		t.Error("Serve returned before the handler it cut short had ended: its log line would come after ferry said it stopped")
	}
	select {
	case s := <-stops:
		if s.n != 1 || s.grace != grace {
			t.Errorf("Stopping(%d, %s), want (1, %s)", s.n, s.grace, grace)
		}
	default:
		t.Error("Stopping was not called with a request in flight")
	}
	if n := srv.CutShort(); n != 1 {
		t.Errorf("CutShort %d, want 1", n)
	}
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Error("the cut download read to its end without an error")
	}

	idle, err := serve.Listen(serve.ListenOptions{Addr: "127.0.0.1:0", Grace: grace, Stopping: func(n int, g time.Duration) { stops <- stop{n, g} }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel = context.WithCancel(t.Context())
	cancel()
	if err := idle.Serve(ctx, h); err != nil {
		t.Fatal(err)
	}
	if len(stops) != 0 || idle.CutShort() != 0 {
		t.Errorf("stopped with nothing in flight: %d Stopping calls, %d cut short; want none", len(stops), idle.CutShort())
	}
}
