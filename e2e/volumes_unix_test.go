//go:build unix

package e2e

import (
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/internal/testregistry"
)

func TestSplitExportFailingMidWayLeavesNoVolume(t *testing.T) {
	src := newBigSource(t)
	// An earlier export under the same name, unsplit, must survive the
	// failed one byte for byte.
	keptDir := t.TempDir()
	kept := filepath.Join(keptDir, "x.tar.zst")
	mustFerry(t, "export", "-b", src.bundle, "-o", kept)
	before := dirContents(t, keptDir)
	// The last of four 2 MiB layers fails: two 3 MB volumes are complete
	// (as temporary files) and a third started when it does.
	bad := src.layers[3]
	src.proxy.SetRules(blobGET(bad, testregistry.FaultStatus))
	outDir, tmpDir := t.TempDir(), t.TempDir()
	for _, out := range []string{filepath.Join(outDir, "x.tar.zst"), kept} {
		r := ferry(t, []string{"TMPDIR=" + tmpDir}, "export", "-b", src.bundle, "-o", out,
			"--split-size", "3M", "--registry-retry-count", "1")
		if hits := src.proxy.Hits()[0]; hits == 0 {
			t.Fatalf("the fault was never injected: %s", r)
		}
		if r.Code != 1 || !strings.Contains(r.Stderr, bad.Hex) {
			t.Errorf("want exit 1 naming blob %s: %s", bad, r)
		}
	}
	assertNothingLeft(t, outDir, tmpDir)
	if after := dirContents(t, keptDir); !maps.Equal(after, before) {
		t.Errorf("a failed split export changed the earlier export beside it: %d files before, %d after", len(before), len(after))
	}
}

// dirContents is the files of dir and their contents.
func dirContents(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = string(b)
	}
	return out
}
