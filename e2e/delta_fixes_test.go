package e2e

import (
	"encoding/json"
	"maps"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/ferry-dev/ferry/internal/testregistry"
)

// deltaImport is what the tests read of `import --json`.
type deltaImport struct {
	BlobsLeftOut, LeftOutMounted int
	Tags                         []struct{ Tag, Digest string }
}

func parseDeltaImport(t *testing.T, res result) deltaImport {
	t.Helper()
	var im deltaImport
	if err := json.Unmarshal([]byte(res.Stdout), &im); err != nil {
		t.Fatalf("import --json: %v\n%s", err, res)
	}
	return im
}

// inventoryAfter imports archive into far/a of dst and returns an
// inventory of far/a.
func inventoryAfter(t *testing.T, dst *testregistry.Registry, archive string) string {
	t.Helper()
	mustFerry(t, "import", "-f", archive, "--to-repo", dst.Repo("far/a"))
	have := filepath.Join(t.TempDir(), "have.json")
	mustFerry(t, "inventory", "--repo", dst.Repo("far/a"), "-o", have)
	return have
}

// v2SinceInventory imports archive into far/a of dst and exports r.v2
// since an inventory of far/a; it returns the inventory and the delta.
func v2SinceInventory(t *testing.T, r *releases, dst *testregistry.Registry, archive string) (have, delta string) {
	t.Helper()
	have = inventoryAfter(t, dst, archive)
	delta = filepath.Join(t.TempDir(), "v2i.tar.zst")
	mustFerry(t, "export", "-b", r.v2, "-o", delta, "--since", have)
	return have, delta
}

// TestDeltaDryRunReadsTheBundleLayerAtTheMountSource: every blob of v2,
// its bundle's layer included, is left out since an inventory of far/a;
// a dry run into far/c mounts nothing, so it reads the bundle's images.yml
// in far/a, succeeds, writes nothing, and names the very tags the import
// then writes.
func TestDeltaDryRunReadsTheBundleLayerAtTheMountSource(t *testing.T) {
	r := newReleases(t)
	dst := testregistry.NewDistribution(t)
	_, delta := v2SinceInventory(t, r, dst, r.v2Full)
	c := dst.Repo("far/c")
	dst.ResetCounts()
	dry := ferry(t, nil, "import", "-f", delta, "--to-repo", c, "--dry-run", "--json", "-v")
	if dry.Code != 0 || !strings.Contains(dry.Stderr, "would mount") {
		t.Fatalf("dry run: want success, mounts announced: %s", dry)
	}
	if w := dst.Writes("far/c"); len(w) != 0 {
		t.Errorf("dry run wrote: %v", w)
	}
	planned := parseDeltaImport(t, dry)
	im := parseDeltaImport(t, mustFerry(t, "import", "-f", delta, "--to-repo", c, "--json"))
	if planned.LeftOutMounted != im.LeftOutMounted || im.LeftOutMounted != im.BlobsLeftOut || im.BlobsLeftOut == 0 {
		t.Errorf("dry run would mount %d, the import mounted %d of %d left out", planned.LeftOutMounted, im.LeftOutMounted, im.BlobsLeftOut)
	}
	got := tagsOf(t, dst, c)
	want := map[string]string{}
	for _, tr := range planned.Tags {
		want[tr.Tag] = tr.Digest
	}
	if !maps.Equal(got, want) {
		t.Errorf("tags written:\n%v\ndry run said:\n%v", got, want)
	}
	if full := tagsOf(t, dst, dst.Repo("far/a")); !maps.Equal(got, full) {
		t.Errorf("tags after the delta:\n%v\nafter a full import:\n%v", got, full)
	}
}

// TestDeltaSinceAnArchiveThenAnInventoryStillMounts: v1's blobs are both
// in v1.tar.zst and in far/a; listed first, the archive must not hide the
// repository to mount them from.
func TestDeltaSinceAnArchiveThenAnInventoryStillMounts(t *testing.T) {
	r := newReleases(t)
	dst := testregistry.NewDistribution(t)
	have := inventoryAfter(t, dst, r.v1Arch)
	delta := filepath.Join(t.TempDir(), "l.tar.zst")
	mustFerry(t, "export", "-b", r.v2, "-o", delta, "--since", r.v1Arch, "--since", have)

	im := parseDeltaImport(t, mustFerry(t, "import", "-f", delta, "--to-repo", dst.Repo("far/new"), "--json"))
	if im.BlobsLeftOut == 0 || im.LeftOutMounted != im.BlobsLeftOut {
		t.Errorf("%d blobs left out, %d mounted; want every one mounted from far/a", im.BlobsLeftOut, im.LeftOutMounted)
	}
	full := dst.Repo("far/full")
	mustFerry(t, "import", "-f", r.v2Full, "--to-repo", full)
	if got, want := tagsOf(t, dst, dst.Repo("far/new")), tagsOf(t, dst, full); !maps.Equal(got, want) {
		t.Errorf("tags after the delta:\n%v\nafter a full import:\n%v", got, want)
	}
}

// TestDeltaWithMissingBlobsMountsNothing: the bundle's blobs can be
// mounted from src/release, the kept image's are only in v1.tar.zst, never
// imported here: the import fails before any write, mounts included.
func TestDeltaWithMissingBlobsMountsNothing(t *testing.T) {
	r := newReleases(t)
	rel := filepath.Join(t.TempDir(), "release.json")
	mustFerry(t, "inventory", "--repo", r.src.Repo("src/release"), "-o", rel)
	delta := filepath.Join(t.TempDir(), "mix.tar.zst")
	mustFerry(t, "export", "-b", r.v2, "-o", delta, "--since", rel, "--since", r.v1Arch)
	var insp struct {
		Delta struct {
			LeftOut []struct{ Repository string }
		}
	}
	if err := json.Unmarshal([]byte(mustFerry(t, "inspect", delta, "--json").Stdout), &insp); err != nil {
		t.Fatal(err)
	}
	mountable := 0
	for _, l := range insp.Delta.LeftOut {
		if l.Repository != "" {
			mountable++
		}
	}
	if mountable == 0 || mountable == len(insp.Delta.LeftOut) {
		t.Fatalf("%d of %d left-out blobs mountable: the test proves nothing", mountable, len(insp.Delta.LeftOut))
	}

	r.src.ResetCounts()
	res := ferry(t, nil, "import", "-f", delta, "--to-repo", r.src.Repo("dst/mix"))
	if res.Code != 1 || !strings.Contains(res.Stderr, "does not hold") || !strings.Contains(res.Stderr, "v1.tar.zst") {
		t.Errorf("want exit 1 naming the missing blobs and v1.tar.zst: %s", res)
	}
	if strings.Contains(res.Stderr, "mounted") {
		t.Errorf("a failing import says it mounted blobs:\n%s", res.Stderr)
	}
	if w := r.src.Writes("dst/mix"); len(w) != 0 {
		t.Errorf("the failing import wrote: %v", w)
	}
}

// TestDeltaSinceTheSameBaseTwiceRecordsItOnce: --since v1.tar.zst given
// twice is one base.
func TestDeltaSinceTheSameBaseTwiceRecordsItOnce(t *testing.T) {
	r := newReleases(t)
	delta := filepath.Join(t.TempDir(), "v2.tar.zst")
	res := mustFerry(t, "export", "-b", r.v2, "-o", delta, "--since", r.v1Arch, "--since", r.v1Arch, "--json")
	var ex struct {
		Bases []struct{ Name, SHA256 string }
	}
	if err := json.Unmarshal([]byte(res.Stdout), &ex); err != nil {
		t.Fatal(err)
	}
	if len(ex.Bases) != 1 || ex.Bases[0].Name != "v1.tar.zst" || ex.Bases[0].SHA256 != fileSHA256(t, r.v1Arch) {
		t.Errorf("bases %+v; want v1.tar.zst once", ex.Bases)
	}
}

// TestDeltaImportSaysOnceWhatItMounted: a delta import that mounts its
// left-out blobs from the repository its inventory saw them in says so in
// its summary, in one line that fits 80 columns, and where from in the
// next (the archive chose that repository: README, delta archives), with
// no warning (a mount is how such a delta is meant to land); -v says it as
// it happens.
func TestDeltaImportSaysOnceWhatItMounted(t *testing.T) {
	r := newReleases(t)
	dst := testregistry.NewDistribution(t)
	_, delta := v2SinceInventory(t, r, dst, r.v1Arch)
	res := mustFerry(t, "import", "-f", delta, "--to-repo", dst.Repo("far/m"))
	if strings.Contains(res.Stderr, "warning") || strings.Count(res.Stderr, "far/a") != 1 ||
		!regexp.MustCompile(`(?m)^  mounted +\d+ from \S+/far/a$`).MatchString(res.Stderr) {
		t.Errorf("the mounts are reported as a warning, or their source is not named once:\n%s", res.Stderr)
	}
	var line string
	for _, l := range strings.Split(res.Stderr, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "delta ") {
			line = l
		}
	}
	if n := utf8.RuneCountInString(line); n > 80 {
		t.Errorf("the delta line is %d columns: %q", n, line)
	}
	if !regexp.MustCompile(`^  delta +\d+ left out \(.+\), all held by the destination \(\d+ mounted\)$`).MatchString(line) {
		t.Errorf("no delta line saying how many blobs were mounted:\n%s", res.Stderr)
	}
	v := mustFerry(t, "import", "-f", delta, "--to-repo", dst.Repo("far/n"), "-v")
	if !regexp.MustCompile(`(?m)^mounted \d+ left-out blobs into \S+/far/n from \S+/far/a, where the delta's inventory saw them$`).MatchString(v.Stderr) {
		t.Errorf("-v does not name where the blobs were mounted from:\n%s", v.Stderr)
	}
}

// TestDeltaVerifySinceAnInventorySaysSo: verify --since takes the base
// archive; given an inventory, it says that is what it was given.
func TestDeltaVerifySinceAnInventorySaysSo(t *testing.T) {
	r := newReleases(t)
	dst := testregistry.NewDistribution(t)
	have, delta := v2SinceInventory(t, r, dst, r.v1Arch)
	res := ferry(t, nil, "verify", delta, "--since", have)
	// How verify was called is wrong, not the archive: a usage error.
	if res.Code != 2 || !strings.Contains(res.Stderr, have) || !strings.Contains(res.Stderr, "(an inventory?), not an archive") {
		t.Errorf("want a usage error (exit 2) naming %s an inventory: %s", have, res)
	}
	if strings.Contains(res.Stderr, "neither zstd") {
		t.Errorf("verify still calls the inventory a broken archive:\n%s", res.Stderr)
	}
}

// TestDeltaMountSourcesShownAndNoMount: every blob of v2 is left out since
// an inventory of far/a. The summary of the dry run and of the import say
// from which repository they are mounted (no -v); --no-mount, on import and
// copy --tar, fails before any write naming the missing blobs; copy
// --to-repo refuses the flag.
func TestDeltaMountSourcesShownAndNoMount(t *testing.T) {
	r := newReleases(t)
	dst := testregistry.NewDistribution(t)
	_, delta := v2SinceInventory(t, r, dst, r.v2Full)
	a, c := dst.Repo("far/a"), dst.Repo("far/c")
	dst.ResetCounts()
	for _, args := range [][]string{
		{"import", "-f", delta, "--to-repo", c, "--no-mount"},
		{"import", "-f", delta, "--to-repo", c, "--no-mount", "--dry-run"},
		{"copy", "--tar", delta, "--to-repo", c, "--no-mount"},
	} {
		res := ferry(t, nil, args...)
		if res.Code != 1 || !strings.Contains(res.Stderr, "does not hold") || !strings.Contains(res.Stderr, "--no-mount") {
			t.Errorf("ferry %s: want exit 1 naming the missing blobs and --no-mount: %s", strings.Join(args, " "), res)
		}
	}
	if w := dst.Writes("far/c"); len(w) != 0 {
		t.Errorf("--no-mount wrote: %v", w)
	}
	if res := ferry(t, nil, "copy", "-b", r.v2, "--to-repo", c, "--no-mount"); res.Code != 2 || !strings.Contains(res.Stderr, "--no-mount") {
		t.Errorf("copy --to-repo --no-mount: want a usage error: %s", res)
	}
	dry := mustFerry(t, "import", "-f", delta, "--to-repo", c, "--dry-run")
	if !regexp.MustCompile(`(?m)^  to mount +\d+ from ` + regexp.QuoteMeta(a) + `$`).MatchString(dry.Stderr) {
		t.Errorf("dry run: the summary does not name %s:\n%s", a, dry)
	}
	im := mustFerry(t, "import", "-f", delta, "--to-repo", c)
	if !regexp.MustCompile(`(?m)^  mounted +\d+ from ` + regexp.QuoteMeta(a) + `$`).MatchString(im.Stderr) {
		t.Errorf("import: the summary does not name %s:\n%s", a, im)
	}
}
