package e2e

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/internal/testregistry"
)

// A bundle on one registry locks an image on another that wants
// credentials: credentials given on the command line go to the bundle's
// registry only, and the refusal says so and names the flag that sends
// them further, instead of asking for credentials that were given. With
// that flag the export works; a wrong password from FERRY_PASSWORD is said
// to come from the variables. The message names the locked image the
// registry refused, reached through the bundle.
func TestExportExplainsWhereCredentialsWent(t *testing.T) {
	plain := testregistry.NewGGCR(t)
	auth := testregistry.NewDistribution(t, testregistry.WithAuth("alice", "s3cret"))
	img := seedImage(t, auth, "lib/img", 81)
	bundle := plain.Repo("app/bundle3") + ":v1"
	mustFerry(t, "push", "-b", bundle, "-f", bundleDir(t, img))
	out := filepath.Join(t.TempDir(), "b.tar.zst")

	r := ferry(t, nil, "export", "-b", bundle, "-o", out, "--registry-username", "alice", "--registry-password", "s3cret")
	if r.Code != 1 {
		t.Fatalf("export with credentials for the bundle's registry only: %s", r)
	}
	first, _, _ := strings.Cut(r.Stderr, "\n")
	for _, want := range []string{"registry " + auth.Host + " refused access",
		// The image that needs them, not only the bundle that locks it.
		"for " + img.String() + " (reached through bundle " + bundle + ")",
		"--registry-username/--registry-password go only to " + plain.Host,
		"add --registry-credential-host " + auth.Host + " (or '*')"} {
		if !strings.Contains(first, want) {
			t.Errorf("first line %q, missing %q\n%s", first, want, r)
		}
	}
	if strings.Contains(r.Stderr, "s3cret") {
		t.Errorf("stderr leaks the password:\n%s", r)
	}

	mustFerry(t, "export", "-b", bundle, "-o", out, "--registry-username", "alice", "--registry-password", "s3cret",
		"--registry-credential-host", auth.Host)

	r = ferry(t, []string{"FERRY_USERNAME=alice", "FERRY_PASSWORD=wrong-pass"},
		"export", "-b", bundle, "-o", out, "--registry-credential-host", auth.Host)
	if r.Code != 1 || !strings.Contains(r.Stderr, "refused the credentials given by FERRY_USERNAME (alice)") || strings.Contains(r.Stderr, "wrong-pass") {
		t.Errorf("export with a wrong FERRY_PASSWORD: want the variables named, never the password:\n%s", r)
	}
}
