package archive

import (
	"bytes"
	"io"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// tinyArchive is a small valid archive, a seed the fuzzer can mutate
// quickly: one bundle whose index child sorts before it or not.
func tinyArchive(t testing.TB) []byte {
	cfg := newBlob(types.DockerConfigJSON, []byte(`{"config":{}}`))
	layer := newBlob(types.DockerLayer, []byte("layer"))
	m := manifestJSON(types.DockerManifestSchema2, cfg, layer)
	idx, err := BuildIndex([]Entry{{Descriptor: desc(m), Role: RoleBundle, OriginalRef: "r.example/b:v1", Tag: "v1"}},
		IndexOptions{CreatedBy: "fuzz"})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, err := NewWriter(&buf, WriterOptions{Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteHeader(idx, map[v1.Hash][]byte{m.d: m.b}); err != nil {
		t.Fatal(err)
	}
	for _, b := range []testBlob{cfg, layer} {
		if err := w.WriteBlob(b.d, int64(len(b.b)), bytes.NewReader(b.b)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// FuzzReader feeds the Reader arbitrary input: it must return errors, not
// panic or hang, and whatever it returns without error must match its
// digest and size.
func FuzzReader(f *testing.F) {
	zst := tinyArchive(f)
	plain := unzstd(f, zst)
	f.Add(zst)
	f.Add(plain)
	f.Add(gzipBytes(f, plain))
	f.Add(zst[:len(zst)/2])
	f.Add(plain[:len(plain)-1024])
	flipped := bytes.Clone(plain)
	flipped[len(flipped)/2] ^= 1
	f.Add(flipped)
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := NewReader(bytes.NewReader(data), ReaderOptions{
			MaxWindow:       1 << 20,
			MaxManifestSize: 64 << 10,
			MaxHeadSize:     256 << 10,
			Concurrency:     1,
		})
		if err != nil {
			return
		}
		defer r.Close()
		for _, e := range r.Entries() {
			if _, ok := r.Manifest(e.Descriptor.Digest); !ok {
				t.Fatalf("entry %s has no manifest", e.Descriptor.Digest)
			}
		}
		for d, b := range r.Head().Manifests {
			if digestOf(b) != d {
				t.Fatalf("manifest %s has digest %s", d, digestOf(b))
			}
		}
		for range 1000 {
			d, size, rd, err := r.Next()
			if err != nil {
				return
			}
			b, err := io.ReadAll(io.LimitReader(rd, 1<<20))
			if err != nil {
				continue // Next returns the error again
			}
			if int64(len(b)) == size && digestOf(b) != d {
				t.Fatalf("blob %s read without error has digest %s", d, digestOf(b))
			}
		}
		t.Fatal("more than 1000 blobs from a fuzz input")
	})
}
