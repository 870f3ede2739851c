package relocate

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferry-dev/ferry/fixtures"
	"github.com/ferry-dev/ferry/internal/bundle"
	"github.com/ferry-dev/ferry/internal/testregistry"
)

// importBenchArchive exports a bundle locking images × layers generated
// layers of layerSize random bytes, and returns the archive and the bytes
// of its blobs.
func importBenchArchive(b *testing.B, images, layers int, layerSize int64) ([]byte, int64) {
	b.Helper()
	ctx := context.Background()
	src := testregistry.NewGGCR(b)
	opts := src.RemoteOptions(b)
	var refs []string
	for i := 0; i < images; i++ {
		img, err := fixtures.Image(uint64(i*layers+1), layers, layerSize)
		if err != nil {
			b.Fatal(err)
		}
		d, err := img.Digest()
		if err != nil {
			b.Fatal(err)
		}
		ref, err := name.NewDigest(src.Repo(fmt.Sprintf("bench/app%d", i)) + "@" + d.String())
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
	bimg, err := bundle.Build(ctx, []string{dir}, bundle.BuildOptions{Bundle: true})
	if err != nil {
		b.Fatal(err)
	}
	defer bimg.Close()
	tag, err := name.NewTag(src.Repo("bench/bundle") + ":v1")
	if err != nil {
		b.Fatal(err)
	}
	if err := remote.Write(tag, bimg, opts...); err != nil {
		b.Fatal(err)
	}
	p, err := Resolve(ctx, Source{Bundle: tag.String()}, Options{Remote: opts})
	if err != nil {
		b.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := Export(ctx, p, &buf, ExportOptions{Remote: opts, CreatedBy: "bench"}); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes(), p.TotalBytes
}

// BenchmarkImport measures a first import into an empty distribution
// registry (in memory, on loopback) for several upload concurrencies and
// spool sizes, and a re-import where every blob is present. Run with
// -benchtime=3x; each iteration starts a fresh registry.
func BenchmarkImport(b *testing.B) {
	arch, total := importBenchArchive(b, 16, 4, 2<<20)
	ctx := context.Background()
	type config struct {
		conc, slots int
		latency     time.Duration
	}
	var configs []config
	for _, lat := range []time.Duration{0, 10 * time.Millisecond} {
		for _, c := range []struct{ conc, slots int }{{1, 1}, {1, 2}, {2, 3}, {4, 5}, {4, 8}, {8, 9}, {16, 17}} {
			configs = append(configs, config{c.conc, c.slots, lat})
		}
	}
	for _, c := range configs {
		b.Run(fmt.Sprintf("first/latency=%s/conc=%d/spool=%d", c.latency, c.conc, c.slots), func(b *testing.B) {
			b.SetBytes(total)
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				dst := testregistry.NewDistribution(b)
				ep := &dst.Endpoint
				if c.latency > 0 {
					// Every request waits, as over a network with that
					// round-trip time.
					ep = &testregistry.NewFaultProxy(b, dst, testregistry.Rule{Fault: testregistry.FaultStall, Delay: c.latency}).Endpoint
				}
				repo, err := name.NewRepository(ep.Repo("bench/imported"))
				if err != nil {
					b.Fatal(err)
				}
				opts := ImportOptions{DestinationOptions: DestinationOptions{Remote: ep.RemoteOptions(b), Concurrency: c.conc}, spoolSlots: c.slots, SpoolDir: b.TempDir()}
				b.StartTimer()
				if _, err := Import(ctx, bytes.NewReader(arch), repo, opts); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				dst.Close()
				b.StartTimer()
			}
		})
	}
	b.Run("again", func(b *testing.B) {
		dst := testregistry.NewDistribution(b)
		repo, err := name.NewRepository(dst.Repo("bench/imported"))
		if err != nil {
			b.Fatal(err)
		}
		opts := ImportOptions{DestinationOptions: DestinationOptions{Remote: dst.RemoteOptions(b)}, SpoolDir: b.TempDir()}
		if _, err := Import(ctx, bytes.NewReader(arch), repo, opts); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(total)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := Import(ctx, bytes.NewReader(arch), repo, opts); err != nil {
				b.Fatal(err)
			}
		}
	})
}
