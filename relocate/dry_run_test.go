package relocate_test

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferry-dev/ferry/relocate"
)

// locationsTags lists the ".image-locations.imgpkg" tags of a result, in
// its order.
func locationsTags(res *relocate.ImportResult) []string {
	var out []string
	for _, tr := range res.Tags {
		if strings.HasSuffix(tr.Tag, ".image-locations.imgpkg") {
			out = append(out, tr.Tag)
		}
	}
	return out
}

// TestStreamDryRunListsLocationsTagsInBundleOrder: from a pipe, a dry run
// can compute the locations image of a bundle whose layer the destination
// holds (the nested bundle, copied there before) and not that of one whose
// layer it lacks (the root). It still lists the bundles' locations tags in
// the order the import writes them, the root's first, as docs/destination.md
// promises: the result lists tags in write order.
func TestStreamDryRunListsLocationsTagsInBundleOrder(t *testing.T) {
	src := impNewSource(t, 0)
	archive := src.export(t)
	dst := impNewDest(t, false)
	ctx := context.Background()
	if err := remote.Write(dst.repo.Digest(impMust(src.nested.Digest()).String()), src.nested, dst.reg.RemoteOptions(t)...); err != nil {
		t.Fatal(err)
	}
	root, nested := impMust(src.root.Digest()), impMust(src.nested.Digest())
	want := []string{
		"sha256-" + root.Hex + ".image-locations.imgpkg",
		"sha256-" + nested.Hex + ".image-locations.imgpkg",
	}

	opts := dst.options(t)
	opts.DryRun = true
	dry, err := relocate.Import(ctx, impVias[1].open(archive), dst.repo, opts)
	if err != nil {
		t.Fatal(err)
	}
	// The case this test is about: one known, one not.
	known := map[string]bool{}
	for _, tr := range dry.Tags {
		if strings.HasSuffix(tr.Tag, ".image-locations.imgpkg") {
			known[tr.Tag] = tr.Digest != ""
		}
	}
	if known[want[0]] || !known[want[1]] {
		t.Fatalf("dry run from a pipe: root's locations image known %v, nested's %v; want false, true", known[want[0]], known[want[1]])
	}
	if got := locationsTags(dry); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("dry run lists the locations tags\n  %s\nwant (bundle order)\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	res, err := relocate.Import(ctx, impVias[1].open(archive), dst.repo, dst.options(t))
	if err != nil {
		t.Fatal(err)
	}
	if got := locationsTags(res); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("the import writes the locations tags\n  %s\nwant (bundle order)\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}
