package relocate

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/klauspost/compress/zstd"

	"github.com/ferry-dev/ferry/archive"
	"github.com/ferry-dev/ferry/internal/testregistry"
)

// unpack decompresses and extracts an archive into a new directory with
// code independent of the archive package, and returns the directory and
// the tar entry names in order.
func unpack(t testing.TB, data []byte) (string, []string) {
	t.Helper()
	zr, err := zstd.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	dir := t.TempDir()
	tr := tar.NewReader(zr)
	var names []string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		if h.Typeflag == tar.TypeDir {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir, names
}

func TestExportFileIsAnOCILayoutOfTheSourceImages(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	p, err := Resolve(context.Background(), Source{Bundle: w.rootTag}, Options{Remote: w.opts})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "bundle.tar.zst")
	rec := &recorder{}
	res, err := ExportFile(context.Background(), p, out, ExportOptions{Remote: w.opts, Concurrency: 4, CreatedBy: "ferry test", Reporter: rec})
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if res.SHA256 != sha256Hex(data) || res.Path != out || res.ArchiveBytes != int64(len(data)) {
		t.Errorf("result = %+v; file sha256 %s, %d bytes", res, sha256Hex(data), len(data))
	}
	side, err := os.ReadFile(out + ".sha256")
	if err != nil || !strings.HasPrefix(string(side), sha256Hex(data)) || !strings.Contains(string(side), "bundle.tar.zst") {
		t.Errorf("checksum file = %q, %v", side, err)
	}
	if names := dirNames(t, dir); strings.Join(names, " ") != "bundle.tar.zst bundle.tar.zst.sha256" {
		t.Errorf("output directory holds %v", names)
	}

	root, names := unpack(t, data)
	if len(names) < 2 || names[0] != "oci-layout" || names[1] != "index.json" {
		t.Errorf("first entries = %v, want oci-layout, index.json", names[:min(2, len(names))])
	}
	seen := map[string]bool{}
	for _, n := range names {
		if seen[n] {
			t.Errorf("entry %s written twice", n)
		}
		seen[n] = true
	}
	if blobs := len(names) - 2; blobs != len(p.Manifests)+len(p.Blobs) {
		t.Errorf("%d blob entries, want %d manifests + %d blobs", blobs, len(p.Manifests), len(p.Blobs))
	}

	// Read it back with go-containerregistry's layout package: the index
	// lists exactly the source images, and everything they reference is
	// there, each blob matching its digest and size.
	lp, err := layout.FromPath(root)
	if err != nil {
		t.Fatal(err)
	}
	ii, err := lp.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im := must(ii.IndexManifest())
	want := []struct {
		digest v1.Hash
		role   archive.Role
		orig   string
	}{
		{must(w.root.Digest()), archive.RoleBundle, w.rootTag},
		{must(w.app1.Digest()), archive.RoleImage, w.app1Ref},
		{must(w.app2.Digest()), archive.RoleImage, w.app2Ref},
		{must(w.nested.Digest()), archive.RoleNestedBundle, w.nestedRef},
		{must(w.idx.Digest()), archive.RoleImage, w.idxRef},
	}
	if len(im.Manifests) != len(want) {
		t.Fatalf("index.json lists %d entries, want %d", len(im.Manifests), len(want))
	}
	byDigest := map[v1.Hash]v1.Descriptor{}
	for _, d := range im.Manifests {
		byDigest[d.Digest] = d
	}
	for _, wd := range want {
		d, ok := byDigest[wd.digest]
		if !ok {
			t.Errorf("index.json lacks %s (%s)", wd.digest, wd.orig)
			continue
		}
		if d.Annotations["dev.ferry.role"] != string(wd.role) || d.Annotations["dev.ferry.original-ref"] != wd.orig {
			t.Errorf("%s annotations = %v, want role %s, original-ref %s", wd.digest, d.Annotations, wd.role, wd.orig)
		}
		if wd.role == archive.RoleBundle && d.Annotations["org.opencontainers.image.ref.name"] != "v1" {
			t.Errorf("root annotations = %v, want ref.name v1", d.Annotations)
		}
		checkLayoutBlobs(t, lp, d)
	}
	if im.Annotations["dev.ferry.archive.created-by"] != "ferry test" {
		t.Errorf("index annotations = %v", im.Annotations)
	}

	// Progress: one phase over the plan's bytes, every byte reported, one
	// line per image.
	if len(rec.started) != 1 || rec.started[0] != "export" || rec.total != p.TotalBytes || rec.added != p.TotalBytes || rec.done != 1 {
		t.Errorf("progress: started %v total %d added %d done %d; want export, %d bytes", rec.started, rec.total, rec.added, rec.done, p.TotalBytes)
	}
	if len(rec.logs) != len(p.Images) {
		t.Errorf("logged %d lines, want one per image (%d): %q", len(rec.logs), len(p.Images), rec.logs)
	}
}

func TestExportIsByteIdenticalWhateverTheConcurrency(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	p, err := Resolve(context.Background(), Source{Bundle: w.rootTag}, Options{Remote: w.opts})
	if err != nil {
		t.Fatal(err)
	}
	var outs [][]byte
	for _, opts := range []ExportOptions{
		{Concurrency: 1},
		{Concurrency: 8},
		// A budget below the biggest layer: it streams while others wait in memory.
		{Concurrency: 8, SpoolBudget: memSpoolMax},
	} {
		opts.Remote = w.opts
		opts.CreatedBy = "ferry test"
		var buf bytes.Buffer
		res, err := Export(context.Background(), p, &buf, opts)
		if err != nil {
			t.Fatal(err)
		}
		if res.SHA256 != sha256Hex(buf.Bytes()) {
			t.Errorf("concurrency %d: result sha256 %s, bytes hash to %s", opts.Concurrency, res.SHA256, sha256Hex(buf.Bytes()))
		}
		outs = append(outs, buf.Bytes())
	}
	for i := 1; i < len(outs); i++ {
		if !bytes.Equal(outs[0], outs[i]) {
			t.Errorf("export %d differs from the export with concurrency 1", i)
		}
	}
}

// checkLayoutBlobs checks that d and everything it references, to any
// depth, is in the layout with the right digest and size.
func checkLayoutBlobs(t testing.TB, lp layout.Path, d v1.Descriptor) {
	t.Helper()
	b, err := lp.Bytes(d.Digest)
	if err != nil {
		t.Errorf("%s: %v", d.Digest, err)
		return
	}
	if sha256Hex(b) != d.Digest.Hex || int64(len(b)) != d.Size {
		t.Errorf("blob %s: %d bytes hashing to %s, want %d", d.Digest, len(b), sha256Hex(b), d.Size)
		return
	}
	switch {
	case d.MediaType.IsIndex():
		im, err := v1.ParseIndexManifest(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range im.Manifests {
			checkLayoutBlobs(t, lp, c)
		}
	case d.MediaType.IsImage():
		m, err := v1.ParseManifest(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		checkLayoutBlobs(t, lp, m.Config)
		for _, l := range m.Layers {
			checkLayoutBlobs(t, lp, l)
		}
	}
}

// proxiedWorld is a world whose references all go through a fault proxy.
func proxiedWorld(t testing.TB) (*world, *testregistry.FaultProxy) {
	t.Helper()
	reg := testregistry.NewGGCR(t)
	proxy := testregistry.NewFaultProxy(t, reg)
	w := newWorldAt(t, &proxy.Endpoint)
	return w, proxy
}

func TestExportFileLeavesNothingWhenABlobIsMissing(t *testing.T) {
	t.Parallel()
	w, proxy := proxiedWorld(t)
	p, err := Resolve(context.Background(), Source{Bundle: w.rootTag}, Options{Remote: w.opts})
	if err != nil {
		t.Fatal(err)
	}
	_, layers := blobsOf(t, w.app2)
	gone := layers[len(layers)-1]
	proxy.AddRule(testregistry.Rule{
		Kind:   testregistry.KindBlob,
		Path:   regexp.MustCompile(regexp.QuoteMeta(gone.String())),
		Fault:  testregistry.FaultStatus,
		Status: 404,
	})
	dir := t.TempDir()
	out := filepath.Join(dir, "bundle.tar.zst")
	_, err = ExportFile(context.Background(), p, out, ExportOptions{Remote: w.opts, Concurrency: 4})
	// The digest short, as human messages write it.
	if err == nil || !containsAll(err.Error(), gone.String()[:len("sha256:")+12], out) {
		t.Errorf("error = %v, want one naming blob %s and %s", err, gone, out)
	}
	if names := dirNames(t, dir); len(names) != 0 {
		t.Errorf("left behind: %v", names)
	}
}

func TestExportFileLeavesNothingWhenCancelled(t *testing.T) {
	t.Parallel()
	w, proxy := proxiedWorld(t)
	p, err := Resolve(context.Background(), Source{Bundle: w.rootTag}, Options{Remote: w.opts})
	if err != nil {
		t.Fatal(err)
	}
	// One layer hangs; the export is cancelled while it waits for it, with
	// other blobs already written or spooled.
	_, layers := blobsOf(t, w.app2)
	proxy.AddRule(testregistry.Rule{
		Kind:  testregistry.KindBlob,
		Path:  regexp.MustCompile(regexp.QuoteMeta(layers[len(layers)-1].String())),
		Fault: testregistry.FaultStall,
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rec := &recorder{}
	var once sync.Once
	rec.onAdd = func(int64) { once.Do(func() { time.AfterFunc(200*time.Millisecond, cancel) }) }
	dir := t.TempDir()
	out := filepath.Join(dir, "bundle.tar.zst")
	start := time.Now()
	_, err = ExportFile(ctx, p, out, ExportOptions{Remote: w.opts, Concurrency: 4, Reporter: rec})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error = %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("cancelled export took %s to return", d)
	}
	if rec.added == 0 {
		t.Error("cancelled before anything was written; the test does not test a cancel mid-export")
	}
	if names := dirNames(t, dir); len(names) != 0 {
		t.Errorf("left behind: %v", names)
	}
}

func TestExportFileFailsBeforeDownloadingIntoAMissingDirectory(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	p, err := Resolve(context.Background(), Source{Bundle: w.rootTag}, Options{Remote: w.opts})
	if err != nil {
		t.Fatal(err)
	}
	w.reg.ResetCounts()
	out := filepath.Join(t.TempDir(), "no", "such", "dir", "bundle.tar.zst")
	_, err = ExportFile(context.Background(), p, out, ExportOptions{Remote: w.opts})
	if err == nil || !strings.Contains(err.Error(), out) {
		t.Errorf("error = %v, want one naming %s", err, out)
	}
	if n := w.reg.Counts().Total(); n != 0 {
		t.Errorf("%d registry requests before failing, want none", n)
	}
	if err := CheckExportPath(out, ExportOptions{}); err == nil || !strings.Contains(err.Error(), out) {
		t.Errorf("CheckExportPath(%s) = %v, want an error naming it", out, err)
	}
	dir := t.TempDir()
	if err := CheckExportPath(filepath.Join(dir, "ok.tar.zst"), ExportOptions{}); err != nil {
		t.Errorf("CheckExportPath in a writable directory: %v", err)
	}
	if names := dirNames(t, dir); len(names) != 0 {
		t.Errorf("CheckExportPath left %v", names)
	}
}

func TestExportLeavesOutNonDistributableLayers(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	img, foreign, ref := w.foreignImage(t, "windows", false)
	w.pushBundle(t, "withforeign", "v1", []string{ref})
	p, err := Resolve(context.Background(), Source{Bundle: w.ep.Repo("withforeign") + ":v1"}, Options{Remote: w.opts})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	res, err := Export(context.Background(), p, &buf, ExportOptions{Remote: w.opts})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Skipped) != 1 || res.Skipped[0].Digest != foreign {
		t.Errorf("result skipped = %+v, want %s", res.Skipped, foreign)
	}
	root, names := unpack(t, buf.Bytes())
	for _, n := range names {
		if strings.HasSuffix(n, foreign.Hex) {
			t.Errorf("archive holds the foreign layer %s", n)
		}
	}
	idx, err := os.ReadFile(filepath.Join(root, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(idx), "dev.ferry.skipped-layers") || !strings.Contains(string(idx), foreign.String()) {
		t.Errorf("index.json does not record the skipped layer: %s", idx)
	}
	// The image itself is complete apart from that layer.
	d := must(img.Digest())
	if _, err := os.Stat(filepath.Join(root, "blobs", "sha256", d.Hex)); err != nil {
		t.Errorf("image manifest missing: %v", err)
	}
}

// TestExportFetchesEachBlobOnce: the configs Resolve read to tell bundles
// from images, and the bundles' small layers it read for their locks, are
// written from memory; every other blob is fetched once.
func TestExportFetchesEachBlobOnce(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	p, err := Resolve(context.Background(), Source{Bundle: w.rootTag}, Options{Remote: w.opts})
	if err != nil {
		t.Fatal(err)
	}
	w.reg.ResetCounts()
	if _, err := Export(context.Background(), p, io.Discard, ExportOptions{Remote: w.opts}); err != nil {
		t.Fatal(err)
	}
	w.reg.Settle()
	got := map[string]int{}
	for _, r := range w.reg.Requests() {
		if r.Method == http.MethodGet && r.Kind == testregistry.KindBlob {
			got[r.Ref]++
		}
	}
	for _, b := range p.Blobs {
		_, cached := p.Cached[b.Digest]
		switch n := got[b.Digest.String()]; {
		case cached && n != 0:
			t.Errorf("blob %s, read while planning, fetched %d more times", b.Digest, n)
		case !cached && n != 1:
			t.Errorf("blob %s fetched %d times, want once", b.Digest, n)
		}
	}
	if len(p.Cached) == 0 {
		t.Error("the plan kept no config; the test proves nothing")
	}
	bundles := 0
	for _, im := range p.Images {
		if im.Role != archive.RoleBundle && im.Role != archive.RoleNestedBundle {
			continue
		}
		bundles++
		m := must(v1.ParseManifest(bytes.NewReader(p.Manifests[im.Digest].Raw)))
		if _, ok := p.Cached[m.Layers[0].Digest]; !ok {
			t.Errorf("the layer of bundle %s was read while planning, but not kept", im.Digest)
		}
	}
	if bundles == 0 {
		t.Error("the plan has no bundle; the test proves nothing")
	}
}
