package relocate_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferry-dev/ferry/relocate"
	"github.com/ferry-dev/ferry/tags"
)

// A bundle named by a tag that is the .imgpkg tag of an image it locks
// (sha256-<image hex>.imgpkg): the original tag is written last, so it
// would move that image's protective tag onto the bundle. Copy and import
// refuse it before anything is written, naming the tag; a tag ending in
// .imgpkg that no image of the run uses (v1.imgpkg) is an ordinary tag.
func TestOriginalTagThatIsAnotherImagesBookkeepingTagIsRefused(t *testing.T) {
	src := impNewSource(t, 0)
	app1 := impMust(src.app1.Digest())
	rootRepo := impMust(name.NewRepository(src.ep.Repo("src/root")))
	clash := tags.Imgpkg(app1)
	for _, tag := range []string{clash, "v1.imgpkg"} {
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
	export := func(p *relocate.Plan) []byte {
		var buf bytes.Buffer
		if _, err := relocate.Export(ctx, p, &buf, relocate.ExportOptions{Remote: src.opts, CreatedBy: "ferry tests"}); err != nil {
			t.Fatalf("export: %v", err)
		}
		return buf.Bytes()
	}
	refused := func(what string, err error, dst *impDest) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), clash) || !strings.Contains(err.Error(), app1.String()) {
			t.Errorf("%s with original tag %s: %v; want a refusal naming the tag and %s", what, clash, err, app1)
		}
		if got := dst.tags(t); len(got) != 0 {
			t.Errorf("%s refused, but the destination has tags %v", what, got)
		}
	}

	p := resolve(clash)
	dst := impNewDest(t, false)
	_, err := relocate.Copy(ctx, p, dst.repo, cpOptions(t, dst))
	refused("copy", err, dst)

	dst = impNewDest(t, false)
	_, err = relocate.Import(ctx, bytes.NewReader(export(p)), dst.repo, dst.options(t))
	refused("import", err, dst)

	// An ordinary tag that happens to end in .imgpkg travels.
	dst = impNewDest(t, false)
	res, err := relocate.Import(ctx, bytes.NewReader(export(resolve("v1.imgpkg"))), dst.repo, dst.options(t))
	if err != nil {
		t.Fatalf("import of a bundle tagged v1.imgpkg: %v", err)
	}
	if got := dst.tags(t)["v1.imgpkg"]; got != impMust(src.root.Digest()).String() || res.Tag != "v1.imgpkg" {
		t.Errorf("v1.imgpkg at the destination = %q (result tag %q), want the bundle %s", got, res.Tag, impMust(src.root.Digest()))
	}
}
