package relocate_test

import (
	"context"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/relocate"
	"github.com/ferry-dev/ferry/tags"
)

// The result lists the tags in the order they are written: an image's
// tag before the tag of any bundle that locks it, the nested bundle's
// before the root's, the locations tags after every .imgpkg tag, the
// user's tag last; whatever the digests' order by name.
func TestImportResultListsTagsInWriteOrder(t *testing.T) {
	src := impNewSource(t, 0)
	archive := src.export(t)
	for _, via := range impVias {
		t.Run(via.name, func(t *testing.T) {
			dst := impNewDest(t, false)
			res, err := relocate.Import(context.Background(), via.open(archive), dst.repo, dst.options(t))
			if err != nil {
				t.Fatal(err)
			}
			at := map[string]int{}
			for i, tr := range res.Tags {
				at[tr.Tag] = i
			}
			tagOf := func(d v1.Hash) string {
				t.Helper()
				tag := tags.Imgpkg(d)
				if _, ok := at[tag]; !ok {
					t.Fatalf("no tag %s in the result", tag)
				}
				return tag
			}
			idx, app1 := tagOf(impMust(src.idx.Digest())), tagOf(impMust(src.app1.Digest()))
			nested, root := tagOf(impMust(src.nested.Digest())), tagOf(impMust(src.root.Digest()))
			for _, before := range [][2]string{{idx, nested}, {app1, nested}, {app1, root}, {nested, root}} {
				if at[before[0]] >= at[before[1]] {
					t.Errorf("%s listed at %d, after %s at %d, which locks it", before[0], at[before[0]], before[1], at[before[1]])
				}
			}
			last := len(res.Tags) - 1
			if res.Tags[last].Tag != "v1" {
				t.Errorf("last tag %s, want the user's v1", res.Tags[last].Tag)
			}
			for i, tr := range res.Tags[:last] {
				if strings.Contains(tr.Tag, "image-locations") && i < at[root] {
					t.Errorf("locations tag %s listed before the root's %s", tr.Tag, root)
				}
			}
		})
	}
}
