package relocate_test

import (
	"bytes"
	"context"
	"net/http"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferry-dev/ferry/archive"
	"github.com/ferry-dev/ferry/internal/testregistry"
	"github.com/ferry-dev/ferry/relocate"
)

// imgTagged pushes the source's multi-platform index under the tag 1.0
// and returns that reference (what -i is given) and the index's digest,
// from the index the test built.
func imgTagged(t *testing.T, src *impSource) (string, v1.Hash) {
	t.Helper()
	ref := src.ep.Repo("src/multi") + ":1.0"
	if err := remote.WriteIndex(impMust(name.NewTag(ref)), src.idx, src.opts...); err != nil {
		t.Fatal(err)
	}
	return ref, impMust(src.idx.Digest())
}

// imgTaggedPlan resolves -i ref.
func imgTaggedPlan(t *testing.T, src *impSource, ref string) *relocate.Plan {
	t.Helper()
	p, err := relocate.Resolve(context.Background(), relocate.Source{Image: ref}, relocate.Options{Remote: src.opts})
	if err != nil {
		t.Fatalf("resolve -i %s: %v", ref, err)
	}
	return p
}

// imgExport writes the archive of p.
func imgExport(t *testing.T, src *impSource, p *relocate.Plan) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := relocate.Export(context.Background(), p, &buf, relocate.ExportOptions{Remote: src.opts, CreatedBy: "ferry image tag tests"}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// imgWantTags is what -i REPO:1.0 leaves at the destination: the index's
// .imgpkg tag and, when tagged, 1.0 (as imgpkg copy -i leaves it).
func imgWantTags(d v1.Hash, tagged bool) map[string]string {
	want := map[string]string{"sha256-" + d.Hex + ".imgpkg": d.String()}
	if tagged {
		want["1.0"] = d.String()
	}
	return want
}

// imgCheckCommit checks a first move of the tagged index: 1.0 is the
// last manifest PUT, after the index's children and its .imgpkg tag, and
// the result names it as the root's tag, created last.
func imgCheckCommit(t *testing.T, src *impSource, dst *impDest, res *relocate.ImportResult, d v1.Hash) {
	t.Helper()
	puts := impManifestPuts(dst.reg.Requests())
	if len(puts) == 0 || puts[len(puts)-1] != "1.0" {
		t.Fatalf("manifest PUTs %v: want 1.0 last", puts)
	}
	before := map[string]bool{}
	for _, p := range puts[:len(puts)-1] {
		before[p] = true
	}
	for _, c := range impMust(src.idx.IndexManifest()).Manifests {
		if !before[c.Digest.String()] {
			t.Errorf("manifest PUTs %v: child %s not before 1.0", puts, c.Digest)
		}
	}
	if !before["sha256-"+d.Hex+".imgpkg"] {
		t.Errorf("manifest PUTs %v: .imgpkg tag not before 1.0", puts)
	}
	if res.Tag != "1.0" || res.Root != dst.repo.Name()+"@"+d.String() {
		t.Errorf("result root %s tag %q, want %s@%s and 1.0", res.Root, res.Tag, dst.repo, d)
	}
	n := len(res.Tags)
	if n != 2 || res.Tags[n-1] != (relocate.TagResult{Tag: "1.0", Digest: d.String(), Action: relocate.TagCreate}) {
		t.Errorf("result tags %+v: want the .imgpkg tag, then 1.0 created at %s", res.Tags, d)
	}
	if diff := impDiffTags(dst.tags(t), imgWantTags(d, true)); diff != "" {
		t.Errorf("destination tags differ:\n%s", diff)
	}
}

// imgCheckAgain checks a second move: every tag unchanged, 1.0 last, no
// manifest written.
func imgCheckAgain(t *testing.T, dst *impDest, res *relocate.ImportResult, d v1.Hash) {
	t.Helper()
	if n := dst.reg.Counts().Get(http.MethodPut, testregistry.KindManifest); n != 0 {
		t.Errorf("second run made %d manifest PUTs, want 0", n)
	}
	n := len(res.Tags)
	if n != 2 || res.Tags[n-1].Tag != "1.0" || res.Tag != "1.0" {
		t.Fatalf("second run tags %+v (root tag %q): want 1.0 last", res.Tags, res.Tag)
	}
	for _, tr := range res.Tags {
		if tr.Action != relocate.TagUnchanged {
			t.Errorf("second run: tag %+v, want unchanged", tr)
		}
	}
	if diff := impDiffTags(dst.tags(t), imgWantTags(d, true)); diff != "" {
		t.Errorf("destination tags differ:\n%s", diff)
	}
}

func TestResolveImageByTagCarriesTheTagAndByDigestNone(t *testing.T) {
	src := impNewSource(t, 0)
	ref, d := imgTagged(t, src)
	p := imgTaggedPlan(t, src, ref)
	if p.Root == nil || p.Root.Digest != d || p.Root.Tag != "1.0" || p.Root.Role != archive.RoleImage || p.Root.OriginalRef != ref {
		t.Fatalf("root %+v: want the index, role image, tag 1.0, original %s", p.Root, ref)
	}
	for _, im := range p.Images {
		if im != p.Root && im.Tag != "" {
			t.Errorf("image %s has tag %q: only the root has one", im.Digest, im.Tag)
		}
	}
	p = imgTaggedPlan(t, src, src.idxRef)
	if p.Root == nil || p.Root.Digest != d || p.Root.Tag != "" {
		t.Fatalf("root of -i %s: %+v, want the index without a tag", src.idxRef, p.Root)
	}
}

func TestExportImageByTagRecordsTheTagAndImportWritesItLast(t *testing.T) {
	src := impNewSource(t, 0)
	ref, d := imgTagged(t, src)
	ar := imgExport(t, src, imgTaggedPlan(t, src, ref))

	// The archive carries 1.0 as the root's original tag.
	r, err := archive.NewReader(bytes.NewReader(ar), archive.ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	entries := r.Entries()
	r.Close()
	if len(entries) != 1 || entries[0].Tag != "1.0" || entries[0].Descriptor.Digest != d || entries[0].Role != archive.RoleImage {
		t.Fatalf("index.json entries %+v: want the index alone, role image, tag 1.0", entries)
	}

	for _, via := range impVias {
		t.Run(via.name, func(t *testing.T) {
			dst := impNewDest(t, false)
			res, err := relocate.Import(context.Background(), via.open(ar), dst.repo, dst.options(t))
			if err != nil {
				t.Fatal(err)
			}
			imgCheckCommit(t, src, dst, res, d)

			dst.reg.ResetCounts()
			res, err = relocate.Import(context.Background(), via.open(ar), dst.repo, dst.options(t))
			if err != nil {
				t.Fatal(err)
			}
			imgCheckAgain(t, dst, res, d)
		})
	}
}

func TestCopyImageByTagWritesTheTagLast(t *testing.T) {
	src := impNewSource(t, 0)
	ref, d := imgTagged(t, src)
	p := imgTaggedPlan(t, src, ref)
	dst := impNewDest(t, false)
	res, err := relocate.Copy(context.Background(), p, dst.repo, cpOptions(t, dst))
	if err != nil {
		t.Fatal(err)
	}
	imgCheckCommit(t, src, dst, res, d)

	dst.reg.ResetCounts()
	res, err = relocate.Copy(context.Background(), p, dst.repo, cpOptions(t, dst))
	if err != nil {
		t.Fatal(err)
	}
	imgCheckAgain(t, dst, res, d)
}

// An archive of -i REPO:TAG made before the tag travelled has the entry's
// original reference (REPO:TAG) but no tag annotation: it imports as it
// always did, with the .imgpkg tag only. The tag is not guessed from the
// original reference.
func TestImportOfAnImageArchiveWithoutATagWritesOnlyTheImgpkgTag(t *testing.T) {
	src := impNewSource(t, 0)
	ref, d := imgTagged(t, src)
	p := imgTaggedPlan(t, src, ref)
	p.Root.Tag = "" // what an older ferry planned
	ar := imgExport(t, src, p)

	for _, via := range impVias {
		t.Run(via.name, func(t *testing.T) {
			dst := impNewDest(t, false)
			res, err := relocate.Import(context.Background(), via.open(ar), dst.repo, dst.options(t))
			if err != nil {
				t.Fatal(err)
			}
			if res.Tag != "" || len(res.Tags) != 1 || res.Tags[0].Tag != "sha256-"+d.Hex+".imgpkg" {
				t.Errorf("result tag %q, tags %+v: want only the .imgpkg tag", res.Tag, res.Tags)
			}
			if diff := impDiffTags(dst.tags(t), imgWantTags(d, false)); diff != "" {
				t.Errorf("destination tags differ:\n%s", diff)
			}
		})
	}
}
