package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferry-dev/ferry/internal/testregistry"
	"github.com/ferry-dev/ferry/lock"
)

// holdings walks repo in the registry, from every tag through index
// children, and returns every manifest and every config and layer (with
// its size) it holds: what an import or a copy into an empty repository
// wrote there, found without ferry.
func holdings(t *testing.T, reg *testregistry.Registry, repo string) (manifests map[string]bool, blobs map[string]int64) {
	t.Helper()
	manifests, blobs = map[string]bool{}, map[string]int64{}
	r, err := name.NewRepository(repo)
	if err != nil {
		t.Fatal(err)
	}
	tags, err := remote.List(r, reg.RemoteOptions(t)...)
	if err != nil {
		t.Fatal(err)
	}
	var walk func(ref string)
	walk = func(ref string) {
		pr, err := name.ParseReference(ref)
		if err != nil {
			t.Fatal(err)
		}
		desc, err := remote.Get(pr, reg.RemoteOptions(t)...)
		if err != nil {
			t.Fatalf("GET %s: %v", ref, err)
		}
		if manifests[desc.Digest.String()] {
			return
		}
		manifests[desc.Digest.String()] = true
		var m struct {
			Config    *v1.Descriptor  `json:"config"`
			Layers    []v1.Descriptor `json:"layers"`
			Manifests []v1.Descriptor `json:"manifests"`
		}
		if err := json.Unmarshal(desc.Manifest, &m); err != nil {
			t.Fatal(err)
		}
		if m.Config != nil {
			blobs[m.Config.Digest.String()] = m.Config.Size
		}
		for _, l := range m.Layers {
			blobs[l.Digest.String()] = l.Size
		}
		for _, c := range m.Manifests {
			walk(repo + "@" + c.Digest.String())
		}
	}
	for _, tag := range tags {
		walk(repo + ":" + tag)
	}
	return manifests, blobs
}

// shortTempDir is a directory whose path keeps a summary line naming a
// file in it under 80 columns.
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "fo")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func TestRelocationCountsWhatTheRepositoryGotLocationsImagesIncluded(t *testing.T) {
	src := testregistry.NewDistribution(t)
	f := newExportFixture(t, src)
	archive := filepath.Join(t.TempDir(), "release.tar.zst")
	mustFerry(t, "export", "-b", f.root, "-o", archive)
	dst := testregistry.NewDistribution(t)
	tmp := shortTempDir(t)

	for _, tc := range []struct {
		command string
		args    []string
	}{
		{"import", []string{"-f", archive}},
		{"copy", []string{"-b", f.root}},
	} {
		t.Run(tc.command, func(t *testing.T) {
			repo := dst.Repo("far/" + tc.command)
			lockFile := filepath.Join(tmp, tc.command+".yml")
			args := append(append([]string{tc.command, "-v", "--json"}, tc.args...), "--to-repo", repo, "--lock-output", lockFile)
			r := mustFerry(t, args...)
			var res struct {
				BlobsUploaded, BlobsPresent, ManifestsPushed, ManifestsPresent int
				BytesUploaded                                                  int64
				LockOutput                                                     string
			}
			if err := json.Unmarshal([]byte(r.Stdout), &res); err != nil {
				t.Fatalf("--json: %v\n%s", err, r)
			}
			manifests, blobs := holdings(t, dst, repo)
			// The fixture's manifests and the two bundles' locations images.
			if len(manifests) != len(f.allManifests)+2 {
				t.Fatalf("the repository holds %d manifests, want the fixture's %d and 2 locations images", len(manifests), len(f.allManifests))
			}
			var size int64
			for _, n := range blobs {
				size += n
			}
			if res.BlobsUploaded != len(blobs) || res.BytesUploaded != size || res.BlobsPresent != 0 {
				t.Errorf("%s --json: %d blobs uploaded (%d bytes), %d present; the repository got %d (%d bytes)",
					tc.command, res.BlobsUploaded, res.BytesUploaded, res.BlobsPresent, len(blobs), size)
			}
			if res.ManifestsPushed != len(manifests) || res.ManifestsPresent != 0 {
				t.Errorf("%s --json: %d manifests pushed, %d present; the repository got %d",
					tc.command, res.ManifestsPushed, res.ManifestsPresent, len(manifests))
			}
			// -v: one line per manifest written, the locations images' too.
			pushed := map[string]int{}
			for _, m := range regexp.MustCompile(`(?m)^pushed manifest (\S+)@(sha256:[0-9a-f]{64})$`).FindAllStringSubmatch(r.Stderr, -1) {
				if m[1] != repo {
					t.Errorf("-v names %s, not the destination %s", m[1], repo)
				}
				pushed[m[2]]++
			}
			for d := range manifests {
				if pushed[d] != 1 {
					t.Errorf("-v says %d times that manifest %s was pushed, want once:\n%s", pushed[d], d, r.Stderr)
				}
			}
			if len(pushed) != len(manifests) {
				t.Errorf("-v names %d manifests pushed, the repository got %d", len(pushed), len(manifests))
			}
			// The lock file is in the result, and names the bundle there.
			if res.LockOutput != lockFile {
				t.Errorf("--json lockOutput %q, want %q", res.LockOutput, lockFile)
			}
			bl, err := lock.ReadBundleLock(lockFile)
			if err != nil || bl.Bundle.Image != repo+"@"+f.rootDigest {
				t.Errorf("lock file %s: %+v, %v", lockFile, bl, err)
			}

			// The human summary gives the same counts, names the lock
			// file, and lists each tag once.
			human := dst.Repo("far/" + tc.command + "-human")
			humanLock := filepath.Join(tmp, tc.command+"-human.yml")
			args = append(append([]string{tc.command}, tc.args...), "--to-repo", human, "--lock-output", humanLock)
			r = mustFerry(t, args...)
			verb := map[string]string{"import": "Imported", "copy": "Copied"}[tc.command]
			assertRelocationSummary(t, r.Stderr, verb, human, src.Host, "create", f.wantTags(t))
			for _, want := range []string{
				fmt.Sprintf("\n  blobs      %d uploaded (", len(blobs)),
				fmt.Sprintf("\n  manifests  %d pushed, 0 already there\n", len(manifests)),
			} {
				if !strings.Contains(r.Stderr, want) {
					t.Errorf("the summary does not say %q:\n%s", want, r.Stderr)
				}
			}
			if n := len(regexp.MustCompile(`(?m)^  lock +written to `+regexp.QuoteMeta(humanLock)+`$`).FindAllString(r.Stderr, -1)); n != 1 {
				t.Errorf("the summary names the lock file %s %d times, want once:\n%s", humanLock, n, r.Stderr)
			}
			if _, err := os.Stat(humanLock); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestCopyOfMountedBlobsShowsNoRate(t *testing.T) {
	reg := testregistry.NewDistribution(t)
	f := newExportFixture(t, reg)
	// An image, not a bundle: no locations image, so every blob is
	// mounted and no byte is sent.
	repo := reg.Repo("mirror/app1")
	r := mustFerry(t, "copy", "-i", f.app1.String(), "--to-repo", repo)
	lines := strings.Split(withoutHeartbeats(r.Stderr), "\n")
	if !regexp.MustCompile(`^Copied into ` + regexp.QuoteMeta(repo) + ` in [0-9.]+m?s$`).MatchString(lines[0]) {
		t.Errorf("first line %q: want where and how long, and no rate when nothing was sent", lines[0])
	}
	if len(lines) < 3 || lines[1] != "  images     1" || !regexp.MustCompile(`^  blobs +\d+ mounted \([0-9.]+ [KMG]?i?B, not sent\), 0 already there$`).MatchString(lines[2]) {
		t.Errorf("images and blobs lines %q: want the one image, and only mounted blobs", lines[1:min(3, len(lines))])
	}
	r = mustFerry(t, "copy", "-i", f.app1.String(), "--to-repo", reg.Repo("mirror/app1-json"), "--json")
	var res struct{ BlobsUploaded, BlobsMounted int }
	if err := json.Unmarshal([]byte(r.Stdout), &res); err != nil || res.BlobsMounted == 0 || res.BlobsUploaded != 0 {
		t.Errorf("--json: %+v (%v), want every blob mounted and none uploaded", res, err)
	}
}

func TestInspectImportTagsAreTagNames(t *testing.T) {
	f, archive := exported(t)
	want := f.wantTags(t)
	r := mustFerry(t, "inspect", archive, "--json")
	var inv struct{ ImportTags []string }
	if err := json.Unmarshal([]byte(r.Stdout), &inv); err != nil {
		t.Fatal(err)
	}
	tagName := regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	listed := map[string]bool{}
	for _, tag := range inv.ImportTags {
		if !tagName.MatchString(tag) {
			t.Errorf("importTags holds %q, not a tag name", tag)
		}
		if _, ok := want[tag]; !ok {
			t.Errorf("importTags lists %q, which an import does not write", tag)
		}
		listed[tag] = true
	}
	// Only the tags of the locations images' own digests are missing:
	// those digests are known at import.
	for tag, d := range want {
		if !listed[tag] && tag != "sha256-"+hexOf(d)+".imgpkg" {
			t.Errorf("importTags lacks %s", tag)
		}
	}
	if n := len(want) - len(listed); n != 2 {
		t.Errorf("importTags lacks %d tags, want the 2 of the locations images", n)
	}
	// The text output says they come, before the original tag.
	r = mustFerry(t, "inspect", archive)
	if !strings.HasSuffix(r.Stdout, "\n  sha256-<locations image digest>.imgpkg (2 tags, known at import)\n  v1\n") {
		t.Errorf("inspect does not end with the locations images' tags, then v1:\n%s", r.Stdout)
	}
}

func TestDeltaSummaryNamesTheInventoryRepositories(t *testing.T) {
	f, archive := exported(t)
	dst := testregistry.NewDistribution(t)
	repo := dst.Repo("far/release")
	mustFerry(t, "import", "-f", archive, "--to-repo", repo)
	have := filepath.Join(t.TempDir(), "have.json")
	mustFerry(t, "inventory", "--repo", repo, "-o", have)
	r := mustFerry(t, "export", "-b", f.root, "--since", have, "-o", filepath.Join(t.TempDir(), "delta.tar.zst"))
	if !regexp.MustCompile(`(?m)^  since +inventory have\.json \(sha256:[0-9a-f]{12}\)\n +taken \S+ of ` + regexp.QuoteMeta(repo) + `$`).MatchString(r.Stderr) {
		t.Errorf("the summary does not name the inventory's repository plainly:\n%s", r.Stderr)
	}
	if strings.Contains(r.Stderr, "[") {
		t.Errorf("the summary prints a list as Go does:\n%s", r.Stderr)
	}
}

// damagedArchive is an export whose app3 layer has a byte flipped in the
// file, and that layer's digest.
func damagedArchive(t *testing.T) (string, v1.Hash) {
	t.Helper()
	f, archive, src := exportedFrom(t)
	// app3's layer is random bytes, which zstd stores as they are: a byte
	// flipped in the file fails its frame's checksum.
	img, err := remote.Image(f.app3, src.RemoteOptions(t)...)
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	ld := m.Layers[0].Digest
	l, err := img.LayerByDigest(ld)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := l.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	layer, _ := io.ReadAll(rc)
	rc.Close()
	data, err := os.ReadFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	at := bytes.Index(data, layer[1000:1100])
	if at < 0 {
		t.Fatal("app3's layer is not stored as is in the archive")
	}
	data[at+50] ^= 0x04
	if err := os.WriteFile(archive, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return archive, ld
}

func TestServeNamesADamagedBlobOnce(t *testing.T) {
	archive, ld := damagedArchive(t)
	srv := startServe(t, archive, "--lazy")
	resp, err := http.Get(srv.url + "/v2/src/app3/blobs/" + ld.String())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("GET of the damaged layer: %d %s", resp.StatusCode, body)
	}
	entry := "archive entry blobs/sha256/" + ld.Hex
	var named int
	for _, line := range strings.Split(srv.stderr.String()+"\n"+string(body), "\n") {
		if !strings.Contains(line, ld.Hex) {
			continue
		}
		named++
		if n := strings.Count(line, "archive entry "); n != 1 || !strings.Contains(line, entry+":") {
			t.Errorf("a message names the archive entry %d times, want once as %q: %s", n, entry, line)
		}
	}
	if named == 0 {
		t.Errorf("nothing names the damaged blob:\nstderr: %s\nbody: %s", srv.stderr.String(), body)
	}
	srv.stopWith(t, 1)
}

// A damaged blob is an error, as verify and import say it: named on
// stderr even with -q, where it lies in the archive too, and the exit
// status at stop is 1.
func TestServeDamagedBlobIsAnErrorEvenQuiet(t *testing.T) {
	archive, ld := damagedArchive(t)
	srv := startServe(t, archive, "-q") // every blob checked from start-up
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(srv.stderr.String(), ld.String()) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	srv.stopWith(t, 1)
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(srv.stderr.String()), "\n") {
		if strings.Contains(l, ld.String()) {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 || !strings.Contains(lines[0], "archive entry blobs/sha256/"+ld.Hex) || !strings.HasPrefix(lines[0], "ferry: ") {
		t.Errorf("want one error line naming %s and its archive entry; stderr:\n%s", ld, srv.stderr.String())
	}
	if !strings.Contains(srv.stderr.String(), "1 blob damaged") {
		t.Errorf("the exit does not say a blob was damaged:\n%s", srv.stderr.String())
	}
}

func TestHeartbeatWithoutATerminalWhileWaiting(t *testing.T) {
	f, archive, src := exportedFrom(t)
	dst := testregistry.NewDistribution(t)
	// Two waits longer than the 5 s heartbeat: a manifest check before any
	// byte moves, then an upload part way through the blobs.
	const stall = 7 * time.Second
	proxy := testregistry.NewFaultProxy(t, dst,
		testregistry.Rule{Method: http.MethodHead, Kind: testregistry.KindManifest, Fault: testregistry.FaultStall, Delay: stall, Times: 1},
		testregistry.Rule{Method: http.MethodPut, Kind: testregistry.KindUpload, Fault: testregistry.FaultStall, Delay: stall, Times: 1},
	)
	repo := proxy.Repo("far/slow")
	r := mustFerry(t, "import", "-f", archive, "--to-repo", repo)
	assertNoControls(t, "a heartbeat", r.Stderr)
	lines := strings.Split(r.Stderr, "\n")
	summary := -1
	for i, l := range lines {
		if strings.HasPrefix(l, "Imported into ") {
			summary = i
			break
		}
	}
	if summary < 0 {
		t.Fatalf("no summary:\n%s", r.Stderr)
	}
	before := regexp.MustCompile(`^import: reading the archive's head and checking what ` + regexp.QuoteMeta(repo) + ` holds \([0-9.]+s\)$`)
	during := regexp.MustCompile(`^import: [0-9.]+ [KMG]?i?B of [0-9.]+ [KMG]?i?B \(\d+%\), [0-9.]+ [KMG]?i?B/s$`)
	var sawBefore, sawDuring bool
	for _, l := range lines[:summary] {
		switch {
		case before.MatchString(l):
			sawBefore = true
		case during.MatchString(l):
			sawDuring = true
		default:
			t.Errorf("before the summary, a line that is no heartbeat: %q", l)
		}
	}
	if !sawBefore || !sawDuring {
		t.Errorf("want a heartbeat while the manifests are checked (%v) and while blobs upload (%v):\n%s", sawBefore, sawDuring, r.Stderr)
	}
	for _, l := range lines[summary:] {
		if before.MatchString(l) || during.MatchString(l) {
			t.Errorf("a heartbeat after the summary: %q", l)
		}
	}
	// What the checks of summaries elsewhere drop (withoutHeartbeats) is
	// these lines, and none of the summary's: a summary after heartbeats
	// passes them.
	if got, want := withoutHeartbeats(r.Stderr), strings.Join(lines[summary:], "\n"); got != want {
		t.Errorf("without the heartbeats:\n%s\nwant the summary alone:\n%s", got, want)
	}
	assertRelocationSummary(t, r.Stderr, "Imported", repo, src.Host, "create", f.wantTags(t))
}
