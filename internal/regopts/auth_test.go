package regopts

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

const (
	testUser = "ferry"
	testPass = "s3cret-Pa55word"
)

func TestValidateRejectsIncompleteOrContradictoryOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
		want string // substring of the error; "" means valid
	}{
		{"zero value", Options{}, ""},
		{"basic", Options{Username: "u", Password: testPass}, ""},
		{"token", Options{Token: testPass}, ""},
		{"anon", Options{Anon: true}, ""},
		{"username without password", Options{Username: "u"}, "without a password"},
		{"password without username", Options{Password: testPass}, "without a username"},
		{"token and basic", Options{Username: "u", Password: testPass, Token: "tok"}, "not both"},
		{"anon and basic", Options{Anon: true, Username: "u", Password: testPass}, "--registry-anon"},
		{"anon and token", Options{Anon: true, Token: testPass}, "--registry-anon"},
		{"negative retry count", Options{RetryCount: -1}, "retry count"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.o.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), testPass) {
				t.Errorf("Validate() error %q contains the secret", err)
			}
			// The same mistake must surface through both entry points.
			if _, rerr := tc.o.RemoteOptions(context.Background()); rerr == nil {
				t.Error("RemoteOptions accepted invalid options")
			}
			if _, kerr := tc.o.Keychain().Resolve(name.MustParseReference("example.com/a:b").Context()); kerr == nil {
				t.Error("Keychain().Resolve accepted invalid options")
			}
		})
	}
}

func TestKeychainChoosesExplicitCredentialsThenDockerConfig(t *testing.T) {
	hermeticDockerConfig(t, map[string]string{"registry.example.com": "cfguser:cfgpass"})
	target := name.MustParseReference("registry.example.com/app:1").Context()

	resolve := func(o Options) *authn.AuthConfig {
		t.Helper()
		a, err := o.Keychain().Resolve(target)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := authn.Authorization(context.Background(), a)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	if got := resolve(Options{Username: "u", Password: "p"}); got.Username != "u" || got.Password != "p" {
		t.Errorf("explicit basic resolved to %+v", got)
	}
	if got := resolve(Options{Token: "tok"}); got.RegistryToken != "tok" || got.Username != "" {
		t.Errorf("explicit token resolved to %+v", got)
	}
	if got := resolve(Options{}); got.Username != "cfguser" || got.Password != "cfgpass" {
		t.Errorf("default resolved to %+v, want the Docker config's cfguser", got)
	}
	if got := resolve(Options{Anon: true}); *got != (authn.AuthConfig{}) {
		t.Errorf("anon resolved to %+v, want nothing", got)
	}
}

func TestExplicitBasicCredentialsAreSent(t *testing.T) {
	hermeticDockerConfig(t, nil)
	host, rec := htpasswdRegistry(t, testUser, testPass)
	ref := host + "/app:v1"
	want := pushRandom(t, ref, remote.WithAuth(&authn.Basic{Username: testUser, Password: testPass}))

	desc, err := head(t, context.Background(), ref, Options{Username: testUser, Password: testPass})
	if err != nil {
		t.Fatalf("Head with explicit credentials: %v", err)
	}
	if desc.Digest != want {
		t.Errorf("digest = %s, want %s", desc.Digest, want)
	}
	if wantHdr := "Basic " + basicValue(testUser+":"+testPass); !slices.Contains(rec.authorizations(), wantHdr) {
		t.Errorf("registry never saw %q; saw %q", wantHdr, rec.authorizations())
	}
}

func TestRefusedLoginNamesRegistryAndNeverLeaksPassword(t *testing.T) {
	hermeticDockerConfig(t, nil)
	host, rec := htpasswdRegistry(t, testUser, testPass)
	ref := host + "/app:v1"
	const wrong = "Wr0ng-pa55word-xyz"

	_, err := head(t, context.Background(), ref, Options{Username: testUser, Password: wrong})
	if err == nil {
		t.Fatal("Head with a wrong password succeeded")
	}
	if !slices.Contains(rec.authorizations(), "Basic "+basicValue(testUser+":"+wrong)) {
		t.Fatalf("the wrong password was never offered; saw %q", rec.authorizations())
	}
	explained := Options{Username: testUser, Password: wrong}.Explain(err, ref)
	for _, e := range []error{err, explained} {
		msg := e.Error()
		if strings.Contains(msg, wrong) || strings.Contains(msg, basicValue(testUser+":"+wrong)) {
			t.Errorf("error leaks the password: %q", msg)
		}
	}
	msg := explained.Error()
	for _, want := range []string{"registry " + host + " refused",
		"refused the credentials given by --registry-username (" + testUser + ")", "--registry-password"} {
		if !strings.Contains(msg, want) {
			t.Errorf("Explain = %q, missing %q", msg, want)
		}
	}
	var te *transport.Error
	if !errors.As(explained, &te) || te.StatusCode != http.StatusUnauthorized {
		t.Errorf("Explain lost the wrapped 401 transport.Error: %v", explained)
	}
}

func TestTokenIsSentAsBearerAndNeverLeaked(t *testing.T) {
	hermeticDockerConfig(t, nil)
	host, rec := htpasswdRegistry(t, testUser, testPass)
	ref := host + "/app:v1"
	const token = "tok-0123456789abcdef"

	// htpasswd accepts no tokens, so the request is refused; what matters is
	// what was sent and what the error says.
	_, err := head(t, context.Background(), ref, Options{Token: token})
	if err == nil {
		t.Fatal("Head with a token against an htpasswd registry succeeded")
	}
	if !slices.Contains(rec.authorizations(), "Bearer "+token) {
		t.Errorf("registry never saw the bearer token; saw %q", rec.authorizations())
	}
	if strings.Contains(err.Error(), token) || strings.Contains((Options{}).Explain(err, ref).Error(), token) {
		t.Errorf("error leaks the token: %v", err)
	}
}

func TestAnonSendsNoCredentialsEvenWithDockerConfig(t *testing.T) {
	host, rec := htpasswdRegistry(t, testUser, testPass)
	hermeticDockerConfig(t, map[string]string{host: testUser + ":" + testPass})
	ref := host + "/app:v1"
	pushRandom(t, ref, remote.WithAuth(&authn.Basic{Username: testUser, Password: testPass}))
	seeded := len(rec.authorizations())

	_, err := head(t, context.Background(), ref, Options{Anon: true})
	var te *transport.Error
	if !errors.As(err, &te) || te.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous Head = %v, want a 401", err)
	}
	if got := rec.authorizations()[seeded:]; len(got) != 0 {
		t.Errorf("anonymous access sent Authorization headers %q", got)
	}
}

func TestDockerConfigUsedWithoutExplicitCredentials(t *testing.T) {
	host, rec := htpasswdRegistry(t, testUser, testPass)
	hermeticDockerConfig(t, map[string]string{host: testUser + ":" + testPass})
	ref := host + "/app:v1"
	want := pushRandom(t, ref, remote.WithAuth(&authn.Basic{Username: testUser, Password: testPass}))
	seeded := len(rec.authorizations())

	desc, err := head(t, context.Background(), ref, Options{})
	if err != nil {
		t.Fatalf("Head with Docker config credentials: %v", err)
	}
	if desc.Digest != want {
		t.Errorf("digest = %s, want %s", desc.Digest, want)
	}
	if wantHdr := "Basic " + basicValue(testUser+":"+testPass); !slices.Contains(rec.authorizations()[seeded:], wantHdr) {
		t.Errorf("Docker config credentials not sent; saw %q", rec.authorizations()[seeded:])
	}
}

func TestUserAgentIsSent(t *testing.T) {
	rec := &recorder{next: quietRegistry()}
	host := serve(t, rec)
	ref := host + "/app:v1"
	pushRandom(t, ref)

	if _, err := head(t, context.Background(), ref, Options{Anon: true, UserAgent: "ferry-test/1.2.3"}); err != nil {
		t.Fatal(err)
	}
	agents := rec.userAgents()
	if !strings.HasPrefix(agents[len(agents)-1], "ferry-test/1.2.3") {
		t.Errorf("last User-Agent = %q, want it to start with ferry-test/1.2.3", agents[len(agents)-1])
	}
}
