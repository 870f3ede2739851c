package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/internal/regopts"
)

// runFerry runs the CLI in-process with an empty standard input.
func runFerry(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(context.Background(), append([]string{"ferry"}, args...), strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

// wantUsage checks that args are refused as a usage error (exit 2) whose
// message holds every one of want.
func wantUsage(t *testing.T, args []string, want ...string) {
	t.Helper()
	code, stdout, stderr := runFerry(args...)
	if code != 2 {
		t.Errorf("ferry %s: exit %d, want 2\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, stdout, stderr)
		return
	}
	for _, w := range want {
		if !strings.Contains(stderr, w) {
			t.Errorf("ferry %s: stderr %q does not say %q", strings.Join(args, " "), stderr, w)
		}
	}
}

// An argument no command takes is refused, naming it, wherever it stands
// and whatever follows it: urfave/cli stopped reading flags at it, so
// `copy … oops --dry-run` copied for real. Every flag is read (a flag
// after the argument is not dropped) and nothing is done.
func TestStrayArgumentsAreRefused(t *testing.T) {
	for _, args := range [][]string{
		{"copy", "-b", "127.0.0.1:1/app-bundle:v1", "--to-repo", "127.0.0.1:1/x", "oops", "--dry-run"},
		{"import", "-f", "release.tar.zst", "--to-repo", "127.0.0.1:1/y", "oops", "--dry-run", "-q"},
		{"import", "-f", "a.tar.zst", "oops", "--to-repo", "127.0.0.1:1/y"},
		{"export", "-b", "127.0.0.1:1/b:1", "-o", "e.tar.zst", "oops", "--json"},
		{"export", "oops"},
		{"push", "-b", "127.0.0.1:1/b:1", "-f", ".", "oops"},
		{"pull", "-b", "127.0.0.1:1/b:1", "-o", "out", "oops", "-r"},
		{"inventory", "--repo", "127.0.0.1:1/x", "-o", "have.json", "oops"},
		{"tag", "list", "-i", "127.0.0.1:1/x", "oops", "--digests"},
		{"tag", "ls", "oops"},
	} {
		wantUsage(t, args, `"oops"`, "takes no arguments")
	}
	for _, args := range [][]string{
		{"inspect", "a.tar.zst", "oops", "--json"},
		{"verify", "a.tar.zst", "oops"},
		{"serve", "--addr", "127.0.0.1:0", "a.tar.zst", "oops", "--json"},
		{"completion", "bash", "oops"},
	} {
		wantUsage(t, args, `"oops"`, "takes one argument")
	}
	// Several are all named.
	wantUsage(t, []string{"export", "x", "y", "-b", "r.example/b:1"}, `arguments "x" "y"`)
}

// Flags after the argument of inspect, verify, serve and completion are
// read as flags: a flag completion does not have is refused as such, not
// taken for a missing shell.
func TestFlagsAfterTheArgumentAreRead(t *testing.T) {
	wantUsage(t, []string{"completion", "bash", "-q"}, "completion: unknown flag -q")
	// --since after the archive is read: its file is checked (and missing).
	wantUsage(t, []string{"verify", "a.tar.zst", "--since", "/no/such/base.tar.zst"}, "/no/such/base.tar.zst")
	// serve reads --streams after the file.
	wantUsage(t, []string{"serve", "/no/such/a.tar.zst", "--streams", "0"}, "--streams 0")
	// A flag that needs a value, given last without one, is named as such
	// rather than taking the argument before it as its value.
	wantUsage(t, []string{"verify", "a.tar.zst", "--since"}, "verify: --since needs a value")
	wantUsage(t, []string{"serve", "a.tar.zst", "--addr"}, "serve: --addr needs a value")
	wantUsage(t, []string{"export", "-b", "127.0.0.1:1/x:1", "-o"}, "export: -o needs a value")
	// Before any command, the error is ferry's own, said once.
	if code, _, stderr := runFerry("--help=foo"); code != 2 || strings.Contains(stderr, "ferry: ferry:") || !strings.Contains(stderr, `--help "foo": give true or false`) {
		t.Errorf("ferry --help=foo: exit %d, %q", code, stderr)
	}
	// --help after an argument is the command's help (urfave/cli looked
	// for a help topic named after the argument: "No help topic", exit 1).
	for _, args := range [][]string{{"completion", "zsh", "--help"}, {"inspect", "a.tar.zst", "-h"}, {"export", "oops", "--help"}, {"tag", "list", "x", "--help"}} {
		code, stdout, stderr := runFerry(args...)
		if code != 0 || !strings.Contains(stdout, "ferry "+strings.Join(args[:len(args)-2], " ")) {
			t.Errorf("ferry %v: exit %d, want the help\nstdout: %s\nstderr: %s", args, code, stdout, stderr)
		}
	}
}

// An unknown command or subcommand is a usage error (urfave/cli said "No
// help topic", exit 1); `ferry help [COMMAND]` is the help.
func TestUnknownCommandsAreUsageErrors(t *testing.T) {
	wantUsage(t, []string{"bogus"}, `"bogus" is not a ferry command`)
	wantUsage(t, []string{"bogus", "--json"}, "bogus")
	wantUsage(t, []string{"tag", "bogus"}, `tag: "bogus" is not a tag command (list)`)
	wantUsage(t, []string{"help", "bogus"}, `"bogus" is not a ferry command`)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "USAGE"},
		{[]string{"help"}, "USAGE"},
		{[]string{"help", "export"}, "ferry export"},
		{[]string{"tag"}, "list"},
	} {
		code, stdout, stderr := runFerry(tc.args...)
		if code != 0 || !strings.Contains(stdout, tc.want) {
			t.Errorf("ferry %v: exit %d, want 0 with %q\nstdout: %s\nstderr: %s", tc.args, code, tc.want, stdout, stderr)
		}
	}
}

// A destination named without its registry would go to Docker Hub, a
// public registry: refused, saying how to mean Docker Hub.
func TestDestinationMustNameItsRegistry(t *testing.T) {
	for _, args := range [][]string{
		{"import", "-f", "release.tar.zst", "--to-repo", "mirror/app", "--dry-run"},
		{"import", "-f", "release.tar.zst", "--to-repo", "app"},
		{"copy", "-b", "127.0.0.1:1/b:1", "--to-repo", "mirror/app", "--dry-run"},
		{"copy", "--tar", "release.tar.zst", "--to-repo", "mirror/team/app"},
		{"inventory", "--repo", "mirror/app", "-o", "have.json"},
	} {
		wantUsage(t, args, "names no registry", "docker.io/")
	}
	for _, ok := range []string{"docker.io/mirror/app", "localhost/app", "localhost:5000/app", "registry.example.com/app", "10.0.0.1:5000/a/b", "[::1]:5000/app"} {
		if _, err := parseRepository(ok, regopts.Options{}, true); err != nil {
			t.Errorf("parseRepository(%q): %v", ok, err)
		}
	}
	for _, cmd := range []string{"import", "copy"} {
		if _, stdout, _ := runFerry(cmd, "--help"); !strings.Contains(stdout, "docker.io/PATH for Docker Hub") {
			t.Errorf("%s --help does not say how to name Docker Hub:\n%s", cmd, stdout)
		}
	}
}

// Counts that must be one or more are refused below that, not read as a
// default: --concurrency 0 ran at 8, --registry-retry-count 0 at 5.
func TestCountsBelowOneAreRefused(t *testing.T) {
	for _, n := range []string{"0", "-1"} {
		for _, args := range [][]string{
			{"export", "-b", "127.0.0.1:1/b:1", "-o", "x.tar.zst", "--concurrency", n},
			{"copy", "-b", "127.0.0.1:1/b:1", "--to-repo", "127.0.0.1:1/x", "--concurrency", n},
			{"import", "-f", "x.tar.zst", "--to-repo", "127.0.0.1:1/x", "--concurrency", n},
			{"push", "-b", "127.0.0.1:1/b:1", "-f", ".", "--to-tar", "x.tar.zst", "--concurrency", n},
			{"inventory", "--repo", "127.0.0.1:1/x", "-o", "x.json", "--concurrency", n},
		} {
			wantUsage(t, args, "--concurrency "+n, "1 or more")
		}
		wantUsage(t, []string{"export", "-b", "127.0.0.1:1/b:1", "-o", "x.tar.zst", "--registry-retry-count", n}, "--registry-retry-count "+n)
		wantUsage(t, []string{"tag", "list", "-i", "127.0.0.1:1/x", "--registry-retry-count=" + n}, "--registry-retry-count "+n)
	}
	if _, stdout, _ := runFerry("export", "--help"); !strings.Contains(stdout, "1 makes no retries (default: 5)") {
		t.Errorf("export --help does not say what --registry-retry-count 1 does and its default:\n%s", stdout)
	}
}

// A reference on the command line that cannot be parsed is a usage error,
// found before any registry is asked.
func TestUnparsableReferencesAreUsageErrors(t *testing.T) {
	wantUsage(t, []string{"export", "-b", "not_a@ref", "-o", "x.tar.zst"}, "-b", "not_a@ref")
	wantUsage(t, []string{"export", "-i", "UPPER/case:1", "-o", "x.tar.zst"}, "-i", "UPPER/case:1")
	wantUsage(t, []string{"copy", "-b", "not_a@ref", "--to-repo", "127.0.0.1:1/x"}, "not_a@ref")
}

// A file named on the command line that does not exist is a usage error,
// whichever flag or argument names it (--since was 2, -f was 1).
func TestMissingNamedFilesAreUsageErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	present := filepath.Join(t.TempDir(), "present")
	if err := os.WriteFile(present, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"import", "-f", missing, "--to-repo", "127.0.0.1:1/x"},
		{"copy", "--tar", missing, "--to-repo", "127.0.0.1:1/x"},
		{"import", "-f", present, "--to-repo", "127.0.0.1:1/x", "--spool-dir", missing},
		{"copy", "--tar", present, "--to-repo", "127.0.0.1:1/x", "--spool-dir", missing},
		{"export", "--from-tar", missing, "-o", filepath.Join(t.TempDir(), "x.tar.zst")},
		{"export", "--lock", missing, "-o", filepath.Join(t.TempDir(), "x.tar.zst")},
		{"copy", "--lock", missing, "--to-repo", "127.0.0.1:1/x"},
		{"export", "-b", "127.0.0.1:1/b:1", "-o", filepath.Join(t.TempDir(), "x.tar.zst"), "--since", missing},
		{"push", "-b", "127.0.0.1:1/b:1", "-f", missing},
		{"inspect", missing},
		{"verify", missing},
		{"verify", present, "--since", missing},
		{"serve", missing},
		{"serve", present, "--htpasswd", missing},
		{"tag", "list", "-i", "127.0.0.1:1/x", "--registry-ca-cert-path", missing},
	} {
		wantUsage(t, args, missing)
	}
}

// verify - without a file behind standard input (here, in-process) says
// why it cannot, rather than "give one archive file".
func TestVerifyStdinNeedsAFile(t *testing.T) {
	wantUsage(t, []string{"verify", "-"}, "standard input cannot be opened as a file")
}

// A word "h" or "help" among a command's arguments is an argument like any
// other (a file of that name, or a stray word), never the help: urfave/cli
// gave every command a help subcommand, so `ferry verify h` printed the
// help and exited 0 having verified nothing.
func TestHelpIsOnlyAFlagAfterTheCommand(t *testing.T) {
	wantUsage(t, []string{"verify", "h"}, "open h")
	wantUsage(t, []string{"verify", "--", "help"}, "help")
	wantUsage(t, []string{"export", "-b", "127.0.0.1:1/x:1", "-o", "o.tar.zst", "help"}, `unexpected argument "help"`)
	wantUsage(t, []string{"import", "-f", "a.tar.zst", "--to-repo", "127.0.0.1:1/x", "h"}, `unexpected argument "h"`)
	// The help is still there, as a flag or as `ferry help COMMAND`.
	for _, args := range [][]string{{"verify", "--help"}, {"verify", "-h"}, {"help", "verify"}} {
		if code, stdout, _ := runFerry(args...); code != 0 || !strings.Contains(stdout, "ferry verify") {
			t.Errorf("ferry %v: exit %d, want the help: %s", args, code, stdout)
		}
	}
}

// copy refuses a flag of one of its modes given to another, naming the
// mode, rather than ignore it: --spool-dir is copy --tar's (an import's).
func TestCopySpoolDirIsCopyFromTarsOnly(t *testing.T) {
	dir := t.TempDir()
	wantUsage(t, []string{"copy", "-b", "127.0.0.1:1/a:v1", "--to-repo", "127.0.0.1:1/b", "--spool-dir", dir}, "copy: --spool-dir does not apply to --to-repo")
	wantUsage(t, []string{"copy", "-b", "127.0.0.1:1/a:v1", "--to-tar", filepath.Join(dir, "x.tar.zst"), "--spool-dir", dir}, "copy: --spool-dir does not apply to --to-tar")
}
