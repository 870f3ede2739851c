package archive

import (
	"bytes"
	"strconv"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// A head whose index.json declares an index for what is an image manifest
// without a mediaType field (optional in OCI) would have the image read as
// an index of nothing, and its config and layers never asked for: the
// archive would pass as whole without them. Writer and Reader refuse it,
// naming the manifest.
func TestHeadRefusesAnImageDeclaredAnIndex(t *testing.T) {
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	raw := []byte(`{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":` +
		strconv.Itoa(len(cfg)) + `,"digest":"` + digestOf(cfg).String() + `"},"layers":[]}`)
	d := digestOf(raw)
	for _, mt := range []types.MediaType{types.OCIImageIndex, types.DockerManifestList} {
		index, err := BuildIndex([]Entry{{
			Descriptor:  v1.Descriptor{MediaType: mt, Size: int64(len(raw)), Digest: d},
			Role:        RoleImage,
			OriginalRef: "127.0.0.1:5000/apps/x@" + d.String(),
		}}, IndexOptions{CreatedBy: "ferry tests"})
		if err != nil {
			t.Fatal(err)
		}
		manifests := map[v1.Hash][]byte{d: raw}
		w, err := NewWriter(&bytes.Buffer{}, WriterOptions{Concurrency: 1})
		if err != nil {
			t.Fatal(err)
		}
		wantErr(t, w.WriteHeader(index, manifests), d.String(), "it is an image manifest")
		w.Close()

		// Built by hand, as an attacker would: the Reader refuses it too.
		data := zstdBytes(t, buildTar(t, []tarEntry{
			{name: "oci-layout", body: []byte(`{"imageLayoutVersion":"1.0.0"}`)},
			{name: "index.json", body: index},
			{name: "blobs/sha256/" + d.Hex, body: raw},
		}))
		wantErr(t, verifyErr(data, ReaderOptions{}), d.String(), "it is an image manifest")
	}
}
