package bundle

import (
	"bytes"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// pushAndPull writes img to a fresh in-process registry on loopback and
// returns it as read back from there, so readers are tested on what a
// registry serves rather than on our in-memory image.
func pushAndPull(t *testing.T, img v1.Image, repo string) (v1.Image, name.Reference) {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(u.Host + "/" + repo + ":v1")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithContext(t.Context())); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	got, err := remote.Image(ref, remote.WithContext(t.Context()))
	if err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
	return got, ref
}

// tamperingRegistry is a real registry behind a loopback proxy that flips the
// last byte of every blob whose digest is in corrupt, as a broken cache or a
// hostile mirror might. It returns the proxy's host.
func tamperingRegistry(t *testing.T, corrupt map[string]bool) string {
	t.Helper()
	backend := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(backend.Close)
	target, err := url.Parse(backend.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ModifyResponse = func(resp *http.Response) error {
		parts := strings.Split(resp.Request.URL.Path, "/")
		if resp.Request.Method != http.MethodGet || len(parts) < 2 || parts[len(parts)-2] != "blobs" || !corrupt[parts[len(parts)-1]] {
			return nil
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if len(body) > 0 {
			body[len(body)-1] ^= 0xff
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		return nil
	}
	front := httptest.NewServer(proxy)
	t.Cleanup(front.Close)
	u, err := url.Parse(front.URL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}
