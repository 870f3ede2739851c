package relocate

import (
	"bytes"
	"context"
	"net/http"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/archive"
	"github.com/ferry-dev/ferry/lock"
)

func TestResolveBundleFollowsNestedBundlesAndIndexes(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	p, err := Resolve(context.Background(), Source{Bundle: w.rootTag}, Options{Remote: w.opts, Concurrency: 4})
	if err != nil {
		t.Fatal(err)
	}

	// Breadth-first: the root, its lock in order, then the nested bundle's
	// lock without the image already listed.
	wantImages := []struct {
		digest   v1.Hash
		role     archive.Role
		original string
	}{
		{must(w.root.Digest()), archive.RoleBundle, w.rootTag},
		{must(w.app1.Digest()), archive.RoleImage, w.app1Ref},
		{must(w.app2.Digest()), archive.RoleImage, w.app2Ref},
		{must(w.nested.Digest()), archive.RoleNestedBundle, w.nestedRef},
		{must(w.idx.Digest()), archive.RoleImage, w.idxRef},
	}
	if len(p.Images) != len(wantImages) {
		t.Fatalf("plan has %d images, want %d", len(p.Images), len(wantImages))
	}
	for i, want := range wantImages {
		got := p.Images[i]
		if got.Digest != want.digest || got.Role != want.role || got.OriginalRef != want.original {
			t.Errorf("image %d = %s %s %s, want %s %s %s", i, got.Digest, got.Role, got.OriginalRef, want.digest, want.role, want.original)
		}
	}
	if p.Root != p.Images[0] || p.Root.Tag != "v1" {
		t.Errorf("root = %+v, want the first image with tag v1", p.Root)
	}
	if p.Root.Lock == nil || len(p.Root.Lock.Images) != 3 {
		t.Errorf("root lock = %+v, want its 3 images", p.Root.Lock)
	}
	if p.Images[3].Lock == nil || len(p.Images[3].Lock.Images) != 2 {
		t.Errorf("nested bundle lock = %+v, want its 2 images", p.Images[3].Lock)
	}
	if p.Images[1].Lock != nil {
		t.Errorf("a plain image has a lock")
	}

	// The index: its children and their platforms.
	im := must(w.idx.IndexManifest())
	idx := p.Images[4]
	if len(idx.Children) != 2 || idx.Children[0] != im.Manifests[0].Digest || idx.Children[1] != im.Manifests[1].Digest {
		t.Errorf("index children = %v, want %v", idx.Children, im.Manifests)
	}
	if len(idx.Platforms) != 2 || idx.Platforms[0].Architecture != "amd64" || idx.Platforms[1].Architecture != "arm64" {
		t.Errorf("index platforms = %v", idx.Platforms)
	}

	// Every manifest once, keyed by the sha256 of its own bytes.
	if len(p.Manifests) != 7 {
		t.Errorf("plan has %d manifests, want 5 images + 2 index children", len(p.Manifests))
	}
	for h, m := range p.Manifests {
		if sha256Hex(m.Raw) != h.Hex {
			t.Errorf("manifest %s has bytes hashing to %s", h, sha256Hex(m.Raw))
		}
	}
	for _, d := range im.Manifests {
		if _, ok := p.Manifests[d.Digest]; !ok {
			t.Errorf("index child %s missing from manifests", d.Digest)
		}
	}

	// Blobs: configs sorted, then layers sorted, each once.
	configs, layers := expectedBlobs(t, w.idx, w.root, w.app1, w.app2, w.nested)
	var gotConfigs, gotLayers []string
	var total int64
	for _, b := range p.Blobs {
		if b.Config {
			if len(gotLayers) > 0 {
				t.Errorf("config %s after a layer", b.Digest)
			}
			gotConfigs = append(gotConfigs, b.Digest.String())
		} else {
			gotLayers = append(gotLayers, b.Digest.String())
		}
		total += b.Size
	}
	if !reflect.DeepEqual(gotConfigs, sortedHashes(configs)) {
		t.Errorf("configs = %v\nwant %v", gotConfigs, sortedHashes(configs))
	}
	if !reflect.DeepEqual(gotLayers, sortedHashes(layers)) {
		t.Errorf("layers = %v\nwant %v", gotLayers, sortedHashes(layers))
	}
	for _, m := range p.Manifests {
		total += int64(len(m.Raw))
	}
	if p.TotalBytes != total {
		t.Errorf("TotalBytes = %d, want %d", p.TotalBytes, total)
	}

	// The layer app1 and app2 share comes from app1, the first image that
	// has it.
	shared := must(w.shared.Digest())
	for _, b := range p.Blobs {
		if b.Digest == shared && b.Source.Context().String() != w.ep.Repo("app1") {
			t.Errorf("shared layer source = %s, want repository %s", b.Source, w.ep.Repo("app1"))
		}
	}
	if len(p.Skipped) != 0 {
		t.Errorf("skipped = %v", p.Skipped)
	}
}

func TestResolveIsDeterministicWhateverTheConcurrency(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	var plans []*Plan
	for _, c := range []int{1, 16} {
		p, err := Resolve(context.Background(), Source{Bundle: w.rootTag}, Options{Remote: w.opts, Concurrency: c})
		if err != nil {
			t.Fatal(err)
		}
		plans = append(plans, p)
	}
	if !reflect.DeepEqual(plans[0], plans[1]) {
		t.Error("plans resolved with concurrency 1 and 16 differ")
	}
}

func TestResolveBundleFlagOnNonBundleSuggestsImageFlag(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	for _, ref := range []string{w.app1Ref, w.idxRef} {
		_, err := Resolve(context.Background(), Source{Bundle: ref}, Options{Remote: w.opts})
		if err == nil || !containsAll(err.Error(), ref, "not a bundle", "-i") {
			t.Errorf("Resolve(-b %s) error = %v, want one naming it and suggesting -i", ref, err)
		}
	}
}

func TestResolveImageFlagCopiesABundleAsAPlainImage(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	p, err := Resolve(context.Background(), Source{Image: w.rootTag}, Options{Remote: w.opts})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Images) != 1 || p.Root != p.Images[0] || p.Root.Role != archive.RoleImage || p.Root.Lock != nil {
		t.Fatalf("plan images = %+v, want only the root as a plain image", p.Images)
	}
	// Given by tag, the tag travels, as for -b (imgpkg copy -i writes it).
	if p.Root.Tag != "v1" || p.Root.Digest != must(w.root.Digest()) {
		t.Errorf("root = %s tag %q, want tag v1", p.Root.Digest, p.Root.Tag)
	}
	cfg, layers := blobsOf(t, w.root)
	if len(p.Blobs) != 2 || p.Blobs[0].Digest != cfg || p.Blobs[1].Digest != layers[0] {
		t.Errorf("blobs = %+v, want the bundle's config and layer", p.Blobs)
	}
}

func TestResolveLockFiles(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	dir := t.TempDir()

	// An ImagesLock: each image as it is, nested bundles not followed.
	il := lock.ImagesLock{Images: []lock.ImageRef{{Image: w.app1Ref}, {Image: w.nestedRef}}}
	ilPath := filepath.Join(dir, "images.yml")
	if err := il.WriteFile(ilPath); err != nil {
		t.Fatal(err)
	}
	p, err := Resolve(context.Background(), Source{LockFile: ilPath}, Options{Remote: w.opts})
	if err != nil {
		t.Fatal(err)
	}
	if p.Root != nil || len(p.Images) != 2 {
		t.Fatalf("ImagesLock plan: root %v, %d images; want no root and 2 images", p.Root, len(p.Images))
	}
	for i, want := range []v1.Hash{must(w.app1.Digest()), must(w.nested.Digest())} {
		if p.Images[i].Digest != want || p.Images[i].Role != archive.RoleImage {
			t.Errorf("image %d = %s %s, want %s image", i, p.Images[i].Digest, p.Images[i].Role, want)
		}
	}

	// A BundleLock: as -b, with the tag it records.
	rootDigest := must(w.root.Digest())
	bl := lock.BundleLock{Bundle: lock.BundleRef{Image: w.ep.Repo("root") + "@" + rootDigest.String(), Tag: "v1"}}
	blPath := filepath.Join(dir, "bundle.lock.yml")
	if err := bl.WriteFile(blPath); err != nil {
		t.Fatal(err)
	}
	p, err = Resolve(context.Background(), Source{LockFile: blPath}, Options{Remote: w.opts})
	if err != nil {
		t.Fatal(err)
	}
	if p.Root == nil || p.Root.Digest != rootDigest || p.Root.Tag != "v1" || p.Root.Role != archive.RoleBundle || len(p.Images) != 5 {
		t.Errorf("BundleLock plan root = %+v with %d images, want the bundle tagged v1 and 5 images", p.Root, len(p.Images))
	}
}

func TestResolveMissingLockImageNamesItAndItsBundle(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	gone := w.ep.Repo("gone") + "@sha256:" + sha256Hex([]byte("never pushed"))
	_, broken := w.pushBundle(t, "broken", "v1", []string{w.app1Ref, gone})
	w.pushBundle(t, "outer", "v1", []string{broken})

	_, err := Resolve(context.Background(), Source{Bundle: w.ep.Repo("outer") + ":v1"}, Options{Remote: w.opts})
	// Digests are short in the message (12 hex digits).
	short := func(ref string) string { i := strings.Index(ref, "@"); return ref[:i+len("@sha256:")+12] }
	if err == nil || !containsAll(err.Error(), short(gone)+" (locked by bundle "+short(broken)+") not found") {
		t.Errorf("error = %v, want one naming %s and the bundle %s that locks it", err, short(gone), short(broken))
	}
}

func TestResolveRejectsAManifestThatIsNotTheLockedDigest(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	// Store app1's manifest under another digest: the registry then serves
	// bytes that do not hash to the digest the lock asks for.
	raw := must(w.app1.RawManifest())
	fake := "sha256:" + sha256Hex([]byte("some other manifest"))
	req, err := http.NewRequest(http.MethodPut, w.ep.URL+"/v2/liar/manifests/"+fake, bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", string(types.DockerManifestSchema2))
	resp, err := w.ep.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("seeding the wrong manifest: %s", resp.Status)
	}
	liar := w.ep.Repo("liar") + "@" + fake
	w.pushBundle(t, "lied-to", "v1", []string{liar})
	b := w.ep.Repo("lied-to") + ":v1"

	_, err = Resolve(context.Background(), Source{Bundle: b}, Options{Remote: w.opts})
	if err == nil || !containsAll(err.Error(), liar, "bundle "+b, "served bytes with digest") {
		t.Errorf("error = %v, want a digest mismatch naming %s and bundle %s", err, liar, b)
	}
}

func TestResolveUnreadableImagesLockNamesTheBundle(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	// Labelled as a bundle, but its layer has no .imgpkg/images.yml.
	img := must(random.Image(100, 1))
	img = must(mutate.Config(img, v1.Config{Labels: map[string]string{"dev.carvel.imgpkg.bundle": "true"}}))
	ref := w.ep.Repo("hollow") + ":v1"
	if err := remote.Write(must(name.NewTag(ref)), img, w.opts...); err != nil {
		t.Fatal(err)
	}
	_, err := Resolve(context.Background(), Source{Bundle: ref}, Options{Remote: w.opts})
	if err == nil || !containsAll(err.Error(), ref, "images.yml") {
		t.Errorf("error = %v, want one naming bundle %s and images.yml", err, ref)
	}
}

// foreignImage is an image with a non-distributable (foreign) layer, pushed
// without that layer unless withBlob.
func (w *world) foreignImage(t testing.TB, repo string, withBlob bool) (v1.Image, v1.Hash, string) {
	t.Helper()
	fl := must(random.Layer(600, types.DockerForeignLayer))
	img := must(mutate.Append(must(random.Image(300, 1)), mutate.Addendum{
		Layer:     fl,
		MediaType: types.DockerForeignLayer,
		URLs:      []string{"https://example.invalid/foreign.tar.gz"},
	}))
	d := must(img.Digest())
	ref := must(name.NewDigest(w.ep.Repo(repo) + "@" + d.String()))
	opts := w.opts
	if withBlob {
		opts = append(append([]remote.Option{}, w.opts...), remote.WithNondistributable)
	}
	if err := remote.Write(ref, img, opts...); err != nil {
		t.Fatal(err)
	}
	return img, must(fl.Digest()), ref.String()
}

func TestResolveSkipsNonDistributableLayers(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	_, foreign, ref := w.foreignImage(t, "windows", true)
	_, _ = w.pushBundle(t, "withforeign", "v1", []string{ref})
	src := Source{Bundle: w.ep.Repo("withforeign") + ":v1"}

	rec := &recorder{}
	p, err := Resolve(context.Background(), src, Options{Remote: w.opts, Reporter: rec})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Skipped) != 1 || p.Skipped[0].Digest != foreign || p.Skipped[0].MediaType != types.DockerForeignLayer {
		t.Fatalf("skipped = %+v, want the foreign layer %s", p.Skipped, foreign)
	}
	for _, b := range p.Blobs {
		if b.Digest == foreign {
			t.Errorf("foreign layer is in the blobs")
		}
	}
	if len(rec.warnings) != 1 || !strings.Contains(rec.warnings[0], foreign.String()) {
		t.Errorf("warnings = %q, want one naming %s", rec.warnings, foreign)
	}

	p, err = Resolve(context.Background(), src, Options{Remote: w.opts, IncludeNonDistributable: true})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, b := range p.Blobs {
		found = found || b.Digest == foreign
	}
	if !found || len(p.Skipped) != 0 {
		t.Errorf("with IncludeNonDistributable: foreign in blobs %v, skipped %v", found, p.Skipped)
	}
}

func TestResolveNeedsExactlyOneSource(t *testing.T) {
	t.Parallel()
	for _, src := range []Source{{}, {Bundle: "a/b:c", Image: "a/b:c"}} {
		if _, err := Resolve(context.Background(), src, Options{}); err == nil {
			t.Errorf("Resolve(%+v) succeeded", src)
		}
	}
	if _, err := Resolve(context.Background(), Source{LockFile: filepath.Join(t.TempDir(), "missing.yml")}, Options{}); err == nil || !strings.Contains(err.Error(), "missing.yml") {
		t.Errorf("missing lock file: error = %v", err)
	}
}

func TestResolveFollowsABundleFirstSeenAsAnIndexChild(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	// The nested bundle is a child of an index at level 2, and locked by a
	// bundle only at level 3: it must still be recognised and followed.
	bidx := mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: w.nested})
	bidxRef := w.pushIndex(t, "bidx", bidx)
	_, w2 := w.pushBundle(t, "w2", "", []string{w.nestedRef})
	_, w1 := w.pushBundle(t, "w1", "", []string{w2})
	w.pushBundle(t, "top", "v1", []string{bidxRef, w1})

	p, err := Resolve(context.Background(), Source{Bundle: w.ep.Repo("top") + ":v1"}, Options{Remote: w.opts})
	if err != nil {
		t.Fatal(err)
	}
	roles := map[v1.Hash]archive.Role{}
	for _, im := range p.Images {
		roles[im.Digest] = im.Role
	}
	if r := roles[must(w.nested.Digest())]; r != archive.RoleNestedBundle {
		t.Errorf("nested bundle role = %q, want %s", r, archive.RoleNestedBundle)
	}
	for _, d := range []v1.Hash{must(w.idx.Digest()), must(w.app1.Digest())} {
		if roles[d] != archive.RoleImage {
			t.Errorf("image %s locked by the nested bundle: role %q, want it listed as an image", d, roles[d])
		}
	}
}
