package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// The flags that choose what to fetch from registries have no source to
// act on with --from-tar: they are refused, not silently ignored.
func TestExportFromTarRefusesSourceFlags(t *testing.T) {
	for _, flag := range []string{"--cosign-signatures", "--referrers", "--include-non-distributable-layers", "--since=base.tar.zst"} {
		args := []string{"ferry", "export", "--from-tar", "a.imgpkg.tar", "-o", "x.tar.zst", flag}
		var out, errOut bytes.Buffer
		code := run(context.Background(), args, strings.NewReader(""), &out, &errOut)
		name := strings.SplitN(flag, "=", 2)[0]
		if code != 2 || !strings.Contains(errOut.String(), name+" does not apply to --from-tar") {
			t.Errorf("%v: exit %d, want 2 naming %s\nstderr: %s", args, code, name, errOut.String())
		}
	}
}
