package regopts

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
)

// tokenService stands for a registry's token service: it records the
// Authorization headers it is sent and issues a token for the right basic
// credentials.
type tokenService struct {
	mu   sync.Mutex
	seen []string
}

func (s *tokenService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.seen = append(s.seen, r.Header.Get("Authorization"))
	s.mu.Unlock()
	if r.Header.Get("Authorization") != "Basic "+basicValue(testUser+":"+testPass) {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprint(w, `{"token":"issued-token"}`)
}

func (s *tokenService) headers() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.seen)
}

// bearerGate puts a real registry behind the Docker token flow: requests
// without the issued token are answered 401 with a challenge naming realm
// (a URL, or a path on the gate's own host).
type bearerGate struct {
	next  http.Handler
	token http.Handler // served at /token on the gate's own host
	realm string
}

func (g *bearerGate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/token" {
		g.token.ServeHTTP(w, r)
		return
	}
	if r.Header.Get("Authorization") != "Bearer issued-token" {
		realm := g.realm
		if strings.HasPrefix(realm, "/") {
			realm = "http://" + r.Host + realm
		}
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm=%q,service="registry"`, realm))
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	g.next.ServeHTTP(w, r)
}

// TestTokenRealms pins down what the README says about explicit
// credentials and token services (go-containerregistry's rules, which
// ferry inherits): they go to the realm the registry names, even on
// another host; a realm that is a private or loopback IP address is
// refused unless it is the registry's own host and port, whatever the
// credentials (none included).
func TestTokenRealms(t *testing.T) {
	hermeticDockerConfig(t, nil)
	tokens := &tokenService{}
	tokenSrv := httptest.NewServer(tokens)
	t.Cleanup(tokenSrv.Close)
	_, tokenPort, _ := strings.Cut(strings.TrimPrefix(tokenSrv.URL, "http://"), ":")

	for _, tc := range []struct {
		name  string
		realm string
		opts  func(host string) Options
		ok    bool
	}{
		{"a host name on another port gets the credentials", "http://localhost:" + tokenPort + "/token",
			func(host string) Options {
				return Options{Username: testUser, Password: testPass, CredentialHosts: []string{host}}
			}, true},
		{"the registry's own host and port", "/token",
			func(host string) Options {
				return Options{Username: testUser, Password: testPass, CredentialHosts: []string{host}}
			}, true},
		{"a loopback IP on another port is refused", "http://127.0.0.1:" + tokenPort + "/token",
			func(host string) Options {
				return Options{Username: testUser, Password: testPass, CredentialHosts: []string{host}}
			}, false},
		{"refused with no credentials too", "http://127.0.0.1:" + tokenPort + "/token",
			func(string) Options { return Options{Anon: true} }, false},
		{"refused with a token too", "http://127.0.0.1:" + tokenPort + "/token",
			func(string) Options { return Options{Token: "issued-token"} }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gate := &bearerGate{next: quietRegistry(), token: tokens, realm: tc.realm}
			host := serve(t, gate)
			before := len(tokens.headers())
			_, err := head(t, context.Background(), host+"/app:v1", tc.opts(host))
			seen := tokens.headers()[before:]
			if tc.ok {
				// The repository is empty: a 404 means the token flow
				// worked and the registry answered.
				if err == nil || !strings.Contains(err.Error(), "404 Not Found") {
					t.Fatalf("Head = %v, want the registry's 404 after the token flow", err)
				}
				if want := "Basic " + basicValue(testUser+":"+testPass); !slices.Contains(seen, want) {
					t.Errorf("the token service was not sent the explicit credentials; saw %q", seen)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), `realm host "127.0.0.1" is a private or link-local address`) {
				t.Fatalf("Head = %v, want the realm refused", err)
			}
			if len(seen) != 0 {
				t.Errorf("the refused realm was contacted: %q", seen)
			}
		})
	}
}
