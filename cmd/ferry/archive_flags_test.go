package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestArchiveFlagsUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"ferry", "export", "-b", "r.example/b:1", "-o", "x.tar.zst", "--split-size", "0"}, "at least one byte"},
		{[]string{"ferry", "export", "-b", "r.example/b:1", "-o", "x.tar.zst", "--split-size", "4X"}, "unknown suffix"},
		{[]string{"ferry", "export", "-b", "r.example/b:1", "-o", "-", "--split-size", "1M"}, "standard output cannot be split"},
		{[]string{"ferry", "export", "--from-tar", "a.tar", "-b", "r.example/b:1", "-o", "x.tar.zst"}, "--from-tar FILE is the source"},
		{[]string{"ferry", "copy", "-b", "r.example/b:1", "--to-repo", "r.example/c", "--split-size", "1M"}, "--split-size does not apply"},
		{[]string{"ferry", "copy", "--tar", "a.tar.zst", "--to-repo", "r.example/c", "--split-size", "1M"}, "--split-size does not apply"},
		{[]string{"ferry", "push", "-b", "r.example/b:1", "-f", ".", "--split-size", "1M"}, "applies to --to-tar only"},
		{[]string{"ferry", "push", "-b", "r.example/b:1", "-f", ".", "--cosign-signatures"}, "applies to --to-tar only"},
		{[]string{"ferry", "push", "-b", "r.example/b:1", "-f", ".", "--to-tar", "x.tar.zst", "--lock-output", "l.yml"}, "--lock-output"},
		{[]string{"ferry", "push", "-b", "r.example/b:1", "-f", ".", "--to-tar", "-", "--json"}, "--json"},
	} {
		var out, errOut bytes.Buffer
		code := run(context.Background(), tc.args, strings.NewReader(""), &out, &errOut)
		if code != 2 || !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("%v: exit %d, want 2 with %q\nstderr: %s", tc.args, code, tc.want, errOut.String())
		}
	}
}
