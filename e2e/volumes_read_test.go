package e2e

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/fixtures/golden"
	"github.com/ferry-dev/ferry/internal/testregistry"
	"github.com/ferry-dev/ferry/internal/volumes"
)

// An archive whose name ends with three digits (a release named after its
// version) is the file it is: inspect, verify and import read it, not a
// set of volumes whose first is missing.
func TestArchiveNamedLikeAVolumeIsAFile(t *testing.T) {
	src := testregistry.NewDistribution(t)
	f := newExportFixture(t, src)
	path := filepath.Join(t.TempDir(), "app-1.0.100")
	mustFerry(t, "export", "-b", f.root, "-o", path)

	mustFerry(t, "inspect", path)
	r := mustFerry(t, "verify", path, "--json")
	var ver struct {
		SHA256, ChecksumFile string
		Volumes              []any
	}
	if err := json.Unmarshal([]byte(r.Stdout), &ver); err != nil {
		t.Fatal(err)
	}
	if ver.SHA256 != fileSHA256(t, path) || ver.ChecksumFile != path+".sha256" || len(ver.Volumes) != 0 {
		t.Fatalf("verify: %s", r.Stdout)
	}
	dst := testregistry.NewDistribution(t)
	repo := dst.Repo("far/versioned")
	mustFerry(t, "import", "-f", path, "--to-repo", repo)
	assertTags(t, tagsOf(t, dst, repo), f.wantTags(t))
}

// After the documented `cat FILE.0* > FILE`, FILE.sha256 still lists the
// volumes: verify FILE checks the archive, and neither fails on nor claims
// the checksum file, which is not about FILE as a whole.
func TestVerifyVolumesJoinedByCat(t *testing.T) {
	_, want, path, _ := splitExport(t)
	if err := os.WriteFile(path, want, 0o644); err != nil {
		t.Fatal(err)
	}
	r := mustFerry(t, "verify", path, "--json")
	var ver struct {
		SHA256, ChecksumFile string
		Verified             bool
		Volumes              []any
	}
	if err := json.Unmarshal([]byte(r.Stdout), &ver); err != nil {
		t.Fatal(err)
	}
	if !ver.Verified || ver.SHA256 != fileSHA256(t, path) || ver.ChecksumFile != "" || len(ver.Volumes) != 0 {
		t.Fatalf("verify of the joined volumes: %s", r.Stdout)
	}
	if r := mustFerry(t, "verify", path); strings.Contains(r.Stderr+r.Stdout, "matches") {
		t.Fatalf("verify claims a checksum file that lists the volumes matched:\n%s", r)
	}
}

// refusedEverywhere checks that import of p into repo, inspect and verify
// all exit 1 naming want, and that the import tagged nothing.
func refusedEverywhere(t *testing.T, dst *testregistry.Registry, repo, p, want string) {
	t.Helper()
	r := ferry(t, nil, "import", "-f", p, "--to-repo", repo)
	t.Log(r.Stderr)
	if r.Code != 1 || !strings.Contains(r.Stderr, want) {
		t.Fatalf("import: want exit 1 naming %q: %s", want, r)
	}
	if tags := tagsOf(t, dst, repo); len(tags) != 0 {
		t.Fatalf("a refused import tagged %v", tags)
	}
	for _, cmd := range []string{"inspect", "verify"} {
		if r := ferry(t, nil, cmd, p); r.Code != 1 || !strings.Contains(r.Stderr, want) {
			t.Errorf("%s: want exit 1 naming %q: %s", cmd, want, r)
		}
	}
}

// The broken sets the volumes package's unit tests build, refused through
// the path the commands take (volumes opened, then checked against the
// archive's seek table before the sizes): the cases the broken-volume
// test of volumes_test.go does not already make.
func TestMoreBrokenVolumesAreRefused(t *testing.T) {
	_, _, path, size := splitExport(t)
	dst := testregistry.NewDistribution(t)
	orig, side := readVolumes(t, path, 4)
	for _, tc := range []struct {
		name    string
		sidecar bool
		break_  func(p string)
		// first says to name volume .001 (missing) rather than the
		// archive.
		first bool
		want  string
	}{
		{"missing first", true, func(p string) { os.Remove(volume(p, 1)) }, false, "volume .001 is missing"},
		{"missing first, named", true, func(p string) { os.Remove(volume(p, 1)) }, true, "volume .001 is missing"},
		{"missing first, no checksum file", false, func(p string) { os.Remove(volume(p, 1)) }, false, "volume .001 is missing"},
		{"missing first, named, no checksum file", false, func(p string) { os.Remove(volume(p, 1)) }, true, "volume .001 is missing"},
		{"missing last", true, func(p string) { os.Remove(volume(p, 4)) }, false, "volume .004 is missing"},
		{"truncated, no checksum file", false, func(p string) { os.Truncate(volume(p, 2), size/2) }, false, "volume .002"},
		{"truncated last", true, func(p string) { os.Truncate(volume(p, 4), int64(len(orig[4]))-20) }, false, "volume .004"},
		{"empty", false, func(p string) { os.Truncate(volume(p, 4), 0) }, false, "volume .004"},
		{"short one moved to the middle", false, func(p string) {
			os.WriteFile(volume(p, 2), orig[4], 0o644)
			os.WriteFile(volume(p, 4), orig[2], 0o644)
		}, false, "volume .002"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "release.tar.zst")
			for i, b := range orig {
				os.WriteFile(volume(p, i), b, 0o644)
			}
			if tc.sidecar {
				os.WriteFile(p+".sha256", side, 0o644)
			}
			tc.break_(p)
			name := p
			if tc.first {
				name = volume(p, 1)
			}
			refusedEverywhere(t, dst, dst.Repo("broken/"+strings.NewReplacer(" ", "-", ",", "").Replace(tc.name)), name, tc.want)
		})
	}
}

// With a small split size the archive's head spans several volumes; two
// of them swapped are named as the volumes the head was read from, not
// blamed on volume .001.
func TestSwappedVolumesWithinTheHead(t *testing.T) {
	f, _, want := exportWhole(t)
	// As small as export allows: its 99 volumes, the most it writes.
	size := (len(want) + volumes.MaxVolumes - 1) / volumes.MaxVolumes
	path := filepath.Join(t.TempDir(), "release.tar.zst")
	mustFerry(t, "export", "-b", f.root, "-o", path, "--split-size", fmt.Sprint(size))
	a, _ := os.ReadFile(volume(path, 2))
	b, _ := os.ReadFile(volume(path, 3))
	os.WriteFile(volume(path, 2), b, 0o644)
	os.WriteFile(volume(path, 3), a, 0o644)
	os.Remove(path + ".sha256") // else its sums name .002 first
	dst := testregistry.NewDistribution(t)
	refusedEverywhere(t, dst, dst.Repo("broken/head"), path, "do not start the archive")
	r := ferry(t, nil, "inspect", path)
	m := regexp.MustCompile(`volumes \.001 to \.(\d{3}) do not start the archive`).FindStringSubmatch(r.Stderr)
	if m == nil {
		t.Fatalf("inspect does not name the volumes the head was read from: %s", r)
	}
	if n, _ := strconv.Atoi(m[1]); n < 3 {
		t.Fatalf("the volumes named end at .%s, before the swapped .003", m[1])
	}
}

// export --from-tar of a ferry archive at the level it was written at gives
// back the same bytes, whether it reads the archive or its volumes.
func TestRepackOfAFerryArchiveIsTheSameArchive(t *testing.T) {
	f, whole, want := exportWhole(t)
	dir := t.TempDir()
	again := filepath.Join(dir, "again.tar.zst")
	mustFerry(t, "export", "--from-tar", whole, "-o", again)
	got, err := os.ReadFile(again)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("re-packing an archive gives other bytes (%d, the archive has %d)", len(got), len(want))
	}
	split := filepath.Join(dir, "split.tar.zst")
	mustFerry(t, "export", "-b", f.root, "-o", split, "--split-size", fmt.Sprint(len(want)/3+1))
	fromVolumes := filepath.Join(dir, "from-volumes.tar.zst")
	mustFerry(t, "export", "--from-tar", volume(split, 1), "-o", fromVolumes)
	if got, _ := os.ReadFile(fromVolumes); !bytes.Equal(got, want) {
		t.Fatal("re-packing the volumes of an archive gives other bytes than the archive")
	}
}

// A delta lacks the blobs it left out: export --from-tar refuses it before
// writing anything, saying why, rather than failing part way.
func TestRepackOfADeltaIsRefused(t *testing.T) {
	r := newReleases(t)
	delta := filepath.Join(t.TempDir(), "v2.tar.zst")
	mustFerry(t, "export", "-b", r.v2, "-o", delta, "--since", r.v1Arch)
	dir := t.TempDir()
	out := filepath.Join(dir, "repacked.tar.zst")
	res := ferry(t, nil, "export", "--from-tar", delta, "-o", out)
	if res.Code != 1 || !strings.Contains(res.Stderr, "delta archive") || !strings.Contains(res.Stderr, "cannot be re-packed") {
		t.Fatalf("export --from-tar of a delta: %s", res)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Fatalf("a refused re-pack left %v", left)
	}
	if res := ferry(t, nil, "export", "--from-tar", r.v1Arch, "-o", out, "--referrers"); res.Code != 2 || !strings.Contains(res.Stderr, "--referrers") {
		t.Fatalf("--referrers with --from-tar: %s", res)
	}
}

// An imgpkg tarball on a pipe, plain or gzip-compressed, imports as from
// a file: imgpkg's own tags and digests, through import and copy --tar;
// inspect reads it too.
func TestImgpkgTarballFromAPipe(t *testing.T) {
	gold, err := golden.ReadFile("basic.imgpkg.tar")
	if err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(gold)
	zw.Close()
	dst := testregistry.NewDistribution(t)
	for i, args := range [][]string{{"import", "-f", "-"}, {"copy", "--tar", "-"}} {
		for name, in := range map[string][]byte{"plain": gold, "gzip": gz.Bytes()} {
			repo := dst.Repo(fmt.Sprintf("piped/imgpkg-%d-%s", i, name))
			r := ferryIn(t, nil, bytes.NewReader(in), append(args, "--to-repo", repo)...)
			if r.Code != 0 {
				t.Fatalf("%v of the %s imgpkg tarball on a pipe: %s", args, name, r)
			}
			assertTags(t, tagsOf(t, dst, repo), goldenImgpkgTags())
		}
	}
	r := ferryIn(t, nil, bytes.NewReader(gold), "inspect", "-", "--json")
	var inv struct {
		Format string
		Images []struct{ Digest, Role string }
	}
	if err := json.Unmarshal([]byte(r.Stdout), &inv); err != nil || inv.Format != "imgpkg" || len(inv.Images) != 2 || inv.Images[0].Digest != golden.Bundle || inv.Images[0].Role != "bundle" {
		t.Fatalf("inspect of the imgpkg tarball on a pipe: %s", r)
	}
}
