package e2e

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferry-dev/ferry/fixtures"
	"github.com/ferry-dev/ferry/fixtures/golden"
	"github.com/ferry-dev/ferry/internal/testregistry"
	"github.com/ferry-dev/ferry/lock"
)

// goldenImgpkgTags are the tags and digests imgpkg v0.43 wrote when it
// copied the bundle of basic.imgpkg.tar to a repository
// (fixtures/golden/README.md).
func goldenImgpkgTags() map[string]string {
	return map[string]string{
		"sha256-" + hexOf(golden.Bundle) + ".image-locations.imgpkg": golden.Locations,
		"sha256-" + hexOf(golden.Bundle) + ".imgpkg":                 golden.Bundle,
		"sha256-" + hexOf(golden.App1) + ".imgpkg":                   golden.App1,
		"sha256-" + hexOf(golden.Locations) + ".imgpkg":              golden.Locations,
		"v1": golden.Bundle,
	}
}

func TestImgpkgTarballImportsWithImgpkgsTagsAndDigests(t *testing.T) {
	tarball, err := golden.WriteFile(t.TempDir(), "basic.imgpkg.tar")
	if err != nil {
		t.Fatal(err)
	}
	dst := testregistry.NewDistribution(t)

	repo := dst.Repo("from/imgpkg")
	r := mustFerry(t, "import", "-f", tarball, "--to-repo", repo, "--json")
	var res struct{ Root, Tag string }
	if err := json.Unmarshal([]byte(r.Stdout), &res); err != nil {
		t.Fatal(err)
	}
	if res.Root != repo+"@"+golden.Bundle || res.Tag != "v1" {
		t.Fatalf("result root %q tag %q", res.Root, res.Tag)
	}
	assertTags(t, tagsOf(t, dst, repo), goldenImgpkgTags())

	// Idempotent: again, nothing is uploaded.
	dst.ResetCounts()
	mustFerry(t, "import", "-f", tarball, "--to-repo", repo)
	if n := dst.Counts().Get("", testregistry.KindUpload); n != 0 {
		t.Fatalf("re-import made %d upload requests", n)
	}

	// ferry pull on the far side reads the bundle, images.yml rewritten
	// to the repository through the locations image.
	out := filepath.Join(t.TempDir(), "out")
	mustFerry(t, "pull", "-b", repo+":v1", "-o", out)
	l, err := lock.ReadImagesLock(filepath.Join(out, ".imgpkg", "images.yml"))
	if err != nil || len(l.Images) != 1 || l.Images[0].Image != repo+"@"+golden.App1 {
		t.Fatalf("pulled images.yml %+v, %v", l, err)
	}

	// copy --tar is the same import.
	repo = dst.Repo("from/imgpkg-copy")
	mustFerry(t, "copy", "--tar", tarball, "--to-repo", repo)
	assertTags(t, tagsOf(t, dst, repo), goldenImgpkgTags())

	// inspect and verify read it in place.
	r = mustFerry(t, "inspect", tarball, "--json")
	var inv struct {
		Format string
		Images []struct{ Digest, Role, Tag string }
	}
	if err := json.Unmarshal([]byte(r.Stdout), &inv); err != nil {
		t.Fatal(err)
	}
	if inv.Format != "imgpkg" || len(inv.Images) != 2 || inv.Images[0].Digest != golden.Bundle || inv.Images[0].Role != "bundle" || inv.Images[0].Tag != "v1" {
		t.Fatalf("inspect: %s", r.Stdout)
	}
	r = mustFerry(t, "verify", tarball, "--json")
	var ver struct {
		Format, SHA256 string
		Blobs, Bundles int
		Verified       bool
	}
	if err := json.Unmarshal([]byte(r.Stdout), &ver); err != nil {
		t.Fatal(err)
	}
	if !ver.Verified || ver.Format != "imgpkg" || ver.Blobs != 4 || ver.Bundles != 1 || ver.SHA256 != fileSHA256(t, tarball) {
		t.Fatalf("verify: %s", r.Stdout)
	}
}

func TestExportFromImgpkgTarballThenImport(t *testing.T) {
	tarball, err := golden.WriteFile(t.TempDir(), "basic.imgpkg.tar")
	if err != nil {
		t.Fatal(err)
	}
	dst := testregistry.NewDistribution(t)
	archive := filepath.Join(t.TempDir(), "basic.tar.zst")
	r := mustFerry(t, "export", "--from-tar", tarball, "-o", archive, "--json")
	var res struct{ Images, Blobs int }
	if err := json.Unmarshal([]byte(r.Stdout), &res); err != nil {
		t.Fatal(err)
	}
	if res.Images != 2 || res.Blobs != 4 {
		t.Fatalf("export --from-tar: %s", r.Stdout)
	}
	mustFerry(t, "verify", archive)
	repo := dst.Repo("repacked/basic")
	mustFerry(t, "import", "-f", archive, "--to-repo", repo)
	assertTags(t, tagsOf(t, dst, repo), goldenImgpkgTags())

	// Re-packed into volumes, and again from those volumes: the same bytes.
	split := filepath.Join(t.TempDir(), "split.tar.zst")
	mustFerry(t, "export", "--from-tar", tarball, "-o", split, "--split-size", "2000")
	again := filepath.Join(t.TempDir(), "again.tar.zst")
	mustFerry(t, "export", "--from-tar", split, "-o", again)
	if fileSHA256(t, again) != fileSHA256(t, archive) {
		t.Fatal("re-packing the volumes gives another archive")
	}
	repo = dst.Repo("repacked/split")
	mustFerry(t, "import", "-f", split+".001", "--to-repo", repo)
	assertTags(t, tagsOf(t, dst, repo), goldenImgpkgTags())

	if r := ferry(t, nil, "export", "--from-tar", tarball, "-b", "x.example/y:1", "-o", archive); r.Code != 2 {
		t.Fatalf("--from-tar with -b: %s", r)
	}
}

func TestImgpkgTarballRefusedWhenDamaged(t *testing.T) {
	gold, err := golden.ReadFile("basic.imgpkg.tar")
	if err != nil {
		t.Fatal(err)
	}
	dst := testregistry.NewDistribution(t)
	// The app1 layer's bytes, changed in place (same size): the tarball
	// opens, and the import refuses the layer naming it, tagging nothing.
	name := "sha256-d80eb356500be32958af853fd06a73013a823068a43d79a986a7571a3fc982b7.tar.gz"
	at := bytes.Index(gold, []byte(name))
	if at < 0 {
		t.Fatalf("golden tarball has no entry %s", name)
	}
	bad := bytes.Clone(gold)
	bad[at+512+1000] ^= 0xff
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"damaged layer", bad, name},
		{"truncated", gold[:len(gold)-3000], "truncated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bad.imgpkg.tar")
			os.WriteFile(path, tc.data, 0o644)
			repo := dst.Repo("bad/" + strings.ReplaceAll(tc.name, " ", "-"))
			r := ferry(t, nil, "import", "-f", path, "--to-repo", repo)
			if r.Code != 1 || !strings.Contains(r.Stderr, tc.want) {
				t.Fatalf("want exit 1 naming %q: %s", tc.want, r)
			}
			if tags := tagsOf(t, dst, repo); len(tags) != 0 {
				t.Fatalf("a refused import tagged %v", tags)
			}
			if r := ferry(t, nil, "verify", path); r.Code != 1 || !strings.Contains(r.Stderr, tc.want) {
				t.Fatalf("verify: want exit 1 naming %q: %s", tc.want, r)
			}
		})
	}
}

func TestPushToTarGivesWhatPushThenExportGives(t *testing.T) {
	src := testregistry.NewDistribution(t)
	f := newExportFixture(t, src)
	dir := bundleDir(t, f.app1, f.app2, f.inner, f.index)
	ref := src.Repo("built/app") + ":v1"

	// push --to-tar writes the archive and pushes nothing.
	pushed := filepath.Join(t.TempDir(), "pushed.tar.zst")
	r := mustFerry(t, "push", "-b", ref, "-f", dir, "--to-tar", pushed, "--json")
	var res struct{ SHA256 string }
	if err := json.Unmarshal([]byte(r.Stdout), &res); err != nil || res.SHA256 != fileSHA256(t, pushed) {
		t.Fatalf("push --to-tar --json: %v\n%s", err, r)
	}
	if tags := tagsOf(t, src, src.Repo("built/app")); len(tags) != 0 {
		t.Fatalf("push --to-tar wrote tags %v", tags)
	}
	// The same directory pushed, then exported: the same archive, byte for
	// byte.
	mustFerry(t, "push", "-b", ref, "-f", dir)
	exported := filepath.Join(t.TempDir(), "exported.tar.zst")
	mustFerry(t, "export", "-b", ref, "-o", exported)
	if fileSHA256(t, pushed) != fileSHA256(t, exported) {
		t.Fatal("push --to-tar and push then export give different archives")
	}

	// Imported, it gives the tags and digests push, export and import
	// give: the bundle's digest is the pushed one (the same directory as
	// the fixture's root), with every .imgpkg and locations tag.
	dst := testregistry.NewDistribution(t)
	repo := dst.Repo("far/app")
	mustFerry(t, "import", "-f", pushed, "--to-repo", repo)
	assertTags(t, tagsOf(t, dst, repo), f.wantTags(t))

	// No registry is needed for the bundle's own reference, and the
	// archive can be split.
	nowhere := filepath.Join(t.TempDir(), "nowhere.tar.zst")
	mustFerry(t, "push", "-b", "127.0.0.1:1/never/pushed:v1", "-f", dir, "--to-tar", nowhere, "--split-size", "20000", "--level", "fastest")
	if _, err := os.Stat(nowhere + ".002"); err != nil {
		t.Fatalf("push --to-tar --split-size wrote no second volume: %v", err)
	}
	repo = dst.Repo("far/nowhere")
	mustFerry(t, "import", "-f", nowhere, "--to-repo", repo)
	if got := tagsOf(t, dst, repo)["v1"]; got != f.rootDigest {
		t.Fatalf("imported v1 = %s, want the bundle %s", got, f.rootDigest)
	}

	// --since as export takes it: the same directory again, since the
	// first archive, carries its manifests only, and imports onto the
	// first with the same tags.
	delta := filepath.Join(t.TempDir(), "delta.tar.zst")
	r = mustFerry(t, "push", "-b", ref, "-f", dir, "--to-tar", delta, "--since", pushed, "--json")
	var dres struct {
		LeftOut int
		Bases   []struct{ Name string }
	}
	if err := json.Unmarshal([]byte(r.Stdout), &dres); err != nil || dres.LeftOut == 0 || len(dres.Bases) != 1 || dres.Bases[0].Name != "pushed.tar.zst" {
		t.Fatalf("push --to-tar --since: %v\n%s", err, r)
	}
	repo = dst.Repo("far/app")
	mustFerry(t, "import", "-f", delta, "--to-repo", repo)
	assertTags(t, tagsOf(t, dst, repo), f.wantTags(t))

	for _, args := range [][]string{
		{"push", "-b", ref, "-f", dir, "--to-tar", pushed, "--lock-output", filepath.Join(t.TempDir(), "l.yml")},
		{"push", "-b", ref, "-f", dir, "--split-size", "1M"},
		{"push", "-b", ref, "-f", dir, "--level", "best"},
		{"push", "-b", ref, "-f", dir, "--since", pushed},
	} {
		if r := ferry(t, nil, args...); r.Code != 2 {
			t.Errorf("ferry %s: want a usage error: %s", strings.Join(args, " "), r)
		}
	}
}

// TestPushToTarTakesPushsFlags: push --to-tar with labels,
// --preserve-permissions, --file-exclusion and --cosign-signatures writes,
// byte for byte, the archive that push with the same flags then export
// --cosign-signatures writes; the flags shape the bundle (checked in the
// registry after the push), and the signature of a locked image is in the
// archive.
func TestPushToTarTakesPushsFlags(t *testing.T) {
	src := testregistry.NewDistribution(t)
	f := newArtifactFixture(t, src)
	dir := bundleDir(t, f.app1, f.app2)
	if err := os.Chmod(filepath.Join(dir, "config", "app.yml"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "secret.txt"), []byte("not for the bundle\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	flags := []string{"-f", dir, "-l", "team=platform", "-l", "release=2", "--preserve-permissions", "--file-exclusion", "secret.txt"}
	ref := src.Repo("built/flags") + ":v1"

	pushed := filepath.Join(t.TempDir(), "pushed.tar.zst")
	mustFerry(t, append([]string{"push", "-b", ref, "--to-tar", pushed, "--cosign-signatures"}, flags...)...)
	if tags := tagsOf(t, src, src.Repo("built/flags")); len(tags) != 0 {
		t.Fatalf("push --to-tar wrote tags %v", tags)
	}
	mustFerry(t, append([]string{"push", "-b", ref}, flags...)...)
	exported := filepath.Join(t.TempDir(), "exported.tar.zst")
	mustFerry(t, "export", "-b", ref, "-o", exported, "--cosign-signatures")
	if fileSHA256(t, pushed) != fileSHA256(t, exported) {
		t.Error("push --to-tar and push then export, with the same flags, give different archives")
	}

	// The flags did shape the bundle: without them the archives would
	// match as well.
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r, src.RemoteOptions(t)...)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if l := cfg.Config.Labels; l["team"] != "platform" || l["release"] != "2" {
		t.Errorf("bundle labels %v, want team=platform and release=2", l)
	}
	modes := map[string]int64{}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("bundle layers: %d, %v", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		modes[strings.TrimPrefix(path.Clean(h.Name), "./")] = h.Mode & 0o777
	}
	if _, ok := modes["secret.txt"]; ok {
		t.Error("--file-exclusion secret.txt: the bundle holds it")
	}
	if m, ok := modes["config/app.yml"]; !ok || m != 0o644 {
		t.Errorf("--preserve-permissions: config/app.yml has mode %o (present: %v), want 644", m, ok)
	}

	// The signature of app1 (and its payload) travels in the archive.
	sig := f.sigs["sha256-"+hexOf(f.app1.DigestStr())+".sig"]
	sigImg, err := remote.Image(f.app1.Context().Digest(sig.String()), src.RemoteOptions(t)...)
	if err != nil {
		t.Fatal(err)
	}
	sm, err := sigImg.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	carried := archiveBlobs(t, pushed)
	for _, d := range []v1.Hash{sig, sm.Config.Digest, sm.Layers[0].Digest} {
		if _, ok := carried[d.String()]; !ok {
			t.Errorf("push --to-tar --cosign-signatures: the archive lacks %s of app1's signature", d)
		}
	}
}

// withoutApp1 is basic.imgpkg.tar without the app1 image its bundle locks:
// its entry in manifest.json and its layer's file dropped.
func withoutApp1(t *testing.T) []byte {
	t.Helper()
	gold, err := golden.ReadFile("basic.imgpkg.tar")
	if err != nil {
		t.Fatal(err)
	}
	b, err := fixtures.DropImgpkgImage(gold, golden.App1)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestImgpkgTarballMissingALockedImageNamesTheCommand: an imgpkg tarball
// without an image its bundle locks is refused, nothing tagged, and the
// error names the command the user ran: copy --tar is a copy, though it
// imports.
func TestImgpkgTarballMissingALockedImageNamesTheCommand(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing.imgpkg.tar")
	if err := os.WriteFile(path, withoutApp1(t), 0o644); err != nil {
		t.Fatal(err)
	}
	dst := testregistry.NewDistribution(t)
	for _, tc := range []struct {
		args      []string
		want, not string
	}{
		{[]string{"import", "-f", path, "--to-repo", dst.Repo("m/a")}, "ferry: import " + path + " to " + dst.Repo("m/a") + ":", "copy "},
		{[]string{"copy", "--tar", path, "--to-repo", dst.Repo("m/b")}, "ferry: copy " + path + " to " + dst.Repo("m/b") + ":", "import "},
	} {
		r := ferry(t, nil, tc.args...)
		if r.Code != 1 || !strings.Contains(r.Stderr, tc.want) || strings.Contains(r.Stderr, tc.not) || !strings.Contains(r.Stderr, "nothing tagged") {
			t.Errorf("%s: want exit 1, %q and nothing tagged, not %q: %s", tc.args[0], tc.want, tc.not, r)
		}
		if tags := tagsOf(t, dst, tc.args[len(tc.args)-1]); len(tags) != 0 {
			t.Errorf("%s tagged %v", tc.args[0], tags)
		}
	}
}

// withRootTag is basic.imgpkg.tar with its root's tag replaced by tag.
func withRootTag(t *testing.T, tag string) []byte {
	t.Helper()
	gold, err := golden.ReadFile("basic.imgpkg.tar")
	if err != nil {
		t.Fatal(err)
	}
	entries := readTarEntries(t, "basic.imgpkg.tar", bytes.NewReader(gold))
	var items []map[string]any
	if err := json.Unmarshal(entries[0].Data, &items); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, it := range items {
		if img, ok := it["Image"].(map[string]any); ok && img["Tag"] == "v1" {
			img["Tag"] = tag
			n++
		}
	}
	if n != 1 {
		t.Fatalf("manifest.json of basic.imgpkg.tar: %d items tagged v1, want 1", n)
	}
	if entries[0].Data, err = json.Marshal(items); err != nil {
		t.Fatal(err)
	}
	return writeTar(t, entries)
}

// TestExportFromTarRefusesWhatImportRefuses: export --from-tar re-packed,
// without a word, imgpkg tarballs that every import and verify of the
// result refuses: one without an image its bundle locks, and one whose
// root is tagged with a bookkeeping tag. It refuses them as export -b
// does, from a file and from a pipe, and writes no archive.
func TestExportFromTarRefusesWhatImportRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		tar  []byte
		want string
	}{
		{"a locked image missing", withoutApp1(t), "locks 127.0.0.1:5900/src/app1@" + golden.App1 + ", which the archive does not hold"},
		{"a bookkeeping tag on the root", withRootTag(t, "sha256-"+strings.Repeat("0", 64)+".imgpkg"), "is a bookkeeping tag"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			in := filepath.Join(dir, "in.imgpkg.tar")
			if err := os.WriteFile(in, tc.tar, 0o644); err != nil {
				t.Fatal(err)
			}
			for i, from := range []string{in, "-"} {
				out := filepath.Join(dir, fmt.Sprintf("out%d.tar.zst", i))
				r := ferryIn(t, nil, bytes.NewReader(tc.tar), "export", "--from-tar", from, "-o", out)
				if r.Code != 1 || !strings.Contains(r.Stderr, tc.want) {
					t.Errorf("export --from-tar %s: want exit 1 and %q: %s", from, tc.want, r)
				}
				if _, err := os.Stat(out); !os.IsNotExist(err) {
					t.Errorf("export --from-tar %s left %s: %v", from, out, err)
				}
			}
			// From a file, the refusal comes before anything is
			// written: nothing on standard output either.
			r := ferry(t, nil, "export", "--from-tar", in, "-o", "-")
			if r.Code != 1 || !strings.Contains(r.Stderr, tc.want) || r.Stdout != "" {
				t.Errorf("export --from-tar FILE -o -: want exit 1, %q and no output, got %d bytes: %s", tc.want, len(r.Stdout), r)
			}
		})
	}
}
