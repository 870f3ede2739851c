package archive

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/cespare/xxhash/v2"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
)

// genReader produces n pseudo-random bytes from seed without holding them,
// so a 256 MiB blob streams through the Writer with bounded memory.
type genReader struct {
	r *rand.PCG
	n int64
}

func newGenReader(seed uint64, n int64) *genReader {
	return &genReader{r: rand.NewPCG(seed, seed+1), n: n}
}

func (g *genReader) Read(p []byte) (int, error) {
	if g.n == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > g.n {
		p = p[:g.n]
	}
	p = p[:len(p)&^7]
	if len(p) == 0 {
		return 0, fmt.Errorf("genReader: read of under 8 bytes")
	}
	for i := 0; i < len(p); i += 8 {
		v := g.r.Uint64()
		p[i], p[i+1], p[i+2], p[i+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
		p[i+4], p[i+5], p[i+6], p[i+7] = byte(v>>32), byte(v>>40), byte(v>>48), byte(v>>56)
	}
	g.n -= int64(len(p))
	return len(p), nil
}

// oneBlobArchive is the head of an archive holding one image whose single
// layer is the given digest and size.
func oneBlobArchive(tb testing.TB, layer v1.Hash, size int64) ([]byte, map[v1.Hash][]byte, testBlob) {
	cfg := newBlob(types.DockerConfigJSON, []byte(`{"config":{}}`))
	m := manifestJSON(types.DockerManifestSchema2, cfg, map[string]any{
		"mediaType": string(types.DockerLayer), "size": size, "digest": layer.String(),
	})
	idx, err := BuildIndex([]Entry{{Descriptor: desc(m), Role: RoleImage, OriginalRef: "r.example/big@" + m.d.String()}},
		IndexOptions{CreatedBy: "bench"})
	if err != nil {
		tb.Fatal(err)
	}
	return idx, map[v1.Hash][]byte{m.d: m.b}, cfg
}

func maxRSSMB() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Maxrss) / 1024 // KiB on Linux
}

const bigBlob = 256 << 20

func bigBlobDigest(b *testing.B) v1.Hash {
	h := sha256.New()
	if _, err := io.CopyBuffer(h, newGenReader(42, bigBlob), make([]byte, 1<<20)); err != nil {
		b.Fatal(err)
	}
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}
}

// BenchmarkWriter streams a 256 MiB incompressible layer (what a gzip layer
// looks like to zstd) through the Writer at the default level. maxrss-MB is
// the process's peak: it stays far below the blob's size.
func BenchmarkWriter(b *testing.B) {
	d := bigBlobDigest(b)
	idx, ms, cfg := oneBlobArchive(b, d, bigBlob)
	b.SetBytes(bigBlob)
	b.ResetTimer()
	for range b.N {
		w, err := NewWriter(io.Discard, WriterOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if err := w.WriteHeader(idx, ms); err != nil {
			b.Fatal(err)
		}
		if err := w.WriteBlob(cfg.d, int64(len(cfg.b)), bytes.NewReader(cfg.b)); err != nil {
			b.Fatal(err)
		}
		if err := w.WriteBlob(d, bigBlob, newGenReader(42, bigBlob)); err != nil {
			b.Fatal(err)
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(maxRSSMB(), "maxrss-MB")
}

// bigArchiveFile writes the archive of oneBlobArchive, with the 256 MiB
// layer of digest d, to a file and returns its path.
func bigArchiveFile(b *testing.B, d v1.Hash) string {
	idx, ms, cfg := oneBlobArchive(b, d, bigBlob)
	path := filepath.Join(b.TempDir(), "a.tar.zst")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w, err := NewWriter(f, WriterOptions{})
	if err == nil {
		err = w.WriteHeader(idx, ms)
	}
	if err == nil {
		err = w.WriteBlob(cfg.d, int64(len(cfg.b)), bytes.NewReader(cfg.b))
	}
	if err == nil {
		err = w.WriteBlob(d, bigBlob, newGenReader(42, bigBlob))
	}
	if err == nil {
		err = w.Close()
	}
	if err != nil {
		b.Fatal(err)
	}
	f.Close()
	return path
}

// BenchmarkRange reads the 256 MiB layer of that archive, verified once,
// through VerifiedBlob.Range as ferry serve does, each frame checked
// before any of its bytes is given.
func BenchmarkRange(b *testing.B) {
	d := bigBlobDigest(b)
	path := bigArchiveFile(b, d)
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		b.Fatal(err)
	}
	af, err := OpenFile(f, fi.Size(), ReaderOptions{})
	if err != nil {
		b.Fatal(err)
	}
	vb, err := af.VerifyBlob(b.Context(), d)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(bigBlob)
	b.ResetTimer()
	for range b.N {
		rc, err := vb.Range(0, bigBlob)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.CopyBuffer(io.Discard, rc, make([]byte, 32<<10)); err != nil {
			b.Fatal(err)
		}
		rc.Close()
	}
	b.ReportMetric(maxRSSMB(), "maxrss-MB")
}

// BenchmarkReader reads that archive back from a file, verifying it.
func BenchmarkReader(b *testing.B) {
	d := bigBlobDigest(b)
	path := bigArchiveFile(b, d)
	b.SetBytes(bigBlob)
	b.ResetTimer()
	for range b.N {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		r, err := NewReader(f, ReaderOptions{})
		if err != nil {
			b.Fatal(err)
		}
		for {
			_, _, rd, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.Copy(io.Discard, rd); err != nil {
				b.Fatal(err)
			}
		}
		r.Close()
		f.Close()
	}
	b.ReportMetric(maxRSSMB(), "maxrss-MB")
}

var benchData = map[string]func(n int) []byte{
	"random": func(n int) []byte { return randomBytes(7, n) },
	"text":   func(n int) []byte { return textBytes(7, n) },
}

// countWriter counts what it is written.
type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// BenchmarkWriteLevels writes a 32 MiB layer at each level, random
// (incompressible) and text-like, reporting MB/s and ratio
// (archive/input).
func BenchmarkWriteLevels(b *testing.B) {
	const size = 32 << 20
	for _, kind := range []string{"random", "text"} {
		data := benchData[kind](size)
		d := digestOf(data)
		idx, ms, cfg := oneBlobArchive(b, d, size)
		for _, level := range []Level{Fastest, Default, Better, Best} {
			b.Run(kind+"/"+level.String(), func(b *testing.B) {
				b.SetBytes(size)
				var out countWriter
				for range b.N {
					out = countWriter{}
					w, err := NewWriter(&out, WriterOptions{Level: level})
					if err != nil {
						b.Fatal(err)
					}
					if err := w.WriteHeader(idx, ms); err != nil {
						b.Fatal(err)
					}
					if err := w.WriteBlob(cfg.d, int64(len(cfg.b)), bytes.NewReader(cfg.b)); err != nil {
						b.Fatal(err)
					}
					if err := w.WriteBlob(d, size, bytes.NewReader(data)); err != nil {
						b.Fatal(err)
					}
					if err := w.Close(); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(out.n)/size, "ratio")
			})
		}
	}
}

// cpuSeconds is the process's user and system time so far.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// BenchmarkCompressors is the measurement behind frameSize: klauspost's
// streaming encoder (one frame; c1 and c2 give identical bytes), its
// WithConcurrentBlocks mode (not deterministic across concurrency 1 and 2)
// and ferry's independent frames, on 128 MiB written in 32 KiB pieces as
// tar.Writer does. cpu-MB/s is throughput per CPU-second: on a shared
// machine it is steadier than MB/s, and MB/s over cpu-MB/s is the number
// of cores a candidate keeps busy.
func BenchmarkCompressors(b *testing.B) {
	const size = 128 << 20
	type mk func(w io.Writer, l Level) (io.WriteCloser, error)
	stream := func(c int, blocks bool) mk {
		return func(w io.Writer, l Level) (io.WriteCloser, error) {
			zl, _ := l.zstd()
			return zstd.NewWriter(w, zstd.WithEncoderLevel(zl), zstd.WithEncoderConcurrency(c), zstd.WithConcurrentBlocks(blocks))
		}
	}
	frames := func(c int) mk {
		return func(w io.Writer, l Level) (io.WriteCloser, error) { return newFrameWriter(w, l, c, frameSize) }
	}
	cands := []struct {
		name string
		mk   mk
	}{
		{"stream-c1", stream(1, false)},
		{"stream-c2", stream(2, false)},
		{"blocks-c2", stream(2, true)},
		{"frames-c1", frames(1)},
		{"frames-c2", frames(2)},
	}
	for _, kind := range []string{"random", "text"} {
		data := benchData[kind](size)
		for _, level := range []Level{Fastest, Default, Better, Best} {
			for _, c := range cands {
				b.Run(kind+"/"+level.String()+"/"+c.name, func(b *testing.B) {
					b.SetBytes(size)
					var out countWriter
					cpu0 := cpuSeconds()
					for range b.N {
						out = countWriter{}
						w, err := c.mk(&out, level)
						if err != nil {
							b.Fatal(err)
						}
						for off := 0; off < size; off += 32 << 10 {
							if _, err := w.Write(data[off : off+32<<10]); err != nil {
								b.Fatal(err)
							}
						}
						if err := w.Close(); err != nil {
							b.Fatal(err)
						}
					}
					b.ReportMetric(float64(out.n)/size, "ratio")
					b.ReportMetric(float64(b.N)*size/1e6/(cpuSeconds()-cpu0), "cpu-MB/s")
				})
			}
		}
	}
}

// BenchmarkSampling is what deciding a 4 MiB frame's fate costs
// (compressible), on random and text-like frames, beside the XXH64
// checksum a Raw frame needs and the level's compression that sampling
// spares random frames.
func BenchmarkSampling(b *testing.B) {
	sampler, err := newSampler(1)
	if err != nil {
		b.Fatal(err)
	}
	for _, kind := range []string{"random", "text"} {
		src := benchData[kind](frameSize)
		b.Run(kind+"/sample", func(b *testing.B) {
			b.SetBytes(frameSize)
			var scratch []byte
			for range b.N {
				_, scratch = compressible(sampler, src, scratch)
			}
		})
		b.Run(kind+"/xxh64", func(b *testing.B) {
			b.SetBytes(frameSize)
			for range b.N {
				xxhash.Sum64(src)
			}
		})
		for _, level := range []Level{Default, Best} {
			zl, _ := level.zstd()
			enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zl), zstd.WithEncoderConcurrency(1), zstd.WithEncoderCRC(true),
				zstd.WithWindowSize(windowFor(frameSize)), zstd.WithLowerEncoderMem(true))
			if err != nil {
				b.Fatal(err)
			}
			b.Run(kind+"/"+level.String(), func(b *testing.B) {
				b.SetBytes(frameSize)
				dst := make([]byte, 0, enc.MaxEncodedSize(frameSize))
				for range b.N {
					dst = enc.EncodeAll(src, dst[:0])
				}
			})
		}
	}
}
