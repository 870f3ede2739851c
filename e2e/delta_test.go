package e2e

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/fixtures"
	"github.com/ferry-dev/ferry/internal/progress"
	"github.com/ferry-dev/ferry/internal/testregistry"
)

// releases are two releases of a bundle: v2 changes one image, adds one,
// and keeps one; the changed image shares a layer with v1's.
type releases struct {
	src            *testregistry.Registry
	v1, v2         string // bundle references
	kept, changed  name.Digest
	v1Blobs        map[string]int64
	newInV2        map[string]int64 // configs and layers v2 has that v1 lacks
	v1Arch, v2Full string           // archives
}

func newReleases(t *testing.T) *releases {
	t.Helper()
	r := &releases{src: testregistry.NewDistribution(t), v1Blobs: map[string]int64{}, newInV2: map[string]int64{}}
	shared, err := fixtures.NewLayer(77, 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	withShared := func(seed uint64) v1.Image {
		img, err := fixtures.Image(seed, 1, 32<<10)
		if err != nil {
			t.Fatal(err)
		}
		img, err = mutate.Append(img, mutate.Addendum{Layer: shared, MediaType: types.OCIUncompressedLayer})
		if err != nil {
			t.Fatal(err)
		}
		return img
	}
	kept := seed2(t, r.src, "src/kept", withShared(1))
	old := seed2(t, r.src, "src/app", withShared(2))
	changed := seed2(t, r.src, "src/app", withShared(3))
	added := seedImage(t, r.src, "src/added", 4)
	r.kept, r.changed = kept, changed

	push := func(tag string, refs ...name.Digest) string {
		ref := r.src.Repo("src/release") + ":" + tag
		mustFerry(t, "push", "-b", ref, "-f", bundleDir(t, refs...))
		return ref
	}
	r.v1 = push("v1", kept, old)
	r.v2 = push("v2", kept, changed, added)
	dir := t.TempDir()
	r.v1Arch = filepath.Join(dir, "v1.tar.zst")
	r.v2Full = filepath.Join(dir, "v2-full.tar.zst")
	mustFerry(t, "export", "-b", r.v1, "-o", r.v1Arch)
	mustFerry(t, "export", "-b", r.v2, "-o", r.v2Full)
	r.v1Blobs = archiveBlobs(t, r.v1Arch)
	for d, size := range archiveBlobs(t, r.v2Full) {
		if _, ok := r.v1Blobs[d]; !ok {
			r.newInV2[d] = size
		}
	}
	if len(r.newInV2) == 0 || len(r.newInV2) == len(archiveBlobs(t, r.v2Full)) {
		t.Fatalf("the releases share nothing or everything (%d new blobs): the test proves nothing", len(r.newInV2))
	}
	return r
}

// archiveBlobs lists the blobs (manifests, configs, layers) an archive's tar
// holds, read independently of ferry.
func archiveBlobs(t *testing.T, path string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, e := range readEntries(t, path) {
		if strings.HasPrefix(e.Header.Name, "blobs/sha256/") {
			out["sha256:"+strings.TrimPrefix(e.Header.Name, "blobs/sha256/")] = e.Header.Size
		}
	}
	return out
}

func TestDeltaSinceAnArchiveImportsAsAFullOne(t *testing.T) {
	r := newReleases(t)
	dst := testregistry.NewDistribution(t)
	repo := dst.Repo("far/release")
	mustFerry(t, "import", "-f", r.v1Arch, "--to-repo", repo)

	delta := filepath.Join(t.TempDir(), "v2.tar.zst")
	res := mustFerry(t, "export", "-b", r.v2, "-o", delta, "--since", r.v1Arch, "--json")
	var ex struct {
		Blobs, LeftOut int
		LeftOutBytes   int64
		Bases          []struct{ Kind, Name, SHA256 string }
	}
	if err := json.Unmarshal([]byte(res.Stdout), &ex); err != nil {
		t.Fatal(err)
	}
	if len(ex.Bases) != 1 || ex.Bases[0].Kind != "archive" || ex.Bases[0].Name != "v1.tar.zst" || ex.Bases[0].SHA256 != fileSHA256(t, r.v1Arch) {
		t.Errorf("bases %+v, want v1.tar.zst with its sha256", ex.Bases)
	}
	// The delta carries exactly the blobs v1 did not.
	carried := archiveBlobs(t, delta)
	blobsOnly := map[string]int64{}
	for d, s := range carried {
		if _, isManifest := archiveManifests(t, delta)[d]; !isManifest {
			blobsOnly[d] = s
		}
	}
	newOnly := map[string]int64{}
	for d, s := range r.newInV2 {
		if _, isManifest := archiveManifests(t, r.v2Full)[d]; !isManifest {
			newOnly[d] = s
		}
	}
	if !maps.Equal(blobsOnly, newOnly) {
		t.Errorf("the delta carries %d configs and layers, want the %d v2 has that v1 lacks", len(blobsOnly), len(newOnly))
	}
	if d, f := fileSize(t, delta), fileSize(t, r.v2Full); d >= f {
		t.Errorf("delta of %d bytes, the full archive has %d", d, f)
	}
	insp := mustFerry(t, "inspect", delta)
	if !strings.Contains(insp.Stdout, "Delta:") || !strings.Contains(insp.Stdout, "v1.tar.zst") {
		t.Errorf("inspect does not show the delta and its base:\n%s", insp.Stdout)
	}
	v := mustFerry(t, "verify", delta, "--since", r.v1Arch)
	if !strings.Contains(v.Stderr, "held by "+r.v1Arch) {
		t.Errorf("verify --since does not say the base holds what was left out:\n%s", v)
	}

	// Imported over v1, it gives exactly what a full import of v2 gives.
	mustFerry(t, "import", "-f", delta, "--to-repo", repo)
	assertLikeFullImports(t, r, dst, repo)
}

// TestDeltaSinceAnInventoryOfTheSameRepository: the far side imports v1 in
// full into R and sends back an inventory of R; v2 exported since that
// inventory and imported into R gives exactly the tags and digests of a
// full import of v1 then v2, and ferry pull of v2 from R finds every image.
func TestDeltaSinceAnInventoryOfTheSameRepository(t *testing.T) {
	r := newReleases(t)
	dst := testregistry.NewDistribution(t)
	repo := dst.Repo("far/release")
	mustFerry(t, "import", "-f", r.v1Arch, "--to-repo", repo)
	have := filepath.Join(t.TempDir(), "have.json")
	mustFerry(t, "inventory", "--repo", repo, "-o", have)

	delta := filepath.Join(t.TempDir(), "v2.tar.zst")
	var ex struct {
		LeftOut int
		Bases   []struct{ Kind, Name string }
	}
	if err := json.Unmarshal([]byte(mustFerry(t, "export", "-b", r.v2, "-o", delta, "--since", have, "--json").Stdout), &ex); err != nil {
		t.Fatal(err)
	}
	shared := len(archiveBlobs(t, r.v2Full)) - len(archiveManifests(t, r.v2Full)) - (len(r.newInV2) - manifestCount(t, r, r.newInV2))
	if ex.LeftOut != shared || len(ex.Bases) != 1 || ex.Bases[0].Kind != "inventory" || ex.Bases[0].Name != "have.json" {
		t.Errorf("export --since the inventory left out %d blobs with bases %+v; want the %d configs and layers v2 shares with v1, since inventory have.json", ex.LeftOut, ex.Bases, shared)
	}
	im := parseDeltaImport(t, mustFerry(t, "import", "-f", delta, "--to-repo", repo, "--json"))
	if im.BlobsLeftOut != shared || im.LeftOutMounted != 0 {
		t.Errorf("import found %d left out, mounted %d; want %d, all already in %s", im.BlobsLeftOut, im.LeftOutMounted, shared, repo)
	}
	assertLikeFullImports(t, r, dst, repo)
}

// assertLikeFullImports checks that repo of dst, where v1 and then a delta
// of v2 were imported, has exactly the tags and digests that full imports
// of v1 then v2 give, and that ferry pull of v2 from repo finds every
// image it locks, whole, in repo.
func assertLikeFullImports(t *testing.T, r *releases, dst *testregistry.Registry, repo string) {
	t.Helper()
	full := dst.Repo("far/full")
	mustFerry(t, "import", "-f", r.v1Arch, "--to-repo", full)
	mustFerry(t, "import", "-f", r.v2Full, "--to-repo", full)
	if got, want := tagsOf(t, dst, repo), tagsOf(t, dst, full); !maps.Equal(got, want) {
		t.Errorf("tags after the delta:\n%v\nafter a full import:\n%v", got, want)
	}
	// Every image v2 locks, pulled through repo, is whole there.
	out := filepath.Join(t.TempDir(), "pulled")
	mustFerry(t, "pull", "-b", repo+":v2", "-o", out)
	lock, err := os.ReadFile(filepath.Join(out, ".imgpkg", "images.yml"))
	if err != nil {
		t.Fatal(err)
	}
	refs := regexp.MustCompile(regexp.QuoteMeta(repo)+`@sha256:[0-9a-f]{64}`).FindAllString(string(lock), -1)
	if len(refs) != 3 {
		t.Fatalf("pulled images.yml names %d images in %s, want 3:\n%s", len(refs), repo, lock)
	}
	for _, ref := range refs {
		d, err := name.NewDigest(ref)
		if err != nil {
			t.Fatal(err)
		}
		img, err := remote.Image(d, dst.RemoteOptions(t)...)
		if err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		assertWhole(t, img, ref)
	}
}

// assertWhole reads img's config and every layer as the registry serves
// them, and checks each against the digest its manifest gives.
func assertWhole(t *testing.T, img v1.Image, ref string) {
	t.Helper()
	m, err := img.Manifest()
	if err != nil {
		t.Fatalf("%s: %v", ref, err)
	}
	if _, err := img.RawConfigFile(); err != nil {
		t.Errorf("%s: config %s: %v", ref, m.Config.Digest, err)
	}
	for _, l := range m.Layers {
		layer, err := img.LayerByDigest(l.Digest)
		if err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		rc, err := layer.Compressed()
		if err != nil {
			t.Errorf("%s: layer %s: %v", ref, l.Digest, err)
			continue
		}
		h, n, err := v1.SHA256(rc)
		rc.Close()
		if err != nil || h != l.Digest || n != l.Size {
			t.Errorf("%s: layer %s read as %s (%d bytes, want %d): %v", ref, l.Digest, h, n, l.Size, err)
		}
	}
}

func TestDeltaIntoAnEmptyRepositoryIsRefusedBeforeAnyWrite(t *testing.T) {
	r := newReleases(t)
	delta := filepath.Join(t.TempDir(), "v2.tar.zst")
	mustFerry(t, "export", "-b", r.v2, "-o", delta, "--since", r.v1Arch)
	dst := testregistry.NewDistribution(t)
	// An empty repository lacks every blob the delta left out.
	leftOut, leftOutBytes := r.sharedBlobs(t)
	count := fmt.Sprintf("leaves out %d blobs (%s)", len(leftOut), progress.Bytes(leftOutBytes))
	base := "archive v1.tar.zst (sha256 " + fileSHA256(t, r.v1Arch) + ")"
	for _, args := range [][]string{
		{"import", "-f", delta, "--to-repo", dst.Repo("far/empty"), "--dry-run"},
		{"import", "-f", delta, "--to-repo", dst.Repo("far/empty")},
	} {
		dst.ResetCounts()
		res := ferry(t, nil, args...)
		if res.Code != 1 || !strings.Contains(res.Stderr, "does not hold") {
			t.Errorf("%v: want exit 1 naming the missing blobs and the base: %s", args, res)
		}
		if !strings.Contains(res.Stderr, count) {
			t.Errorf("%v: the refusal does not say %q:\n%s", args, count, res.Stderr)
		}
		if !strings.Contains(res.Stderr, base) {
			t.Errorf("%v: the refusal does not name the base %q:\n%s", args, base, res.Stderr)
		}
		assertNamesLeftOut(t, res.Stderr, leftOut)
		c := dst.Counts()
		if n := c.Get(http.MethodPost, "") + c.Get(http.MethodPut, "") + c.Get(http.MethodPatch, ""); n != 0 {
			t.Errorf("%v: %d writes reached the registry before the refusal", args, n)
		}
	}
}

// sharedBlobs lists the configs and layers v2 shares with v1, read from
// the archives' own tars: what a delta of v2 since v1 leaves out.
func (r *releases) sharedBlobs(t *testing.T) (blobs map[string]int64, bytes int64) {
	t.Helper()
	blobs = map[string]int64{}
	for d, size := range archiveBlobs(t, r.v2Full) {
		if _, inV1 := r.v1Blobs[d]; inV1 && !archiveManifests(t, r.v2Full)[d] {
			blobs[d] = size
			bytes += size
		}
	}
	if len(blobs) < 2 {
		t.Fatalf("v2 shares %d configs and layers with v1: the test proves nothing", len(blobs))
	}
	return blobs, bytes
}

// assertNamesLeftOut checks that msg names at least one of the left-out
// blobs, and no other blob.
func assertNamesLeftOut(t *testing.T, msg string, leftOut map[string]int64) {
	t.Helper()
	listed := 0
	for _, d := range regexp.MustCompile(`sha256:[0-9a-f]{64}`).FindAllString(msg, -1) {
		if _, ok := leftOut[d]; !ok {
			t.Errorf("the error names %s, which the delta did not leave out", d)
		}
		listed++
	}
	if listed == 0 {
		t.Errorf("the error names none of the %d left-out blobs:\n%s", len(leftOut), msg)
	}
}

// TestDeltaVerifySinceABaseThatLacksTheLeftOutBlobs: verify --since an
// archive that holds none of what the delta left out fails, naming the
// base, how many blobs it lacks, and which.
func TestDeltaVerifySinceABaseThatLacksTheLeftOutBlobs(t *testing.T) {
	r := newReleases(t)
	dir := t.TempDir()
	delta := filepath.Join(dir, "v2.tar.zst")
	mustFerry(t, "export", "-b", r.v2, "-o", delta, "--since", r.v1Arch)
	other := r.src.Repo("src/other") + ":v1"
	mustFerry(t, "push", "-b", other, "-f", bundleDir(t, seedImage(t, r.src, "src/lone", 9)))
	wrong := filepath.Join(dir, "other.tar.zst")
	mustFerry(t, "export", "-b", other, "-o", wrong)

	leftOut, _ := r.sharedBlobs(t)
	for d := range leftOut {
		if _, ok := archiveBlobs(t, wrong)[d]; ok {
			t.Fatalf("other.tar.zst holds %s: the test proves nothing", d)
		}
	}
	res := ferry(t, nil, "verify", delta, "--since", wrong)
	if res.Code != 1 || !strings.Contains(res.Stderr, wrong) {
		t.Errorf("want exit 1 naming the base %s: %s", wrong, res)
	}
	if n := fmt.Sprintf("%d of the %d blobs the delta left out", len(leftOut), len(leftOut)); !strings.Contains(res.Stderr, n) {
		t.Errorf("the error does not say %q:\n%s", n, res.Stderr)
	}
	assertNamesLeftOut(t, res.Stderr, leftOut)
	// The right base still proves the same delta.
	mustFerry(t, "verify", delta, "--since", r.v1Arch)
}

// TestDeltaSinceOnEveryWayToExport: export -i, export --lock and copy
// --to-tar make a delta as export -b does: each leaves out every config
// and layer v1.tar.zst holds, and carries the rest.
func TestDeltaSinceOnEveryWayToExport(t *testing.T) {
	r := newReleases(t)
	lockFile := filepath.Join(bundleDir(t, r.kept, r.changed), ".imgpkg", "images.yml")
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"export -i", []string{"export", "-i", r.kept.String()}},
		{"export --lock", []string{"export", "--lock", lockFile}},
		{"copy --to-tar", []string{"copy", "-b", r.v2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "delta.tar.zst")
			to := "-o"
			if tc.args[0] == "copy" {
				to = "--to-tar"
			}
			res := mustFerry(t, append(tc.args, to, out, "--since", r.v1Arch, "--json")...)
			var ex struct{ LeftOut int }
			if err := json.Unmarshal([]byte(res.Stdout), &ex); err != nil {
				t.Fatalf("%v\n%s", err, res)
			}
			if ex.LeftOut == 0 {
				t.Fatalf("no blob left out: not a delta\n%s", res)
			}
			// Left out: every config and layer v1 carried; carried: the
			// manifests, and what v1 lacks.
			manifests, carried := archiveManifests(t, out), 0
			for d := range archiveBlobs(t, out) {
				if manifests[d] {
					continue
				}
				carried++
				if _, inV1 := r.v1Blobs[d]; inV1 {
					t.Errorf("the delta carries %s, which v1.tar.zst holds", d)
				}
			}
			if tc.name == "export -i" && carried != 0 {
				t.Errorf("the kept image is all in v1.tar.zst, yet the delta carries %d of its blobs", carried)
			}
			if tc.name != "export -i" && carried == 0 {
				t.Error("the delta carries nothing new: the changed image's own layer is missing")
			}
			if !strings.Contains(mustFerry(t, "inspect", out).Stdout, "Delta:") {
				t.Error("inspect does not call the archive a delta")
			}
		})
	}
}

// TestDeltaImportAgainChangesNothing: a delta imported a second time into
// the repository it landed in sends no blob and no manifest, and leaves
// every tag as it was.
func TestDeltaImportAgainChangesNothing(t *testing.T) {
	r := newReleases(t)
	dst := testregistry.NewDistribution(t)
	repo := dst.Repo("far/release")
	mustFerry(t, "import", "-f", r.v1Arch, "--to-repo", repo)
	delta := filepath.Join(t.TempDir(), "v2.tar.zst")
	mustFerry(t, "export", "-b", r.v2, "-o", delta, "--since", r.v1Arch)
	mustFerry(t, "import", "-f", delta, "--to-repo", repo)
	before := tagsOf(t, dst, repo)

	dst.ResetCounts()
	res := mustFerry(t, "import", "-f", delta, "--to-repo", repo, "--json")
	c := dst.Counts()
	if n := c.Get("", testregistry.KindUpload); n != 0 {
		t.Errorf("the second import made %d blob upload requests", n)
	}
	if n := c.Get(http.MethodPut, testregistry.KindManifest) + c.Get(http.MethodDelete, ""); n != 0 {
		t.Errorf("the second import made %d manifest writes or deletes", n)
	}
	var im struct {
		BlobsUploaded, BlobsLeftOut int
		Tags                        []struct{ Tag, Digest, Action string }
	}
	if err := json.Unmarshal([]byte(res.Stdout), &im); err != nil {
		t.Fatal(err)
	}
	if im.BlobsUploaded != 0 || im.BlobsLeftOut == 0 {
		t.Errorf("the second import uploaded %d blobs, found %d left out; want none uploaded, a delta", im.BlobsUploaded, im.BlobsLeftOut)
	}
	if len(im.Tags) == 0 {
		t.Error("the second import reports no tags")
	}
	for _, tg := range im.Tags {
		if tg.Action != "unchanged" || before[tg.Tag] != tg.Digest {
			t.Errorf("the second import says tag %s is %s at %s; the first left it at %q", tg.Tag, tg.Action, tg.Digest, before[tg.Tag])
		}
	}
	if after := tagsOf(t, dst, repo); !maps.Equal(after, before) {
		t.Errorf("tags after the second import:\n%v\nafter the first:\n%v", after, before)
	}
}

func TestDeltaSinceAnInventoryMountsFromAnotherRepository(t *testing.T) {
	r := newReleases(t)
	dst := testregistry.NewDistribution(t)
	// v1 went to one repository; v2 goes to another of the same registry.
	mustFerry(t, "import", "-f", r.v1Arch, "--to-repo", dst.Repo("far/v1"))
	have := filepath.Join(t.TempDir(), "have.json")
	mustFerry(t, "inventory", "--repo", dst.Repo("far/v1"), "--repo", dst.Repo("far/v2"), "-o", have)

	delta := filepath.Join(t.TempDir(), "v2.tar.zst")
	ex := mustFerry(t, "export", "-b", r.v2, "-o", delta, "--since", have)
	if !strings.Contains(ex.Stderr, "inventory have.json") {
		t.Errorf("export does not name the inventory base:\n%s", ex.Stderr)
	}
	dst.ResetCounts()
	res := mustFerry(t, "import", "-f", delta, "--to-repo", dst.Repo("far/v2"), "--json")
	var im struct{ BlobsLeftOut, LeftOutMounted, BlobsUploaded int }
	if err := json.Unmarshal([]byte(res.Stdout), &im); err != nil {
		t.Fatal(err)
	}
	if im.BlobsLeftOut == 0 || im.LeftOutMounted != im.BlobsLeftOut {
		t.Errorf("%d blobs left out, %d mounted; want every one mounted from far/v1", im.BlobsLeftOut, im.LeftOutMounted)
	}
	// What was sent is what v2 has new, and its bundle's locations image
	// (a config and a layer).
	if want := len(r.newInV2) - manifestCount(t, r, r.newInV2) + 2; im.BlobsUploaded != want {
		t.Errorf("uploaded %d blobs, v2 has %d new configs and layers", im.BlobsUploaded, want)
	}
	full := dst.Repo("far/full")
	mustFerry(t, "import", "-f", r.v2Full, "--to-repo", full)
	if got, want := tagsOf(t, dst, dst.Repo("far/v2")), tagsOf(t, dst, full); !maps.Equal(got, want) {
		t.Errorf("tags after the delta:\n%v\nafter a full import:\n%v", got, want)
	}
}

func TestDeltaSinceAFileThatIsNeither(t *testing.T) {
	r := newReleases(t)
	bogus := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(bogus, []byte("release notes\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res := ferry(t, nil, "export", "-b", r.v2, "-o", filepath.Join(t.TempDir(), "x.tar.zst"), "--since", bogus)
	if res.Code != 2 || !strings.Contains(res.Stderr, "neither a ferry archive nor a ferry inventory") || !strings.Contains(res.Stderr, bogus) {
		t.Errorf("want a usage error naming %s: %s", bogus, res)
	}
	// verify --since the same file: a usage error too, not a failed check.
	res = ferry(t, nil, "verify", r.v1Arch, "--since", bogus)
	if res.Code != 2 || !strings.Contains(res.Stderr, "not a ferry archive") || !strings.Contains(res.Stderr, bogus) {
		t.Errorf("verify --since %s: want a usage error naming it: %s", bogus, res)
	}

	// No file at all, or a directory, is the same misuse of --since.
	dir := t.TempDir()
	for _, tc := range []struct{ path, want string }{
		{filepath.Join(dir, "v1.tar.zst"), "no such file"},
		{dir, "is a directory"},
	} {
		out := filepath.Join(t.TempDir(), "x.tar.zst")
		for _, args := range [][]string{
			{"export", "-b", r.v2, "-o", out, "--since", tc.path},
			{"copy", "-b", r.v2, "--to-tar", out, "--since", tc.path},
			{"verify", r.v1Arch, "--since", tc.path},
		} {
			res := ferry(t, nil, args...)
			if res.Code != 2 || !strings.Contains(res.Stderr, tc.path) || !strings.Contains(res.Stderr, tc.want) {
				t.Errorf("%v: want a usage error (exit 2) naming %s, %q: %s", args, tc.path, tc.want, res)
			}
			if _, err := os.Stat(out); err == nil {
				t.Errorf("%v: wrote %s", args, out)
			}
		}
	}
}

// archiveManifests lists the manifests an archive's head holds.
func archiveManifests(t *testing.T, path string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, e := range readEntries(t, path) {
		var m struct {
			SchemaVersion int             `json:"schemaVersion"`
			Layers        json.RawMessage `json:"layers"`
			Manifests     json.RawMessage `json:"manifests"`
		}
		if strings.HasPrefix(e.Header.Name, "blobs/sha256/") && json.Unmarshal(e.Data, &m) == nil && m.SchemaVersion == 2 && (m.Layers != nil || m.Manifests != nil) {
			out["sha256:"+strings.TrimPrefix(e.Header.Name, "blobs/sha256/")] = true
		}
	}
	return out
}

func manifestCount(t *testing.T, r *releases, set map[string]int64) int {
	t.Helper()
	m := archiveManifests(t, r.v2Full)
	n := 0
	for d := range set {
		if m[d] {
			n++
		}
	}
	return n
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// TestVerifyDeltaSinceADelta: a delta made since another delta counts what
// that one left out as held (its import found it at the destination), and
// verify --since agrees.
func TestVerifyDeltaSinceADelta(t *testing.T) {
	r := newReleases(t)
	dir := t.TempDir()
	d2 := filepath.Join(dir, "v2.tar.zst")
	mustFerry(t, "export", "-b", r.v2, "-o", d2, "--since", r.v1Arch)
	again := filepath.Join(dir, "v2-again.tar.zst")
	mustFerry(t, "export", "-b", r.v2, "-o", again, "--since", d2)
	res := mustFerry(t, "verify", again, "--since", d2, "--json")
	var v struct {
		LeftOut      int
		BasesChecked []string
	}
	if err := json.Unmarshal([]byte(res.Stdout), &v); err != nil {
		t.Fatal(err)
	}
	if v.LeftOut != len(archiveBlobs(t, r.v2Full))-len(archiveManifests(t, r.v2Full)) || len(v.BasesChecked) != 1 {
		t.Errorf("verify --since a delta: %+v; want every config and layer left out, held by the base", v)
	}
}
