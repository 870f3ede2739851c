package relocate

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferry-dev/ferry/fixtures"
	"github.com/ferry-dev/ferry/internal/bundle"
	"github.com/ferry-dev/ferry/internal/testregistry"
)

// benchBundle pushes a bundle locking images×layers generated layers of
// layerSize bytes to ep and returns the bundle's tag reference.
func benchBundle(b *testing.B, ep *testregistry.Endpoint, images, layers int, layerSize int64) string {
	b.Helper()
	opts := ep.RemoteOptions(b)
	var refs []string
	for i := range images {
		img, err := fixtures.Image(uint64(1000*i+1), layers, layerSize)
		if err != nil {
			b.Fatal(err)
		}
		d, err := img.Digest()
		if err != nil {
			b.Fatal(err)
		}
		ref, err := name.NewDigest(fmt.Sprintf("%s@%s", ep.Repo(fmt.Sprintf("img%d", i)), d))
		if err != nil {
			b.Fatal(err)
		}
		if err := remote.Write(ref, img, opts...); err != nil {
			b.Fatal(err)
		}
		refs = append(refs, ref.String())
	}
	dir := filepath.Join(b.TempDir(), "bundle")
	if err := fixtures.WriteBundleDir(dir, refs); err != nil {
		b.Fatal(err)
	}
	bimg, err := bundle.Build(context.Background(), []string{dir}, bundle.BuildOptions{Bundle: true})
	if err != nil {
		b.Fatal(err)
	}
	defer bimg.Close()
	tag := ep.Repo("bundle") + ":bench"
	if err := remote.Write(must(name.NewTag(tag)), bimg, opts...); err != nil {
		b.Fatal(err)
	}
	return tag
}

// BenchmarkExport exports a bundle of 8 images × 4 layers × 1 MiB from an
// in-process registry to io.Discard and reports MB/s of content moved, at
// several concurrencies, with the registry on loopback and behind a proxy
// that adds 10ms to every blob request (a registry across a network).
func BenchmarkExport(b *testing.B) {
	reg := testregistry.NewGGCR(b, testregistry.WithFilesystem(b.TempDir()))
	slow := testregistry.NewFaultProxy(b, reg, testregistry.Rule{
		Method: "GET",
		Kind:   testregistry.KindBlob,
		Fault:  testregistry.FaultStall,
		Delay:  10 * time.Millisecond,
	})
	for _, ep := range []struct {
		name string
		ep   *testregistry.Endpoint
	}{{"loopback", &reg.Endpoint}, {"latency=10ms", &slow.Endpoint}} {
		tag := benchBundle(b, ep.ep, 8, 4, 1<<20)
		opts := ep.ep.RemoteOptions(b)
		p, err := Resolve(context.Background(), Source{Bundle: tag}, Options{Remote: opts})
		if err != nil {
			b.Fatal(err)
		}
		for _, c := range []int{1, 4, 8, 16} {
			b.Run(fmt.Sprintf("%s/concurrency=%d", ep.name, c), func(b *testing.B) {
				b.SetBytes(p.TotalBytes)
				for b.Loop() {
					if _, err := Export(context.Background(), p, io.Discard, ExportOptions{Remote: opts, Concurrency: c}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
