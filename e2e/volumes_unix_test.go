//go:build unix

package e2e

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/internal/testregistry"
)

func TestSplitExportFailingMidWayLeavesNoVolume(t *testing.T) {
	src := newBigSource(t)
	// The last of four 2 MiB layers fails: two 3 MB volumes are complete
	// (as temporary files) and a third started when it does.
	bad := src.layers[3]
	src.proxy.SetRules(blobGET(bad, testregistry.FaultStatus))
	outDir, tmpDir := t.TempDir(), t.TempDir()
	r := ferry(t, []string{"TMPDIR=" + tmpDir}, "export", "-b", src.bundle, "-o", filepath.Join(outDir, "x.tar.zst"),
		"--split-size", "3M", "--registry-retry-count", "1")
	if hits := src.proxy.Hits()[0]; hits == 0 {
		t.Fatalf("the fault was never injected: %s", r)
	}
	if r.Code != 1 || !strings.Contains(r.Stderr, bad.Hex) {
		t.Errorf("want exit 1 naming blob %s: %s", bad, r)
	}
	assertNothingLeft(t, outDir, tmpDir)
}
