package relocate

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/ferry-dev/ferry/archive"
	"github.com/ferry-dev/ferry/fixtures"
	"github.com/ferry-dev/ferry/internal/bundle"
	"github.com/ferry-dev/ferry/internal/progress"
)

// writeBundleOnlyArchive writes an archive holding a bundle that locks
// locked, and (when withImage) the locked image itself.
func writeBundleOnlyArchive(t *testing.T, path string, withImage bool) {
	t.Helper()
	entries, manifests, images := bundleOnlyArchive(t, withImage)
	writeTestArchive(t, path, entries, manifests, images)
}

// bundleOnlyArchive returns what writeBundleOnlyArchive writes, the
// bundle's entry first.
func bundleOnlyArchive(t *testing.T, withImage bool) ([]archive.Entry, map[v1.Hash][]byte, []v1.Image) {
	t.Helper()
	app, err := fixtures.Image(1, 1, 1000)
	if err != nil {
		t.Fatal(err)
	}
	appDigest, _ := app.Digest()
	dir := filepath.Join(t.TempDir(), "b")
	if err := fixtures.WriteBundleDir(dir, []string{"127.0.0.1:5000/app@" + appDigest.String()}); err != nil {
		t.Fatal(err)
	}
	b, err := bundle.Build(context.Background(), []string{dir}, bundle.BuildOptions{Bundle: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })

	images := []v1.Image{b}
	bd, _ := b.Digest()
	braw, _ := b.RawManifest()
	bmt, _ := b.MediaType()
	entries := []archive.Entry{{Descriptor: v1.Descriptor{MediaType: bmt, Digest: bd, Size: int64(len(braw))}, Role: archive.RoleBundle, OriginalRef: "127.0.0.1:5000/b:v1", Tag: "v1"}}
	manifests := map[v1.Hash][]byte{bd: braw}
	if withImage {
		images = append(images, app)
		araw, _ := app.RawManifest()
		amt, _ := app.MediaType()
		entries = append(entries, archive.Entry{Descriptor: v1.Descriptor{MediaType: amt, Digest: appDigest, Size: int64(len(araw))}, Role: archive.RoleImage, OriginalRef: "127.0.0.1:5000/app@" + appDigest.String()})
		manifests[appDigest] = araw
	}
	return entries, manifests, images
}

func TestVerifyFileChecksBundleLocks(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.tar.zst")
	writeBundleOnlyArchive(t, good, true)
	res, err := VerifyFile(context.Background(), good, VerifyOptions{})
	if err != nil || !res.Verified || res.Bundles != 1 || res.Images != 2 {
		t.Fatalf("good archive: %+v, %v", res, err)
	}

	missing := filepath.Join(dir, "missing.tar.zst")
	writeBundleOnlyArchive(t, missing, false)
	_, err = VerifyFile(context.Background(), missing, VerifyOptions{})
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:5000/app@sha256:") || !strings.Contains(err.Error(), "does not hold") {
		t.Fatalf("want an error naming the locked image the archive lacks, got %v", err)
	}
}

// The table of contents and seek table at an archive's end are what
// import, inspect and serve read a file by: verify checks them too, and
// refuses an archive whose table is damaged or gone although index.json
// declares one.
func TestVerifyFileChecksTheTrailer(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.tar.zst")
	writeBundleOnlyArchive(t, good, true)
	res, err := VerifyFile(t.Context(), good, VerifyOptions{})
	if err != nil || res.SeekTable != string(archive.SeekTableChecked) {
		t.Fatalf("good archive: seek table %q, %v", res.SeekTable, err)
	}
	b, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}

	// A table of contents naming another frame for a blob (plain JSON in
	// its skippable frame: same length, so every size still adds up).
	i := bytes.LastIndex(b, []byte(`"frame":1`))
	if i < 0 {
		t.Fatal(`no "frame":1 in the table of contents`)
	}
	badTOC := bytes.Clone(b)
	badTOC[i+len(`"frame":`)] = '2'

	// Cut before the table of contents, read from the seek table as the
	// zstd seekable format lays it out: a skippable frame of 8 bytes of
	// header, an entry per frame (compressed size, decompressed size and,
	// with the descriptor's top bit, a checksum), then a 9-byte footer.
	footer := b[len(b)-9:]
	if binary.LittleEndian.Uint32(footer[5:]) != 0x8F92EAB1 {
		t.Fatal("no seek table footer")
	}
	n := int(binary.LittleEndian.Uint32(footer))
	entry := 8
	if footer[4]&0x80 != 0 {
		entry = 12
	}
	table := 8 + n*entry + 9
	last := b[len(b)-table+8+(n-1)*entry:]
	tocSize := int(binary.LittleEndian.Uint32(last))
	noTrailer := b[:len(b)-table-tocSize]

	for name, data := range map[string][]byte{"table of contents": badTOC, "no trailer": noTrailer} {
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".tar.zst")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		res, err := VerifyFile(t.Context(), path, VerifyOptions{})
		t.Log(err)
		if err == nil || res.Verified {
			t.Errorf("%s: verified (%+v)", name, res)
		}
	}
	// The same bytes from a pipe: the end cannot be read again, and the
	// result says so rather than claiming a check.
	f, err := os.Open(good)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rd, err := archive.NewReader(struct{ io.Reader }{f}, archive.ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	for {
		if _, _, _, err := rd.Next(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if st, err := rd.CheckTrailer(nil, 0); err != nil || st != archive.SeekTableUnchecked {
		t.Fatalf("from a pipe: %q, %v", st, err)
	}
}

// writeManyBundlesArchive writes an archive of n bundles (one root, the
// others nested), each with a layer of about layerSize incompressible
// bytes, and returns the layer size as stored.
func writeManyBundlesArchive(t *testing.T, path string, n, layerSize int) int64 {
	t.Helper()
	var images []v1.Image
	var entries []archive.Entry
	manifests := map[v1.Hash][]byte{}
	var stored int64
	for i := 0; i < n; i++ {
		dir := filepath.Join(t.TempDir(), "b")
		if err := fixtures.WriteBundleDir(dir, nil); err != nil {
			t.Fatal(err)
		}
		data := make([]byte, layerSize)
		rand.NewChaCha8([32]byte{byte(i)}).Read(data)
		if err := os.WriteFile(filepath.Join(dir, "data.bin"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		b, err := bundle.Build(context.Background(), []string{dir}, bundle.BuildOptions{Bundle: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		d, _ := b.Digest()
		raw, _ := b.RawManifest()
		mt, _ := b.MediaType()
		e := archive.Entry{Descriptor: v1.Descriptor{MediaType: mt, Digest: d, Size: int64(len(raw))}, Role: archive.RoleNestedBundle, OriginalRef: "127.0.0.1:5000/nested@" + d.String()}
		if i == 0 {
			e.Role, e.OriginalRef, e.Tag = archive.RoleBundle, "127.0.0.1:5000/b:v1", "v1"
		}
		entries = append(entries, e)
		manifests[d] = raw
		images = append(images, b)
		layers, _ := b.Layers()
		stored, _ = layers[0].Size()
	}
	writeTestArchive(t, path, entries, manifests, images)
	return stored
}

// heapPeak is a Reporter that samples the live heap (after a collection)
// every MiB of progress: the most verify held at once while reading.
type heapPeak struct {
	progress.Nop
	mu         sync.Mutex // Reporters may be called from any goroutine
	done, next int64
	peak       uint64
}

func (h *heapPeak) Add(n int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.done += n
	if h.done < h.next {
		return
	}
	h.next = h.done + 1<<20
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	h.peak = max(h.peak, ms.HeapAlloc)
}

// Verify reads each bundle's images.yml as its layer goes by and keeps
// none of the layers: what it holds at once does not grow with the number
// of bundles (a small hostile archive of many bundles must not cost
// gigabytes in the command used to vet it).
func TestVerifyHoldsOneBundleLayerAtATime(t *testing.T) {
	dir := t.TempDir()
	peak := func(n int) (uint64, int64) {
		path := filepath.Join(dir, fmt.Sprintf("b%d.tar.zst", n))
		layer := writeManyBundlesArchive(t, path, n, 4<<20)
		h := &heapPeak{}
		res, err := VerifyFile(context.Background(), path, VerifyOptions{Reporter: h})
		if err != nil || res.Bundles != n {
			t.Fatalf("%d bundles: %+v, %v", n, res, err)
		}
		return h.peak, layer
	}
	one, layer := peak(1)
	six, _ := peak(6)
	t.Logf("peak live heap: 1 bundle %d MiB, 6 bundles %d MiB (layers of %d MiB)", one>>20, six>>20, layer>>20)
	if six > one+uint64(3*layer) {
		t.Errorf("verify of 6 bundles held %d MiB at once, of 1 bundle %d MiB: more than three more layers of %d MiB", six>>20, one>>20, layer>>20)
	}
}

// writeTestArchive writes an archive of entries whose manifests are
// given, with the configs, then the layers, of images, each blob once.
func writeTestArchive(t *testing.T, path string, entries []archive.Entry, manifests map[v1.Hash][]byte, images []v1.Image) {
	t.Helper()
	index, err := archive.BuildIndex(entries, archive.IndexOptions{CreatedBy: "test"})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := archive.NewWriter(f, archive.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteHeader(index, manifests); err != nil {
		t.Fatal(err)
	}
	written := map[v1.Hash]bool{}
	put := func(l v1.Layer) {
		d, _ := l.Digest()
		if written[d] {
			return
		}
		written[d] = true
		size, _ := l.Size()
		rc, _ := l.Compressed()
		defer rc.Close()
		if err := w.WriteBlob(d, size, rc); err != nil {
			t.Fatal(err)
		}
	}
	for _, img := range images {
		cfg, _ := partial.ConfigLayer(img)
		put(cfg)
	}
	for _, img := range images {
		layers, _ := img.Layers()
		for _, l := range layers {
			put(l)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// Verify parses a bundle layer's images.yml once, however many entries of
// index.json name the bundle: an archive listing one bundle under many
// original references must not cost verify a parse of its layer (and a
// read of the image list) per reference.
func TestVerifyParsesEachBundleLayerOnce(t *testing.T) {
	const n = 50
	entries, manifests, images := bundleOnlyArchive(t, true)
	b := entries[0]
	for i := range n {
		e := b
		e.Role, e.Tag = archive.RoleNestedBundle, ""
		e.OriginalRef = fmt.Sprintf("127.0.0.1:5000/copy%d@%s", i, b.Descriptor.Digest)
		entries = append(entries, e)
	}
	path := filepath.Join(t.TempDir(), "a.tar.zst")
	writeTestArchive(t, path, entries, manifests, images)
	res, err := VerifyFile(t.Context(), path, VerifyOptions{})
	if err != nil || res.Bundles != n+1 {
		t.Fatalf("verify: %+v, %v; want %d bundles checked", res, err, n+1)
	}

	// What verify does as the archive goes by, counting the parses.
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ar, err := archive.NewReader(f, archive.ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer ar.Close()
	locks, err := newLockChecks(ar.Head())
	if err != nil {
		t.Fatal(err)
	}
	roles := newRoleLabels(ar.Head())
	for {
		d, _, blob, err := ar.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := readForChecks(t.Context(), d, blob, locks, roles); err != nil {
			t.Fatal(err)
		}
	}
	if locks.parsed != 1 || locks.bundles != n+1 {
		t.Errorf("%d entries of one bundle: images.yml parsed %d times, %d bundles checked; want once, %d", n+1, locks.parsed, locks.bundles, n+1)
	}
}

// A bundle's layer may be of any size: export writes it and import reads
// its images.yml streaming, and so does verify, rather than refusing a
// layer it would not hold in memory. The layer here is over 64 MiB stored
// (gzip without compression, of zeros beside images.yml), which the
// archive's zstd makes small.
func TestVerifyReadsABundleLayerOfAnySize(t *testing.T) {
	app, err := fixtures.Image(1, 1, 1000)
	if err != nil {
		t.Fatal(err)
	}
	appDigest := must(app.Digest())
	images := fmt.Sprintf("apiVersion: imgpkg.carvel.dev/v1alpha1\nkind: ImagesLock\nimages:\n- image: 127.0.0.1:5000/app@%s\n", appDigest)
	var layer bytes.Buffer
	zw, err := gzip.NewWriterLevel(&layer, gzip.NoCompression)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(zw)
	for _, f := range []struct {
		name string
		body io.Reader
		size int64
	}{
		{".imgpkg/images.yml", strings.NewReader(images), int64(len(images))},
		{"zeros.bin", io.LimitReader(zeroReader{}, 65<<20), 65 << 20},
	} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o600, Size: f.size, Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(tw, f.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if layer.Len() <= 64<<20 {
		t.Fatalf("layer of %d bytes, want over 64 MiB", layer.Len())
	}
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layer.Bytes())), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		t.Fatal(err)
	}
	cfg := must(b.ConfigFile()).DeepCopy()
	cfg.Config.Labels = map[string]string{bundle.LabelKey: "true"}
	if b, err = mutate.ConfigFile(b, cfg); err != nil {
		t.Fatal(err)
	}
	entries, manifests := []archive.Entry(nil), map[v1.Hash][]byte{}
	for i, img := range []v1.Image{b, app} {
		d, raw, mt := must(img.Digest()), must(img.RawManifest()), must(img.MediaType())
		e := archive.Entry{Descriptor: v1.Descriptor{MediaType: mt, Digest: d, Size: int64(len(raw))}, Role: archive.RoleImage, OriginalRef: "127.0.0.1:5000/app@" + d.String()}
		if i == 0 {
			e.Role, e.OriginalRef, e.Tag = archive.RoleBundle, "127.0.0.1:5000/b:v1", "v1"
		}
		entries = append(entries, e)
		manifests[d] = raw
	}
	path := filepath.Join(t.TempDir(), "big.tar.zst")
	writeTestArchive(t, path, entries, manifests, []v1.Image{b, app})
	res, err := VerifyFile(t.Context(), path, VerifyOptions{})
	if err != nil || !res.Verified || res.Bundles != 1 {
		t.Fatalf("verify of a bundle with a layer of %d bytes: %+v, %v", layer.Len(), res, err)
	}
}

// zeroReader reads zeros.
type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
