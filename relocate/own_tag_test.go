package relocate_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferry-dev/ferry/relocate"
)

// ownTagSource is impNewSource's bundle given by tag as the test chooses
// (a tag naming the bundle's own digest), its plan and archive, and the
// tags a move of it leaves: the usual ones, with that tag for v1.
func ownTagSource(t *testing.T, tag func(root string) string) (want map[string]string, own string, p *relocate.Plan, archive []byte) {
	t.Helper()
	src := impNewSource(t, 0)
	ctx := context.Background()
	rootRepo := impMust(name.NewRepository(src.ep.Repo("src/root")))
	own = tag(impMust(src.root.Digest()).Hex)
	if err := remote.Write(rootRepo.Tag(own), src.root, src.opts...); err != nil {
		t.Fatal(err)
	}
	p, err := relocate.Resolve(ctx, relocate.Source{Bundle: rootRepo.Tag(own).String()}, relocate.Options{Remote: src.opts})
	if err != nil {
		t.Fatalf("resolve %s: %v", own, err)
	}
	var buf bytes.Buffer
	if _, err := relocate.Export(ctx, p, &buf, relocate.ExportOptions{Remote: src.opts, CreatedBy: "ferry tests"}); err != nil {
		t.Fatalf("export: %v", err)
	}
	want = src.wantTags(t)
	delete(want, "v1")
	want[own] = impMust(src.root.Digest()).String()
	return want, own, p, buf.Bytes()
}

// noWarnings fails the test for every warning rec received.
func noWarnings(t *testing.T, what string, rec *impRecorder) {
	t.Helper()
	for _, l := range rec.logs {
		if strings.HasPrefix(l, "warning:") {
			t.Errorf("%s, alone in its repository, warned: %s", what, l)
		}
	}
}

// TestBundleGivenByItsOwnImgpkgTagGetsThatTagOnce: a bundle given by its
// own sha256-<hex>.imgpkg tag has that tag as its original tag, which the
// run writes anyway, with the .imgpkg tags (step 4). It is written once,
// listed once in the result (not once as created, then again as
// unchanged), without a warning that another writer changed it (the run
// did), and a dry run lists it as the run does; inspect lists it once too.
// For an import, from a file and from a pipe, and a copy.
func TestBundleGivenByItsOwnImgpkgTagGetsThatTagOnce(t *testing.T) {
	want, own, p, archive := ownTagSource(t, func(hex string) string { return "sha256-" + hex + ".imgpkg" })
	ctx := context.Background()

	check := func(t *testing.T, dst *impDest, dry, res *relocate.ImportResult, rec *impRecorder) {
		t.Helper()
		n := 0
		for _, tr := range res.Tags {
			if tr.Tag == own {
				n++
			}
		}
		if n != 1 {
			t.Errorf("the result lists %s %d times, want once: %v", own, n, res.Tags)
		}
		if d := impDiffTags(dst.tags(t), want); d != "" {
			t.Errorf("destination tags differ:\n%s", d)
		}
		noWarnings(t, "the run", rec)
		if dry == nil {
			return
		}
		if fmt.Sprint(dry.Tags) != fmt.Sprint(res.Tags) {
			t.Errorf("the dry run lists\n  %v\nthe run\n  %v", dry.Tags, res.Tags)
		}
	}
	for _, via := range impVias {
		t.Run("import-"+via.name, func(t *testing.T) {
			dst := impNewDest(t, false)
			opts := dst.options(t)
			var dry *relocate.ImportResult
			if via.name == "file" {
				// From a pipe, a dry run cannot know the locations
				// images into an empty repository.
				dopts := dst.options(t)
				dopts.DryRun = true
				var err error
				if dry, err = relocate.Import(ctx, via.open(archive), dst.repo, dopts); err != nil {
					t.Fatal(err)
				}
			}
			rec := &impRecorder{}
			opts.Reporter = rec
			res, err := relocate.Import(ctx, via.open(archive), dst.repo, opts)
			if err != nil {
				t.Fatal(err)
			}
			check(t, dst, dry, res, rec)
		})
	}
	t.Run("copy", func(t *testing.T) {
		dst := impNewDest(t, false)
		dopts := cpOptions(t, dst)
		dopts.DryRun = true
		dry, err := relocate.Copy(ctx, p, dst.repo, dopts)
		if err != nil {
			t.Fatal(err)
		}
		rec := &impRecorder{}
		opts := cpOptions(t, dst)
		opts.Reporter = rec
		res, err := relocate.Copy(ctx, p, dst.repo, opts)
		if err != nil {
			t.Fatal(err)
		}
		check(t, dst, dry, res, rec)
	})
	inv, err := relocate.Inspect(bytes.NewReader(archive))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, tg := range inv.Tags {
		if tg == own {
			n++
		}
	}
	if n != 1 {
		t.Errorf("inspect lists %s %d times among the tags an import writes, want once: %v", own, n, inv.Tags)
	}
}

// TestBundleGivenByItsOwnRepoBasedTagTravelsWithoutRepoBasedTags: a bundle
// given by its own repo-based tag, as `imgpkg copy --repo-based-tags`
// leaves it, is exported (resolve accepts the tag: it names the bundle's
// own digest), and an import or copy without --repo-based-tags writes it
// too, last, as any original tag: it names the bundle already, so writing
// it moves nothing.
func TestBundleGivenByItsOwnRepoBasedTagTravelsWithoutRepoBasedTags(t *testing.T) {
	want, own, p, archive := ownTagSource(t, func(hex string) string { return "src-root-sha256-" + hex + ".imgpkg" })
	ctx := context.Background()
	check := func(t *testing.T, dst *impDest, res *relocate.ImportResult) {
		t.Helper()
		if d := impDiffTags(dst.tags(t), want); d != "" {
			t.Errorf("destination tags differ:\n%s", d)
		}
		if last := res.Tags[len(res.Tags)-1]; last.Tag != own || last.Action != relocate.TagCreate {
			t.Errorf("last tag written %+v, want %s created", last, own)
		}
	}
	t.Run("import", func(t *testing.T) {
		dst := impNewDest(t, false)
		res, err := relocate.Import(ctx, bytes.NewReader(archive), dst.repo, dst.options(t))
		if err != nil {
			t.Fatal(err)
		}
		check(t, dst, res)
	})
	t.Run("copy", func(t *testing.T) {
		dst := impNewDest(t, false)
		res, err := relocate.Copy(ctx, p, dst.repo, cpOptions(t, dst))
		if err != nil {
			t.Fatal(err)
		}
		check(t, dst, res)
	})
}

// TestCopyRefusingABookkeepingTagDoesNotNameAnArchive: a copy has no
// archive; its refusal of a root tag that is another manifest's .imgpkg
// tag names the root's tag without one.
func TestCopyRefusingABookkeepingTagDoesNotNameAnArchive(t *testing.T) {
	src := impNewSource(t, 0)
	ctx := context.Background()
	rootRepo := impMust(name.NewRepository(src.ep.Repo("src/root")))
	p, err := relocate.Resolve(ctx, relocate.Source{Bundle: rootRepo.Tag("v1").String()}, relocate.Options{Remote: src.opts})
	if err != nil {
		t.Fatal(err)
	}
	// What an older ferry's plan could carry: app1's tag.
	clash := "sha256-" + impMust(src.app1.Digest()).Hex + ".imgpkg"
	p.Root.Tag = clash
	dst := impNewDest(t, false)
	_, err = relocate.Copy(ctx, p, dst.repo, cpOptions(t, dst))
	if err == nil || !strings.Contains(err.Error(), clash) || !strings.Contains(err.Error(), "original tag") {
		t.Fatalf("copy with the root tagged %s: %v; want a refusal naming the tag", clash, err)
	}
	if strings.Contains(err.Error(), "archive") {
		t.Errorf("copy's refusal speaks of an archive: %v", err)
	}
}
