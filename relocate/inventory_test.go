package relocate

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/archive"
)

func hashOf(b []byte) v1.Hash {
	s := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(s[:])}
}

// TestInspectIsLinearInRepeatedIndexChildren: three nested indexes, each
// listing its child 2000 times, must not take 2000³ steps.
func TestInspectIsLinearInRepeatedIndexChildren(t *testing.T) {
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	layer := []byte("layer")
	img, _ := json.Marshal(v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1,
		Config: v1.Descriptor{MediaType: types.OCIConfigJSON, Digest: hashOf(cfg), Size: int64(len(cfg))},
		Layers: []v1.Descriptor{{MediaType: types.OCIUncompressedLayer, Digest: hashOf(layer), Size: int64(len(layer))}}})
	manifests := map[v1.Hash][]byte{hashOf(img): img}
	child := v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: hashOf(img), Size: int64(len(img))}
	for level := 0; level < 3; level++ {
		idx := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex}
		for i := 0; i < 2000; i++ {
			idx.Manifests = append(idx.Manifests, child)
		}
		raw, _ := json.Marshal(idx)
		manifests[hashOf(raw)] = raw
		child = v1.Descriptor{MediaType: types.OCIImageIndex, Digest: hashOf(raw), Size: int64(len(raw))}
	}
	index, err := archive.BuildIndex([]archive.Entry{{Descriptor: child, Role: archive.RoleImage, OriginalRef: "127.0.0.1:5000/x@" + child.Digest.String()}}, archive.IndexOptions{CreatedBy: "test"})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, err := archive.NewWriter(&buf, archive.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteHeader(index, manifests); err != nil {
		t.Fatal(err)
	}
	w.WriteBlob(hashOf(cfg), int64(len(cfg)), bytes.NewReader(cfg))
	w.WriteBlob(hashOf(layer), int64(len(layer)), bytes.NewReader(layer))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	done := make(chan error, 1)
	go func() {
		_, err := Inspect(bytes.NewReader(buf.Bytes()))
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("inspect did not finish: it walks repeated index children again and again")
	}
}
