package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/internal/testregistry"
)

// The defects a fresh user's audit of ferry's output found: inspect's
// order of the tags an import writes, upload counts that included mounts,
// null for empty lists in --json, -v lines that said things twice, and a
// missing repository reported with a URL and Go's map syntax.

// importTagsOf runs import with args and --json and returns its tags'
// names in the order listed.
func importTagsOf(t *testing.T, args ...string) []string {
	t.Helper()
	var res struct{ Tags []struct{ Tag string } }
	r := mustFerry(t, append(append([]string{"import"}, args...), "--json")...)
	if err := json.Unmarshal([]byte(r.Stdout), &res); err != nil {
		t.Fatalf("import --json: %v\n%s", err, r)
	}
	var out []string
	for _, tr := range res.Tags {
		out = append(out, tr.Tag)
	}
	return out
}

// TestInspectImportTagsFollowTheImportsOrder: inspect's importTags, and
// the lines of its text under "An import writes these tags", are the tags
// `import --dry-run` and the import itself list, in the same order, but
// the locations images' own tags (known at import, one placeholder line in
// the text). The archive holds images, an index, a nested bundle,
// signatures and a referrer.
func TestInspectImportTagsFollowTheImportsOrder(t *testing.T) {
	src := testregistry.NewDistribution(t)
	f := newArtifactFixture(t, src)
	archive := filepath.Join(t.TempDir(), "signed.tar.zst")
	mustFerry(t, "export", "-b", f.root, "-o", archive, "--cosign-signatures", "--referrers")

	var insp struct{ ImportTags []string }
	r := mustFerry(t, "inspect", archive, "--json")
	if err := json.Unmarshal([]byte(r.Stdout), &insp); err != nil {
		t.Fatalf("inspect --json: %v\n%s", err, r)
	}
	want := f.wantArtifactTags(t)
	own := map[string]bool{}
	for tag, d := range want {
		if tag == "sha256-"+hexOf(d)+".imgpkg" && !slices.Contains(insp.ImportTags, tag) {
			own[tag] = true
		}
	}
	if len(own) != 2 {
		t.Fatalf("inspect leaves out %d tags of the import, want the 2 of the locations images: %v", len(own), own)
	}

	dst := testregistry.NewDistribution(t)
	repo := dst.Repo("far/release")
	for _, args := range [][]string{
		{"-f", archive, "--to-repo", repo, "--dry-run"},
		{"-f", archive, "--to-repo", repo},
	} {
		var written []string
		for _, tag := range importTagsOf(t, args...) {
			if !own[tag] {
				written = append(written, tag)
			}
		}
		if !slices.Equal(insp.ImportTags, written) {
			t.Errorf("import %s lists the tags\n  %s\ninspect says\n  %s", strings.Join(args, " "), strings.Join(written, "\n  "), strings.Join(insp.ImportTags, "\n  "))
		}
	}

	// The text lists the same tags in the same order.
	text := mustFerry(t, "inspect", archive).Stdout
	_, list, ok := strings.Cut(text, "An import writes these tags, the last one last:\n")
	if !ok {
		t.Fatalf("inspect's text has no list of tags:\n%s", text)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(list, "\n"), "\n") {
		if l = strings.TrimPrefix(l, "  "); !strings.HasPrefix(l, "sha256-<") {
			lines = append(lines, l)
		}
	}
	if !slices.Equal(lines, insp.ImportTags) {
		t.Errorf("inspect's text lists\n  %s\nits --json\n  %s", strings.Join(lines, "\n  "), strings.Join(insp.ImportTags, "\n  "))
	}
}

// uploadsCommitted counts the blob uploads a registry completed into repo
// (a PUT answered 201), and the mounts into it (a POST answered 201).
func uploadsCommitted(reqs []testregistry.Request, repo string) (uploads, mounts int) {
	for _, r := range reqs {
		if r.Kind != testregistry.KindUpload || r.Repo != repo || r.Status != http.StatusCreated {
			continue
		}
		switch r.Method {
		case http.MethodPut:
			uploads++
		case http.MethodPost:
			mounts++
		}
	}
	return uploads, mounts
}

// blobCounts is what the tests read of the counts of import and copy --json.
type blobCounts struct {
	BlobsUploaded, BlobsMounted, BlobsPresent, LeftOutMounted int
	BytesUploaded, BytesMounted, BytesPresent                 int64
}

// TestOutputUploadedCountsOnlyWhatWasSent: blobsUploaded and bytesUploaded
// are the configs and layers sent, as the README defines them, and mounted
// blobs are counted apart: a copy within one registry mounts the source's
// blobs and sends only the locations images'; a delta import mounts what
// it left out (counted among the blobs present) and sends the rest.
func TestOutputUploadedCountsOnlyWhatWasSent(t *testing.T) {
	t.Run("copy within one registry", func(t *testing.T) {
		reg := testregistry.NewDistribution(t)
		f := newExportFixture(t, reg)
		repo := reg.Repo("mirror3/app-bundle")
		reg.ResetCounts()
		r := mustFerry(t, "copy", "-b", f.root, "--to-repo", repo, "--json")
		var res blobCounts
		if err := json.Unmarshal([]byte(r.Stdout), &res); err != nil {
			t.Fatalf("copy --json: %v\n%s", err, r)
		}
		uploads, mounts := uploadsCommitted(reg.Requests(), "mirror3/app-bundle")
		if res.BlobsUploaded != uploads || res.BlobsMounted != mounts || mounts != len(f.allBlobs) || uploads != 4 {
			t.Errorf("--json says %d uploaded, %d mounted; the registry completed %d uploads and %d mounts (want %d mounts, 4 uploads: the locations images' configs and layers)",
				res.BlobsUploaded, res.BlobsMounted, uploads, mounts, len(f.allBlobs))
		}
		_, held := holdings(t, reg, repo)
		var mountedBytes, sentBytes int64
		for d, size := range held {
			if f.allBlobs[d] {
				mountedBytes += size
			} else {
				sentBytes += size
			}
		}
		if res.BytesMounted != mountedBytes || res.BytesUploaded != sentBytes || res.BlobsPresent != 0 {
			t.Errorf("--json says %d bytes uploaded, %d mounted, %d blobs present; want %d, %d and 0", res.BytesUploaded, res.BytesMounted, res.BlobsPresent, sentBytes, mountedBytes)
		}
		// The text summary says the same as --json.
		again := mustFerry(t, "copy", "-b", f.root, "--to-repo", reg.Repo("mirror4/app-bundle"))
		want := fmt.Sprintf("blobs      4 uploaded (%s), %d mounted (%s, not sent)", iec(sentBytes), len(f.allBlobs), iec(mountedBytes))
		if !strings.Contains(again.Stderr, want) {
			t.Errorf("the summary does not say %q:\n%s", want, again.Stderr)
		}
	})

	t.Run("delta import with mounts", func(t *testing.T) {
		rel := newReleases(t)
		dst := testregistry.NewDistribution(t)
		_, delta := v2SinceInventory(t, rel, dst, rel.v1Arch)
		repo := dst.Repo("far/c")
		dst.ResetCounts()
		r := mustFerry(t, "import", "-f", delta, "--to-repo", repo, "--json")
		var res blobCounts
		if err := json.Unmarshal([]byte(r.Stdout), &res); err != nil {
			t.Fatalf("import --json: %v\n%s", err, r)
		}
		uploads, mounts := uploadsCommitted(dst.Requests(), "far/c")
		if res.BlobsUploaded != uploads || res.LeftOutMounted != mounts || mounts == 0 || res.BlobsMounted != mounts {
			t.Errorf("--json says %d uploaded, %d left out mounted, %d mounted; the registry completed %d uploads and %d mounts",
				res.BlobsUploaded, res.LeftOutMounted, res.BlobsMounted, uploads, mounts)
		}
		_, held := holdings(t, dst, repo)
		var bytes int64
		for _, size := range held {
			bytes += size
		}
		// Nothing was in far/c before: every blob it holds came in by
		// an upload or a mount, none was already there.
		if res.BlobsPresent != 0 || res.BlobsUploaded+res.BlobsMounted != len(held) || res.BytesUploaded+res.BytesMounted != bytes {
			t.Errorf("--json: %d uploaded + %d mounted (%d + %d bytes), %d present; the repository holds %d blobs (%d bytes), none before",
				res.BlobsUploaded, res.BlobsMounted, res.BytesUploaded, res.BytesMounted, res.BlobsPresent, len(held), bytes)
		}
	})
}

// nulls lists where the JSON document doc holds a null.
func nulls(t *testing.T, what, doc string) []string {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(doc), &v); err != nil {
		t.Fatalf("%s: %v\n%s", what, err, doc)
	}
	var out []string
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch x := v.(type) {
		case nil:
			out = append(out, path)
		case map[string]any:
			for k, e := range x {
				walk(path+"."+k, e)
			}
		case []any:
			for i, e := range x {
				walk(fmt.Sprintf("%s[%d]", path, i), e)
			}
		}
	}
	walk(what, v)
	return out
}

// TestOutputJSONHasNoNull: every --json result, and the inventory file,
// writes an empty list as [], never null: a tag listing with only
// internal tags, an inventory of a repository that does not exist, and
// each command's result besides.
func TestOutputJSONHasNoNull(t *testing.T) {
	src := testregistry.NewDistribution(t)
	f := newExportFixture(t, src)
	dir := t.TempDir()
	archive := filepath.Join(dir, "release.tar.zst")
	dst := testregistry.NewDistribution(t)
	repo := dst.Repo("far/app")
	have := filepath.Join(dir, "have.json")
	delta := filepath.Join(dir, "delta.tar.zst")
	out := map[string]string{}
	run := func(what string, args ...string) {
		out[what] = mustFerry(t, args...).Stdout
	}
	run("export", "export", "-b", f.root, "-o", archive, "--json")
	run("inspect", "inspect", archive, "--json")
	run("verify", "verify", archive, "--json")
	run("import --dry-run", "import", "-f", archive, "--to-repo", repo, "--dry-run", "--json")
	run("import", "import", "-f", archive, "--to-repo", repo, "--json")
	run("copy", "copy", "-b", f.root, "--to-repo", dst.Repo("far/copied"), "--json")
	// Only a .imgpkg tag: the listing hides it.
	run("copy -i", "copy", "-i", f.app1.String(), "--to-repo", dst.Repo("far/internal"), "--json")
	run("tag list of internal tags", "tag", "list", "-i", dst.Repo("far/internal"), "--json")
	run("tag list", "tag", "list", "-i", repo, "--digests", "--json")
	run("inventory", "inventory", "--repo", repo, "--repo", dst.Repo("far/missing"), "-o", have, "--json")
	run("export --since", "export", "-b", f.root, "-o", delta, "--since", have, "--json")
	run("inspect of a delta", "inspect", delta, "--json")
	run("verify of a delta", "verify", delta, "--since", archive, "--json")
	run("push", "push", "-b", src.Repo("src/pushed")+":v1", "-f", bundleDir(t, f.app1), "--json")
	run("pull", "pull", "-b", repo+":v1", "-o", filepath.Join(dir, "out"), "--json")
	b, err := os.ReadFile(have)
	if err != nil {
		t.Fatal(err)
	}
	out["the inventory file"] = string(b)

	for what, doc := range out {
		if n := nulls(t, what, doc); len(n) > 0 {
			t.Errorf("%s writes null at %s:\n%s", what, strings.Join(n, ", "), doc)
		}
	}
	if got := strings.TrimSpace(out["tag list of internal tags"]); got != "[]" {
		t.Errorf("tag list of a repository with only internal tags: %s, want []", got)
	}
	var doc struct {
		Repositories []struct {
			Repository string
			Manifests  []any
			Blobs      []any
		}
	}
	if err := json.Unmarshal(b, &doc); err != nil || len(doc.Repositories) != 2 || doc.Repositories[1].Manifests == nil || doc.Repositories[1].Blobs == nil {
		t.Errorf("the inventory of a missing repository: want empty lists of manifests and blobs (%v):\n%s", err, b)
	}
}

// TestOutputVerboseSaysEachThingOnce: -v adds one line per image exported,
// manifest pushed and tag written, each naming a digest once, and nothing
// the summary says: a re-import, which writes nothing, adds no line, and
// a copy within one registry no count of what it mounted.
func TestOutputVerboseSaysEachThingOnce(t *testing.T) {
	src := testregistry.NewDistribution(t)
	f := newExportFixture(t, src)
	archive := filepath.Join(t.TempDir(), "release.tar.zst")
	digest := regexp.MustCompile(`sha256:[0-9a-f]{64}`)
	// before returns the lines printed before the summary, which starts
	// with start.
	before := func(r result, start string) []string {
		t.Helper()
		head, _, ok := strings.Cut(r.Stderr, start)
		if !ok {
			t.Fatalf("no summary starting %q:\n%s", start, r.Stderr)
		}
		if head == "" {
			return nil
		}
		return strings.Split(strings.TrimSuffix(head, "\n"), "\n")
	}
	once := func(what string, lines []string) {
		t.Helper()
		seen := map[string]bool{}
		for _, l := range lines {
			if ds := digest.FindAllString(l, -1); len(ds) > 1 && ds[0] == ds[1] {
				t.Errorf("%s -v names %s twice in %q", what, ds[0], l)
			}
			if seen[l] {
				t.Errorf("%s -v says %q twice", what, l)
			}
			seen[l] = true
		}
	}

	exp := before(mustFerry(t, "export", "-v", "-b", f.root, "-o", archive), "Exported into ")
	once("export", exp)
	exported := 0
	for _, l := range exp {
		if strings.HasPrefix(l, "exported ") {
			exported++
			// Where it was written, not only where it came from.
			if !strings.HasSuffix(l, " into "+archive) {
				t.Errorf("export -v line %q does not say it went into %s", l, archive)
			}
		}
	}
	if exported != 6 {
		t.Errorf("export -v: %d lines for the 6 images exported:\n%s", exported, strings.Join(exp, "\n"))
	}

	dst := testregistry.NewDistribution(t)
	repo := dst.Repo("far/app")
	written := regexp.MustCompile(`^(pushed manifest \S+@sha256:[0-9a-f]{64}|tagged \S+ \(sha256:[0-9a-f]{64}\))$`)
	first := before(mustFerry(t, "import", "-v", "-f", archive, "--to-repo", repo), "Imported into ")
	once("import", first)
	for _, l := range first {
		if !written.MatchString(l) {
			t.Errorf("import -v line %q is not a manifest pushed or a tag written", l)
		}
	}
	if again := before(mustFerry(t, "import", "-v", "-f", archive, "--to-repo", repo), "Imported into "); len(again) != 0 {
		t.Errorf("a re-import, which writes nothing, says with -v:\n%s", strings.Join(again, "\n"))
	}

	cp := before(mustFerry(t, "copy", "-v", "-b", f.root, "--to-repo", src.Repo("mirror/app")), "Copied into ")
	once("copy", cp)
	for _, l := range cp {
		if !written.MatchString(l) && !strings.HasPrefix(l, "resolv") {
			t.Errorf("copy -v line %q is not a resolution step, a manifest pushed or a tag written", l)
		}
	}
}

// TestOutputTagListOfAMissingRepository: a repository the registry does
// not know is named as such, exit 1, without the request's URL or the
// registry's error document.
func TestOutputTagListOfAMissingRepository(t *testing.T) {
	reg := testregistry.NewDistribution(t)
	for _, args := range [][]string{
		{"tag", "list", "-i", reg.Repo("sp/d")},
		{"tag", "list", "-i", reg.Repo("sp/d"), "--digests", "--json"},
	} {
		r := ferry(t, nil, args...)
		if want := "ferry: repository sp/d not found on " + reg.Host + "\n"; r.Code != 1 || r.Stderr != want || r.Stdout != "" {
			t.Errorf("ferry %s: %s\nwant exit 1 and %q", strings.Join(args, " "), r, want)
		}
	}
}

// export -v's line for each image names the archive it was written into,
// whatever that is: a file, standard output, volumes. It named only where
// the image came from ("exported image REGISTRY/apps/frontend@sha256:…").
func TestExportVerboseNamesTheArchiveWrittenInto(t *testing.T) {
	src := testregistry.NewDistribution(t)
	img := seedImage(t, src, "src/app", 1)
	dir := t.TempDir()
	file := filepath.Join(dir, "app.tar.zst")
	for _, tc := range []struct {
		args []string
		into string
	}{
		{[]string{"-o", file}, file},
		{[]string{"-o", "-"}, "standard output"},
		{[]string{"-o", filepath.Join(dir, "split.tar.zst"), "--split-size", "4Ki"}, "the volumes " + filepath.Join(dir, "split.tar.zst") + ".0*"},
	} {
		r := mustFerry(t, append([]string{"export", "-v", "-i", img.String()}, tc.args...)...)
		want := "\nexported image " + img.String() + " into " + tc.into + "\n"
		if !strings.Contains("\n"+r.Stderr, want) {
			t.Errorf("export -v %s: stderr does not say %q:\n%s", strings.Join(tc.args, " "), want[1:], r.Stderr)
		}
	}
	// push --to-tar exports too.
	bdir := bundleDir(t, img)
	r := mustFerry(t, "push", "-v", "-b", src.Repo("src/bundle")+":v1", "-f", bdir, "--to-tar", file)
	if want := "\nexported image " + img.String() + " into " + file + "\n"; !strings.Contains("\n"+r.Stderr, want) {
		t.Errorf("push --to-tar -v: stderr does not say %q:\n%s", want[1:], r.Stderr)
	}
}
