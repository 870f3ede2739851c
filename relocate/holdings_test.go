package relocate_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
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

	"github.com/ferry-dev/ferry/internal/testregistry"
	"github.com/ferry-dev/ferry/relocate"
)

// farRepo is repository far/app of reg holding one random image under
// tag v1.
func farRepo(t *testing.T, reg *testregistry.Registry) (repo name.Repository, opts []remote.Option, img v1.Image) {
	t.Helper()
	opts = reg.RemoteOptions(t)
	repo = impMust(name.NewRepository(reg.Repo("far/app")))
	img = impMust(random.Image(1024, 1))
	if err := remote.Write(repo.Tag("v1"), img, opts...); err != nil {
		t.Fatal(err)
	}
	return repo, opts, img
}

// tagRaw pushes raw, of media type mt, under each of tags.
func tagRaw(t *testing.T, opts []remote.Option, raw []byte, mt types.MediaType, tags ...name.Tag) {
	t.Helper()
	for _, tag := range tags {
		if err := remote.Put(tag, rawManifest{raw, mt}, opts...); err != nil {
			t.Fatal(err)
		}
	}
}

func sha256Of(raw []byte) v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", sha256.Sum256(raw))}
}

// holdings is what the inventory of repo lists (manifests and blobs,
// digest to size) and the warnings it gave; an error fails the test.
func holdings(t *testing.T, repo name.Repository, opts []remote.Option) (manifests, blobs map[v1.Hash]int64, warnings []string) {
	t.Helper()
	rec := &impRecorder{}
	doc, err := relocate.TakeInventory(context.Background(), []name.Repository{repo}, relocate.InventoryOptions{Remote: opts, Reporter: rec})
	if err != nil {
		t.Fatalf("inventory: %v", err)
	}
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
	for _, l := range rec.logs {
		if strings.HasPrefix(l, "warning: ") {
			warnings = append(warnings, l)
		}
	}
	return manifests, blobs, warnings
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
	repo, opts, img := farRepo(t, reg.Registry)
	var arts []v1.Image
	for i := range 3 {
		art := sbomOf(t, img, i)
		if err := remote.Write(repo.Digest(impMust(art.Digest()).String()), art, opts...); err != nil {
			t.Fatal(err)
		}
		arts = append(arts, art)
	}

	manifests, blobs, _ := holdings(t, repo, opts)
	checkListed(t, "image", img, manifests, blobs)
	for _, art := range arts {
		checkListed(t, "referrer", art, manifests, blobs)
	}
	if len(manifests) != 4 {
		t.Errorf("%d manifests listed, want the image and its 3 referrers: %v", len(manifests), manifests)
	}

	reg.SetLinks(testregistry.LinksLoop)
	_, err := relocate.TakeInventory(context.Background(), []name.Repository{repo}, relocate.InventoryOptions{Remote: opts})
	checkLoopRefused(t, "inventory", err, reg.Host)
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
	repo, opts, img := farRepo(t, reg)
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
	for _, u := range unreadable {
		tagRaw(t, opts, u.raw, u.mt, repo.Tag(u.tag), repo.Tag(u.tag+"-again"))
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

	manifests, blobs, warnings := holdings(t, repo, opts)
	checkListed(t, "image", img, manifests, blobs)
	checkListed(t, "index child", kept, manifests, blobs)
	if d, size := impMust(idx.Digest()), impMust(idx.Size()); manifests[d] != size {
		t.Errorf("index %s (%d bytes) listed with %d bytes", d, size, manifests[d])
	}
	for _, u := range unreadable {
		if d := sha256Of(u.raw); manifests[d] != int64(len(u.raw)) {
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

	type warning struct{ digest, says string }
	wants := []warning{{goneDigest.String(), "not in the repository"}}
	for _, u := range unreadable {
		wants = append(wants, warning{sha256Of(u.raw).String(), u.says})
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

// An index child larger than the manifest limit (4 MiB) is skipped with
// one warning naming it and the index, though two tags lead to it, rather
// than stopping the inventory: the same goes for any manifest the fetch
// refuses (its bytes not of its digest, as a signed Docker schema 1
// manifest's are not, its digest being that of its payload).
func TestInventorySkipsAManifestTooLargeToRead(t *testing.T) {
	reg := testregistry.NewGGCR(t)
	repo, opts, img := farRepo(t, reg)
	var huge strings.Builder
	huge.WriteString(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[`)
	for i := 0; huge.Len() <= 4<<20; i++ {
		if i > 0 {
			huge.WriteString(",")
		}
		fmt.Fprintf(&huge, `{"mediaType":"application/octet-stream","digest":"sha256:%064x","size":1}`, i)
	}
	huge.WriteString("]}")
	hugeRaw := []byte(huge.String())
	hugeDigest := sha256Of(hugeRaw)
	putRaw(t, opts, repo, hugeRaw, types.OCIImageIndex)
	parent := fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.index.v1+json","digest":%q,"size":%d}]}`, hugeDigest, len(hugeRaw))
	parentDigest := sha256Of(parent)
	tagRaw(t, opts, parent, types.OCIImageIndex, repo.Tag("multi"), repo.Tag("multi-again"))

	manifests, blobs, warnings := holdings(t, repo, opts)
	checkListed(t, "image", img, manifests, blobs)
	if manifests[parentDigest] != int64(len(parent)) {
		t.Errorf("index %s (%d bytes) listed with %d bytes", parentDigest, len(parent), manifests[parentDigest])
	}
	if len(manifests) != 2 || len(blobs) != 2 {
		t.Errorf("%d manifests and %d blobs listed, want the image and the index, and the image's config and layer: %v %v", len(manifests), len(blobs), manifests, blobs)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], hugeDigest.String()) || !strings.Contains(warnings[0], "a child of "+repo.String()+"@"+parentDigest.String()) || !strings.Contains(warnings[0], "a manifest may have") {
		t.Errorf("warnings %q, want one naming %s, too large, a child of %s", warnings, hugeDigest, parentDigest)
	}
}

// TestInventoryStopsPastItsManifestBound: a repository naming more
// manifests than the bound (here 3: four tags of different images) stops
// the inventory with an error that says so, rather than walking on; at
// the bound it is listed.
func TestInventoryStopsPastItsManifestBound(t *testing.T) {
	reg := testregistry.NewGGCR(t)
	repo, opts, _ := farRepo(t, reg)
	for _, tag := range []string{"v2", "v3"} {
		if err := remote.Write(repo.Tag(tag), impMust(random.Image(512, 1)), opts...); err != nil {
			t.Fatal(err)
		}
	}
	take := func() error {
		_, err := relocate.TakeInventory(context.Background(), []name.Repository{repo}, relocate.InventoryOptions{Remote: opts, MaxManifests: 3})
		return err
	}
	if err := take(); err != nil {
		t.Fatalf("three manifests, a bound of three: %v", err)
	}
	if err := remote.Write(repo.Tag("v4"), impMust(random.Image(512, 1)), opts...); err != nil {
		t.Fatal(err)
	}
	if err := take(); err == nil || !strings.Contains(err.Error(), "more than 3 manifests") || !strings.Contains(err.Error(), repo.String()) {
		t.Errorf("four manifests, a bound of three: %v, want an error naming the repository and the bound", err)
	}

	// One tag whose index names four children: the bound is passed by
	// what one manifest names.
	idxRepo := impMust(name.NewRepository(reg.Repo("far/index")))
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for range 4 {
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: impMust(random.Image(256, 1))})
	}
	if err := remote.WriteIndex(idxRepo.Tag("v1"), idx, opts...); err != nil {
		t.Fatal(err)
	}
	_, err := relocate.TakeInventory(context.Background(), []name.Repository{idxRepo}, relocate.InventoryOptions{Remote: opts, MaxManifests: 3})
	if err == nil || !strings.Contains(err.Error(), "more than 3 manifests") {
		t.Errorf("an index of four children, a bound of three: %v, want the bound named", err)
	}
}

// madeUpLayers returns n layer descriptors of distinct digests that no
// registry holds, the first numbered from.
func madeUpLayers(from, n int) []v1.Descriptor {
	out := make([]v1.Descriptor, n)
	for i := range out {
		out[i] = v1.Descriptor{MediaType: types.OCILayer, Size: 1, Digest: sha256Of(fmt.Appendf(nil, "made-up layer %d", from+i))}
	}
	return out
}

// TestInventoryStopsPastItsBlobBound: a registry that does not check that
// a manifest's layers exist (go-containerregistry's) holds two tags of
// images naming made-up layers. At the bound they are listed; one more
// blob than the bound stops the inventory with an error naming the
// repository and the bound, and the bound counts the blobs of the
// repositories walked before.
func TestInventoryStopsPastItsBlobBound(t *testing.T) {
	reg := testregistry.NewGGCR(t)
	opts := reg.RemoteOptions(t)
	repo := impMust(name.NewRepository(reg.Repo("far/madeup")))
	for i, tag := range []string{"a", "b"} {
		raw := impMust(json.Marshal(v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1,
			Config: v1.Descriptor{MediaType: types.OCIConfigJSON, Size: 2, Digest: sha256Of(fmt.Appendf(nil, "config %d", i))},
			Layers: madeUpLayers(i*5, 5)}))
		tagRaw(t, opts, raw, types.OCIManifestSchema1, repo.Tag(tag))
	}
	// 2 configs and 10 layers.
	take := func(max int, repos ...name.Repository) error {
		_, err := relocate.TakeInventory(context.Background(), repos, relocate.InventoryOptions{Remote: opts, MaxBlobs: max})
		return err
	}
	if err := take(12, repo); err != nil {
		t.Fatalf("12 blobs, a bound of 12: %v", err)
	}
	if err := take(11, repo); err == nil || !strings.Contains(err.Error(), "more than 11 blobs") || !strings.Contains(err.Error(), repo.String()) {
		t.Errorf("12 blobs, a bound of 11: %v, want an error naming the repository and the bound", err)
	}
	// Another repository of 2 blobs before it: 14 in the document.
	other, _, _ := farRepo(t, reg)
	if err := take(14, other, repo); err != nil {
		t.Fatalf("14 blobs in two repositories, a bound of 14: %v", err)
	}
	if err := take(13, other, repo); err == nil || !strings.Contains(err.Error(), "more than 13 blobs") || !strings.Contains(err.Error(), "inventory of "+repo.String()) {
		t.Errorf("14 blobs in two repositories, a bound of 13: %v, want an error naming the second repository and the bound", err)
	}
}
