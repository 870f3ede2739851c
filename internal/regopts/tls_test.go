package regopts

import (
	"context"
	"encoding/pem"
	"errors"
	"io/fs"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// tlsRegistry serves go-containerregistry's registry over TLS with
// httptest's self-signed certificate, seeds app:v1 and returns the host, the
// path of a PEM file holding the certificate, and the seeded digest.
func tlsRegistry(t *testing.T) (host, caPath, digest string) {
	t.Helper()
	srv := httptest.NewTLSServer(quietRegistry())
	t.Cleanup(srv.Close)
	host = strings.TrimPrefix(srv.URL, "https://")
	caPath = filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(caPath, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	// Seed through the test server's own client, which trusts its certificate.
	h := pushRandom(t, host+"/app:v1", remote.WithTransport(srv.Client().Transport))
	return host, caPath, h.String()
}

func TestCACertPathTrustsPrivateRegistry(t *testing.T) {
	host, caPath, want := tlsRegistry(t)
	desc, err := head(t, context.Background(), host+"/app:v1", Options{Anon: true, CACertPaths: []string{caPath}})
	if err != nil {
		t.Fatalf("Head with --registry-ca-cert-path: %v", err)
	}
	if desc.Digest.String() != want {
		t.Errorf("digest = %s, want %s", desc.Digest, want)
	}
}

func TestUntrustedCertificateIsACertificateError(t *testing.T) {
	host, _, _ := tlsRegistry(t)
	ref := host + "/app:v1"
	_, err := head(t, context.Background(), ref, Options{Anon: true, RetryCount: 1})
	if err == nil {
		t.Fatal("Head against an untrusted certificate succeeded")
	}
	// go-containerregistry also tries plain HTTP on loopback, which fails
	// differently; the certificate failure must still be what is reported.
	if msg := err.Error(); !strings.Contains(msg, "x509") && !strings.Contains(msg, "certificate") {
		t.Fatalf("error %q does not mention the certificate", msg)
	}
	msg := (Options{}).Explain(err, ref).Error()
	for _, want := range []string{"TLS certificate of registry " + host, "--registry-ca-cert-path", "--registry-insecure"} {
		if !strings.Contains(msg, want) {
			t.Errorf("Explain = %q, missing %q", msg, want)
		}
	}
	// Its cause is the certificate's error, not the https and plain-http
	// attempts go-containerregistry's ping joins.
	if cause := (Options{}).Explain(err, ref).(Explained).Cause().Error(); !strings.Contains(cause, "x509: certificate signed by unknown authority") || strings.Contains(cause, "http://") {
		t.Errorf("Cause = %q, want the certificate's error alone", cause)
	}
}

func TestInsecureSkipsVerification(t *testing.T) {
	host, _, want := tlsRegistry(t)
	desc, err := head(t, context.Background(), host+"/app:v1", Options{Anon: true, Insecure: true})
	if err != nil {
		t.Fatalf("Head with --registry-insecure: %v", err)
	}
	if desc.Digest.String() != want {
		t.Errorf("digest = %s, want %s", desc.Digest, want)
	}
}

func TestCACertPathErrorsNameTheFile(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.pem")
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path   string
		target error
	}{{missing, fs.ErrNotExist}, {garbage, nil}} {
		_, err := Options{CACertPaths: []string{tc.path}}.RemoteOptions(context.Background())
		if err == nil {
			t.Errorf("RemoteOptions accepted CA file %s", tc.path)
			continue
		}
		if !strings.Contains(err.Error(), tc.path) {
			t.Errorf("error %q does not name %s", err, tc.path)
		}
		if tc.target != nil && !errors.Is(err, tc.target) {
			t.Errorf("error %q does not wrap %v", err, tc.target)
		}
	}
}
