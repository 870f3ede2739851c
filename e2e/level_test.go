package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/ferry-dev/ferry/internal/testregistry"
)

// TestExportLevelsChangeBytesNotContent exports the same bundle at the two
// extreme zstd levels: the compressed files differ, the tars inside are the
// same, ferry verify accepts both and they import into the same tags.
func TestExportLevelsChangeBytesNotContent(t *testing.T) {
	src := testregistry.NewDistribution(t)
	f := newExportFixture(t, src)
	dst := testregistry.NewDistribution(t)
	dir := t.TempDir()

	compressed := map[string][]byte{}
	plain := map[string][]byte{}
	tags := map[string]map[string]string{}
	for _, level := range []string{"best", "fastest"} {
		archive := filepath.Join(dir, level+".tar.zst")
		mustFerry(t, "export", "-b", f.root, "-o", archive, "--level", level)
		if r := ferry(t, nil, "verify", archive); r.Code != 0 {
			t.Fatalf("verify of the --level %s archive: %s", level, r)
		}
		raw, err := os.ReadFile(archive)
		if err != nil {
			t.Fatal(err)
		}
		compressed[level], plain[level] = raw, mustDecompress(t, raw)

		repo := dst.Repo("levels/" + level)
		mustFerry(t, "import", "-f", archive, "--to-repo", repo)
		tags[level] = tagsOf(t, dst, repo)
		assertTags(t, tags[level], f.wantTags(t))
	}
	if bytes.Equal(compressed["best"], compressed["fastest"]) {
		t.Error("--level best and --level fastest wrote the same bytes: the level is not applied")
	}
	if !bytes.Equal(plain["best"], plain["fastest"]) {
		t.Error("the tars inside the --level best and --level fastest archives differ")
	}
	assertTags(t, tags["fastest"], tags["best"])
}
