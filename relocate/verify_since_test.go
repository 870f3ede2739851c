package relocate_test

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/archive"
	"github.com/ferry-dev/ferry/internal/testregistry"
	"github.com/ferry-dev/ferry/relocate"
)

// TestVerifySinceABaseCutShort: verify --since says a base holds the
// blobs a delta left out only when the base shows it. A base cut short
// still has a readable head listing every blob, but no seek table: its
// index.json declares one, so it is refused, named. A base without a seek
// table of its own (recompressed with gzip) is read whole: whole, it
// holds them; cut short, it is refused.
func TestVerifySinceABaseCutShort(t *testing.T) {
	w := newDeltaWorld(t, testregistry.NewGGCR)
	delta, _ := w.delta(t, w.full)
	path := filepath.Join(w.dir, "delta.tar.zst")
	write := func(name string, b []byte) string {
		t.Helper()
		p := filepath.Join(w.dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("delta.tar.zst", delta)
	full := impMust(os.ReadFile(w.full))
	gz := impGzip(t, impZstdToTar(t, full))
	for _, tc := range []struct {
		name string
		base []byte
		want string // "" when the base holds the blobs
	}{
		{"whole", full, ""},
		{"cut short", full[:len(full)/2], "seek table"},
		{"gzip, whole", gz, ""},
		{"gzip, cut short", gz[:len(gz)/2], "truncated"},
	} {
		base := write(strings.ReplaceAll(tc.name, " ", "-")+".tar", tc.base)
		// The cut is past the head: what it lists is all there is to go by.
		if _, err := archive.Inspect(bytes.NewReader(tc.base)); err != nil {
			t.Fatalf("%s: the base's head cannot be read (%v): the test proves nothing", tc.name, err)
		}
		res, err := relocate.VerifyFile(t.Context(), path, relocate.VerifyOptions{Since: []string{base}})
		if tc.want == "" {
			if err != nil || !res.Verified || res.LeftOut == 0 || !slices.Equal(res.Bases, []string{base}) {
				t.Errorf("%s: %+v, %v; want verified, the %d left-out blobs held by the base", tc.name, res, err, res.LeftOut)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), base) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want the base named, %q", tc.name, err, tc.want)

		}
		if res != nil && (res.Verified || len(res.Bases) > 0) {
			t.Errorf("%s: %+v; want no claim that the base holds anything", tc.name, res)
		}
	}
}
