package archive

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
)

// The fixtures below are built byte by byte here, and every digest a test
// expects is the sha256 of those bytes, never something the package under
// test computed.

func digestOf(b []byte) v1.Hash {
	s := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(s[:])}
}

type testBlob struct {
	d  v1.Hash
	mt types.MediaType
	b  []byte
}

func newBlob(mt types.MediaType, b []byte) testBlob { return testBlob{d: digestOf(b), mt: mt, b: b} }

func (b testBlob) desc() map[string]any {
	return map[string]any{"mediaType": string(b.mt), "size": len(b.b), "digest": b.d.String()}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// manifestJSON is an image manifest of media type mt.
func manifestJSON(mt types.MediaType, config testBlob, layers ...any) testBlob {
	ls := make([]any, 0, len(layers))
	for _, l := range layers {
		if b, ok := l.(testBlob); ok {
			ls = append(ls, b.desc())
		} else {
			ls = append(ls, l)
		}
	}
	return newBlob(mt, mustJSON(map[string]any{
		"schemaVersion": 2,
		"mediaType":     string(mt),
		"config":        config.desc(),
		"layers":        ls,
	}))
}

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for k := range 8 {
			b[i+k] = byte(v >> (8 * k))
		}
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

// textBytes is compressible, text-like data: words of a small vocabulary
// with a skewed distribution, about 3:1 for zstd.
func textBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 7))
	words := make([]string, 4000)
	for i := range words {
		w := make([]byte, 2+r.IntN(9))
		for j := range w {
			w[j] = byte('a' + r.IntN(26))
		}
		words[i] = string(w)
	}
	var buf bytes.Buffer
	buf.Grow(n + 16)
	for buf.Len() < n {
		f := r.Float64()
		buf.WriteString(words[int(float64(len(words))*f*f*f)])
		if r.IntN(12) == 0 {
			buf.WriteString(".\n")
		} else {
			buf.WriteByte(' ')
		}
	}
	return buf.Bytes()[:n]
}

// fixture is the content of one archive: a root bundle, a nested bundle, a
// Docker image with a non-distributable layer that is skipped, and an OCI
// index of two images; some blobs are shared.
type fixture struct {
	entries   []Entry
	manifests map[v1.Hash][]byte
	blobs     []testBlob // configs and layers, in write order
	skipped   []v1.Descriptor
	index     []byte

	root, nested, image, idx testBlob
	idxChildren              []testBlob
	foreign                  testBlob
}

type fixtureOptions struct {
	bigLayer int  // size of an extra layer of the image, 0 for none
	random   bool // the extra layer is random rather than text-like
	mixed    bool // the extra layer alternates random and text (mixedBytes)
}

func newFixture(t testing.TB, o fixtureOptions) *fixture {
	t.Helper()
	const (
		dockerCfg   = types.DockerConfigJSON
		dockerLayer = types.DockerLayer
		ociCfg      = types.OCIConfigJSON
		ociLayer    = types.OCILayer
	)
	fx := &fixture{manifests: map[v1.Hash][]byte{}}
	shared := newBlob(dockerLayer, []byte("shared layer bytes"))

	rootCfg := newBlob(dockerCfg, []byte(`{"config":{"Labels":{"dev.carvel.imgpkg.bundle":"true"}},"rootfs":{"type":"layers"}}`))
	rootLayer := newBlob(dockerLayer, randomBytes(1, 3000))
	fx.root = manifestJSON(types.DockerManifestSchema2, rootCfg, rootLayer)

	nestedCfg := newBlob(dockerCfg, []byte(`{"config":{"Labels":{"dev.carvel.imgpkg.bundle":"true"}},"nested":true}`))
	nestedLayer := newBlob(dockerLayer, randomBytes(2, 700))
	fx.nested = manifestJSON(types.DockerManifestSchema2, nestedCfg, nestedLayer, shared)

	imgCfg := newBlob(dockerCfg, []byte(`{"architecture":"amd64","os":"linux"}`))
	imgLayer := newBlob(dockerLayer, randomBytes(3, 200<<10))
	fx.foreign = newBlob(types.DockerForeignLayer, randomBytes(4, 512))
	foreignDesc := fx.foreign.desc()
	foreignDesc["urls"] = []string{"https://example.invalid/foreign.tar.gz"}
	layers := []any{imgLayer, shared, foreignDesc}
	var big testBlob
	if o.bigLayer > 0 {
		big = newBlob(dockerLayer, textBytes(5, o.bigLayer))
		if o.random {
			big = newBlob(dockerLayer, randomBytes(5, o.bigLayer))
		}
		if o.mixed {
			big = newBlob(dockerLayer, mixedBytes(5, o.bigLayer))
		}
		layers = append(layers, big)
	}
	fx.image = manifestJSON(types.DockerManifestSchema2, imgCfg, layers...)

	// An OCI index whose children (some, at least) sort before it by
	// digest, so that the Reader must hold them until it reads the index.
	var children []testBlob
	var ociBlobs []testBlob
	for i := range 3 {
		cfg := newBlob(ociCfg, []byte(fmt.Sprintf(`{"architecture":"arch%d","os":"linux"}`, i)))
		l := newBlob(ociLayer, randomBytes(uint64(10+i), 1000+i))
		children = append(children, manifestJSON(types.OCIManifestSchema1, cfg, l))
		ociBlobs = append(ociBlobs, cfg, l)
	}
	for salt := 0; ; salt++ {
		ms := make([]any, 0, len(children))
		for i, c := range children {
			d := c.desc()
			d["platform"] = map[string]string{"architecture": fmt.Sprintf("arch%d", i), "os": "linux"}
			ms = append(ms, d)
		}
		fx.idx = newBlob(types.OCIImageIndex, mustJSON(map[string]any{
			"schemaVersion": 2,
			"mediaType":     string(types.OCIImageIndex),
			"manifests":     ms,
			"annotations":   map[string]string{"salt": fmt.Sprint(salt)},
		}))
		before, after := 0, 0
		for _, c := range children {
			if c.d.String() < fx.idx.d.String() {
				before++
			} else {
				after++
			}
		}
		if before > 0 && after > 0 {
			break
		}
	}
	fx.idxChildren = children

	for _, m := range append([]testBlob{fx.root, fx.nested, fx.image, fx.idx}, children...) {
		fx.manifests[m.d] = m.b
	}
	fx.blobs = []testBlob{rootCfg, rootLayer, nestedCfg, nestedLayer, shared, imgCfg, imgLayer}
	if o.bigLayer > 0 {
		fx.blobs = append(fx.blobs, big)
	}
	fx.blobs = append(fx.blobs, ociBlobs...)
	fx.skipped = []v1.Descriptor{{MediaType: fx.foreign.mt, Size: int64(len(fx.foreign.b)), Digest: fx.foreign.d}}
	fx.entries = []Entry{
		{Descriptor: desc(fx.image), Role: RoleImage, OriginalRef: "registry.example/app/image@" + fx.image.d.String()},
		{Descriptor: desc(fx.idx), Role: RoleImage, OriginalRef: "registry.example/app/multi@" + fx.idx.d.String()},
		{Descriptor: desc(fx.nested), Role: RoleNestedBundle, OriginalRef: "registry.example/app/nested@" + fx.nested.d.String()},
		{Descriptor: desc(fx.root), Role: RoleBundle, OriginalRef: "registry.example/app/bundle:v1", Tag: "v1"},
	}
	idx, err := BuildIndex(fx.entries, IndexOptions{CreatedBy: "ferry test", SkippedLayers: fx.skipped})
	if err != nil {
		t.Fatal(err)
	}
	fx.index = idx
	return fx
}

func desc(b testBlob) v1.Descriptor {
	return v1.Descriptor{MediaType: b.mt, Size: int64(len(b.b)), Digest: b.d}
}

// write writes the fixture with opts; each blob is read through r (nil:
// as a bytes.Reader).
func (fx *fixture) write(t testing.TB, opts WriterOptions, wrap func(io.Reader) io.Reader) []byte {
	t.Helper()
	return fx.writeFrames(t, opts, frameSize, wrap)
}

// writeFrames is write with frames of size bytes, so that tests see many
// frames without compressing many megabytes.
func (fx *fixture) writeFrames(t testing.TB, opts WriterOptions, size int, wrap func(io.Reader) io.Reader) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := newWriter(&buf, opts, size)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteHeader(fx.index, fx.manifests); err != nil {
		t.Fatal(err)
	}
	for _, b := range fx.blobs {
		var r io.Reader = bytes.NewReader(b.b)
		if wrap != nil {
			r = wrap(r)
		}
		if err := w.WriteBlob(b.d, int64(len(b.b)), r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// tarEntry is one entry of a hand-built tar.
type tarEntry struct {
	name string
	body []byte
	typ  byte
	link string
}

// entries returns the tar entries a correct archive of the fixture holds,
// in order, for tests to damage.
func (fx *fixture) entries0() []tarEntry {
	es := []tarEntry{
		{name: "oci-layout", body: []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{name: "index.json", body: fx.index},
	}
	var ms []v1.Hash
	for d := range fx.manifests {
		ms = append(ms, d)
	}
	slices.SortFunc(ms, func(a, b v1.Hash) int { return strings.Compare(a.Hex, b.Hex) })
	for _, d := range ms {
		es = append(es, tarEntry{name: "blobs/sha256/" + d.Hex, body: fx.manifests[d]})
	}
	for _, b := range fx.blobs {
		es = append(es, tarEntry{name: "blobs/sha256/" + b.d.Hex, body: b.b})
	}
	return es
}

func buildTar(t testing.TB, es []tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range es {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		h := &tar.Header{Name: e.name, Typeflag: typ, Linkname: e.link, Mode: 0o644, ModTime: time.Unix(0, 0)}
		if typ == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if typ == tar.TypeReg {
			if _, err := tw.Write(e.body); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func zstdBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	return enc.EncodeAll(b, nil)
}

func gzipBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	gw := gzip.NewWriter(&buf)
	gw.Write(b)
	if err := gw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func unzstd(t testing.TB, b []byte) []byte {
	t.Helper()
	dec, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	out, err := dec.DecodeAll(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// readArchive reads a whole archive with NewReader and Next, returning
// the blobs in archive order.
func readArchive(data []byte, opts ReaderOptions) (*Head, []testBlob, error) {
	r, err := NewReader(bytes.NewReader(data), opts)
	if err != nil {
		return nil, nil, err
	}
	defer r.Close()
	var out []testBlob
	for {
		d, size, rd, err := r.Next()
		if errors.Is(err, io.EOF) {
			return r.Head(), out, nil
		}
		if err != nil {
			return r.Head(), out, err
		}
		b, err := io.ReadAll(rd)
		if err != nil {
			return r.Head(), out, err
		}
		if int64(len(b)) != size {
			return r.Head(), out, fmt.Errorf("blob %s: read %d bytes, Next said %d", d, len(b), size)
		}
		out = append(out, testBlob{d: d, b: b})
	}
}
