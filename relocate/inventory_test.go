package relocate

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log"
	"maps"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/archive"
)

func hashOf(b []byte) v1.Hash {
	s := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(s[:])}
}

// TestInspectIsLinearInRepeatedIndexChildren: three nested indexes, each
// listing its child 2000 times, must not take 2000³ steps.
func TestInspectIsLinearInRepeatedIndexChildren(t *testing.T) {
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	layer := []byte("layer")
	img, _ := json.Marshal(v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1,
		Config: v1.Descriptor{MediaType: types.OCIConfigJSON, Digest: hashOf(cfg), Size: int64(len(cfg))},
		Layers: []v1.Descriptor{{MediaType: types.OCIUncompressedLayer, Digest: hashOf(layer), Size: int64(len(layer))}}})
	manifests := map[v1.Hash][]byte{hashOf(img): img}
	child := v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: hashOf(img), Size: int64(len(img))}
	for level := 0; level < 3; level++ {
		idx := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex}
		for i := 0; i < 2000; i++ {
			idx.Manifests = append(idx.Manifests, child)
		}
		raw, _ := json.Marshal(idx)
		manifests[hashOf(raw)] = raw
		child = v1.Descriptor{MediaType: types.OCIImageIndex, Digest: hashOf(raw), Size: int64(len(raw))}
	}
	data := archiveOf(t, []archive.Entry{{Descriptor: child, Role: archive.RoleImage, OriginalRef: "127.0.0.1:5000/x@" + child.Digest.String()}}, manifests, cfg, layer)

	done := make(chan error, 1)
	go func() {
		_, err := Inspect(bytes.NewReader(data))
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("inspect did not finish: it walks repeated index children again and again")
	}
}

// headTar is a plain tar of an archive's head: oci-layout, index.json and
// the manifests in digest order (what Inspect reads).
func headTar(t *testing.T, index []byte, manifests map[v1.Hash][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	put := func(name string, b []byte) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	put("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`))
	put("index.json", index)
	for _, d := range slices.SortedFunc(maps.Keys(manifests), func(a, b v1.Hash) int { return strings.Compare(a.Hex, b.Hex) }) {
		put("blobs/sha256/"+d.Hex, manifests[d])
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestInspectRefusesSizesThatOverflow (issue 13, item 9): an index that
// names one image of a 2^60-byte layer sixteen times reaches 2^64 bytes.
// The archive's distinct total is fine, so only the entry's own sum
// overflows: inspect refuses it, naming the entry, rather than print a
// negative size.
func TestInspectRefusesSizesThatOverflow(t *testing.T) {
	cfg := []byte(`{"architecture":"amd64","os":"linux"}`)
	img, _ := json.Marshal(v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1,
		Config: v1.Descriptor{MediaType: types.OCIConfigJSON, Digest: hashOf(cfg), Size: int64(len(cfg))},
		Layers: []v1.Descriptor{{MediaType: types.OCILayer, Digest: hashOf([]byte("big")), Size: 1 << 60}}})
	child := v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: hashOf(img), Size: int64(len(img))}
	idx := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex}
	for range 16 {
		idx.Manifests = append(idx.Manifests, child)
	}
	raw, _ := json.Marshal(idx)
	top := v1.Descriptor{MediaType: types.OCIImageIndex, Digest: hashOf(raw), Size: int64(len(raw))}
	ref := "127.0.0.1:5000/x@" + top.Digest.String()
	index, err := archive.BuildIndex([]archive.Entry{{Descriptor: top, Role: archive.RoleImage, OriginalRef: ref}}, archive.IndexOptions{CreatedBy: "test"})
	if err != nil {
		t.Fatal(err)
	}
	data := headTar(t, index, map[v1.Hash][]byte{top.Digest: raw, child.Digest: img})
	inv, err := Inspect(bytes.NewReader(data))
	if err == nil {
		t.Fatalf("inspect accepted it: %+v", inv.Images)
	}
	for _, want := range []string{ref, "manifest " + top.Digest.String(), "past 9223372036854775807 bytes"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
}

// A repository without tags (a typo in --repo looks the same) is named in
// a warning; one with tags is not.
func TestTakeInventoryWarnsOfARepositoryWithoutTags(t *testing.T) {
	w := newWorld(t)
	rec := &recorder{}
	repos := []name.Repository{must(name.NewRepository(w.ep.Repo("root"))), must(name.NewRepository(w.ep.Repo("no/such")))}
	doc, err := TakeInventory(t.Context(), repos, InventoryOptions{Remote: w.opts, Reporter: rec})
	if err != nil {
		t.Fatal(err)
	}
	if len(doc.Repositories) != 2 || doc.Repositories[0].Tags == 0 || doc.Repositories[1].Tags != 0 {
		t.Fatalf("repositories %+v", doc.Repositories)
	}
	if len(rec.warnings) != 1 || !strings.Contains(rec.warnings[0], repos[1].String()) || !strings.Contains(rec.warnings[0], "no tags") {
		t.Fatalf("warnings %q, want one naming %s", rec.warnings, repos[1])
	}
}

// TestTakeInventoryFollowsReferrers: an artifact whose subject is a tagged
// image, and a signature of that artifact, both pushed by digest to a
// registry with the OCI 1.1 referrers API (so no fallback tag names them),
// are listed, manifests and blobs, by the inventory of the repository.
func TestTakeInventoryFollowsReferrers(t *testing.T) {
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.WithReferrersSupport(true), ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	repo := must(name.NewRepository(strings.TrimPrefix(srv.URL, "http://") + "/far/app"))

	img := must(random.Image(1024, 2))
	if err := remote.Write(repo.Tag("v1"), img, remote.WithContext(t.Context())); err != nil {
		t.Fatal(err)
	}
	artifact := func(subject v1.Image, payload string) v1.Image {
		t.Helper()
		art := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), "application/vnd.example.sbom.v1+json")
		art = must(mutate.Append(art, mutate.Addendum{Layer: static.NewLayer([]byte(payload), "application/spdx+json")}))
		desc := v1.Descriptor{MediaType: must(subject.MediaType()), Digest: must(subject.Digest()), Size: must(subject.Size())}
		withSubject := mutate.Subject(art, desc).(v1.Image)
		if err := remote.Write(repo.Digest(must(withSubject.Digest()).String()), withSubject, remote.WithContext(t.Context())); err != nil {
			t.Fatal(err)
		}
		return withSubject
	}
	sbom := artifact(img, `{"sbom":"app"}`)
	sig := artifact(sbom, `{"signature":"of the sbom"}`)
	// Only the image's own tag: the referrers are reachable by digest alone.
	if tags := must(remote.List(repo)); !slices.Equal(tags, []string{"v1"}) {
		t.Fatalf("tags %v: the referrers must have no tag for the test to prove anything", tags)
	}

	doc, err := TakeInventory(t.Context(), []name.Repository{repo}, InventoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(doc.Repositories) != 1 {
		t.Fatalf("repositories %+v", doc.Repositories)
	}
	manifests, blobs := map[v1.Hash]int64{}, map[v1.Hash]int64{}
	for _, it := range doc.Repositories[0].Manifests {
		manifests[it.Digest] = it.Size
	}
	for _, it := range doc.Repositories[0].Blobs {
		blobs[it.Digest] = it.Size
	}
	for _, a := range []struct {
		what string
		img  v1.Image
	}{{"image", img}, {"referrer", sbom}, {"referrer of the referrer", sig}} {
		d, size := must(a.img.Digest()), must(a.img.Size())
		if manifests[d] != size {
			t.Errorf("%s: manifest %s (%d bytes) listed with %d bytes", a.what, d, size, manifests[d])
		}
		m := must(a.img.Manifest())
		for _, b := range append([]v1.Descriptor{m.Config}, m.Layers...) {
			if blobs[b.Digest] != b.Size {
				t.Errorf("%s: blob %s (%d bytes) listed with %d bytes", a.what, b.Digest, b.Size, blobs[b.Digest])
			}
		}
	}
	if len(manifests) != 3 {
		t.Errorf("%d manifests listed, want the image and its two referrers: %v", len(manifests), manifests)
	}
}
