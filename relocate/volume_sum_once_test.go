package relocate_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/internal/volumes"
	"github.com/ferry-dev/ferry/relocate"
)

// TestADamagedChecksumLineIsSaidOnce: line 2 of the checksum file of a
// split archive gives another sum. verify reads up to the end of
// volume .002, where the volumes compare it with its line and stop; it
// names the volume and both sums once, not again as "(reading it: ...)".
// (An import reads that volume's blobs at random, each checked against its
// digest, and does not stop there.)
func TestADamagedChecksumLineIsSaidOnce(t *testing.T) {
	path, _ := splitSource(t, "s.tar.zst")
	side := path + ".sha256"
	b, err := os.ReadFile(side)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	fake := strings.Repeat("0", 64)
	lines[1] = fake + lines[1][64:]
	if err := os.WriteFile(side, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	want := "volume .002 (" + volumes.Name(path, 2) + ") has sha256 "

	check := func(what string, err error) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s: no error", what)
		}
		if !strings.Contains(err.Error(), want) || strings.Count(err.Error(), "volume .002") != 1 ||
			strings.Count(err.Error(), fake) != 1 || strings.Contains(err.Error(), "reading it") {
			t.Errorf("%s: %v\nwant it to say %q once, and its line's sum once", what, err, want)
		}
	}
	_, err = relocate.VerifyFile(context.Background(), volumes.Name(path, 1), relocate.VerifyOptions{})
	check("verify", err)

}
