package relocate_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/ferry-dev/ferry/internal/inventory"
	"github.com/ferry-dev/ferry/internal/registry"
	"github.com/ferry-dev/ferry/internal/testregistry"
	"github.com/ferry-dev/ferry/relocate"
)

// distributionWithoutMounts is a distribution registry that opens an
// upload session where a mount is asked.
func distributionWithoutMounts(t testing.TB, opts ...testregistry.Option) *testregistry.Registry {
	return testregistry.NewDistribution(t, append(opts, testregistry.WithoutMounts())...)
}

// TestDeltaMountRefusedIsUploadedFromItsSource: a registry that answers a
// mount request by opening an upload (202, as one without cross-repository
// mounts does) for blobs the mount source holds: the import sends each
// into that session, read from the mount source and verified, says so in
// one warning, counts them as uploaded (not mounted, not already there),
// and ends with the tags of a full import.
func TestDeltaMountRefusedIsUploadedFromItsSource(t *testing.T) {
	w := newDeltaWorld(t, distributionWithoutMounts)
	delta, ex := w.delta(t, w.have)
	blobs := w.src.blobs(t)
	if len(ex.Delta.LeftOut) != len(blobs) {
		t.Fatalf("%d of %d blobs left out: the test wants them all", len(ex.Delta.LeftOut), len(blobs))
	}
	var size int64
	for _, s := range blobs {
		size += s
	}
	a := impMust(name.NewRepository(w.reg.Repo("dst/a"))).Name()
	rec := &impRecorder{}
	opts := w.dst.options(t)
	opts.Reporter = rec
	w.reg.ResetCounts()
	res, err := relocate.Import(context.Background(), bytes.NewReader(delta), w.dst.repo, opts)
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	if d := impDiffTags(w.dst.tags(t), w.src.wantTags(t)); d != "" {
		t.Errorf("destination tags differ:\n%s", d)
	}
	for d := range blobs {
		if !w.dst.hasBlob(t, d) {
			t.Errorf("blob %s is not in the destination", d)
		}
	}
	// Every left-out blob was read once from dst/a.
	gets := 0
	for _, r := range w.reg.Requests() {
		if r.Method == http.MethodGet && r.Kind == testregistry.KindBlob && r.Repo == "dst/a" {
			gets++
		}
	}
	if gets != len(blobs) {
		t.Errorf("%d blobs read from dst/a, want the %d left out", gets, len(blobs))
	}
	loc := w.src.locationsBlobs(t)
	var locSize int64
	for _, s := range loc {
		locSize += s
	}
	if res.LeftOutMounted != 0 || res.BytesLeftOutMounted != 0 || res.BlobsPresent != 0 ||
		res.BlobsUploaded != len(blobs)+len(loc) || res.BytesUploaded != size+locSize {
		t.Errorf("counted %d mounted (%d B), %d present, %d uploaded (%d B); want 0 mounted, 0 present, %d uploaded (%d B)",
			res.LeftOutMounted, res.BytesLeftOutMounted, res.BlobsPresent, res.BlobsUploaded, res.BytesUploaded, len(blobs)+len(loc), size+locSize)
	}
	want := relocate.LeftOutSource{Repository: a, Uploaded: len(blobs), UploadedBytes: size}
	if len(res.LeftOutFrom) != 1 || res.LeftOutFrom[0] != want {
		t.Errorf("left out from %+v, want [%+v]", res.LeftOutFrom, want)
	}
	var warned []string
	for _, m := range rec.warnings() {
		if strings.Contains(m, "did not mount") {
			warned = append(warned, m)
		}
	}
	if len(warned) != 1 || !strings.Contains(warned[0], fmt.Sprintf("%d left-out blobs", len(blobs))) || !strings.Contains(warned[0], a) {
		t.Errorf("warnings %q; want one, with the count and %s", warned, a)
	}
	if rec.added != rec.total {
		t.Errorf("progress: %d of %d bytes", rec.added, rec.total)
	}
}

// TestDeltaNoMount: the delta names dst/a, which holds every left-out
// blob. Without NoMount the dry run would mount them all from there, and
// says so; with it, the import and its dry run fail naming the missing
// blobs and --no-mount, having asked dst/a nothing and written nothing.
func TestDeltaNoMount(t *testing.T) {
	w := newDeltaWorld(t, testregistry.NewDistribution)
	delta, ex := w.delta(t, w.have)
	size := leftOutSize(ex.Delta)
	a := impMust(name.NewRepository(w.reg.Repo("dst/a"))).Name()
	opts := w.dst.options(t)
	opts.DryRun = true
	res, err := relocate.Import(context.Background(), bytes.NewReader(delta), w.dst.repo, opts)
	if err != nil {
		t.Fatal(err)
	}
	want := relocate.LeftOutSource{Repository: a, Mounted: len(ex.Delta.LeftOut), MountedBytes: size}
	if len(res.LeftOutFrom) != 1 || res.LeftOutFrom[0] != want {
		t.Errorf("dry run: left out from %+v, want [%+v]", res.LeftOutFrom, want)
	}
	for _, dry := range []bool{true, false} {
		opts := w.dst.options(t)
		opts.DryRun = dry
		opts.NoMount = true
		w.reg.ResetCounts()
		_, err := relocate.Import(context.Background(), bytes.NewReader(delta), w.dst.repo, opts)
		// The error names the first five of the missing blobs in its own
		// order (by digest), not the archive's: count the left-out blobs it
		// names rather than look for the archive's first.
		named := 0
		for _, l := range ex.Delta.LeftOut {
			if err != nil && strings.Contains(err.Error(), l.Digest.String()) {
				named++
			}
		}
		if err == nil || !strings.Contains(err.Error(), "--no-mount") || !strings.Contains(err.Error(), fmt.Sprintf("leaves out %d blobs", len(ex.Delta.LeftOut))) ||
			named != min(5, len(ex.Delta.LeftOut)) {
			t.Errorf("dry run %v: %v; want the missing blobs named (%d of them named), and --no-mount", dry, err, named)
		}
		if err != nil && (strings.Count(err.Error(), "export in full") != 1 || !strings.Contains(err.Error(), "import without it (or export in full)")) {
			t.Errorf("dry run %v: %v; want the remedies said once: import without it (or export in full)", dry, err)
		}
		if writes := w.reg.Writes("dst/imported"); len(writes) != 0 {
			t.Errorf("dry run %v: wrote %v", dry, writes)
		}
		for _, r := range w.reg.Requests() {
			if r.Repo == "dst/a" {
				t.Errorf("dry run %v: asked dst/a: %s %s", dry, r.Method, r.Path)
				break
			}
		}
	}
}

// TestDeltaMountProbesAreBounded: an inventory (made by hand, as an
// archive's author may) names a thousand repositories of the destination's
// registry, none of which holds the left-out blobs. The import asks each
// blob's recorded repository, and then no more than the documented bound
// (not every repository for every blob), and fails naming the missing
// blobs and that the search stopped.
func TestDeltaMountProbesAreBounded(t *testing.T) {
	// distribution keeps each repository's blobs apart (go-containerregistry's
	// registry has one store for all).
	w := newDeltaWorld(t, testregistry.NewDistribution)
	a := impMust(name.NewRepository(w.reg.Repo("dst/a")))
	doc, err := relocate.TakeInventory(context.Background(), []name.Repository{a}, relocate.InventoryOptions{Remote: w.reg.RemoteOptions(t), Client: registry.New(w.reg.ClientOptions())})
	if err != nil {
		t.Fatal(err)
	}
	held := doc.Repositories[0]
	held.Repository = "ghost/r0000"
	doc.Repositories = []inventory.Repository{held}
	for i := 1; i < 1000; i++ {
		doc.Repositories = append(doc.Repositories, inventory.Repository{Registry: held.Registry, Repository: fmt.Sprintf("ghost/r%04d", i)})
	}
	path := filepath.Join(w.dir, "ghosts.json")
	if err := doc.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	delta, ex := w.delta(t, path)
	n := len(ex.Delta.LeftOut)
	if n < 2 || len(ex.Delta.Bases[0].Repositories) != 1000 {
		t.Fatalf("%d blobs left out, the base names %d repositories: the test proves nothing", n, len(ex.Delta.Bases[0].Repositories))
	}
	bound := relocate.MountProbesPerBlob*n + relocate.MountProbesExtra
	if bound >= n*1000 {
		t.Fatalf("bound %d, every repository for every blob %d: the test proves nothing", bound, n*1000)
	}
	for _, dry := range []bool{true, false} {
		opts := w.dst.options(t)
		opts.DryRun = dry
		w.reg.ResetCounts()
		_, err := relocate.Import(context.Background(), bytes.NewReader(delta), w.dst.repo, opts)
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("leaves out %d blobs", n)) || !strings.Contains(err.Error(), "stopped asking") {
			t.Errorf("dry run %v: %v; want the %d missing blobs named, and the search said to have stopped", dry, err, n)
		}
		probes, recorded := 0, 0
		for _, r := range w.reg.Requests() {
			if strings.HasPrefix(r.Repo, "ghost/") {
				probes++
				if r.Method != http.MethodHead || r.Kind != testregistry.KindBlob {
					t.Errorf("dry run %v: %s %s", dry, r.Method, r.Path)
				}
				if r.Repo == "ghost/r0000" {
					recorded++
				}
			}
		}
		if probes > bound || recorded != n {
			t.Errorf("dry run %v: %d requests to the repositories the delta names, %d to the one it records; want at most %d, and %d", dry, probes, recorded, bound, n)
		}
		if writes := w.reg.Writes("dst/imported"); len(writes) != 0 {
			t.Errorf("dry run %v: wrote %v", dry, writes)
		}
	}
}
