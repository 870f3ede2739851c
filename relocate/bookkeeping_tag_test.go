package relocate_test

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferry-dev/ferry/archive"
	"github.com/ferry-dev/ferry/internal/testregistry"
	"github.com/ferry-dev/ferry/relocate"
	"github.com/ferry-dev/ferry/tags"
)

// A bundle named by a tag of the shape of a bookkeeping tag: the .imgpkg
// tag of an image it locks, or the locations tag of some other bundle
// (another import's, in the same repository). The original tag is written
// last, so it would move that tag onto the bundle. Resolve refuses it, so
// that neither export (whose archive every import would refuse) nor copy
// starts; an archive that has such a tag anyway (written by an older
// ferry) is refused by import and copy before anything is written, naming
// the tag. The root's own .imgpkg tag, or its repo-based form, and a tag
// that merely ends in .imgpkg (v1.imgpkg) travel.
func TestOriginalTagThatIsAnotherImagesBookkeepingTagIsRefused(t *testing.T) {
	src := impNewSource(t, 0)
	app1 := impMust(src.app1.Digest())
	rootRepo := impMust(name.NewRepository(src.ep.Repo("src/root")))
	clash := tags.Imgpkg(app1)
	// A locations tag of a bundle this run does not carry: another
	// import's, in the same repository, which this one must not move.
	foreign := tags.ImageLocations(v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("1d", 32)})
	for _, tag := range []string{clash, foreign, "v1.imgpkg"} {
		if err := remote.Write(rootRepo.Tag(tag), src.root, src.opts...); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	resolve := func(tag string) *relocate.Plan {
		p, err := relocate.Resolve(ctx, relocate.Source{Bundle: rootRepo.Tag(tag).String()}, relocate.Options{Remote: src.opts})
		if err != nil {
			t.Fatalf("resolve %s: %v", tag, err)
		}
		return p
	}
	// tagged is the plan an older ferry made of the bundle given by tag,
	// which Resolve now refuses: resolved by an ordinary tag, then given
	// that one.
	tagged := func(tag string) *relocate.Plan {
		p := resolve("v1.imgpkg")
		p.Root.Tag = tag
		return p
	}
	export := func(p *relocate.Plan) []byte {
		var buf bytes.Buffer
		if _, err := relocate.Export(ctx, p, &buf, relocate.ExportOptions{Remote: src.opts, CreatedBy: "ferry tests"}); err != nil {
			t.Fatalf("export: %v", err)
		}
		return buf.Bytes()
	}
	refused := func(what, clash string, err error, dst *impDest) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), clash) || !strings.Contains(err.Error(), "bookkeeping tag") {
			t.Errorf("%s with original tag %s: %v; want a refusal naming the tag", what, clash, err)
		}
		if got := dst.tags(t); len(got) != 0 {
			t.Errorf("%s refused, but the destination has tags %v", what, got)
		}
	}

	for _, tag := range []string{clash, foreign} {
		// Export and copy are refused at resolve, by bundle or image,
		// before a blob is read.
		for _, source := range []relocate.Source{{Bundle: rootRepo.Tag(tag).String()}, {Image: rootRepo.Tag(tag).String()}} {
			src.reg.ResetCounts()
			p, err := relocate.Resolve(ctx, source, relocate.Options{Remote: src.opts})
			if err == nil || !strings.Contains(err.Error(), tag) || !strings.Contains(err.Error(), "bookkeeping tag") || !strings.Contains(err.Error(), "import refuses") {
				t.Errorf("resolve %+v: %v; want a refusal naming the tag and saying an import refuses it", source, err)
			}
			if p != nil {
				t.Errorf("resolve %+v refused, but returned a plan", source)
			}
			if n := src.reg.Counts().Get(http.MethodGet, testregistry.KindBlob); n != 0 {
				t.Errorf("resolve %+v read %d blobs before refusing", source, n)
			}
		}

		p := tagged(tag)
		dst := impNewDest(t, false)
		_, err := relocate.Copy(ctx, p, dst.repo, cpOptions(t, dst))
		refused("copy", tag, err, dst)

		ar := export(p)
		dst = impNewDest(t, false)
		_, err = relocate.Import(ctx, bytes.NewReader(ar), dst.repo, dst.options(t))
		refused("import", tag, err, dst)
		if tag == clash && (err == nil || !strings.Contains(err.Error(), app1.String())) {
			t.Errorf("import: %v; want it to name %s, whose tag it is", err, app1)
		}
		// verify, which must not pass what no import accepts, fails it
		// for the same reason.
		path := filepath.Join(t.TempDir(), "a.tar.zst")
		if err := os.WriteFile(path, ar, 0o644); err != nil {
			t.Fatal(err)
		}
		vres, err := relocate.VerifyFile(ctx, path, relocate.VerifyOptions{})
		if err == nil || vres.Verified || !strings.Contains(err.Error(), tag) || !strings.Contains(err.Error(), "bookkeeping tag") {
			t.Errorf("verify of the archive tagged %s: %v; want a failure naming the tag", tag, err)
		}

		// inspect still lists what the archive holds, and says that an
		// import refuses it, without the tag among those it would write.
		inv, err := relocate.Inspect(bytes.NewReader(ar))
		if err != nil {
			t.Fatalf("inspect of the archive tagged %s: %v", tag, err)
		}
		// (The clash is listed once, as app1's own .imgpkg tag.)
		want := 0
		if tag == clash {
			want = 1
		}
		n := 0
		for _, l := range inv.Tags {
			if l == tag {
				n++
			}
		}
		if !strings.Contains(inv.ImportRefused, tag) || n != want || len(inv.Images) == 0 {
			t.Errorf("inspect of the archive tagged %s: refused %q, tags %v, %d images; want the refusal named, the tag listed %d times, the images listed", tag, inv.ImportRefused, inv.Tags, len(inv.Images), want)
		}

		// serve, as a mirror, serves the bundle by digest but not under
		// that tag, and says so.
		head, err := archive.Inspect(bytes.NewReader(ar))
		if err != nil {
			t.Fatal(err)
		}
		view, err := relocate.MirrorView(head, nil)
		if err != nil {
			t.Fatalf("mirror view of the archive tagged %s: %v", tag, err)
		}
		r := view.Repositories["src/root"]
		if r == nil || !r.Manifests[impMust(src.root.Digest())] {
			t.Fatalf("mirror view of the archive tagged %s: src/root does not hold the bundle: %+v", tag, view.Repositories)
		}
		if _, ok := r.Tags[tag]; ok {
			t.Errorf("mirror view serves the bookkeeping-shaped original tag %s", tag)
		}
		if !slices.ContainsFunc(view.Warnings, func(w string) bool { return strings.Contains(w, tag) }) {
			t.Errorf("mirror view warnings %q do not name the tag %s it leaves out", view.Warnings, tag)
		}
	}

	// The bundle given by the tag the run writes for it anyway (its
	// repo-based tag, with --repo-based-tags, or its .imgpkg tag) travels:
	// nothing moves.
	own := tags.RepoBased("src/root", impMust(src.root.Digest()))
	if err := remote.Write(rootRepo.Tag(own), src.root, src.opts...); err != nil {
		t.Fatal(err)
	}
	dst := impNewDest(t, false)
	opts := dst.options(t)
	opts.RepoBasedTags = true
	if _, err := relocate.Import(ctx, bytes.NewReader(export(resolve(own))), dst.repo, opts); err != nil {
		t.Errorf("import of a bundle given by its own repo-based tag %s: %v", own, err)
	}
	ownImgpkg := tags.Imgpkg(impMust(src.root.Digest()))
	if err := remote.Write(rootRepo.Tag(ownImgpkg), src.root, src.opts...); err != nil {
		t.Fatal(err)
	}
	dst = impNewDest(t, false)
	if _, err := relocate.Import(ctx, bytes.NewReader(export(resolve(ownImgpkg))), dst.repo, dst.options(t)); err != nil {
		t.Errorf("import of a bundle given by its own .imgpkg tag %s: %v", ownImgpkg, err)
	}
	dst = impNewDest(t, false)
	if _, err := relocate.Copy(ctx, resolve(ownImgpkg), dst.repo, cpOptions(t, dst)); err != nil {
		t.Errorf("copy of a bundle given by its own .imgpkg tag %s: %v", ownImgpkg, err)
	}

	// An ordinary tag that happens to end in .imgpkg travels.
	dst = impNewDest(t, false)
	res, err := relocate.Import(ctx, bytes.NewReader(export(resolve("v1.imgpkg"))), dst.repo, dst.options(t))
	if err != nil {
		t.Fatalf("import of a bundle tagged v1.imgpkg: %v", err)
	}
	ordinary := filepath.Join(t.TempDir(), "v1.tar.zst")
	if err := os.WriteFile(ordinary, export(resolve("v1.imgpkg")), 0o644); err != nil {
		t.Fatal(err)
	}
	if vres, err := relocate.VerifyFile(ctx, ordinary, relocate.VerifyOptions{}); err != nil || !vres.Verified {
		t.Errorf("verify of the archive tagged v1.imgpkg: %v", err)
	}
	if got := dst.tags(t)["v1.imgpkg"]; got != impMust(src.root.Digest()).String() || res.Tag != "v1.imgpkg" {
		t.Errorf("v1.imgpkg at the destination = %q (result tag %q), want the bundle %s", got, res.Tag, impMust(src.root.Digest()))
	}
}
