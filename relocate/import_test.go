package relocate_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferry-dev/ferry/internal/registry"
	"github.com/ferry-dev/ferry/internal/testregistry"
	"github.com/ferry-dev/ferry/lock"
	"github.com/ferry-dev/ferry/relocate"
)

func TestImportRecreatesTheImgpkgRepository(t *testing.T) {
	for _, via := range impVias {
		t.Run(via.name, func(t *testing.T) {
			src := impNewSource(t, 0)
			archive := src.export(t)
			dst := impNewDest(t, false)

			rec := &impRecorder{}
			opts := dst.options(t)
			opts.Reporter = rec
			opts.LockOutput = filepath.Join(t.TempDir(), "bundle.lock.yml")
			res, err := relocate.Import(context.Background(), via.open(archive), dst.repo, opts)
			if err != nil {
				t.Fatal(err)
			}

			total := checkFirstMove(t, src, dst, res)
			if n := len(res.Tags); n == 0 || res.Tags[n-1].Tag != "v1" {
				t.Errorf("result tags do not end with v1: %v", res.Tags)
			}

			// The original tag is the commit point: the registry received it after
			// every other manifest.
			puts := impManifestPuts(dst.reg.Requests())
			if len(puts) == 0 || puts[len(puts)-1] != "v1" {
				t.Errorf("last manifest PUT is not the root tag v1: %v", puts)
			}

			bl, err := lock.ReadBundleLock(opts.LockOutput)
			if err != nil {
				t.Fatal(err)
			}
			if bl.Bundle.Image != res.Root || bl.Bundle.Tag != "v1" {
				t.Errorf("lock output names %s tag %q, want %s and v1", bl.Bundle.Image, bl.Bundle.Tag, res.Root)
			}

			if !slices.Equal(rec.started, []string{"import", "import: writing manifests and tags"}) || rec.total != total || rec.added != total || rec.done != 2 {
				t.Errorf("progress: started %v total %d added %d done %d; want [import, import: writing manifests and tags] %d %d 2",
					rec.started, rec.total, rec.added, rec.done, total, total)
			}
			if !strings.Contains(strings.Join(rec.logs, "\n"), "v1") {
				t.Errorf("progress logs do not mention the root tag: %v", rec.logs)
			}
		})
	}
}

func TestImportIntoDistributionCommitsChildrenBeforeParents(t *testing.T) {
	// The CNCF registry refuses a manifest whose blobs or children are not
	// there yet, so this import only succeeds in commit order.
	src := impNewSource(t, 0)
	archive := src.export(t)
	reg := testregistry.NewDistribution(t)
	dst := &impDest{reg: reg, ep: &reg.Endpoint, repo: impMust(name.NewRepository(reg.Repo("dst/imported")))}
	if _, err := relocate.Import(context.Background(), bytes.NewReader(archive), dst.repo, dst.options(t)); err != nil {
		t.Fatal(err)
	}
	if d := impDiffTags(dst.tags(t), src.wantTags(t)); d != "" {
		t.Errorf("destination tags differ:\n%s", d)
	}
	for _, c := range impMust(src.idx.IndexManifest()).Manifests {
		if !dst.hasManifest(t, c.Digest) {
			t.Errorf("index child %s missing from the destination", c.Digest)
		}
	}
}

func TestImportAgainUploadsNothingAndKeepsTheTags(t *testing.T) {
	for _, via := range impVias {
		t.Run(via.name, func(t *testing.T) {
			src := impNewSource(t, 0)
			archive := src.export(t)
			dst := impNewDest(t, false)
			ctx := context.Background()
			if _, err := relocate.Import(ctx, via.open(archive), dst.repo, dst.options(t)); err != nil {
				t.Fatal(err)
			}
			dst.reg.ResetCounts()

			res, err := relocate.Import(ctx, via.open(archive), dst.repo, dst.options(t))
			if err != nil {
				t.Fatal(err)
			}
			c := dst.reg.Counts()
			if n := impUploads(c); n != 0 {
				t.Errorf("second import made %d upload requests, want 0", n)
			}
			if n := c.Get(http.MethodPut, testregistry.KindManifest); n != 0 {
				t.Errorf("second import made %d manifest PUTs, want 0 (everything already in place)", n)
			}
			// A manifest in place vouches for its blobs, and a tag in place
			// for its manifest: no blob is asked about, and only manifests
			// without a tag of their own (index children) by digest. The
			// root tag is read once more at the commit, in case another
			// writer moved it since the probe.
			if n := c.Get(http.MethodHead, testregistry.KindBlob); n != 0 {
				t.Errorf("second import made %d blob HEADs, want 0", n)
			}
			children := len(impMust(src.idx.IndexManifest()).Manifests)
			if n, tagsWritten := c.Get(http.MethodHead, testregistry.KindManifest), len(res.Tags); n > tagsWritten+children+1 {
				t.Errorf("second import made %d manifest HEADs, want at most one per tag (%d), per index child (%d) and one more for the root tag", n, tagsWritten, children)
			}
			// The locations images, in place too, count as present with
			// their config and layer, as the archive's blobs do.
			blobs := len(src.blobs(t)) + len(src.locationsBlobs(t))
			if res.BlobsUploaded != 0 || res.BlobsPresent != blobs {
				t.Errorf("second import: %d uploaded, %d present; want 0 and %d", res.BlobsUploaded, res.BlobsPresent, blobs)
			}
			for _, tr := range res.Tags {
				if tr.Action != relocate.TagUnchanged || tr.Previous != tr.Digest {
					t.Errorf("second import: tag %+v, want unchanged", tr)
				}
			}
			if d := impDiffTags(dst.tags(t), src.wantTags(t)); d != "" {
				t.Errorf("destination tags differ after the second import:\n%s", d)
			}
		})
	}
}

func TestImportFailingTagLeavesRootTagUnwrittenAndRerunCompletes(t *testing.T) {
	for _, via := range impVias {
		t.Run(via.name, func(t *testing.T) {
			src := impNewSource(t, 0)
			archive := src.export(t)
			dst := impNewDest(t, true)
			ctx := context.Background()

			// Every PUT of a locations tag fails, after all blobs, manifests and
			// sha256 tags went in.
			dst.proxy.SetRules(impRefuseLocationsTags)
			_, err := relocate.Import(ctx, via.open(archive), dst.repo, dst.options(t))
			if err == nil {
				t.Fatal("import succeeded through a registry refusing locations tags")
			}
			if !strings.Contains(err.Error(), ".image-locations.imgpkg") {
				t.Errorf("error does not name the tag: %v", err)
			}
			got := dst.tags(t)
			if _, ok := got["v1"]; ok {
				t.Fatalf("root tag v1 written although an earlier tag failed: %v", got)
			}
			if len(got) == 0 {
				t.Fatal("no tag at all was written before the failure; the test does not exercise ordering")
			}

			dst.proxy.SetRules()
			dst.reg.ResetCounts()
			res, err := relocate.Import(ctx, via.open(archive), dst.repo, dst.options(t))
			if err != nil {
				t.Fatalf("re-run: %v", err)
			}
			if d := impDiffTags(dst.tags(t), src.wantTags(t)); d != "" {
				t.Errorf("tags after the re-run differ:\n%s", d)
			}
			if n := impUploads(dst.reg.Counts()); n != 0 || res.BlobsUploaded != 0 {
				t.Errorf("re-run uploaded again (%d upload requests, %d blobs), want nothing", n, res.BlobsUploaded)
			}
		})
	}
}

func TestImportInterruptedDuringUploadsTagsNothingAndResumes(t *testing.T) {
	for _, via := range impVias {
		t.Run(via.name, func(t *testing.T) {
			src := impNewSource(t, 0)
			archive := src.export(t)
			dst := impNewDest(t, true)
			ctx := context.Background()

			dst.proxy.SetRules(testregistry.FailAfterUploads(2))
			if _, err := relocate.Import(ctx, via.open(archive), dst.repo, dst.options(t)); err == nil {
				t.Fatal("import succeeded through a registry that died after two uploads")
			}
			if got := dst.tags(t); len(got) != 0 {
				t.Fatalf("tags written although blobs failed: %v", got)
			}
			if n := len(impManifestPuts(dst.reg.Requests())); n != 0 {
				t.Errorf("%d manifests PUT although blobs failed", n)
			}

			dst.proxy.SetRules()
			res, err := relocate.Import(ctx, via.open(archive), dst.repo, dst.options(t))
			if err != nil {
				t.Fatalf("re-run: %v", err)
			}
			// The locations images, never written by the failed run, are
			// uploaded by the re-run.
			all := len(src.blobs(t)) + len(src.locationsBlobs(t))
			if res.BlobsPresent < 2 || res.BlobsUploaded+res.BlobsPresent != all {
				t.Errorf("re-run: %d present, %d uploaded; want at least the 2 first uploads present, %d in all",
					res.BlobsPresent, res.BlobsUploaded, all)
			}
			if d := impDiffTags(dst.tags(t), src.wantTags(t)); d != "" {
				t.Errorf("tags after the re-run differ:\n%s", d)
			}
		})
	}
}

func TestImportCorruptBlobNamesItsDigestAndTagsNothing(t *testing.T) {
	for _, via := range impVias {
		t.Run(via.name, func(t *testing.T) {
			src := impNewSource(t, 0)
			m := impMust(src.app2.Manifest())
			bad := m.Layers[len(m.Layers)-1].Digest
			// A layer of random bytes is stored as is in the zstd stream:
			// flip one of its bytes there, in the frame that holds it.
			archive := src.export(t)
			layer := impMust(io.ReadAll(impMust(impMust(src.app2.LayerByDigest(bad)).Compressed())))
			at := bytes.Index(archive, layer[len(layer)/2:len(layer)/2+64])
			if at < 0 {
				t.Fatal("the layer's bytes are not stored as is in the archive")
			}
			corrupt := bytes.Clone(archive)
			corrupt[at+10] ^= 0x40

			tmp := t.TempDir()
			t.Setenv("TMPDIR", tmp)
			dst := impNewDest(t, false)
			opts := dst.options(t)
			_, err := relocate.Import(context.Background(), via.open(corrupt), dst.repo, opts)
			if err == nil {
				t.Fatal("import of a corrupted blob succeeded")
			}
			if !strings.Contains(err.Error(), bad.Hex) {
				t.Errorf("error does not name the corrupted blob %s: %v", bad, err)
			}
			if got := dst.tags(t); len(got) != 0 {
				t.Errorf("tags written despite the corrupted blob: %v", got)
			}
			if dst.hasBlob(t, bad) {
				t.Errorf("corrupted blob %s was uploaded", bad)
			}
			if left := impDirEntries(t, tmp); len(left) != 0 {
				t.Errorf("temporary files left behind: %v", left)
			}
		})
	}
}

func TestImportRepoBasedTags(t *testing.T) {
	src := impNewSource(t, 0)
	archive := src.export(t)
	dst := impNewDest(t, false)
	opts := dst.options(t)
	opts.RepoBasedTags = true
	if _, err := relocate.Import(context.Background(), bytes.NewReader(archive), dst.repo, opts); err != nil {
		t.Fatal(err)
	}

	// The prefix is the source path recorded in the archive, "/" made "-";
	// locations images keep their plain tags.
	want := src.wantTags(t)
	for path, img := range map[string]interface{ Digest() (v1.Hash, error) }{
		"src-app1": src.app1, "src-app2": src.app2, "src-multi": src.idx, "src-nested": src.nested, "src-root": src.root,
	} {
		d := impMust(img.Digest())
		plain := "sha256-" + d.Hex + ".imgpkg"
		delete(want, plain)
		want[path+"-"+plain] = d.String()
	}
	if d := impDiffTags(dst.tags(t), want); d != "" {
		t.Errorf("destination tags differ:\n%s", d)
	}
}

func TestImportDryRunReadsTheHeadAndChangesNothing(t *testing.T) {
	// A 3 MiB random layer, which no compression shrinks, lies past the
	// head of the archive.
	src := impNewSource(t, 3<<20)
	archive := src.export(t)
	dst := impNewDest(t, false)
	ctx := context.Background()

	opts := dst.options(t)
	opts.DryRun = true
	cr := &impCountingReader{r: bytes.NewReader(archive)}
	res, err := relocate.Import(ctx, cr, dst.repo, opts)
	if err != nil {
		t.Fatal(err)
	}
	if cr.n > int64(len(archive))-(2<<20) {
		t.Errorf("dry run read %d of the archive's %d bytes; it should stop after the head", cr.n, len(archive))
	}
	for _, r := range dst.reg.Requests() {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			t.Errorf("dry run sent %s %s", r.Method, r.Path)
		}
	}
	if got := dst.tags(t); len(got) != 0 {
		t.Errorf("dry run wrote tags: %v", got)
	}
	blobs := src.blobs(t)
	var total int64
	for _, s := range blobs {
		total += s
	}
	if !res.DryRun || res.BlobsUploaded != len(blobs) || res.BytesUploaded != total || res.BlobsPresent != 0 {
		t.Errorf("dry run result %+v; want %d blobs (%d bytes) missing", res, len(blobs), total)
	}
	want := src.wantTags(t)
	for _, tr := range res.Tags {
		if tr.Action != relocate.TagCreate || tr.Previous != "" {
			t.Errorf("dry run into an empty repository: %+v, want create", tr)
		}
		if strings.HasSuffix(tr.Tag, ".image-locations.imgpkg") {
			// Bundle layers are not in the destination yet.
			if tr.Digest != "" {
				t.Errorf("dry run computed %s without the bundle's layer: %s", tr.Tag, tr.Digest)
			}
			continue
		}
		if want[tr.Tag] != tr.Digest {
			t.Errorf("dry run: tag %s -> %s, want %s", tr.Tag, tr.Digest, want[tr.Tag])
		}
	}

	// After a real import, someone moves v1; a dry run reports exactly that.
	if _, err := relocate.Import(ctx, bytes.NewReader(archive), dst.repo, dst.options(t)); err != nil {
		t.Fatal(err)
	}
	app1 := impMust(src.app1.Digest())
	if err := remote.Tag(dst.repo.Tag("v1"), src.app1, dst.reg.RemoteOptions(t)...); err != nil {
		t.Fatal(err)
	}
	before := dst.tags(t)
	dst.reg.ResetCounts()
	res, err = relocate.Import(ctx, bytes.NewReader(archive), dst.repo, opts)
	if err != nil {
		t.Fatal(err)
	}
	if d := impDiffTags(dst.tags(t), before); d != "" {
		t.Errorf("dry run changed tags:\n%s", d)
	}
	if res.BlobsUploaded != 0 || res.BlobsPresent != len(blobs) {
		t.Errorf("dry run after import: %d missing, %d present; want 0 and %d", res.BlobsUploaded, res.BlobsPresent, len(blobs))
	}
	got := map[string]string{}
	for _, tr := range res.Tags {
		got[tr.Tag] = tr.Digest
		wantAction := relocate.TagUnchanged
		if tr.Tag == "v1" {
			wantAction = relocate.TagMove
			if tr.Previous != app1.String() {
				t.Errorf("dry run: v1 previous %s, want %s", tr.Previous, app1)
			}
		}
		if tr.Action != wantAction {
			t.Errorf("dry run: tag %s action %s, want %s", tr.Tag, tr.Action, wantAction)
		}
	}
	if d := impDiffTags(got, want); d != "" {
		t.Errorf("dry run tags (all computable now) differ:\n%s", d)
	}
}

func TestImportReadsGzipAndPlainTar(t *testing.T) {
	src := impNewSource(t, 0)
	plain := impZstdToTar(t, src.export(t))
	want := src.wantTags(t)
	for name, data := range map[string][]byte{"tar": plain, "gzip": impGzip(t, plain)} {
		t.Run(name, func(t *testing.T) {
			dst := impNewDest(t, false)
			if _, err := relocate.Import(context.Background(), bytes.NewReader(data), dst.repo, dst.options(t)); err != nil {
				t.Fatal(err)
			}
			if d := impDiffTags(dst.tags(t), want); d != "" {
				t.Errorf("destination tags differ:\n%s", d)
			}
		})
	}
}

func TestImportSpoolsLargeBlobsWithinItsBudgetAndCleansUp(t *testing.T) {
	// A layer larger than the 4 MiB kept in memory (memSpoolMax) goes to
	// a spool file; a budget of one byte still lets it through, alone.
	src := impNewSource(t, 5<<20)
	archive := src.export(t)
	dst := impNewDest(t, false)
	opts := dst.options(t)
	opts.SpoolDir = t.TempDir()
	opts.SpoolBytes = 1
	opts.Concurrency = 2
	// Only an import from a pipe spools: a file can be read again.
	if _, err := relocate.Import(context.Background(), impVias[1].open(archive), dst.repo, opts); err != nil {
		t.Fatal(err)
	}
	for d := range src.blobs(t) {
		if !dst.hasBlob(t, d) {
			t.Errorf("blob %s missing", d)
		}
	}
	if left := impDirEntries(t, opts.SpoolDir); len(left) != 0 {
		t.Errorf("spool left behind: %v", left)
	}
}

// A spooled blob's file has no name while its upload runs (it is removed
// as soon as it is made), so that an import killed outright (SIGKILL)
// leaves nothing in the spool directory: a killed run once left up to the
// spool budget there for good. Bytes are reported as the spooled layer
// (larger than the 4 MiB kept in memory) is sent: the directory is
// looked at then.
func TestImportSpoolFilesHaveNoName(t *testing.T) {
	src := impNewSource(t, 5<<20)
	archive := src.export(t)
	dst := impNewDest(t, false)
	opts := dst.options(t)
	opts.SpoolDir = t.TempDir()
	rec := &spoolWatcher{dir: opts.SpoolDir}
	opts.Reporter = rec
	if _, err := relocate.Import(context.Background(), impVias[1].open(archive), dst.repo, opts); err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.looks == 0 {
		t.Fatal("no bytes reported: the test looked at nothing")
	}
	if len(rec.seen) != 0 {
		t.Errorf("the spool directory held %v during the import", rec.seen)
	}
}

// spoolWatcher lists dir whenever bytes are reported.
type spoolWatcher struct {
	impRecorder
	dir   string
	mu    sync.Mutex
	looks int
	seen  []string
}

func (w *spoolWatcher) Add(n int64) {
	ents, _ := os.ReadDir(w.dir)
	w.mu.Lock()
	w.looks++
	for _, e := range ents {
		w.seen = append(w.seen, e.Name())
	}
	w.mu.Unlock()
	w.impRecorder.Add(n)
}

func TestImportRetriesFailedUploads(t *testing.T) {
	for _, via := range impVias {
		t.Run(via.name, func(t *testing.T) {
			// The 2 MiB layer is spooled to a file, the rest in memory; the first
			// blob data requests are refused or cut, so their uploads are sent
			// again from the spools.
			src := impNewSource(t, 2<<20)
			archive := src.export(t)
			dst := impNewDest(t, true)
			dst.failUploads()
			rec := &impRecorder{}
			opts := dst.options(t)
			opts.Reporter = rec
			opts.Remote = append(opts.Remote, remote.WithRetryBackoff(remote.Backoff{Duration: 10 * time.Millisecond, Factor: 1, Steps: 3}))
			// Enough attempts for one blob to meet every fault: with
			// fewer, the run fails whenever the faults bunch on a blob.
			copts := dst.ep.ClientOptions()
			copts.UploadAttempts = impUploadFaults + 1
			opts.Client = registry.New(copts)
			if _, err := relocate.Import(context.Background(), via.open(archive), dst.repo, opts); err != nil {
				t.Fatal(err)
			}
			dst.assertRetriedUploads(t, src, rec)
		})
	}
}

func impDirEntries(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}
