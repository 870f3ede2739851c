package regopts

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// Plain HTTP goes to loopback registries (tests, a local mirror) without
// asking, and nowhere else: go-containerregistry would fall back to it for
// a private address or a *.local name when HTTPS fails there, so the
// transport refuses such a request, before any connection, and says which
// flag allows it. With --registry-insecure it is sent.
func TestPlainHTTPBeyondLoopbackNeedsInsecure(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	rt, err := Options{}.transport()
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{srv.URL + "/v2/", strings.Replace(srv.URL, "127.0.0.1", "localhost", 1) + "/v2/"} {
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Errorf("GET %s (loopback, plain HTTP): %v", u, err)
			continue
		}
		resp.Body.Close()
	}
	for _, u := range []string{"http://10.1.2.3:5000/v2/", "http://192.168.7.7/v2/", "http://registry.local/v2/", "http://user:secret@172.16.0.9/v2/"} {
		// Bounded, should it ever be sent.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, strings.NewReader("body"))
		resp, err := rt.RoundTrip(req)
		if err == nil {
			resp.Body.Close()
			t.Errorf("GET %s went out in plain HTTP", u)
			continue
		}
		if !strings.Contains(err.Error(), "--registry-insecure") || strings.Contains(err.Error(), "secret") {
			t.Errorf("GET %s: %v; want a refusal naming --registry-insecure, without the password", u, err)
		}
	}

	// With Insecure nothing stands in the way (not tried: tests reach
	// loopback addresses only).
	rt, err = Options{Insecure: true}.transport()
	if err != nil {
		t.Fatal(err)
	}
	if _, guarded := rt.(cleartextTransport); guarded {
		t.Error("with Insecure, plain HTTP beyond loopback is still refused")
	}
}
