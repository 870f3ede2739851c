package regopts

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
)

// refusedBy runs a Head against an htpasswd registry with o and returns
// the registry's host, the ref and Explain's message.
func refusedBy(t *testing.T, o Options) (host, ref, msg string) {
	t.Helper()
	host, _ = htpasswdRegistry(t, testUser, testPass)
	ref = host + "/app:v1"
	_, err := head(t, context.Background(), ref, o)
	if err == nil {
		t.Fatal("Head succeeded")
	}
	return host, ref, o.Explain(err, ref).Error()
}

func wantAll(t *testing.T, msg string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(msg, w) {
			t.Errorf("Explain = %q, missing %q", msg, w)
		}
	}
}

// The explicit credentials went to another registry than the one that
// refused: the hint says where they went and how to send them here too.
func TestExplainSaysWhereExplicitCredentialsGo(t *testing.T) {
	hermeticDockerConfig(t, nil)
	const plain = "127.0.0.1:1"
	host, _, msg := refusedBy(t, Options{Username: testUser, Password: testPass, CredentialHosts: []string{plain}})
	wantAll(t, msg, "registry "+host+" refused access",
		"--registry-username/--registry-password go only to "+plain,
		"add --registry-credential-host "+host+" (or '*')")
	if strings.Contains(msg, "give (or correct) credentials") {
		t.Errorf("Explain = %q, still asks for credentials that were given", msg)
	}
	if strings.Contains(msg, testPass) {
		t.Errorf("Explain leaks the password: %q", msg)
	}
}

// A refusal says whose credentials were refused: the flags', a variable's,
// the Docker config's, or that there were none.
func TestExplainSaysWhichCredentialsWereRefused(t *testing.T) {
	const wrong = "Wr0ng-pa55word-xyz"
	t.Run("flag", func(t *testing.T) {
		hermeticDockerConfig(t, nil)
		_, _, msg := refusedBy(t, Options{Username: testUser, Password: wrong})
		wantAll(t, msg, "refused the credentials given by --registry-username ("+testUser+")")
	})
	t.Run("variable", func(t *testing.T) {
		hermeticDockerConfig(t, nil)
		_, _, msg := refusedBy(t, Options{Username: testUser, Password: wrong, CredentialsFrom: "FERRY_USERNAME"})
		wantAll(t, msg, "refused the credentials given by FERRY_USERNAME ("+testUser+")")
	})
	t.Run("docker config", func(t *testing.T) {
		host, _ := htpasswdRegistry(t, testUser, testPass)
		hermeticDockerConfig(t, map[string]string{host: testUser + ":" + wrong})
		ref := host + "/app:v1"
		_, err := head(t, context.Background(), ref, Options{})
		if err == nil {
			t.Fatal("Head succeeded")
		}
		msg := (Options{}).Explain(err, ref).Error()
		wantAll(t, msg, "refused the credentials for "+host+" in "+filepath.Join(os.Getenv("DOCKER_CONFIG"), "config.json"))
		if strings.Contains(msg, wrong) || strings.Contains(msg, basicValue(testUser+":"+wrong)) {
			t.Errorf("Explain leaks the password: %q", msg)
		}
	})
	t.Run("none", func(t *testing.T) {
		hermeticDockerConfig(t, nil)
		host, _, msg := refusedBy(t, Options{})
		wantAll(t, msg, "no credentials found for "+host+" (docker login "+host)
	})
}

// dockerConfigJSON writes body as the config.json of a hermetic Docker
// config and returns its path.
func dockerConfigJSON(t *testing.T, body string) string {
	t.Helper()
	hermeticDockerConfig(t, nil)
	dir := os.Getenv("DOCKER_CONFIG")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "config.json")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// A credential helper that is missing or fails is named, with the
// registry and the config file that asks for it.
func TestCredentialHelperFailuresNameTheHelper(t *testing.T) {
	const host = "registry.example.com"
	target := name.MustParseReference(host + "/app:1").Context()
	t.Run("not on PATH", func(t *testing.T) {
		cfg := dockerConfigJSON(t, `{"credHelpers":{"`+host+`":"nosuchhelper"}}`)
		_, err := Options{}.Keychain().Resolve(target)
		if err == nil {
			t.Fatal("Resolve succeeded without the helper")
		}
		wantAll(t, err.Error(), "credential helper docker-credential-nosuchhelper (for "+host+" in "+cfg+") is not on PATH",
			"--registry-username/--registry-password")
		var ex Explained
		if !errors.As(err, &ex) {
			t.Errorf("%v is not Explained", err)
		}
	})
	t.Run("exit 3", func(t *testing.T) {
		cfg := dockerConfigJSON(t, `{"credsStore":"failing"}`)
		bin := t.TempDir()
		if err := os.WriteFile(filepath.Join(bin, "docker-credential-failing"), []byte("#!/bin/sh\nexit 3\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
		// Through a scoped keychain too: other registries go to the helper.
		o := Options{Username: testUser, Password: testPass, CredentialHosts: []string{"elsewhere.example.com"}}
		_, err := o.Keychain().Resolve(target)
		if err == nil {
			t.Fatal("Resolve succeeded with a failing helper")
		}
		wantAll(t, err.Error(), "credential helper docker-credential-failing (for "+host+" in "+cfg+") failed (exit 3)")
		if strings.Contains(err.Error(), testPass) {
			t.Errorf("error leaks the password: %v", err)
		}
	})
}

// The timeout hints state the limit that applied.
func TestExplainTimeoutsStateTheLimit(t *testing.T) {
	handshake := errors.New("Get \"https://r.example.com/v2/\": net/http: TLS handshake timeout")
	if msg := (Options{ResponseHeaderTimeout: 3 * time.Second}).Explain(handshake, "r.example.com/a:b").Error(); !strings.Contains(msg, "within 3s (--registry-response-header-timeout)") {
		t.Errorf("Explain = %q, want the 3s given", msg)
	}
	if msg := (Options{}).Explain(handshake, "r.example.com/a:b").Error(); !strings.Contains(msg, "within 10s (Go's limit)") {
		t.Errorf("Explain = %q, want Go's 10s", msg)
	}
	headers := errors.New("Get \"https://r.example.com/v2/\": net/http: timeout awaiting response headers")
	if msg := (Options{ResponseHeaderTimeout: 7 * time.Second}).Explain(headers, "r.example.com/a:b").Error(); !strings.Contains(msg, "no response within 7s") {
		t.Errorf("Explain = %q, want the 7s given", msg)
	}
}
