package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestFlagsFirstMovesFlagsOfFileCommands(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"ferry inspect a.tar.zst --json", "ferry inspect --json a.tar.zst"},
		{"ferry verify --json a.tar.zst", "ferry verify --json a.tar.zst"},
		{"ferry inspect -", "ferry inspect -"},
		{"ferry export -b r -o x --json", "ferry export -b r -o x --json"},
		{"ferry serve a.tar.zst --addr 127.0.0.1:0 --repo x/y", "ferry serve --addr 127.0.0.1:0 --repo x/y a.tar.zst"},
		{"ferry serve --addr 127.0.0.1:0 a.tar.zst", "ferry serve --addr 127.0.0.1:0 a.tar.zst"},
		{"ferry serve a.tar.zst", "ferry serve a.tar.zst"},
	} {
		got := strings.Join(flagsFirst(strings.Fields(tc.in)), " ")
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
		{[]string{"ferry", "verify", "/no/such/archive.tar.zst"}, 1, "/no/such/archive.tar.zst"},
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
