package testregistry

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
)

// ServerFiles are a server certificate for 127.0.0.1, ::1 and localhost,
// its key, and the CA that signed it, as PEM files: for tests of servers
// other than these registries (ferry serve) that take them as files.
type ServerFiles struct {
	Cert, Key, CA string
	// Pool holds the CA alone.
	Pool *x509.CertPool
}

// NewServerFiles writes a fresh CA and server certificate under t's
// temporary directory.
func NewServerFiles(t testing.TB) ServerFiles {
	t.Helper()
	ca, err := newCA()
	if err != nil {
		t.Fatalf("testregistry: %v", err)
	}
	cert, err := ca.serverCert()
	if err != nil {
		t.Fatalf("testregistry: %v", err)
	}
	key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatalf("testregistry: %v", err)
	}
	dir := t.TempDir()
	f := ServerFiles{Cert: filepath.Join(dir, "cert.pem"), Key: filepath.Join(dir, "key.pem"), CA: filepath.Join(dir, "ca.pem"), Pool: ca.pool()}
	for path, b := range map[string][]byte{
		f.Cert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}),
		f.Key:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}),
		f.CA:   ca.pem,
	} {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatalf("testregistry: write %s: %v", path, err)
		}
	}
	return f
}

// WriteHtpasswd writes a one-user htpasswd file with a bcrypt hash of
// password (at the lowest cost) and returns its path.
func WriteHtpasswd(t testing.TB, user, password string) string {
	return writeHtpasswd(t, user, password)
}
