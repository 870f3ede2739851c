package regopts

import (
	"fmt"
	"net"
	"net/http"
)

// cleartextTransport refuses requests in plain HTTP to any host but a
// loopback one. go-containerregistry reaches a registry at a private
// address (10/8, 172.16/12, 192.168/16) or a *.local name over plain HTTP
// when HTTPS fails there, without being asked: on a network where someone
// can make HTTPS fail, a password or a bearer token would then travel in
// clear, and content would arrive unauthenticated. Plain HTTP beyond
// loopback is for --registry-insecure to allow, as TLS without
// verification is.
type cleartextTransport struct {
	inner http.RoundTripper
}

// RoundTrip implements http.RoundTripper.
func (t cleartextTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "http" && !isLoopback(req.URL.Hostname()) {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, fmt.Errorf("%s %s: refusing plain HTTP beyond loopback (a registry that speaks only HTTP needs --registry-insecure)", req.Method, req.URL.Redacted())
	}
	return t.inner.RoundTrip(req)
}

// isLoopback reports whether host is "localhost" or a loopback IP.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
