package relocate_test

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferry-dev/ferry/internal/inventory"
	"github.com/ferry-dev/ferry/internal/testregistry"
	"github.com/ferry-dev/ferry/relocate"
)

// listed returns the manifests and blobs an inventory's one repository
// lists, digest to size.
func listed(t *testing.T, doc *inventory.Document) (manifests, blobs map[v1.Hash]int64) {
	t.Helper()
	if len(doc.Repositories) != 1 {
		t.Fatalf("repositories %+v, want one", doc.Repositories)
	}
	manifests, blobs = map[v1.Hash]int64{}, map[v1.Hash]int64{}
	for _, it := range doc.Repositories[0].Manifests {
		manifests[it.Digest] = it.Size
	}
	for _, it := range doc.Repositories[0].Blobs {
		blobs[it.Digest] = it.Size
	}
	return manifests, blobs
}

// checkListed fails the test unless manifests and blobs list img's
// manifest and every blob it references, with their sizes as img gives
// them.
func checkListed(t *testing.T, what string, img v1.Image, manifests, blobs map[v1.Hash]int64) {
	t.Helper()
	d, size := impMust(img.Digest()), impMust(img.Size())
	if manifests[d] != size {
		t.Errorf("%s: manifest %s (%d bytes) listed with %d bytes", what, d, size, manifests[d])
	}
	m := impMust(img.Manifest())
	for _, b := range append([]v1.Descriptor{m.Config}, m.Layers...) {
		if blobs[b.Digest] != b.Size {
			t.Errorf("%s: blob %s (%d bytes) listed with %d bytes", what, b.Digest, b.Size, blobs[b.Digest])
		}
	}
}

// A registry that pages an image's referrers (rel="next" links) has every
// page read by the inventory, as by export's resolution: all three
// referrers are listed, not the first page's one (go-containerregistry's
// remote.Referrers reads one page). Pages that loop stop the inventory,
// naming the registry, rather than being read for ever.
func TestInventoryListsReferrersOnEveryPage(t *testing.T) {
	reg := testregistry.NewPagedReferrers(t, 1)
	opts := reg.RemoteOptions(t)
	repo := impMust(name.NewRepository(reg.Repo("far/app")))
	img := impMust(random.Image(1024, 1))
	if err := remote.Write(repo.Tag("v1"), img, opts...); err != nil {
		t.Fatal(err)
	}
	var arts []v1.Image
	for i := range 3 {
		art := sbomOf(t, img, i)
		if err := remote.Write(repo.Digest(impMust(art.Digest()).String()), art, opts...); err != nil {
			t.Fatal(err)
		}
		arts = append(arts, art)
	}

	doc, err := relocate.TakeInventory(context.Background(), []name.Repository{repo}, relocate.InventoryOptions{Remote: opts})
	if err != nil {
		t.Fatal(err)
	}
	manifests, blobs := listed(t, doc)
	checkListed(t, "image", img, manifests, blobs)
	for _, art := range arts {
		checkListed(t, "referrer", art, manifests, blobs)
	}
	if len(manifests) != 4 {
		t.Errorf("%d manifests listed, want the image and its 3 referrers: %v", len(manifests), manifests)
	}

	reg.SetLinks(testregistry.LinksLoop)
	_, err = relocate.TakeInventory(context.Background(), []name.Repository{repo}, relocate.InventoryOptions{Remote: opts})
	if err == nil || !strings.Contains(err.Error(), "loops") || !strings.Contains(err.Error(), reg.Host) {
		t.Errorf("inventory with looping referrers pages: %v; want an error naming %s and the loop", err, reg.Host)
	}
}
