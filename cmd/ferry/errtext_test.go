package main

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/internal/testregistry"
)

// An explained registry failure reads at a glance: the hint on the first
// line, the innermost error on the second, the whole chain only with -v;
// --json keeps the one-line error. The refused access is said in words,
// not as go-containerregistry's detail maps.
func TestExplainedErrorReadsAtAGlance(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("DOCKER_CONFIG", filepath.Join(home, ".docker"))
	t.Setenv("REGISTRY_AUTH_FILE", "")
	t.Setenv("XDG_RUNTIME_DIR", "")
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
	reg := testregistry.NewDistribution(t, testregistry.WithAuth("alice", "s3cret"))
	repo := reg.Repo("app/bundle")
	args := []string{"tag", "list", "-i", repo, "--registry-username", "alice", "--registry-password", "wrong-pass"}

	code, _, stderr := runFerry(args...)
	if code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, stderr)
	}
	lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 lines (hint, cause), got %d:\n%s", len(lines), stderr)
	}
	if want := "ferry: registry " + reg.Host + " refused access for " + repo + ": it refused the credentials given by --registry-username (alice)"; !strings.HasPrefix(lines[0], want) {
		t.Errorf("line 1 = %q, want it to start %q", lines[0], want)
	}
	if !strings.HasPrefix(lines[1], "  cause: ") || !strings.Contains(lines[1], "401") && !strings.Contains(lines[1], "UNAUTHORIZED") {
		t.Errorf("line 2 = %q, want the registry's refusal as cause", lines[1])
	}
	if strings.Count(stderr, repo) > 1 {
		t.Errorf("%s named %d times:\n%s", repo, strings.Count(stderr, repo), stderr)
	}
	for _, never := range []string{"map[", "[{Action", "wrong-pass", `\n`} {
		if strings.Contains(stderr, never) {
			t.Errorf("stderr holds %q:\n%s", never, stderr)
		}
	}

	_, _, verbose := runFerry(append(args, "-v")...)
	vlines := strings.Split(strings.TrimSuffix(verbose, "\n"), "\n")
	if len(vlines) != 2 || vlines[0] != lines[0] || !strings.Contains(vlines[1], "GET ") && !strings.Contains(vlines[1], "HEAD ") {
		t.Errorf("-v: want the hint, then the whole chain (with the request):\n%s", verbose)
	}

	_, _, js := runFerry(append(args, "--json")...)
	if n := strings.Count(js, "\n"); n != 1 || !strings.Contains(js, "refused the credentials given by --registry-username (alice): ") {
		t.Errorf("--json: want the whole error on one line:\n%s", js)
	}
}

// Registry error details of a refusal read as words.
func TestReadableAccess(t *testing.T) {
	// go-containerregistry's Diagnostic.String: "%s: %s; %v" of the JSON
	// detail, as distribution sends it for a refused pull.
	msg := "GET http://r/v2/app/bundle/manifests/v1: UNAUTHORIZED: authentication required; [map[Action:pull Class: Name:app/bundle Type:repository]]"
	want := "GET http://r/v2/app/bundle/manifests/v1: UNAUTHORIZED: authentication required (pull access to repository app/bundle)"
	if got := forTerminal(msg); got != want {
		t.Errorf("forTerminal =\n%q, want\n%q", got, want)
	}
}

// A registry's plain-text body ends with a newline, which was printed as
// a literal \n.
func TestForTerminalTrimsBodies(t *testing.T) {
	msg := "GET http://r/v2/: unexpected status code 400 Bad Request: Client sent an HTTP request to an HTTPS server.\n"
	if got := forTerminal(msg); strings.Contains(got, `\n`) || !strings.HasSuffix(got, "HTTPS server.") {
		t.Errorf("forTerminal = %q", got)
	}
	joined := "a: tls: failed; GET http://r/v2/: Client sent an HTTP request to an HTTPS server.\n; b"
	if got := forTerminal(joined); strings.Contains(got, `\n`) {
		t.Errorf("forTerminal = %q", got)
	}
}

// A run a signal stopped says so, in words, naming the command.
func TestInterruptedRunSaysSo(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	// What signal.NotifyContext cancels with on SIGINT.
	cancel(sigErr("interrupt signal received"))
	if got, want := errorText(ctx, context.Cause(ctx), "export", false, false), "ferry: interrupted (SIGINT): export stopped\n"; got != want {
		t.Errorf("errorText = %q, want %q", got, want)
	}
	fifo := errors.New("open /tmp/x.fifo: waiting for a writer: interrupt signal received")
	if got := errorText(ctx, fifo, "inspect", false, false); !strings.HasPrefix(got, "ferry: interrupted (SIGINT): inspect stopped\n  cause: ") || !strings.Contains(got, "/tmp/x.fifo") {
		t.Errorf("errorText = %q, want the interruption, then what was waiting", got)
	}
}

type sigErr string

func (s sigErr) Error() string { return string(s) }
