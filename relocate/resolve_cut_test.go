package relocate_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"math/rand"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/internal/bundle"
	"github.com/ferry-dev/ferry/internal/registry"
	"github.com/ferry-dev/ferry/internal/regopts"
	"github.com/ferry-dev/ferry/internal/testregistry"
	"github.com/ferry-dev/ferry/relocate"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// resolveThrough resolves and exports src's root bundle with ferry's own
// registry options (transport retries, attempts), as the CLI does.
func resolveThrough(t *testing.T, src *impSource, attempts int, rep *impRecorder) ([]byte, error) {
	t.Helper()
	ctx := context.Background()
	reg := regopts.Options{RetryCount: attempts, RetryBackoff: 10 * time.Millisecond}
	ropts, err := reg.RemoteOptions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	copts, err := reg.ClientOptions()
	if err != nil {
		t.Fatal(err)
	}
	client := registry.New(copts)
	p, err := relocate.Resolve(ctx, relocate.Source{Bundle: src.rootTagRef}, relocate.Options{Remote: ropts, Client: client, Reporter: rep})
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if _, err := relocate.Export(ctx, p, &buf, relocate.ExportOptions{Remote: ropts, Client: client, CreatedBy: "ferry import tests"}); err != nil {
		t.Fatalf("export: %v", err)
	}
	return buf.Bytes(), nil
}

// The reads of the resolve phase (the root's manifest by tag, a locked
// image's manifest, the bundle's config and its layer) each cut once half
// way through the body, after the headers: each is read again, and the
// archive is the one a clean export writes.
func TestResolveReadsAgainWhatADroppedConnectionCut(t *testing.T) {
	reg := testregistry.NewGGCR(t)
	proxy := newCutProxy(t, reg)
	src := impNewSourceAt(t, &proxy.Endpoint, 0)
	clean := src.export(t)

	root := impMust(src.root.Manifest())
	cuts := map[string]string{
		"/src/root/manifests/v1":                            "the root's manifest by tag",
		"/manifests/" + impMust(src.app1.Digest()).String(): "a locked image's manifest",
		"/blobs/" + root.Config.Digest.String():             "the bundle's config",
		"/blobs/" + root.Layers[0].Digest.String():          "the bundle's layer",
	}
	for suffix := range cuts {
		proxy.cutPath(suffix, 1)
	}
	reg.ResetCounts()
	rec := &impRecorder{}
	got, err := resolveThrough(t, src, 3, rec)
	if err != nil {
		t.Fatalf("one cut of each resolve read failed the export: %v", err)
	}
	if left := proxy.left(); left != 0 {
		t.Fatalf("%d cuts not made: the test did not cut what it meant to", left)
	}
	if !bytes.Equal(got, clean) {
		t.Error("the archive differs from a clean export's")
	}
	// Each cut read was made twice (once cut, once whole), and a warning
	// says so.
	for suffix, what := range cuts {
		n := 0
		for _, r := range reg.Requests() {
			if r.Method == "GET" && strings.HasSuffix(r.Path, suffix) {
				n++
			}
		}
		if n < 2 {
			t.Errorf("%s (%s) was fetched %d times, want it read again after the cut", what, suffix, n)
		}
	}
	warnings := 0
	for _, l := range rec.logs {
		if strings.HasPrefix(l, "warning:") && strings.Contains(l, "reading it again (attempt 2 of 3)") {
			warnings++
		}
	}
	if warnings != len(cuts) {
		t.Errorf("%d warnings of a read again, want %d: %v", warnings, len(cuts), rec.logs)
	}
}

// A read cut every time is given up after the configured attempts, naming
// what it read.
func TestResolveGivesUpOnAReadCutEveryTime(t *testing.T) {
	reg := testregistry.NewGGCR(t)
	proxy := newCutProxy(t, reg)
	src := impNewSourceAt(t, &proxy.Endpoint, 0)
	cfg := impMust(src.root.Manifest()).Config.Digest
	proxy.cutPath("/blobs/"+cfg.String(), 100)
	reg.ResetCounts()

	_, err := resolveThrough(t, src, 3, &impRecorder{})
	if err == nil || !strings.Contains(err.Error(), cfg.String()) || !strings.Contains(err.Error(), src.rootTagRef) {
		t.Fatalf("want an error naming the bundle and its config %s: %v", cfg, err)
	}
	if n := 100 - proxy.left(); n != 3 {
		t.Errorf("the config was read %d times, want the 3 attempts configured", n)
	}
}

// A bundle whose layer is whole and matches its digest, but holds a gzip
// stream cut short, fails the same way however often it is read: resolve
// reads it once and says so, rather than taking it for a dropped
// connection (io.ErrUnexpectedEOF either way) and retrying with backoff.
// A layer of up to bundle.MaxKeptLayerSize is read whole before it is
// decompressed; a larger one is streamed, and must be told apart all the
// same.
func TestResolveDoesNotRereadALayerTruncatedInside(t *testing.T) {
	for _, tc := range []struct {
		name string
		pad  int // bytes of incompressible file after images.yml
	}{
		{"kept layer", 0},
		{"streamed layer", 2 * bundle.MaxKeptLayerSize},
	} {
		t.Run(tc.name, func(t *testing.T) { resolveTruncatedLayer(t, tc.pad) })
	}
}

func resolveTruncatedLayer(t *testing.T, pad int) {
	reg := testregistry.NewGGCR(t)
	var tarball bytes.Buffer
	tw := tar.NewWriter(&tarball)
	lockYAML := []byte("apiVersion: imgpkg.carvel.dev/v1alpha1\nkind: ImagesLock\nimages: []\n")
	if err := tw.WriteHeader(&tar.Header{Name: ".imgpkg/images.yml", Mode: 0o644, Size: int64(len(lockYAML)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	tw.Write(lockYAML)
	if pad > 0 {
		noise := make([]byte, pad)
		rand.New(rand.NewSource(1)).Read(noise)
		if err := tw.WriteHeader(&tar.Header{Name: "noise.bin", Mode: 0o644, Size: int64(pad), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write(noise)
	}
	tw.Close()
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(tarball.Bytes())
	zw.Close()
	cut := gz.Bytes()[:gz.Len()*3/4]
	if kept := int64(len(cut)) <= bundle.MaxKeptLayerSize; kept != (pad == 0) {
		t.Fatalf("a layer of %d bytes: kept whole is %v, the test wants %v", len(cut), kept, pad == 0)
	}

	img := impMust(mutate.Append(empty.Image, mutate.Addendum{Layer: static.NewLayer(cut, types.DockerLayer)}))
	img = impMust(mutate.Config(img, v1.Config{Labels: map[string]string{bundle.LabelKey: "true"}}))
	ref := reg.Repo("src/cut") + ":v1"
	if err := remote.Write(impMust(name.NewTag(ref)), img, reg.RemoteOptions(t)...); err != nil {
		t.Fatal(err)
	}
	layer := impMust(img.Manifest()).Layers[0].Digest

	ctx := context.Background()
	opts := regopts.Options{RetryCount: 3, RetryBackoff: 10 * time.Millisecond}
	ropts := impMust(opts.RemoteOptions(ctx))
	client := registry.New(impMust(opts.ClientOptions()))
	rec := &impRecorder{}
	reg.ResetCounts()
	_, err := relocate.Resolve(ctx, relocate.Source{Bundle: ref}, relocate.Options{Remote: ropts, Client: client, Reporter: rec})
	if err == nil || !strings.Contains(err.Error(), "images.yml") || !strings.Contains(err.Error(), ref) || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("want an error about the damaged images.yml layer of %s: %v", ref, err)
	}
	// The registry records a request when its handler returns, which may
	// be a moment after the client has read the whole body and failed.
	n := 0
	for deadline := time.Now().Add(5 * time.Second); n == 0 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		n = 0
		for _, r := range reg.Requests() {
			if r.Method == "GET" && strings.HasSuffix(r.Path, "/blobs/"+layer.String()) {
				n++
			}
		}
	}
	if n != 1 {
		t.Errorf("the layer was fetched %d times, want once: its fault is in its bytes", n)
	}
	for _, l := range rec.logs {
		if strings.Contains(l, "reading it again") {
			t.Errorf("a content fault was retried: %s", l)
		}
	}
}
