package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/internal/testregistry"
)

// exportWhole exports the export fixture unsplit and returns the fixture,
// the archive's path and its bytes.
func exportWhole(t *testing.T) (*exportFixture, string, []byte) {
	t.Helper()
	src := testregistry.NewDistribution(t)
	f := newExportFixture(t, src)
	whole := filepath.Join(t.TempDir(), "whole.tar.zst")
	mustFerry(t, "export", "-b", f.root, "-o", whole)
	b, err := os.ReadFile(whole)
	if err != nil {
		t.Fatal(err)
	}
	return f, whole, b
}

// splitExport exports the export fixture twice, whole and split into
// volumes of a quarter of the whole (plus a byte, so four volumes, the
// last shorter), and returns the fixture, the whole archive's bytes, the
// split archive's path (where only its volumes exist) and the volume size.
func splitExport(t *testing.T) (*exportFixture, []byte, string, int64) {
	t.Helper()
	f, _, want := exportWhole(t)
	size := int64(len(want))/4 + 1
	path := filepath.Join(t.TempDir(), "release.tar.zst")
	mustFerry(t, "export", "-b", f.root, "-o", path, "--split-size", fmt.Sprint(size))
	return f, want, path, size
}

// readVolumes reads the n volumes of the archive at path, by number, and
// its checksum file, for tests that break them and put them back.
func readVolumes(t *testing.T, path string, n int) (map[int][]byte, []byte) {
	t.Helper()
	vols := map[int][]byte{}
	for i := 1; i <= n; i++ {
		b, err := os.ReadFile(volume(path, i))
		if err != nil {
			t.Fatal(err)
		}
		vols[i] = b
	}
	side, err := os.ReadFile(path + ".sha256")
	if err != nil {
		t.Fatal(err)
	}
	return vols, side
}

// volume is the path of volume i of the archive at path.
func volume(path string, i int) string { return fmt.Sprintf("%s.%03d", path, i) }

func TestSplitExportJoinsToTheUnsplitArchive(t *testing.T) {
	f, whole, want := exportWhole(t)
	size := int64(len(want))/4 + 1

	out := filepath.Join(t.TempDir(), "release.tar.zst")
	r := mustFerry(t, "export", "-b", f.root, "-o", out, "--split-size", fmt.Sprint(size), "--json")
	var res struct {
		Archive, SHA256 string
		ArchiveBytes    int64
		Volumes         []struct {
			Path   string
			Bytes  int64
			SHA256 string
		}
	}
	if err := json.Unmarshal([]byte(r.Stdout), &res); err != nil {
		t.Fatalf("--json: %v\n%s", err, r)
	}
	if len(res.Volumes) != 4 {
		t.Fatalf("%d volumes of %d bytes for a %d-byte archive, want 4", len(res.Volumes), size, len(want))
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("a split export wrote %s itself: %v", out, err)
	}
	// Joined in order (cat release.tar.zst.0*), the volumes are the archive.
	var joined []byte
	for i, v := range res.Volumes {
		b, err := os.ReadFile(volume(out, i+1))
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(b)) > size || v.Path != volume(out, i+1) || v.Bytes != int64(len(b)) || v.SHA256 != fileSHA256(t, v.Path) {
			t.Errorf("volume %d: %d bytes on disk (at most %d), result %+v", i+1, len(b), size, v)
		}
		joined = append(joined, b...)
	}
	if !bytes.Equal(joined, want) {
		t.Fatal("the volumes joined differ from the unsplit export")
	}
	if res.SHA256 != fileSHA256(t, whole) || res.ArchiveBytes != int64(len(want)) {
		t.Errorf("result sha256 %s (%d bytes), the unsplit archive's is %s", res.SHA256, res.ArchiveBytes, fileSHA256(t, whole))
	}
	// sha256sum -c checks every volume.
	cmd := exec.Command("sha256sum", "-c", "release.tar.zst.sha256")
	cmd.Dir = filepath.Dir(out)
	if b, err := cmd.CombinedOutput(); err != nil || strings.Count(string(b), ": OK") != 4 {
		t.Fatalf("sha256sum -c: %v\n%s", err, b)
	}

	// An export that fails (here before a byte is written; part way in
	// TestSplitExportFailingMidWayLeavesNoVolume, at the commit in
	// internal/volumes) leaves the earlier volumes as they were, and a
	// split into fewer volumes replaces them all.
	r = ferry(t, nil, "export", "-b", f.root+"-missing", "-o", out, "--split-size", fmt.Sprint(size/2))
	if r.Code != 1 {
		t.Fatalf("export of a missing bundle: %s", r)
	}
	for i := 1; i <= 4; i++ {
		if b, _ := os.ReadFile(volume(out, i)); !bytes.Equal(b, joined[int64(i-1)*size:min(int64(i)*size, int64(len(joined)))]) {
			t.Fatalf("a failed export changed volume %d", i)
		}
	}
	mustFerry(t, "export", "-b", f.root, "-o", out, "--split-size", fmt.Sprint(2*size))
	left, _ := os.ReadDir(filepath.Dir(out))
	var names []string
	for _, e := range left {
		names = append(names, e.Name())
	}
	if got := strings.Join(names, " "); got != "release.tar.zst.001 release.tar.zst.002 release.tar.zst.sha256" {
		t.Fatalf("after a re-export into 2 volumes the directory holds %s", got)
	}

	// copy --to-tar splits the same way.
	cp := filepath.Join(t.TempDir(), "copy.tar.zst")
	mustFerry(t, "copy", "-b", f.root, "--to-tar", cp, "--split-size", fmt.Sprint(size))
	joined = nil
	for i := 1; i <= 4; i++ {
		b, _ := os.ReadFile(volume(cp, i))
		joined = append(joined, b...)
	}
	if !bytes.Equal(joined, want) {
		t.Fatal("copy --to-tar --split-size: the volumes joined differ from the unsplit export")
	}
	if r := ferry(t, nil, "export", "-b", f.root, "-o", "-", "--split-size", "1M"); r.Code != 2 {
		t.Fatalf("--split-size with -o -: %s", r)
	}
	if r := ferry(t, nil, "export", "-b", f.root, "-o", out, "--split-size", "4X"); r.Code != 2 || !strings.Contains(r.Stderr, "4X") {
		t.Fatalf("--split-size 4X: %s", r)
	}
}

func TestImportInspectVerifyReadVolumes(t *testing.T) {
	f, want, path, _ := splitExport(t)
	dst := testregistry.NewDistribution(t)

	// -f FILE when only its volumes exist, and -f FILE.001.
	for i, name := range []string{path, volume(path, 1)} {
		repo := dst.Repo(fmt.Sprintf("far/vol%d", i))
		mustFerry(t, "import", "-f", name, "--to-repo", repo)
		assertTags(t, tagsOf(t, dst, repo), f.wantTags(t))
	}
	// cat release.tar.zst.0* | ferry import -f -
	repo := dst.Repo("far/piped")
	r := ferryIn(t, nil, bytes.NewReader(want), "import", "-f", "-", "--to-repo", repo)
	if r.Code != 0 {
		t.Fatalf("import of the joined volumes from a pipe: %s", r)
	}
	assertTags(t, tagsOf(t, dst, repo), f.wantTags(t))

	r = mustFerry(t, "inspect", volume(path, 2), "--json")
	var inv struct {
		Format     string
		Volumes    []struct{ Path string }
		ImportTags []string
	}
	if err := json.Unmarshal([]byte(r.Stdout), &inv); err != nil {
		t.Fatal(err)
	}
	if inv.Format != "ferry" || len(inv.Volumes) != 4 || len(inv.ImportTags) == 0 || inv.ImportTags[len(inv.ImportTags)-1] != "v1" {
		t.Fatalf("inspect of the volumes: %s", r.Stdout)
	}

	r = mustFerry(t, "verify", path, "--json")
	var ver struct {
		SHA256, ChecksumFile string
		Verified             bool
		Volumes              []struct{ SHA256 string }
	}
	if err := json.Unmarshal([]byte(r.Stdout), &ver); err != nil {
		t.Fatal(err)
	}
	if !ver.Verified || ver.ChecksumFile != path+".sha256" || len(ver.Volumes) != 4 || ver.Volumes[2].SHA256 != fileSHA256(t, volume(path, 3)) {
		t.Fatalf("verify of the volumes: %s", r.Stdout)
	}
}

func TestBrokenVolumesAreRefusedAndNothingTagged(t *testing.T) {
	_, _, path, size := splitExport(t)
	dst := testregistry.NewDistribution(t)
	orig, side := readVolumes(t, path, 4)
	swap := func(p string, a, b int) {
		os.WriteFile(volume(p, a), orig[b], 0o644)
		os.WriteFile(volume(p, b), orig[a], 0o644)
	}
	for _, tc := range []struct {
		name    string
		sidecar bool
		break_  func(p string)
		want    string
	}{
		{"missing", true, func(p string) { os.Remove(volume(p, 3)) }, "volume .003 is missing"},
		{"missing, no checksum file", false, func(p string) { os.Remove(volume(p, 3)) }, "volume .003 is missing"},
		{"missing last, no checksum file", false, func(p string) { os.Remove(volume(p, 4)) }, "does not end with volume .003"},
		{"extra", true, func(p string) { os.WriteFile(volume(p, 5), orig[2], 0o644) }, "volume .005"},
		{"extra, no checksum file", false, func(p string) { os.WriteFile(volume(p, 5), []byte("junk"), 0o644) }, "volume .005 is extra"},
		// With a checksum file, the first volume whose sum differs is
		// named as such (damaged, out of order, or from another export).
		{"reordered", true, func(p string) { swap(p, 2, 3) }, "release.tar.zst.002) has sha256"},
		{"reordered, no checksum file", false, func(p string) { swap(p, 2, 3) }, "volume .002 does not continue the archive"},
		{"first two swapped", false, func(p string) { swap(p, 1, 2) }, "volume .001 does not start the archive"},
		{"truncated", true, func(p string) { os.Truncate(volume(p, 2), size/2) }, "volume .002"},
		{"truncated last", false, func(p string) { os.Truncate(volume(p, 4), int64(len(orig[4]))-20) }, "does not end with volume .004"},
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
			repo := dst.Repo("broken/" + strings.ReplaceAll(strings.ReplaceAll(tc.name, " ", "-"), ",", ""))
			r := ferry(t, nil, "import", "-f", p, "--to-repo", repo)
			t.Log(r.Stderr)
			if r.Code != 1 || !strings.Contains(r.Stderr, tc.want) {
				t.Fatalf("want exit 1 naming %q: %s", tc.want, r)
			}
			if tags := tagsOf(t, dst, repo); len(tags) != 0 {
				t.Fatalf("a refused import tagged %v", tags)
			}
			for _, cmd := range []string{"inspect", "verify"} {
				if r := ferry(t, nil, cmd, p); r.Code != 1 || !strings.Contains(r.Stderr, tc.want) {
					t.Errorf("%s: want exit 1 naming %q: %s", cmd, tc.want, r)
				}
			}
		})
	}

	// A volume damaged in place keeps its size: verify names it from the
	// checksum file, and import refuses the damaged blob.
	p := filepath.Join(t.TempDir(), "release.tar.zst")
	for i, b := range orig {
		os.WriteFile(volume(p, i), b, 0o644)
	}
	os.WriteFile(p+".sha256", side, 0o644)
	bad := bytes.Clone(orig[3])
	bad[len(bad)/2] ^= 0xff
	os.WriteFile(volume(p, 3), bad, 0o644)
	if r := ferry(t, nil, "verify", p); r.Code != 1 || !strings.Contains(r.Stderr, "volume .003") {
		t.Fatalf("verify of a damaged volume: %s", r)
	}
	repo := dst.Repo("broken/damaged")
	if r := ferry(t, nil, "import", "-f", p, "--to-repo", repo); r.Code != 1 {
		t.Fatalf("import of a damaged volume: %s", r)
	}
	if tags := tagsOf(t, dst, repo); len(tags) != 0 {
		t.Fatalf("a refused import tagged %v", tags)
	}
}

// The volumes of a split export are a base of --since and verify --since,
// and ferry serve reads them, like the unsplit archive.
func TestSinceVerifyAndServeReadVolumes(t *testing.T) {
	f, want, path, _ := splitExport(t)
	wholeSum := sha256Hex(want)

	// A delta against the volumes: the same release again leaves out
	// every config and layer, and names the base by the archive's sum
	// (the volumes joined), not by the first line of the checksum file.
	delta := filepath.Join(t.TempDir(), "again.tar.zst")
	r := mustFerry(t, "export", "-b", f.root, "-o", delta, "--since", volume(path, 1), "--json")
	var ex struct {
		LeftOut int
		Bases   []struct{ Kind, Name, SHA256 string }
	}
	if err := json.Unmarshal([]byte(r.Stdout), &ex); err != nil {
		t.Fatal(err)
	}
	if len(ex.Bases) != 1 || ex.Bases[0].Name != "release.tar.zst" || ex.Bases[0].SHA256 != wholeSum {
		t.Errorf("bases %+v, want release.tar.zst with sha256 %s", ex.Bases, wholeSum)
	}
	if ex.LeftOut == 0 {
		t.Errorf("a delta of the same release against its own volumes left nothing out: %s", r.Stdout)
	}
	if v := ferry(t, nil, "verify", delta, "--since", path); v.Code != 0 || !strings.Contains(v.Stderr, "held by "+path) {
		t.Errorf("verify --since the volumes: %s", v)
	}

	// serve --repo from the volumes has exactly an import's tags.
	srv := startServe(t, path, "--repo", "far/release")
	assertTags(t, servedTags(t, srv.host+"/far/release"), f.wantTags(t))
	pullImage(t, mustDigest(t, srv.host+"/far/release@"+f.app1.DigestStr()), f.app1.DigestStr())

	// A missing volume is named before serve listens; --since and
	// verify --since refuse it too.
	if err := os.Rename(volume(path, 3), volume(path, 3)+".away"); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"serve", path, "--addr", "127.0.0.1:0"},
		{"export", "-b", f.root, "-o", filepath.Join(t.TempDir(), "d.tar.zst"), "--since", path},
		{"verify", delta, "--since", path},
	} {
		if r := ferry(t, nil, args...); r.Code == 0 || !strings.Contains(r.Stderr, ".003") {
			t.Errorf("%s with volume .003 missing: %s", args[0], r)
		}
	}
}
