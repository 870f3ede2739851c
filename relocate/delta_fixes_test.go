package relocate_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferry-dev/ferry/archive"
	"github.com/ferry-dev/ferry/internal/progress"
	"github.com/ferry-dev/ferry/internal/registry"
	"github.com/ferry-dev/ferry/internal/testregistry"
	"github.com/ferry-dev/ferry/relocate"
)

// deltaWorld is one registry holding the source content (impSource, whose
// root bundle locks a nested bundle) and, in "dst/a", a full import of it;
// the tests import deltas into "dst/imported", another repository of the
// same registry, from which "dst/a" is a mount source.
type deltaWorld struct {
	src  *impSource
	reg  *testregistry.Registry
	dst  *impDest
	dir  string
	full string // the full archive, a file
	have string // an inventory of dst/a
}

func newDeltaWorld(t *testing.T, newReg func(testing.TB, ...testregistry.Option) *testregistry.Registry) *deltaWorld {
	t.Helper()
	reg := newReg(t)
	w := &deltaWorld{reg: reg, src: impNewSourceAt(t, &reg.Endpoint, 0), dir: t.TempDir()}
	w.dst = &impDest{reg: reg, ep: &reg.Endpoint, repo: impMust(name.NewRepository(reg.Repo("dst/imported")))}
	w.full = filepath.Join(w.dir, "full.tar.zst")
	if err := os.WriteFile(w.full, w.src.export(t), 0o644); err != nil {
		t.Fatal(err)
	}
	a := impMust(name.NewRepository(reg.Repo("dst/a")))
	f := impMust(os.Open(w.full))
	defer f.Close()
	if _, err := relocate.Import(context.Background(), f, a, w.dst.options(t)); err != nil {
		t.Fatal(err)
	}
	w.have = w.inventory(t, "have.json", a)
	return w
}

// inventory writes an inventory of repos to a file named name.
func (w *deltaWorld) inventory(t *testing.T, name string, repos ...name.Repository) string {
	t.Helper()
	doc, err := relocate.TakeInventory(context.Background(), repos, relocate.InventoryOptions{Remote: w.reg.RemoteOptions(t), Client: registry.New(w.reg.ClientOptions())})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(w.dir, name)
	if err := doc.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	return path
}

// delta exports the root bundle since the given files.
func (w *deltaWorld) delta(t *testing.T, since ...string) ([]byte, *relocate.ExportResult) {
	t.Helper()
	return w.deltaReporting(t, nil, since...)
}

// deltaReporting is delta with the export's progress going to rep.
func (w *deltaWorld) deltaReporting(t *testing.T, rep progress.Reporter, since ...string) ([]byte, *relocate.ExportResult) {
	t.Helper()
	ctx := context.Background()
	opts := relocate.ExportOptions{Remote: w.src.opts, CreatedBy: "ferry delta tests", Reporter: rep}
	for _, path := range since {
		s, err := relocate.ReadSince(ctx, path, nil)
		if err != nil {
			t.Fatal(err)
		}
		opts.Since = append(opts.Since, s)
	}
	p, err := relocate.Resolve(ctx, relocate.Source{Bundle: w.src.rootTagRef}, relocate.Options{Remote: w.src.opts})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	res, err := relocate.Export(ctx, p, &buf, opts)
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), res
}

// bundleLayers returns the layer digests of the root and nested bundles,
// from the images the test built.
func (w *deltaWorld) bundleLayers(t *testing.T) []v1.Hash {
	t.Helper()
	var out []v1.Hash
	for _, b := range []v1.Image{w.src.root, w.src.nested} {
		for _, l := range impMust(b.Manifest()).Layers {
			out = append(out, l.Digest)
		}
	}
	return out
}

// bundleLayersLeftOut stops the test unless the delta ex left out every
// bundle's layer, which the test is about.
func (w *deltaWorld) bundleLayersLeftOut(t *testing.T, ex *relocate.ExportResult) {
	t.Helper()
	left := map[v1.Hash]bool{}
	for _, l := range ex.Delta.LeftOut {
		left[l.Digest] = true
	}
	for _, l := range w.bundleLayers(t) {
		if !left[l] {
			t.Fatalf("bundle layer %s is carried: the test proves nothing", l)
		}
	}
}

// TestDeltaDryRunReadsLeftOutBundleLayersAtTheirMountSource: a delta since
// an inventory leaves out the root's and the nested bundle's layers, which
// only the mount source holds. A dry run mounts nothing, so it must read
// their images.yml there; it then reports the very tags the real import
// writes, locations images included, and writes nothing.
func TestDeltaDryRunReadsLeftOutBundleLayersAtTheirMountSource(t *testing.T) {
	for _, via := range impVias {
		t.Run(via.name, func(t *testing.T) {
			w := newDeltaWorld(t, testregistry.NewDistribution)
			delta, ex := w.delta(t, w.have)
			w.bundleLayersLeftOut(t, ex)
			ctx := context.Background()
			opts := w.dst.options(t)
			opts.DryRun = true
			w.reg.ResetCounts()
			res, err := relocate.Import(ctx, via.open(delta), w.dst.repo, opts)
			if err != nil {
				t.Fatalf("dry run: %v", err)
			}
			if writes := w.reg.Writes("dst/imported"); len(writes) != 0 {
				t.Errorf("dry run wrote: %v", writes)
			}
			if res.LeftOutMounted != len(ex.Delta.LeftOut) {
				t.Errorf("dry run: %d left-out blobs would be mounted, want %d", res.LeftOutMounted, len(ex.Delta.LeftOut))
			}
			want := w.src.wantTags(t)
			got := map[string]string{}
			for _, tr := range res.Tags {
				got[tr.Tag] = tr.Digest
			}
			if d := impDiffTags(got, want); d != "" {
				t.Errorf("dry run tags differ:\n%s", d)
			}
			if _, err := relocate.Import(ctx, via.open(delta), w.dst.repo, w.dst.options(t)); err != nil {
				t.Fatal(err)
			}
			if d := impDiffTags(w.dst.tags(t), want); d != "" {
				t.Errorf("destination tags differ:\n%s", d)
			}
		})
	}
}

// TestDeltaPrefersABaseThatNamesAMountSource: an archive and an inventory
// both hold every blob; whatever the order of --since, each left-out blob
// is expected from the inventory, which names where to mount it from, so
// that an import into another repository of the registry succeeds.
func TestDeltaPrefersABaseThatNamesAMountSource(t *testing.T) {
	w := newDeltaWorld(t, testregistry.NewDistribution)
	a := impMust(name.NewRepository(w.reg.Repo("dst/a"))).Name()
	var first []byte
	for i, since := range [][]string{{w.full, w.have}, {w.have, w.full}} {
		delta, ex := w.delta(t, since...)
		inv := 1 - i // the inventory's index among the bases
		if len(ex.Delta.LeftOut) != len(w.src.blobs(t)) {
			t.Fatalf("%v: %d blobs left out, want every one of the %d", since, len(ex.Delta.LeftOut), len(w.src.blobs(t)))
		}
		for _, l := range ex.Delta.LeftOut {
			if l.Base != inv || l.Repository != a {
				t.Errorf("%v: %s expected from base %d, repository %q; want the inventory (%d), %s", since, l.Digest, l.Base, l.Repository, inv, a)
			}
		}
		if i == 0 {
			first = delta
			repo := w.dst.repo
			res, err := relocate.Import(context.Background(), bytes.NewReader(delta), repo, w.dst.options(t))
			if err != nil {
				t.Fatal(err)
			}
			if res.LeftOutMounted != len(ex.Delta.LeftOut) {
				t.Errorf("%d of %d left-out blobs mounted", res.LeftOutMounted, len(ex.Delta.LeftOut))
			}
			size := leftOutSize(ex.Delta)
			if res.BytesLeftOutMounted != size {
				t.Errorf("%d bytes of left-out blobs mounted, want %d", res.BytesLeftOutMounted, size)
			}
			if d := impDiffTags(w.dst.tags(t), w.src.wantTags(t)); d != "" {
				t.Errorf("destination tags differ:\n%s", d)
			}
		}
	}
	again, _ := w.delta(t, w.full, w.have)
	if !bytes.Equal(first, again) {
		t.Error("the same delta exported twice differs")
	}
}

// TestDeltaImportWithMissingBlobsWritesNothing: app1's blobs are at a
// mount source (an inventory of dst/part), every other blob only in an
// archive never imported here. The import must fail naming that archive
// before any write: no mount either.
func TestDeltaImportWithMissingBlobsWritesNothing(t *testing.T) {
	w := newDeltaWorld(t, testregistry.NewDistribution)
	part := impMust(name.NewRepository(w.reg.Repo("dst/part")))
	if err := remote.Write(part.Tag("app1"), w.src.app1, w.reg.RemoteOptions(t)...); err != nil {
		t.Fatal(err)
	}
	partInv := w.inventory(t, "part.json", part)
	delta, ex := w.delta(t, partInv, w.full)
	mountable := 0
	for _, l := range ex.Delta.LeftOut {
		if l.Repository != "" {
			mountable++
		}
	}
	if mountable == 0 || mountable == len(ex.Delta.LeftOut) {
		t.Fatalf("%d of %d left-out blobs mountable: the test proves nothing", mountable, len(ex.Delta.LeftOut))
	}
	for _, dry := range []bool{true, false} {
		w.reg.ResetCounts()
		opts := w.dst.options(t)
		opts.DryRun = dry
		_, err := relocate.Import(context.Background(), bytes.NewReader(delta), w.dst.repo, opts)
		if err == nil || !strings.Contains(err.Error(), "full.tar.zst") || !strings.Contains(err.Error(), "does not hold") {
			t.Errorf("dry run %v: %v; want the missing blobs named with the archive they are expected from", dry, err)
		}
		if writes := w.reg.Writes("dst/imported"); len(writes) != 0 {
			t.Errorf("dry run %v: the failing import wrote: %v", dry, writes)
		}
	}
	if w.dst.hasBlob(t, impMust(w.src.app1.ConfigName())) {
		t.Error("app1's config was mounted into the destination of a failed import")
	}
}

// TestDeltaRecordsTheSameBaseOnce: a base given twice (the same file, or
// a copy of it) is one base of the delta.
func TestDeltaRecordsTheSameBaseOnce(t *testing.T) {
	w := newDeltaWorld(t, testregistry.NewGGCR)
	dup := filepath.Join(w.dir, "copy.tar.zst")
	if err := os.WriteFile(dup, impMust(os.ReadFile(w.full)), 0o644); err != nil {
		t.Fatal(err)
	}
	_, ex := w.delta(t, w.full, w.full, dup)
	if len(ex.Delta.Bases) != 1 || ex.Delta.Bases[0].Name != "full.tar.zst" || ex.Delta.Bases[0].Kind != archive.BaseArchive {
		t.Errorf("bases %+v; want full.tar.zst once", ex.Delta.Bases)
	}
	for _, l := range ex.Delta.LeftOut {
		if l.Base != 0 {
			t.Errorf("%s expected from base %d", l.Digest, l.Base)
		}
	}
}

// TestVerifySinceAnInventoryIsNamed: verify --since reads the base
// archive; an inventory given instead is said to be one.
func TestVerifySinceAnInventoryIsNamed(t *testing.T) {
	w := newDeltaWorld(t, testregistry.NewGGCR)
	delta, _ := w.delta(t, w.have)
	path := filepath.Join(w.dir, "delta.tar.zst")
	if err := os.WriteFile(path, delta, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := relocate.VerifyFile(context.Background(), path, relocate.VerifyOptions{Since: []string{w.have}})
	if err == nil || !strings.Contains(err.Error(), w.have) || !strings.Contains(err.Error(), "(an inventory?), not an archive") || !strings.Contains(err.Error(), "base archive") {
		t.Errorf("verify --since an inventory: %v; want it named as an inventory, not an archive", err)
	}
}

// TestDeltaSinceABaseThatHoldsNothingSaysSo: --since an inventory of an
// unrelated repository leaves nothing out on its account, and the export
// says so, naming it; given alone, the export also says the archive is a
// full one. A base that does leave blobs out is not warned about.
func TestDeltaSinceABaseThatHoldsNothingSaysSo(t *testing.T) {
	w := newDeltaWorld(t, testregistry.NewGGCR)
	other := impMust(name.NewRepository(w.reg.Repo("other/x")))
	if err := remote.Write(other.Tag("v1"), impMust(random.Image(1024, 1)), w.reg.RemoteOptions(t)...); err != nil {
		t.Fatal(err)
	}
	unrelated := w.inventory(t, "unrelated.json", other)

	rec := &impRecorder{}
	_, ex := w.deltaReporting(t, rec, w.full, unrelated)
	if len(ex.Delta.LeftOut) == 0 {
		t.Fatal("nothing left out since the full archive: the test proves nothing")
	}
	warnings := rec.warnings()
	if len(warnings) != 1 || !strings.Contains(warnings[0], "unrelated.json") || !strings.Contains(warnings[0], "holds none") {
		t.Errorf("warnings %q; want one, naming unrelated.json as holding none of the blobs", warnings)
	}

	rec = &impRecorder{}
	_, ex = w.deltaReporting(t, rec, unrelated)
	if ex.Delta != nil && len(ex.Delta.LeftOut) > 0 {
		t.Fatalf("%d blobs left out since an unrelated inventory", len(ex.Delta.LeftOut))
	}
	warnings = rec.warnings()
	if len(warnings) != 2 || !strings.Contains(warnings[0], "unrelated.json") || !strings.Contains(warnings[1], "full one") {
		t.Errorf("warnings %q; want unrelated.json named, then the archive said to be a full one", warnings)
	}
}

// leftOutSize is the bytes of the blobs delta d left out.
func leftOutSize(d *archive.Delta) int64 {
	var size int64
	for _, l := range d.LeftOut {
		size += l.Size
	}
	return size
}
