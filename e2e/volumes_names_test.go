package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/internal/testregistry"
)

// Two whole archives exported under names ending like volumes
// (nightly.001, nightly.002), each with the checksum file export wrote
// beside it, are each imported and verified as the archive it is.
func TestWholeArchivesNamedLikeVolumes(t *testing.T) {
	src := testregistry.NewDistribution(t)
	f := newExportFixture(t, src)
	dir := t.TempDir()
	first, second := filepath.Join(dir, "nightly.001"), filepath.Join(dir, "nightly.002")
	// Of different sizes, as two nights' archives are.
	mustFerry(t, "export", "-b", f.root, "-o", first, "--level", "best")
	mustFerry(t, "export", "-b", f.root, "-o", second, "--level", "fastest")
	dst := testregistry.NewDistribution(t)
	for i, p := range []string{first, second} {
		mustFerry(t, "verify", p)
		repo := dst.Repo("nightly/" + string(rune('a'+i)))
		mustFerry(t, "import", "-f", p, "--to-repo", repo)
		assertTags(t, tagsOf(t, dst, repo), f.wantTags(t))
	}
}

// Without .001 and the checksum file, the error names every volume found.
func TestMissingFirstVolumeNamesTheVolumesFound(t *testing.T) {
	_, _, path, _ := splitExport(t)
	os.Remove(path + ".sha256")
	os.Remove(volume(path, 1))
	dst := testregistry.NewDistribution(t)
	r := ferry(t, nil, "import", "-f", path, "--to-repo", dst.Repo("missing/first"))
	if r.Code != 1 || !strings.Contains(r.Stderr, "volume .001 is missing (found .002 to .004)") {
		t.Fatalf("import without .001: %s", r)
	}
}

// Volumes joined out of order on a pipe: the archive is named corrupt, with
// what to check, and nothing is tagged.
func TestStreamJoinedOutOfOrderIsNamedCorrupt(t *testing.T) {
	_, _, path, _ := splitExport(t)
	vols, _ := readVolumes(t, path, 4)
	dst := testregistry.NewDistribution(t)
	repo := dst.Repo("joined/badly")
	joined := bytes.Join([][]byte{vols[1], vols[3], vols[2], vols[4]}, nil)
	r := ferryIn(t, nil, bytes.NewReader(joined), "import", "-f", "-", "--to-repo", repo)
	// Where the misjoined bytes fail depends on the data: a frame the
	// decompressor refuses (corrupt) or a tar that ends early (truncated);
	// either way the hint must be there.
	named := strings.Contains(r.Stderr, "corrupt") || strings.Contains(r.Stderr, "archive truncated")
	if r.Code != 1 || !named || !strings.Contains(r.Stderr, "check their order and that none is missing") {
		t.Fatalf("import of .001 .003 .002 .004 joined: %s", r)
	}
	if tags := tagsOf(t, dst, repo); len(tags) != 0 {
		t.Fatalf("a failed import tagged %v", tags)
	}
}
