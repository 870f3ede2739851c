package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestServeRefusesStreamsBelowOne: --streams 0 or -3 is a usage error
// (exit 2) naming the flag, not a silent 16.
func TestServeRefusesStreamsBelowOne(t *testing.T) {
	for _, n := range []string{"0", "-3"} {
		args := []string{"ferry", "serve", "--streams", n, "--addr", "127.0.0.1:0", "/no/such/archive.tar.zst"}
		var out, errOut bytes.Buffer
		code := run(context.Background(), args, strings.NewReader(""), &out, &errOut)
		if code != 2 || !strings.Contains(errOut.String(), "--streams "+n) {
			t.Errorf("%v: exit %d, want 2 naming --streams %s\nstderr: %s", args, code, n, errOut.String())
		}
	}
}
