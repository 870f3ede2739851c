package e2e

import (
	"fmt"
	"path/filepath"
	"regexp"
	"testing"
)

// TestByteFiguresAgree: the figure after "N blobs" is the configs' and
// layers' bytes in every summary (export, inspect, verify), full or delta,
// and manifests get a figure of their own; export and inspect once put
// the manifests into it, so that one archive showed three sizes.
func TestByteFiguresAgree(t *testing.T) {
	r := newReleases(t)
	delta := filepath.Join(t.TempDir(), "v2.tar.zst")
	exDelta := mustFerry(t, "export", "-b", r.v2, "-o", delta, "--since", r.v1Arch)
	exFull := mustFerry(t, "export", "-b", r.v2, "-o", filepath.Join(t.TempDir(), "v2.tar.zst"))

	blobsFig := regexp.MustCompile(`(\d+) blobs? \(([^)]+)\)`)
	manifestsFig := regexp.MustCompile(`(\d+) manifests? \(([^)]+)\)`)
	for _, tc := range []struct {
		archive string
		export  result
	}{{r.v2Full, exFull}, {delta, exDelta}} {
		// What the archive's tar holds, split by kind, counted here.
		var blobs, manifests int
		var blobBytes, manifestBytes int64
		isManifest := archiveManifests(t, tc.archive)
		for d, size := range archiveBlobs(t, tc.archive) {
			if isManifest[d] {
				manifests++
				manifestBytes += size
			} else {
				blobs++
				blobBytes += size
			}
		}
		wantBlobs := fmt.Sprintf("%d blob%s (%s)", blobs, map[bool]string{true: "", false: "s"}[blobs == 1], iec(blobBytes))
		wantManifests := fmt.Sprintf("%d manifests (%s)", manifests, iec(manifestBytes))
		name := filepath.Base(tc.archive)
		for cmd, out := range map[string]string{
			"export":  tc.export.Stderr,
			"inspect": mustFerry(t, "inspect", tc.archive).Stdout,
			"verify":  mustFerry(t, "verify", tc.archive).Stderr,
		} {
			if got := blobsFig.FindString(out); got != wantBlobs {
				t.Errorf("%s %s says %q, want %q:\n%s", cmd, name, got, wantBlobs, out)
			}
			if cmd == "verify" {
				continue // it names no manifests
			}
			if got := manifestsFig.FindString(out); got != wantManifests {
				t.Errorf("%s %s says %q, want %q:\n%s", cmd, name, got, wantManifests, out)
			}
		}
	}
}

// iec formats n as ferry's summaries do: bytes under 1 KiB, else one
// decimal in the largest binary unit that keeps the figure at least 1.
func iec(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	f, units := float64(n)/1024, "KMGTPE"
	for f >= 1024 && len(units) > 1 {
		f, units = f/1024, units[1:]
	}
	return fmt.Sprintf("%.1f %ciB", f, units[0])
}
