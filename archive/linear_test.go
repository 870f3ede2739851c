//go:build !race

// The timed comparisons live apart from the rest of the hostile-head tests
// because the race detector slows JSON decoding several times over and
// unevenly (240 s instead of 36 s here, with ratios that drift with load):
// `make test` runs this file in a pass of its own, without -race.

package archive

import (
	"bytes"
	"testing"
	"time"
)

// TestInspectLinearInHostileHeads: the checks of a head cost its size, not
// its square. Artifacts once searched every entry for their subject, and
// every manifest read searched every manifest held back for its parent;
// 100k artifacts then took minutes, a 30k chain tens of seconds. Each
// hostile head is timed against a plain head of the same size, so the test
// does not depend on the machine's speed; each is read twice, interleaved
// with the other, and the faster read counts, so that a pause of the
// machine during one read does not decide.
func TestInspectLinearInHostileHeads(t *testing.T) {
	if testing.Short() {
		t.Skip("builds heads of 100k entries")
	}
	// An imgpkg tarball holds every manifest twice over (a JSON string in
	// manifest.json) and costs about 3× the ferry head it is timed
	// against; a quadratic read cost 10× and more at these sizes.
	const ratio = 6
	imgpkgMany, ferryMany := imgpkgManyArchive(t, 20_000, true), imgpkgManyArchive(t, 20_000, false)
	imgpkgChain, ferryChain := imgpkgChainArchive(t, 10_000, true), imgpkgChainArchive(t, 10_000, false)
	for _, tc := range []struct {
		name           string
		hostile, plain []byte
		// open reads the hostile head; Inspect when nil.
		open func(*testing.T, []byte) time.Duration
	}{
		// MaxIndexEntries descriptors: the artifacts and their subject.
		{"100k referrers of one image", referrersArchive(t, MaxIndexEntries-1, true), referrersArchive(t, MaxIndexEntries-1, false), nil},
		{"30k nested indexes", chainArchive(t, 30_000, true), chainArchive(t, 30_000, false), nil},
		// imgpkg tarballs, read on a pipe (Inspect) and in place
		// (OpenImgpkg), against the same heads as ferry archives.
		{"20k images in an imgpkg tarball, inspected", imgpkgMany, ferryMany, nil},
		{"20k images in an imgpkg tarball, opened", imgpkgMany, ferryMany, openImgpkgTime},
		{"10k nested indexes in an imgpkg tarball, inspected", imgpkgChain, ferryChain, nil},
		{"10k nested indexes in an imgpkg tarball, opened", imgpkgChain, ferryChain, openImgpkgTime},
		{"50k left-out and 50k skipped layers", deltaArchive(t, 50_000, true), deltaArchive(t, 50_000, false), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			open := tc.open
			if open == nil {
				open = inspectTime
			}
			plain, hostile := time.Duration(1<<62), time.Duration(1<<62)
			for range 2 {
				plain = min(plain, inspectTime(t, tc.plain))
				hostile = min(hostile, open(t, tc.hostile))
			}
			t.Logf("plain %v, hostile %v (the faster of two reads each)", plain, hostile)
			if hostile > ratio*plain+100*time.Millisecond {
				t.Errorf("inspect of the hostile head took %v, more than %d× the plain head's %v", hostile, ratio, plain)
			}
		})
	}
}

// inspectTime is how long Inspect takes to read data.
func inspectTime(t *testing.T, data []byte) time.Duration {
	t.Helper()
	start := time.Now()
	if _, err := Inspect(bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	return time.Since(start)
}

// openImgpkgTime is how long OpenImgpkg takes to open data.
func openImgpkgTime(t *testing.T, data []byte) time.Duration {
	t.Helper()
	start := time.Now()
	if _, err := OpenImgpkg(bytes.NewReader(data), int64(len(data)), ReaderOptions{}); err != nil {
		t.Fatal(err)
	}
	return time.Since(start)
}
