package relocate_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

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

// One manifest the walk cannot use does not stop the inventory, which is
// advisory: a Docker schema 1 manifest (old far-side repositories hold
// them), an OCI artifact manifest of the 1.1 release candidates (its
// "blobs" are not an image's layers) and an image manifest whose config
// has no digest (which would write "digest": ":" into the document, which
// export --since then refuses) are each listed, with their size, without
// what they would reference; an index's child the repository no longer
// holds is skipped. Each is named in one warning, though two tags lead to
// each, and everything else is listed as usual.
func TestInventoryGoesOnPastManifestsItCannotUse(t *testing.T) {
	reg := testregistry.NewGGCR(t)
	opts := reg.RemoteOptions(t)
	repo := impMust(name.NewRepository(reg.Repo("far/app")))
	put := func(ref name.Reference, m remote.Taggable) {
		t.Helper()
		if err := remote.Put(ref, m, opts...); err != nil {
			t.Fatal(err)
		}
	}
	img := impMust(random.Image(1024, 1))
	if err := remote.Write(repo.Tag("v1"), img, opts...); err != nil {
		t.Fatal(err)
	}

	const blob = `"digest":"sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4","size":32`
	unreadable := []struct {
		tag, says string
		mt        types.MediaType
		raw       []byte
	}{
		{"old", "Docker schema 1", types.DockerManifestSchema1,
			[]byte(`{"schemaVersion":1,"name":"far/app","tag":"old","architecture":"amd64","fsLayers":[{"blobSum":"sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4"}],"history":[{"v1Compatibility":"{}"}]}`)},
		{"artifact", "neither an image manifest nor an index", "application/vnd.oci.artifact.manifest.v1+json",
			[]byte(`{"mediaType":"application/vnd.oci.artifact.manifest.v1+json","artifactType":"application/vnd.example.sbom","blobs":[{"mediaType":"application/spdx+json",` + blob + `}]}`)},
		{"no-config-digest", "without a sha256 digest", types.OCIManifestSchema1,
			[]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":2},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar",` + blob + `}]}`)},
	}
	digestOf := func(raw []byte) v1.Hash {
		return v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", sha256.Sum256(raw))}
	}
	for _, u := range unreadable {
		for _, tag := range []string{u.tag, u.tag + "-again"} {
			put(repo.Tag(tag), rawManifest{u.raw, u.mt})
		}
	}

	kept, gone := impMust(random.Image(512, 1)), impMust(random.Image(512, 1))
	for _, child := range []v1.Image{kept, gone} {
		if err := remote.Write(repo.Digest(impMust(child.Digest()).String()), child, opts...); err != nil {
			t.Fatal(err)
		}
	}
	idx := mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: kept}, mutate.IndexAddendum{Add: gone})
	for _, tag := range []string{"multi", "multi-again"} {
		if err := remote.WriteIndex(repo.Tag(tag), idx, opts...); err != nil {
			t.Fatal(err)
		}
	}
	goneDigest := impMust(gone.Digest())
	if err := remote.Delete(repo.Digest(goneDigest.String()), opts...); err != nil {
		t.Fatal(err)
	}

	rec := &impRecorder{}
	doc, err := relocate.TakeInventory(context.Background(), []name.Repository{repo}, relocate.InventoryOptions{Remote: opts, Reporter: rec})
	if err != nil {
		t.Fatalf("inventory: %v", err)
	}
	manifests, blobs := listed(t, doc)
	checkListed(t, "image", img, manifests, blobs)
	checkListed(t, "index child", kept, manifests, blobs)
	if d, size := impMust(idx.Digest()), impMust(idx.Size()); manifests[d] != size {
		t.Errorf("index %s (%d bytes) listed with %d bytes", d, size, manifests[d])
	}
	for _, u := range unreadable {
		if d := digestOf(u.raw); manifests[d] != int64(len(u.raw)) {
			t.Errorf("manifest %s (%s, %d bytes) listed with %d bytes", d, u.tag, len(u.raw), manifests[d])
		}
	}
	if _, ok := manifests[goneDigest]; ok {
		t.Errorf("the deleted child %s is listed", goneDigest)
	}
	if want := 3 + len(unreadable); len(manifests) != want {
		t.Errorf("%d manifests listed, want %d: %v", len(manifests), want, manifests)
	}
	// What the unreadable manifests name is not read, nor anything of the
	// deleted child: the blobs are the image's and the kept child's, a
	// config and a layer each.
	if want := 4; len(blobs) != want {
		t.Errorf("%d blobs listed, want %d (the image's and the kept child's): %v", len(blobs), want, blobs)
	}

	var warnings []string
	for _, l := range rec.logs {
		if strings.HasPrefix(l, "warning: ") {
			warnings = append(warnings, l)
		}
	}
	type warning struct{ digest, says string }
	wants := []warning{{goneDigest.String(), "not in the repository"}}
	for _, u := range unreadable {
		wants = append(wants, warning{digestOf(u.raw).String(), u.says})
	}
	if len(warnings) != len(wants) {
		t.Fatalf("warnings %q, want one for each unreadable manifest and one for the deleted child", warnings)
	}
	for _, want := range wants {
		if !slices.ContainsFunc(warnings, func(w string) bool {
			return strings.Contains(w, want.digest) && strings.Contains(w, want.says) && strings.Contains(w, repo.String())
		}) {
			t.Errorf("no warning names %s in %s and says %q: %q", want.digest, repo, want.says, warnings)
		}
	}
}
