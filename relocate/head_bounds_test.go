package relocate

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/archive"
	"github.com/ferry-dev/ferry/fixtures"
	"github.com/ferry-dev/ferry/internal/bundle"
	"github.com/ferry-dev/ferry/internal/testregistry"
)

// chainHead is an image under n indexes, each naming the next: its
// index.json entry and manifests.
func chainHead(t *testing.T, n int) ([]archive.Entry, map[v1.Hash][]byte, [2][]byte) {
	t.Helper()
	cfg, layer := []byte("{}"), []byte("layer")
	img, err := json.Marshal(v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1,
		Config: v1.Descriptor{MediaType: types.OCIConfigJSON, Digest: hashOf(cfg), Size: int64(len(cfg))},
		Layers: []v1.Descriptor{{MediaType: types.OCIUncompressedLayer, Digest: hashOf(layer), Size: int64(len(layer))}}})
	if err != nil {
		t.Fatal(err)
	}
	manifests := map[v1.Hash][]byte{hashOf(img): img}
	child := v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: hashOf(img), Size: int64(len(img))}
	for range n {
		raw, err := json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{child}})
		if err != nil {
			t.Fatal(err)
		}
		manifests[hashOf(raw)] = raw
		child = v1.Descriptor{MediaType: types.OCIImageIndex, Digest: hashOf(raw), Size: int64(len(raw))}
	}
	entries := []archive.Entry{{Descriptor: child, Role: archive.RoleImage, OriginalRef: "127.0.0.1:5000/deep@" + child.Digest.String()}}
	return entries, manifests, [2][]byte{cfg, layer}
}

// Indexes nested deeper than MaxNesting are refused with an error, by
// inspect, verify and import alike, before any walk of the head that
// recurses: a chain of a million indexes, within the head's size limit,
// once ended inspect, verify and import in a fatal stack overflow (and
// verify, short of it, said OK after 4.5 GB). A chain of MaxNesting is
// read.
func TestIndexesNestedTooDeepAreRefused(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []int{MaxNesting, MaxNesting + 1} {
		entries, manifests, blobs := chainHead(t, n)
		path := filepath.Join(dir, fmt.Sprintf("chain%d.tar.zst", n))
		data := archiveOf(t, entries, manifests, blobs[0], blobs[1])
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		_, ierr := Inspect(bytes.NewReader(data))
		_, verr := VerifyFile(t.Context(), path, VerifyOptions{})
		_, herr := newImportHead(entries, nil, func(d v1.Hash) ([]byte, bool) { b, ok := manifests[d]; return b, ok })
		for what, err := range map[string]error{"inspect": ierr, "verify": verr, "the import's head": herr} {
			deep := err != nil && strings.Contains(err.Error(), fmt.Sprintf("nest %d deep, more than the %d", n, MaxNesting))
			if want := n > MaxNesting; deep != want || (!want && err != nil) {
				t.Errorf("%s of a chain of %d indexes: %v; want refused: %v", what, n, err, want)
			}
		}
	}
}

// archiveOf is the archive of entries whose manifests are given, with
// blobs, in that order, as its configs and layers.
func archiveOf(t *testing.T, entries []archive.Entry, manifests map[v1.Hash][]byte, blobs ...[]byte) []byte {
	t.Helper()
	index, err := archive.BuildIndex(entries, archive.IndexOptions{CreatedBy: "test"})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, err := archive.NewWriter(&buf, archive.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteHeader(index, manifests); err != nil {
		t.Fatal(err)
	}
	for _, b := range blobs {
		if err := w.WriteBlob(hashOf(b), int64(len(b)), bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Resolving from a registry goes no deeper than MaxNesting levels below
// the root either, as the archive's head: a registry serving a chain of
// MaxNesting + 1 indexes is refused, naming the reference where it
// stopped; the plan of a chain of MaxNesting (the image MaxNesting levels
// down) is made.
func TestResolveStopsBelowMaxNesting(t *testing.T) {
	reg := testregistry.NewGGCR(t)
	opts := reg.RemoteOptions(t)
	entries, manifests, blobs := chainHead(t, MaxNesting+1)
	repo, err := name.NewRepository(reg.Repo("team/deep"))
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range blobs {
		if err := remote.WriteLayer(repo, static.NewLayer(b, types.OCIUncompressedLayer), opts...); err != nil {
			t.Fatal(err)
		}
	}
	// Innermost first, each by digest: a registry takes an index only
	// once it holds its children.
	var chain []v1.Hash
	for d := entries[0].Descriptor.Digest; ; {
		chain = append(chain, d)
		var idx v1.IndexManifest
		if json.Unmarshal(manifests[d], &idx) != nil || len(idx.Manifests) == 0 {
			break
		}
		d = idx.Manifests[0].Digest
	}
	for i := len(chain) - 1; i >= 0; i-- {
		mt := types.OCIImageIndex
		if i == len(chain)-1 {
			mt = types.OCIManifestSchema1
		}
		if err := remote.Put(repo.Digest(chain[i].String()), rawManifest{manifests[chain[i]], mt}, opts...); err != nil {
			t.Fatal(err)
		}
	}
	_, err = Resolve(t.Context(), Source{Image: repo.Digest(chain[0].String()).String()}, Options{Remote: opts})
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("more than %d levels below the root", MaxNesting)) {
		t.Errorf("resolve of a chain of %d indexes: %v; want it refused", MaxNesting+1, err)
	}
	if _, err := Resolve(t.Context(), Source{Image: repo.Digest(chain[1].String()).String()}, Options{Remote: opts}); err != nil {
		t.Errorf("resolve of a chain of %d indexes: %v", MaxNesting, err)
	}
}

// rawManifest is a manifest's bytes and media type, for remote.Put.
type rawManifest struct {
	b  []byte
	mt types.MediaType
}

func (m rawManifest) RawManifest() ([]byte, error)        { return m.b, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return m.mt, nil }

// An import reads a bundle layer's images.yml, and builds its locations
// image, once however many bundles share the layer: per bundle, a few
// hundred KB archive of thousands of bundles with one layer cost minutes
// and gigabytes, where verify took a second. Every bundle still gets its
// locations (the same image).
func TestImportReadsEachBundleLayerOnce(t *testing.T) {
	const n = 20
	entries, manifests, images := bundleOnlyArchive(t, true)
	var m v1.Manifest
	if err := json.Unmarshal(manifests[entries[0].Descriptor.Digest], &m); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		m.Annotations = map[string]string{"copy": fmt.Sprint(i)}
		raw, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		d := hashOf(raw)
		manifests[d] = raw
		entries = append(entries, archive.Entry{Descriptor: v1.Descriptor{MediaType: m.MediaType, Digest: d, Size: int64(len(raw))},
			Role: archive.RoleNestedBundle, OriginalRef: fmt.Sprintf("127.0.0.1:5000/copy%d@%s", i, d)})
	}
	h, err := newImportHead(entries, nil, func(d v1.Hash) ([]byte, bool) { b, ok := manifests[d]; return b, ok })
	if err != nil {
		t.Fatal(err)
	}
	layers, err := images[0].Layers()
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	opened := map[v1.Hash]int{}
	dst := &destination{head: h, conc: 4, blob: func(_ context.Context, d v1.Hash) (io.ReadCloser, error) {
		mu.Lock()
		opened[d]++
		mu.Unlock()
		return layers[0].Compressed()
	}}
	locs, err := dst.locations(t.Context(), h.bundles())
	if err != nil {
		t.Fatal(err)
	}
	layer, _ := layers[0].Digest()
	if len(opened) != 1 || opened[layer] != 1 {
		t.Errorf("blobs opened %v; want the bundle layer %s once", opened, layer)
	}
	seen := map[v1.Hash]bool{}
	for _, l := range locs {
		seen[l.bundle.digest] = true
		if l.digest != locs[0].digest || l.lock == nil {
			t.Errorf("bundle %s: locations %s, lock %v; want %s, the lock", l.bundle.digest, l.digest, l.lock, locs[0].digest)
		}
	}
	if len(locs) != n+1 || len(seen) != n+1 {
		t.Errorf("%d locations for %d bundles, want one each of %d", len(locs), len(seen), n+1)
	}
}

// One rule for verify and import: a bundle may lock only an image the
// archive holds as an entry of its own (or the destination holds). An
// archive that holds the locked image only inside an index is refused by
// both; import once accepted it, tagged the bundle, and gave the image no
// .imgpkg tag of its own. ferry's export makes every locked image an entry.
func TestALockedImageOnlyInsideAnIndexIsRefused(t *testing.T) {
	app, err := fixtures.Image(7, 1, 1000)
	if err != nil {
		t.Fatal(err)
	}
	appDigest := mustGet(t, app.Digest)
	appRaw := mustGet(t, app.RawManifest)
	idx := mustJSON(t, v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex,
		Manifests: []v1.Descriptor{{MediaType: mustGet(t, app.MediaType), Digest: appDigest, Size: int64(len(appRaw))}}})
	idxDigest := hashOf(idx)
	dir := filepath.Join(t.TempDir(), "b")
	if err := fixtures.WriteBundleDir(dir, []string{"127.0.0.1:5000/app@" + appDigest.String()}); err != nil {
		t.Fatal(err)
	}
	b, err := bundle.Build(context.Background(), []string{dir}, bundle.BuildOptions{Bundle: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	bd, braw := mustGet(t, b.Digest), mustGet(t, b.RawManifest)
	entries := []archive.Entry{
		{Descriptor: v1.Descriptor{MediaType: mustGet(t, b.MediaType), Digest: bd, Size: int64(len(braw))}, Role: archive.RoleBundle, OriginalRef: "127.0.0.1:5000/b:v1", Tag: "v1"},
		{Descriptor: v1.Descriptor{MediaType: types.OCIImageIndex, Digest: idxDigest, Size: int64(len(idx))}, Role: archive.RoleImage, OriginalRef: "127.0.0.1:5000/multi@" + idxDigest.String()},
	}
	manifests := map[v1.Hash][]byte{bd: braw, appDigest: appRaw, idxDigest: idx}
	path := filepath.Join(t.TempDir(), "inside.tar.zst")
	writeTestArchive(t, path, entries, manifests, []v1.Image{b, app})

	if _, err := VerifyFile(context.Background(), path, VerifyOptions{}); err == nil || !strings.Contains(err.Error(), appDigest.String()) {
		t.Errorf("verify: %v; want it to name %s", err, appDigest)
	}
	reg := testregistry.NewGGCR(t)
	repo, err := name.NewRepository(reg.Repo("dst/imported"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, err = Import(context.Background(), f, repo, ImportOptions{DestinationOptions: DestinationOptions{Remote: reg.RemoteOptions(t)}})
	if err == nil || !strings.Contains(err.Error(), "only inside an index") || !strings.Contains(err.Error(), appDigest.String()) {
		t.Errorf("import: %v; want it refused, naming %s", err, appDigest)
	}
	if tags, err := remote.List(repo, reg.RemoteOptions(t)...); err == nil && len(tags) != 0 {
		t.Errorf("tags written: %v", tags)
	}
}

// mustGet returns what f gives, failing t on its error.
func mustGet[T any](t *testing.T, f func() (T, error)) T {
	t.Helper()
	v, err := f()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// mustJSON is v marshalled, failing t on an error.
func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
