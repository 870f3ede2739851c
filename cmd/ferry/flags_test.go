package main

import (
	"bytes"
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/urfave/cli/v2"
)

// TestCredentialHostsNameEachRepositoryGiven: the explicit credentials go
// to the registry of every repository a command names, inventory's --repo
// values included (each may be on its own registry); serve's --repo is a
// path on no registry.
func TestCredentialHostsNameEachRepositoryGiven(t *testing.T) {
	for _, tc := range []struct {
		cmd  *cli.Command
		args []string
		want []string
	}{
		{inventoryCommand(), []string{"--repo", "a.example:5000/x/y", "--repo", "b.example/z", "-o", "have.json"}, []string{"a.example:5000", "b.example"}},
		{inventoryCommand(), []string{"--repo", "a.example/x", "--registry-credential-host", "c.example"}, []string{"c.example", "a.example"}},
		{importCommand(), []string{"--to-repo", "d.example/far"}, []string{"d.example"}},
		{serveCommand(), []string{"--repo", "team/app"}, []string{}},
	} {
		var got []string
		cmd := tc.cmd
		cmd.Action = func(c *cli.Context) error { got = credentialHosts(c); return nil }
		app := &cli.App{Name: "ferry", Commands: []*cli.Command{cmd}}
		if err := app.Run(append([]string{"ferry", cmd.Name}, tc.args...)); err != nil {
			t.Fatalf("%s %v: %v", cmd.Name, tc.args, err)
		}
		if got == nil || !slices.Equal(got, tc.want) {
			t.Errorf("%s %v: credential hosts %q, want %q", cmd.Name, tc.args, got, tc.want)
		}
	}
}

// Registry flags that contradict each other, or a CA file with no
// certificate in it, are usage errors (exit 2, as the README's exit status
// says of a bad flag value), found before any registry is asked: every
// command that takes them is run against a registry that counts requests.
func TestContradictoryRegistryFlagsAreUsageErrors(t *testing.T) {
	var requests atomic.Int64
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	archive := filepath.Join(dir, "a.tar.zst")
	for _, f := range []string{notPEM, archive} {
		if err := os.WriteFile(f, []byte("not a certificate nor an archive\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	commands := map[string][]string{
		"tag list":  {"tag", "list", "-i", host + "/r"},
		"export":    {"export", "-b", host + "/b:1", "-o", filepath.Join(dir, "x.tar.zst")},
		"copy":      {"copy", "-b", host + "/b:1", "--to-repo", host + "/x"},
		"import":    {"import", "-f", archive, "--to-repo", host + "/x"},
		"push":      {"push", "-b", host + "/b:1", "-f", dir},
		"pull":      {"pull", "-b", host + "/b:1", "-o", filepath.Join(dir, "out")},
		"inventory": {"inventory", "--repo", host + "/x", "-o", filepath.Join(dir, "have.json")},
	}
	for _, bad := range []struct {
		flags []string
		want  string
	}{
		{[]string{"--registry-username", "u"}, "without a password"},
		{[]string{"--registry-password", "p"}, "without a username"},
		{[]string{"--registry-username", "u", "--registry-password", "p", "--registry-token", "t"}, "not both"},
		{[]string{"--registry-anon", "--registry-token", "t"}, "--registry-anon"},
		{[]string{"--registry-ca-cert-path", notPEM}, notPEM},
	} {
		for cmd, args := range commands {
			wantUsage(t, append(append(slices.Clone(args), "--registry-insecure"), bad.flags...), cmd+":", bad.want)
		}
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("the registry was asked %d requests; bad registry flags must be refused before any", n)
	}
}

// A wait or a count of 0 or less is refused as a usage error naming the
// command and the flag, never read as the default or as no limit.
func TestNonPositiveLimitsAreUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"ferry", "pull", "-b", "127.0.0.1:1/a:v1", "-o", "d", "--registry-response-header-timeout", "0s"}, "pull: --registry-response-header-timeout 0s: give a positive duration"},
		{[]string{"ferry", "import", "-f", "x.tar.zst", "--to-repo", "127.0.0.1:1/a", "--registry-response-header-timeout", "-5s"}, "import: --registry-response-header-timeout -5s: give a positive duration"},
		{[]string{"ferry", "tag", "list", "-i", "127.0.0.1:1/a", "--registry-response-header-timeout", "0"}, "tag list: --registry-response-header-timeout 0s: give a positive duration"},
		{[]string{"ferry", "copy", "-b", "127.0.0.1:1/a:v1", "--to-repo", "127.0.0.1:1/b", "--concurrency", "0"}, "copy: --concurrency 0: give 1 or more"},
		{[]string{"ferry", "push", "-b", "127.0.0.1:1/a:v1", "-f", "/no/such/dir"}, "push: --file /no/such/dir: no such file or directory"},
	} {
		var out, errOut bytes.Buffer
		code := run(context.Background(), tc.args, strings.NewReader(""), &out, &errOut)
		if code != 2 || !strings.Contains(errOut.String(), "ferry: "+tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and %q", tc.args[1:], code, errOut.String(), tc.want)
		}
	}
}

// copy --tar is an import underneath, but its errors name copy, the
// command the user ran.
func TestCopyFromTarNamesCopy(t *testing.T) {
	var out, errOut bytes.Buffer
	args := []string{"ferry", "copy", "--tar", filepath.Join(t.TempDir(), "missing.tar.zst"), "--to-repo", "127.0.0.1:1/a"}
	code := run(context.Background(), args, strings.NewReader(""), &out, &errOut)
	if code == 0 || !strings.Contains(errOut.String(), "ferry: copy: ") || strings.Contains(errOut.String(), "import") {
		t.Errorf("exit %d, stderr %q; want a failure naming copy, not import", code, errOut.String())
	}
}

// Every error names the command first: "ferry: CMD: …" where what follows
// names its own subject (a flag and its value, "open FILE"), "ferry: CMD
// FILE to REPO: …" where the work on the archive failed. --since's errors
// named no command, serve's failure to open named the file twice, and an
// import's put the file before the command.
func TestErrorsBeginWithTheCommand(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "g.tar.zst")
	if err := os.WriteFile(garbage, []byte("not an archive\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "nope.json")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"export", "-b", "127.0.0.1:1/a:v1", "-o", filepath.Join(dir, "x.tar.zst"), "--since", missing}, 2, "ferry: export: --since " + missing + ": open " + missing + ": "},
		{[]string{"copy", "-b", "127.0.0.1:1/a:v1", "--to-tar", filepath.Join(dir, "x.tar.zst"), "--since", garbage}, 2, "ferry: copy: --since " + garbage + ": neither a ferry archive nor a ferry inventory"},
		{[]string{"serve", filepath.Join(dir, "nope.tar.zst")}, 2, "ferry: serve: open " + filepath.Join(dir, "nope.tar.zst") + ": no such file"},
		{[]string{"import", "-f", garbage, "--to-repo", "127.0.0.1:1/x"}, 1, "ferry: import " + garbage + " to 127.0.0.1:1/x: not a ferry archive"},
		{[]string{"copy", "--tar", garbage, "--to-repo", "127.0.0.1:1/x"}, 1, "ferry: copy " + garbage + " to 127.0.0.1:1/x: not a ferry archive"},
	} {
		code, _, stderr := runFerry(tc.args...)
		if code != tc.code || !strings.HasPrefix(stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and %q", tc.args, code, stderr, tc.code, tc.want)
		}
	}
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"ferry", "import", "-f", "-", "--to-repo", "127.0.0.1:1/x"}, strings.NewReader("not an archive\n"), &out, &errOut); code != 1 || !strings.HasPrefix(errOut.String(), "ferry: import standard input to 127.0.0.1:1/x: ") {
		t.Errorf("import -f -: exit %d, stderr %q; want it to name standard input after the command", code, errOut.String())
	}
}
