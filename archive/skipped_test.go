package archive

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// indexSkipping returns fx's index.json with skipped as its
// AnnotationSkippedLayers, built by hand rather than by BuildIndex so that
// the Reader is tested against indexes ferry would not write.
func indexSkipping(t *testing.T, fx *fixture, skipped string) []byte {
	t.Helper()
	var idx map[string]any
	if err := json.Unmarshal(fx.index, &idx); err != nil {
		t.Fatal(err)
	}
	idx["annotations"].(map[string]any)[AnnotationSkippedLayers] = skipped
	return mustJSON(idx)
}

// TestSkippedOrdinaryLayerRefused is the review's reproduction: index.json
// lists an ordinary tar.gzip layer as skipped and the blob is absent. The
// Writer must refuse the head and the Reader and Verify the archive, naming
// the layer and the manifest that references it.
func TestSkippedOrdinaryLayerRefused(t *testing.T) {
	fx := newFixture(t, fixtureOptions{})
	// fx.blobs[1] is the root bundle's only layer, a Docker tar.gzip.
	layer := fx.blobs[1]
	if layer.mt != types.DockerLayer {
		t.Fatalf("fixture changed: blob 1 is %s", layer.mt)
	}
	wantParts := []string{layer.d.String(), "manifest " + fx.root.d.String(), "distributable"}

	t.Run("Writer", func(t *testing.T) {
		skipped := append(slices.Clone(fx.skipped), v1.Descriptor{MediaType: layer.mt, Size: int64(len(layer.b)), Digest: layer.d})
		index, err := BuildIndex(fx.entries, IndexOptions{CreatedBy: "ferry test", SkippedLayers: skipped})
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		w, err := NewWriter(&buf, WriterOptions{Concurrency: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		wantErr(t, w.WriteHeader(index, fx.manifests), wantParts...)
		if buf.Len() != 0 {
			t.Errorf("%d bytes written for a refused head", buf.Len())
		}
	})

	t.Run("Reader", func(t *testing.T) {
		es := fx.entries0()
		es[1].body = indexSkipping(t, fx, fx.foreign.d.String()+","+layer.d.String())
		es = removeName(es, "blobs/sha256/"+layer.d.Hex)
		plain := buildTar(t, es)
		wantErr(t, verifyErr(plain, ReaderOptions{}), append([]string{"index.json"}, wantParts...)...)
		_, err := Verify(context.Background(), bytes.NewReader(zstdBytes(t, plain)))
		wantErr(t, err, wantParts...)
		_, err = Inspect(bytes.NewReader(plain))
		wantErr(t, err, wantParts...)
	})

	t.Run("config", func(t *testing.T) {
		cfg := fx.blobs[0]
		es := fx.entries0()
		es[1].body = indexSkipping(t, fx, cfg.d.String()+","+fx.foreign.d.String())
		es = removeName(es, "blobs/sha256/"+cfg.d.Hex)
		wantErr(t, verifyErr(buildTar(t, es), ReaderOptions{}), cfg.d.String(), "manifest "+fx.root.d.String())
	})

	t.Run("referenced by nothing", func(t *testing.T) {
		stray := digestOf([]byte("stray"))
		es := fx.entries0()
		es[1].body = indexSkipping(t, fx, fx.foreign.d.String()+","+stray.String())
		wantErr(t, verifyErr(buildTar(t, es), ReaderOptions{}), stray.String(), "no manifest references")
		index, err := BuildIndex(fx.entries, IndexOptions{CreatedBy: "x", SkippedLayers: append(slices.Clone(fx.skipped), v1.Descriptor{Digest: stray})})
		if err != nil {
			t.Fatal(err)
		}
		w, err := NewWriter(&bytes.Buffer{}, WriterOptions{Concurrency: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		wantErr(t, w.WriteHeader(index, fx.manifests), stray.String(), "no manifest references")
	})
}

// TestSkippedLayerNamedTwice: one digest, foreign in one manifest and an
// ordinary layer in another. The second manifest's descriptor says the
// blob may be pulled from the registry, so it must be in the archive.
func TestSkippedLayerNamedTwice(t *testing.T) {
	fx := newFixture(t, fixtureOptions{})
	cfg := newBlob(types.DockerConfigJSON, []byte(`{"architecture":"arm64","os":"linux"}`))
	other := manifestJSON(types.DockerManifestSchema2, cfg, newBlob(types.DockerLayer, fx.foreign.b))
	entries := append(slices.Clone(fx.entries), Entry{Descriptor: desc(other), Role: RoleImage, OriginalRef: "registry.example/app/other@" + other.d.String()})
	manifests := clone(fx.manifests)
	manifests[other.d] = other.b
	index, err := BuildIndex(entries, IndexOptions{CreatedBy: "ferry test", SkippedLayers: fx.skipped})
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWriter(&bytes.Buffer{}, WriterOptions{Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	wantErr(t, w.WriteHeader(index, manifests), fx.foreign.d.String(), "manifest "+other.d.String(), string(types.DockerLayer))
}

// TestSkippedNonDistributableLayers: Docker foreign layers and every OCI
// non-distributable layer type may be left out, and the archive reads back
// without them.
func TestSkippedNonDistributableLayers(t *testing.T) {
	for _, mt := range []types.MediaType{
		types.DockerForeignLayer,
		types.OCIRestrictedLayer,
		types.OCIUncompressedRestrictedLayer,
		"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
	} {
		t.Run(string(mt), func(t *testing.T) {
			cfg := newBlob(types.OCIConfigJSON, []byte(`{"architecture":"amd64","os":"windows"}`))
			kept := newBlob(types.OCILayer, randomBytes(21, 900))
			left := newBlob(mt, randomBytes(22, 800))
			leftDesc := left.desc()
			leftDesc["urls"] = []string{"https://example.invalid/layer"}
			m := manifestJSON(types.OCIManifestSchema1, cfg, kept, leftDesc)
			entries := []Entry{{Descriptor: desc(m), Role: RoleImage, OriginalRef: "registry.example/win@" + m.d.String(), Tag: "v1"}}
			index, err := BuildIndex(entries, IndexOptions{CreatedBy: "ferry test", SkippedLayers: []v1.Descriptor{desc(left)}})
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			w, err := NewWriter(&buf, WriterOptions{Concurrency: 1})
			if err != nil {
				t.Fatal(err)
			}
			if err := w.WriteHeader(index, map[v1.Hash][]byte{m.d: m.b}); err != nil {
				t.Fatal(err)
			}
			for _, b := range []testBlob{cfg, kept} {
				if err := w.WriteBlob(b.d, int64(len(b.b)), bytes.NewReader(b.b)); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			head, blobs, err := readArchive(buf.Bytes(), ReaderOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(head.SkippedLayers, []v1.Hash{left.d}) || len(blobs) != 2 {
				t.Errorf("skipped %v, %d blobs read; want [%s], 2", head.SkippedLayers, len(blobs), left.d)
			}
		})
	}
}
