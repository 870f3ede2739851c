package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
)

// flagsFirst moves every command's flags before its arguments, each with
// the value its definition says it takes, so that a flag after an argument
// is read, never dropped.
func TestFlagsFirstMovesFlagsBeforeArguments(t *testing.T) {
	cmds := newApp(strings.NewReader(""), io.Discard, io.Discard).Commands
	for _, tc := range []struct{ in, want string }{
		{"ferry inspect a.tar.zst --json", "ferry inspect --json a.tar.zst"},
		{"ferry verify --json a.tar.zst", "ferry verify --json a.tar.zst"},
		{"ferry verify a.tar.zst --since b.tar.zst -q", "ferry verify --since b.tar.zst -q a.tar.zst"},
		{"ferry inspect -", "ferry inspect -"},
		{"ferry inspect - -v", "ferry inspect -v -"},
		{"ferry export -b r -o x --json", "ferry export -b r -o x --json"},
		{"ferry serve a.tar.zst --addr 127.0.0.1:0 --repo x/y", "ferry serve --addr 127.0.0.1:0 --repo x/y a.tar.zst"},
		{"ferry serve --addr 127.0.0.1:0 a.tar.zst", "ferry serve --addr 127.0.0.1:0 a.tar.zst"},
		{"ferry serve a.tar.zst", "ferry serve a.tar.zst"},
		{"ferry serve --addr 127.0.0.1:0 release.tar.zst --json", "ferry serve --addr 127.0.0.1:0 --json release.tar.zst"},
		// Every command, not only those that take an argument: the stray
		// argument goes last, where the command refuses it.
		{"ferry copy -b s/a:1 --to-repo d.example/x oops --dry-run", "ferry copy -b s/a:1 --to-repo d.example/x --dry-run oops"},
		{"ferry import -f a.tar.zst b.tar.zst --to-repo r.example/x", "ferry import -f a.tar.zst --to-repo r.example/x b.tar.zst"},
		{"ferry export -b r -o - extra --json", "ferry export -b r -o - --json extra"},
		{"ferry completion bash -q", "ferry completion -q bash"},
		// A value that looks like a flag is the value of the flag before it.
		{"ferry export -b r -o x x2 --concurrency -1", "ferry export -b r -o x --concurrency -1 x2"},
		{"ferry export --level=best x -b r", "ferry export --level=best -b r x"},
		// A flag that needs a value and has none stays last.
		{"ferry verify a.tar.zst --since", "ferry verify a.tar.zst --since"},
		{"ferry serve a.tar.zst --json --addr", "ferry serve --json a.tar.zst --addr"},
		// Subcommands, by name or alias.
		{"ferry tag list -i r x --digests", "ferry tag list -i r --digests x"},
		{"ferry tag ls x -i r", "ferry tag ls -i r x"},
		// After "--", only arguments.
		{"ferry inspect -- -v --json", "ferry inspect -- -v --json"},
		{"ferry inspect a -q -- -b", "ferry inspect -q -- a -b"},
		// An unknown command or subcommand, and completion, are left alone.
		{"ferry bogus x --json", "ferry bogus x --json"},
		{"ferry tag bogus x --json", "ferry tag bogus x --json"},
		{"ferry --help", "ferry --help"},
		{"ferry inspect a --generate-bash-completion", "ferry inspect a --generate-bash-completion"},
	} {
		got := strings.Join(flagsFirst(cmds, strings.Fields(tc.in)), " ")
		if got != tc.want {
			t.Errorf("flagsFirst(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestExitCodes(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"ferry", "--help"}, 0, "air gaps"},
		{[]string{"ferry", "export", "-o", "x.tar.zst"}, 2, "exactly one of -b"},
		{[]string{"ferry", "export", "-b", "r:1", "-o", "x", "--level", "huge"}, 2, "huge"},
		{[]string{"ferry", "import", "-f", "x"}, 2, "--to-repo"},
		{[]string{"ferry", "inspect"}, 2, "give one archive"},
		{[]string{"ferry", "verify", "/no/such/archive.tar.zst"}, 2, "/no/such/archive.tar.zst"},
		{[]string{"ferry", "pull", "-i", "r:1", "-o", "d", "-r"}, 2, "-r is for bundles"},
	} {
		var out, errOut bytes.Buffer
		code := run(context.Background(), tc.args, strings.NewReader(""), &out, &errOut)
		if code != tc.code || !strings.Contains(out.String()+errOut.String(), tc.want) {
			t.Errorf("%v: exit %d, want %d with %q\nstdout: %s\nstderr: %s", tc.args, code, tc.code, tc.want, out.String(), errOut.String())
		}
	}
}

func TestRedactQueries(t *testing.T) {
	in := `GET "https://bucket.s3.example.com/blob?X-Amz-Signature=abc&X-Amz-Credential=k": EOF; http://h:5000/v2/x/blobs/uploads/1?_state=s; no url here`
	got := redactQueries(in)
	for _, secret := range []string{"X-Amz-Signature", "abc", "_state=s"} {
		if strings.Contains(got, secret) {
			t.Errorf("%q survived: %s", secret, got)
		}
	}
	if !strings.Contains(got, "https://bucket.s3.example.com/blob?REDACTED") || !strings.Contains(got, "no url here") {
		t.Errorf("redaction changed more than the query: %s", got)
	}
	// Paging parameters hold no secret, and the colon after a URL is the
	// sentence's, not the query's.
	for in, want := range map[string]string{
		`GET https://r.example/v2/a/tags/list?n=1000: NAME_UNKNOWN`:           `GET https://r.example/v2/a/tags/list?n=1000: NAME_UNKNOWN`,
		`GET https://r.example/v2/a/tags/list?n=10&last=v1: x`:                `GET https://r.example/v2/a/tags/list?n=10&last=v1: x`,
		`GET https://r.example/v2/a/tags/list?n=10&sig=s: x`:                  `GET https://r.example/v2/a/tags/list?REDACTED: x`,
		`PUT http://h:5000/v2/x/blobs/uploads/1?_state=s&digest=sha256:ab: y`: `PUT http://h:5000/v2/x/blobs/uploads/1?REDACTED: y`,
	} {
		if got := redactQueries(in); got != want {
			t.Errorf("redactQueries(%q) = %q, want %q", in, got, want)
		}
	}
}

// The soft memory limit grows with the cores an export compresses on, and
// is 64 MiB on the two-core machine where it was measured.
func TestMemoryLimit(t *testing.T) {
	if got := memoryLimit(2); got != 64<<20 {
		t.Errorf("memoryLimit(2) = %d MiB, want 64", got>>20)
	}
	for p := 1; p < 64; p++ {
		if memoryLimit(p+1) <= memoryLimit(p) {
			t.Fatalf("memoryLimit(%d) = %d is not above memoryLimit(%d) = %d", p+1, memoryLimit(p+1), p, memoryLimit(p))
		}
	}
}
