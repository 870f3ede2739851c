package relocate_test

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/internal/testregistry"
	"github.com/ferry-dev/ferry/relocate"
	"github.com/ferry-dev/ferry/tags"
)

// TestInspectListsTheTagsInTheOrderAnImportWritesThem: inspect's
// importTags are the tags of the import's result (dry run and real), in
// the same order, but the tags of the locations images' own digests, known
// only at import. The archive holds images, an index, a nested bundle,
// signatures and a referrer, so that every commit group has a tag, and the
// digests' order by name differs from the commit order (the root bundle's
// sha256-….imgpkg tag, a bundle, must come after the images' whatever its
// hex).
func TestInspectListsTheTagsInTheOrderAnImportWritesThem(t *testing.T) {
	s := newArtSource(t)
	data := s.exportWith(t, true, true)
	inv, err := relocate.Inspect(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	// The locations images' own tags, computed from the bundles' locks.
	own := map[string]bool{
		tags.Imgpkg(impLocationsDigest(t, s.rootLocks, s.nestedRef)): true,
		tags.Imgpkg(impLocationsDigest(t, s.nestedLocks)):            true,
	}
	for _, dryRun := range []bool{true, false} {
		reg := testregistry.NewGGCR(t)
		repo := impMust(name.NewRepository(reg.Repo("dst/imported")))
		opts := relocate.ImportOptions{DestinationOptions: relocate.DestinationOptions{Remote: reg.RemoteOptions(t), DryRun: dryRun}}
		res, err := relocate.Import(context.Background(), bytes.NewReader(data), repo, opts)
		if err != nil {
			t.Fatal(err)
		}
		var written []string
		for _, r := range res.Tags {
			if !own[r.Tag] {
				written = append(written, r.Tag)
			}
		}
		if !slices.Equal(inv.Tags, written) {
			t.Errorf("dry run %v: inspect lists\n  %s\nthe import writes\n  %s", dryRun, strings.Join(inv.Tags, "\n  "), strings.Join(written, "\n  "))
		}
	}
	// What the comparison rests on: the images' tags before the nested
	// bundle's, the nested bundle's before the root's, the signatures'
	// after the root's, the locations tags after every .imgpkg tag.
	at := map[string]int{}
	for i, tag := range inv.Tags {
		at[tag] = i
	}
	imgpkg := func(img interface{ Digest() (v1.Hash, error) }) string { return tags.Imgpkg(impMust(img.Digest())) }
	root := imgpkg(s.root)
	for _, pair := range [][2]string{
		{imgpkg(s.app1), imgpkg(s.nested)}, {imgpkg(s.idx), imgpkg(s.nested)}, {imgpkg(s.nested), root},
		{root, s.sigTag}, {root, imgpkg(s.sig)}, {imgpkg(s.sig), tags.ImageLocations(impMust(s.root.Digest()))},
	} {
		a, okA := at[pair[0]]
		b, okB := at[pair[1]]
		if !okA || !okB || a >= b {
			t.Errorf("inspect lists %s at %d (listed %v), %s at %d (listed %v): want the first before the second", pair[0], a, okA, pair[1], b, okB)
		}
	}
	if last := inv.Tags[len(inv.Tags)-1]; last != "v1" {
		t.Errorf("last tag %s, want v1", last)
	}
}
