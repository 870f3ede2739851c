package e2e

import (
	"bytes"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/fixtures"
	"github.com/ferry-dev/ferry/internal/testregistry"
)

// taggedImage is an image given to -i by tag: a two-platform index pushed
// as REPO:1.0, so that "after everything it points at" covers children
// that only the index names.
type taggedImage struct {
	ref      string // REPO:1.0
	digest   string // what 1.0 points at, asked of the source registry
	children []string
}

func newTaggedImage(t *testing.T, src *testregistry.Registry) taggedImage {
	t.Helper()
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	var children []string
	for i, plat := range []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}} {
		img, err := fixtures.Image(uint64(700+i), 1, 2048)
		if err != nil {
			t.Fatal(err)
		}
		p := plat
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	ref := src.Repo("apps/frontend") + ":1.0"
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(tag, idx, src.RemoteOptions(t)...); err != nil {
		t.Fatal(err)
	}
	// The expected digests come from the source registry, not from
	// ferry: what the tag names there, and the children of that index.
	desc, err := remote.Get(tag, src.RemoteOptions(t)...)
	if err != nil {
		t.Fatal(err)
	}
	im, err := v1.ParseIndexManifest(bytes.NewReader(desc.Manifest))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range im.Manifests {
		children = append(children, m.Digest.String())
	}
	return taggedImage{ref: ref, digest: desc.Digest.String(), children: children}
}

// wantTags is every tag -i REPO:1.0 leaves at the destination, as imgpkg
// leaves it: the .imgpkg tag of the index and the original tag.
func (ti taggedImage) wantTags() map[string]string {
	return map[string]string{"sha256-" + hexOf(ti.digest) + ".imgpkg": ti.digest, "1.0": ti.digest}
}

// assertTagWrittenLast checks, from the requests the destination received,
// that the last manifest PUT is the tag 1.0 and that every child of the
// index and the index's own .imgpkg tag were PUT before it.
func (ti taggedImage) assertTagWrittenLast(t *testing.T, dst *testregistry.Registry, path string) {
	t.Helper()
	var puts []string
	for _, q := range dst.Requests() {
		if q.Method == http.MethodPut && q.Kind == testregistry.KindManifest && q.Repo == path {
			puts = append(puts, q.Ref)
		}
	}
	if len(puts) == 0 || puts[len(puts)-1] != "1.0" {
		t.Fatalf("manifest PUTs %v: want the tag 1.0 last", puts)
	}
	if n := len(slices.DeleteFunc(slices.Clone(puts), func(s string) bool { return s != "1.0" })); n != 1 {
		t.Errorf("manifest PUTs %v: 1.0 written %d times, want once", puts, n)
	}
	for _, c := range ti.children {
		if !slices.Contains(puts[:len(puts)-1], c) {
			t.Errorf("manifest PUTs %v: child %s not written before 1.0", puts, c)
		}
	}
	if !slices.Contains(puts[:len(puts)-1], "sha256-"+hexOf(ti.digest)+".imgpkg") {
		t.Errorf("manifest PUTs %v: the .imgpkg tag not written before 1.0", puts)
	}
}

// assertResult checks the --json result of a first copy or import.
func (ti taggedImage) assertResult(t *testing.T, res copyJSON, repo, action string) {
	t.Helper()
	if res.Root != repo+"@"+ti.digest || res.Tag != "1.0" {
		t.Errorf("root %s tag %q, want %s@%s and 1.0", res.Root, res.Tag, repo, ti.digest)
	}
	n := len(res.Tags)
	if n != 2 {
		t.Fatalf("tags %+v: want the .imgpkg tag and 1.0", res.Tags)
	}
	if last := res.Tags[n-1]; last.Tag != "1.0" || last.Digest != ti.digest || last.Action != action {
		t.Errorf("last tag %+v: want 1.0 %s %s", last, action, ti.digest)
	}
	if first := res.Tags[0]; first.Tag != "sha256-"+hexOf(ti.digest)+".imgpkg" || first.Action != action {
		t.Errorf("first tag %+v: want the .imgpkg tag, %s", first, action)
	}
}

// The defect: copy -i REPO:TAG wrote only sha256-<hex>.imgpkg. imgpkg
// (since v0.8.0) also writes TAG, and so must ferry, last.
func TestCopyImageByTagWritesTheTagLast(t *testing.T) {
	src := testregistry.NewDistribution(t)
	dst := testregistry.NewDistribution(t)
	ti := newTaggedImage(t, src)
	path := "ci/x"
	repo := dst.Repo(path)

	res := parseCopyJSON(t, mustFerry(t, "copy", "-i", ti.ref, "--to-repo", repo, "--json"))
	ti.assertResult(t, res, repo, "create")
	assertTags(t, tagsOf(t, dst, repo), ti.wantTags())
	ti.assertTagWrittenLast(t, dst, path)

	// Again: every tag is in place, nothing is written, and the summary
	// says so for 1.0 too.
	dst.ResetCounts()
	r := mustFerry(t, "copy", "-i", ti.ref, "--to-repo", repo)
	if !regexp.MustCompile(`(?m)^  unchanged +1\.0 +` + regexp.QuoteMeta(ti.digest[:19]) + `$`).MatchString(r.Stderr) {
		t.Errorf("re-copy summary does not list 1.0 unchanged:\n%s", r.Stderr)
	}
	if w := dst.Writes(path); len(w) != 0 {
		t.Errorf("re-copy wrote %v", w)
	}
	res = parseCopyJSON(t, mustFerry(t, "copy", "-i", ti.ref, "--to-repo", repo, "--json"))
	ti.assertResult(t, res, repo, "unchanged")
	assertTags(t, tagsOf(t, dst, repo), ti.wantTags())
}

func TestExportImageByTagThenImportWritesTheTagLast(t *testing.T) {
	src := testregistry.NewDistribution(t)
	dst := testregistry.NewDistribution(t)
	ti := newTaggedImage(t, src)
	archive := filepath.Join(t.TempDir(), "frontend.tar.zst")
	mustFerry(t, "export", "-i", ti.ref, "-o", archive)
	mustFerry(t, "verify", archive)

	path := "far/frontend"
	repo := dst.Repo(path)
	res := parseCopyJSON(t, mustFerry(t, "import", "-f", archive, "--to-repo", repo, "--json"))
	ti.assertResult(t, res, repo, "create")
	assertTags(t, tagsOf(t, dst, repo), ti.wantTags())
	ti.assertTagWrittenLast(t, dst, path)

	dst.ResetCounts()
	res = parseCopyJSON(t, mustFerry(t, "import", "-f", archive, "--to-repo", repo, "--json"))
	ti.assertResult(t, res, repo, "unchanged")
	if w := dst.Writes(path); len(w) != 0 {
		t.Errorf("re-import wrote %v", w)
	}
}

// -i REPO@sha256:… names no tag: only the .imgpkg tag is written, as
// before and as imgpkg does.
func TestImageByDigestWritesNoOtherTag(t *testing.T) {
	src := testregistry.NewDistribution(t)
	dst := testregistry.NewDistribution(t)
	ti := newTaggedImage(t, src)
	byDigest := src.Repo("apps/frontend") + "@" + ti.digest
	want := map[string]string{"sha256-" + hexOf(ti.digest) + ".imgpkg": ti.digest}

	repo := dst.Repo("ci/by-digest")
	res := parseCopyJSON(t, mustFerry(t, "copy", "-i", byDigest, "--to-repo", repo, "--json"))
	if res.Tag != "" || len(res.Tags) != 1 {
		t.Errorf("copy by digest: tag %q, tags %+v; want no original tag", res.Tag, res.Tags)
	}
	assertTags(t, tagsOf(t, dst, repo), want)

	archive := filepath.Join(t.TempDir(), "frontend.tar.zst")
	mustFerry(t, "export", "-i", byDigest, "-o", archive)
	repo = dst.Repo("far/by-digest")
	res = parseCopyJSON(t, mustFerry(t, "import", "-f", archive, "--to-repo", repo, "--json"))
	if res.Tag != "" || len(res.Tags) != 1 {
		t.Errorf("import by digest: tag %q, tags %+v; want no original tag", res.Tag, res.Tags)
	}
	assertTags(t, tagsOf(t, dst, repo), want)
}
