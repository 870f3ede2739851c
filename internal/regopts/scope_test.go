package regopts

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
)

func TestExplicitCredentialsGoOnlyToTheirHosts(t *testing.T) {
	// An empty Docker config, so that other hosts get no credentials.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"auths":{}}`), 0o600)
	t.Setenv("DOCKER_CONFIG", dir)

	o := Options{Username: "u", Password: "secret", CredentialHosts: []string{"mine.example.com:5000"}}
	kc := o.Keychain()
	for host, wantSecret := range map[string]bool{"mine.example.com:5000": true, "evil.example.com": false, "mine.example.com": false} {
		repo, err := name.NewRepository(host + "/x")
		if err != nil {
			t.Fatal(err)
		}
		a, err := kc.Resolve(repo)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := a.Authorization()
		if err != nil {
			t.Fatal(err)
		}
		if got := cfg.Password == "secret"; got != wantSecret {
			t.Errorf("%s: password sent = %v, want %v", host, got, wantSecret)
		}
	}

	// An empty list: credentials that could go nowhere are an error, not
	// silently dropped.
	if err := (Options{Username: "u", Password: "secret", CredentialHosts: []string{}}).Validate(); err == nil {
		t.Error("credentials with no registry to send them to were accepted")
	}

	// nil: explicit credentials go everywhere (imgpkg's behaviour).
	a, _ := Options{Username: "u", Password: "secret"}.Keychain().Resolve(mustRepo(t, "any.example.com/x"))
	if cfg, _ := a.Authorization(); cfg.Password != "secret" {
		t.Error("unscoped credentials were not sent")
	}
}

func mustRepo(t *testing.T, s string) name.Repository {
	t.Helper()
	r, err := name.NewRepository(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
