package relocate

import (
	"context"
	"errors"
	"fmt"
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
)

// TestResolveStopsAtTheManifestBudget: a source whose locked manifests
// together pass what a run may hold is refused with an error naming the
// bundle and the budget, as soon as they pass it: the manifests locked
// after that point are never fetched, and no plan comes back to be
// written.
func TestResolveStopsAtTheManifestBudget(t *testing.T) {
	reg := testregistry.NewGGCR(t)
	w := &world{ep: &reg.Endpoint, opts: reg.RemoteOptions(t), reg: reg}
	layer := must(random.Layer(512, types.DockerLayer))
	base := must(mutate.AppendLayers(empty.Image, layer))
	const images, pad = 16, 8 << 10
	var refs []string
	var total int64
	for i := range images {
		// Distinct manifests of some 8 KiB each, all of one small layer.
		img := mutate.Annotations(base, map[string]string{"pad": fmt.Sprintf("%d-%s", i, strings.Repeat("x", pad))}).(v1.Image)
		refs = append(refs, w.pushImage(t, "big", img))
		total += int64(len(must(img.RawManifest())))
	}
	w.pushBundle(t, "root", "v1", refs)
	root := reg.Repo("root") + ":v1"
	digests := map[string]bool{}
	for _, r := range refs {
		digests[must(name.NewDigest(r)).DigestStr()] = true
	}

	// What a run needs fits: the same bundle resolves under a budget
	// above its manifests.
	p, err := Resolve(context.Background(), Source{Bundle: root}, Options{Remote: w.opts, maxManifestBytes: total + 64<<10})
	if err != nil {
		t.Fatalf("under a budget of %d bytes, %d bytes of manifests: %v", total+64<<10, total, err)
	}
	if len(p.Images) != images+1 {
		t.Fatalf("plan has %d images, want %d", len(p.Images), images+1)
	}

	const budget = 64 << 10
	reg.ResetCounts()
	p, err = Resolve(context.Background(), Source{Bundle: root}, Options{Remote: w.opts, Concurrency: 1, maxManifestBytes: budget})
	if err == nil {
		t.Fatalf("%d bytes of manifests under a budget of %d: resolved, want a refusal", total, budget)
	}
	if p != nil {
		t.Errorf("a plan came back with the refusal")
	}
	if _, ok := errors.AsType[*heldError](err); !ok {
		t.Errorf("error is no heldError: %v", err)
	}
	if msg := err.Error(); !containsAll(msg, "resolve bundle "+root+":", "64.0 KiB (65536 bytes)", "split it") {
		t.Errorf("error %q: want it to name the bundle, the budget and what to do", msg)
	}
	fetched := 0
	for _, r := range reg.Requests() {
		if r.Kind == testregistry.KindManifest && digests[r.Ref] {
			fetched++
		}
		if r.Kind == testregistry.KindBlob && r.Ref == must(layer.Digest()).String() {
			t.Errorf("layer fetched: %s %s", r.Method, r.Path)
		}
	}
	// One at a time, the run stops at the manifest that passes the budget.
	if most := budget/pad + 1; fetched > most {
		t.Errorf("%d of the %d locked manifests fetched; the budget is passed by the %dth", fetched, images, most)
	}
}

// Naming manifests costs before any is fetched: an index (or a referrers
// listing) naming manifests by the hundred thousand, a few MB, once took
// gigabytes of wants and jobs before the first child was asked for. Each
// manifest named is counted (namedCost) against the same budget: an index
// naming more than the budget allows is refused, naming it, and none of
// its children is fetched.
func TestResolveCountsManifestsNamedAgainstTheBudget(t *testing.T) {
	reg := testregistry.NewGGCR(t)
	const children, budget = 200, 64 << 10 // 200 × 512 bytes named: past the budget
	base := must(mutate.AppendLayers(empty.Image, must(random.Layer(64, types.DockerLayer))))
	repo := must(name.NewRepository(reg.Repo("many/idx")))
	idx := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex}
	for i := range children {
		img := mutate.Annotations(base, map[string]string{"n": fmt.Sprint(i)}).(v1.Image)
		d := must(img.Digest())
		if err := remote.Write(repo.Digest(d.String()), img, reg.RemoteOptions(t)...); err != nil {
			t.Fatal(err)
		}
		idx.Manifests = append(idx.Manifests, v1.Descriptor{MediaType: must(img.MediaType()), Size: int64(len(must(img.RawManifest()))), Digest: d})
	}
	if err := remote.Put(repo.Tag("v1"), rawManifest{mustJSON(t, idx), types.OCIImageIndex}, reg.RemoteOptions(t)...); err != nil {
		t.Fatal(err)
	}
	reg.ResetCounts()
	_, err := Resolve(context.Background(), Source{Image: repo.Tag("v1").String()}, Options{Remote: reg.RemoteOptions(t), maxManifestBytes: budget})
	if _, ok := errors.AsType[*heldError](err); !ok || !strings.Contains(err.Error(), "index "+repo.Tag("v1").String()) || !strings.Contains(err.Error(), "names more manifests") {
		t.Fatalf("an index naming %d manifests under a budget of %d bytes: %v; want a heldError naming the index and saying it names too many", children, budget, err)
	}
	for _, r := range reg.Requests() {
		if r.Kind == testregistry.KindManifest && r.Ref != "v1" {
			t.Fatalf("a child was fetched: %s %s", r.Method, r.Path)
		}
	}
}
