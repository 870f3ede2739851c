package regopts

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// certRegistry serves a registry over TLS with a leaf certificate for
// dnsNames and ips, valid from notBefore to notAfter, signed by a CA it
// writes to a PEM file; it returns the host and that file.
func certRegistry(t *testing.T, dnsNames []string, ips []net.IP, notBefore, notAfter time.Time) (host, caPath string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ferry test CA"},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(48 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "registry"},
		DNSNames: dnsNames, IPAddresses: ips, NotBefore: notBefore, NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, ca, &leafKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(quietRegistry())
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{leafDER}, PrivateKey: leafKey}}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	caPath = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(srv.URL, "https://"), caPath
}

// A trusted CA's certificate that expired, or that names other hosts, is
// not said to need a private CA: each says what is wrong with it.
func TestExplainTellsCertificateFailuresApart(t *testing.T) {
	loopback := []net.IP{net.ParseIP("127.0.0.1")}
	expiry := time.Date(2020, 3, 4, 5, 6, 7, 0, time.UTC)
	for _, tc := range []struct {
		name      string
		dns       []string
		ips       []net.IP
		from, to  time.Time
		want      []string
		wantNever string
	}{
		{"expired", nil, loopback, expiry.Add(-time.Hour), expiry,
			[]string{"expired on 2020-03-04T05:06:07Z", "check the server's certificate or this host's clock"}, "--registry-ca-cert-path"},
		{"wrong host", []string{"registry.example.com", "mirror.example.com"}, nil, time.Now().Add(-time.Hour), time.Now().Add(time.Hour),
			[]string{"is for registry.example.com, mirror.example.com, not 127.0.0.1"}, "--registry-ca-cert-path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			host, caPath := certRegistry(t, tc.dns, tc.ips, tc.from, tc.to)
			ref := host + "/app:v1"
			o := Options{Anon: true, CACertPaths: []string{caPath}, RetryCount: 1}
			_, err := head(t, context.Background(), ref, o)
			if err == nil {
				t.Fatal("Head succeeded")
			}
			msg := o.Explain(err, ref).Error()
			wantAll(t, msg, append([]string{"TLS certificate of registry " + host}, tc.want...)...)
			if hint := o.Explain(err, ref).(Explained).Hint(); strings.Contains(hint, tc.wantNever) {
				t.Errorf("hint %q gives the private-CA advice", hint)
			}
		})
	}
}
