package bundle

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/internal/testregistry"
)

func sha(b []byte) v1.Hash {
	s := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(s[:])}
}

// rawImage is an image whose manifest and config bytes are given as is,
// whatever they claim about each other.
type rawImage struct {
	manifest, config []byte
}

func (i rawImage) RawManifest() ([]byte, error)        { return i.manifest, nil }
func (i rawImage) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }
func (i rawImage) RawConfigFile() ([]byte, error)      { return i.config, nil }
func (i rawImage) LayerByDigest(v1.Hash) (partial.CompressedLayer, error) {
	return nil, fmt.Errorf("no layers")
}

// manifestFor is an OCI manifest whose config descriptor says size and
// digest d.
func manifestFor(d v1.Hash, size int64) []byte {
	b, _ := json.Marshal(v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1,
		Config: v1.Descriptor{MediaType: types.OCIConfigJSON, Digest: d, Size: size}, Layers: []v1.Descriptor{}})
	return b
}

// TestReadConfigRefusesAHugeDeclaredConfig (issue 13, item 2): a registry
// named by a lock declares a 2 GiB config. It is refused before it is
// fetched (go-containerregistry's ConfigFile buffers what is declared),
// naming the image and the declared size.
func TestReadConfigRefusesAHugeDeclaredConfig(t *testing.T) {
	reg := testregistry.NewGGCR(t)
	opts := reg.RemoteOptions(t)
	repo, err := name.NewRepository(reg.Repo("hostile/img"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := []byte(`{"architecture":"amd64","os":"linux"}`)
	if err := remote.WriteLayer(repo, static.NewLayer(cfg, types.OCIConfigJSON), opts...); err != nil {
		t.Fatal(err)
	}
	raw := manifestFor(sha(cfg), 2<<30)
	ref := repo.Digest(sha(raw).String())
	if err := remote.Put(ref, rawImage{manifest: raw}, opts...); err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(ref, opts...)
	if err != nil {
		t.Fatal(err)
	}
	reg.ResetCounts()
	_, err = ReadConfig(img, ref.String())
	if err == nil {
		t.Fatal("a config declaring 2 GiB was read")
	}
	for _, want := range []string{ref.String(), "declares 2147483648 bytes", fmt.Sprint(MaxConfigSize)} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if n := reg.Counts().Get(http.MethodGet, testregistry.KindBlob); n != 0 {
		t.Errorf("%d blob GETs: the config was fetched", n)
	}
	if _, err := IsBundleImage(img); err == nil {
		t.Error("IsBundleImage read the config")
	}
}

// TestReadConfigReadsNoMoreThanDeclared: a source that sends more bytes
// than the manifest declares, or other bytes, is refused after reading at
// most one byte past the declared size.
func TestReadConfigReadsNoMoreThanDeclared(t *testing.T) {
	cfg := []byte(`{"architecture":"amd64","os":"linux","config":{"Labels":{"dev.carvel.imgpkg.bundle":""}}}`)
	for _, tc := range []struct {
		name     string
		manifest []byte
		want     string
	}{
		{"longer than declared", manifestFor(sha(cfg), 10), "got more than 10 bytes"},
		{"other bytes", manifestFor(sha([]byte("x")), int64(len(cfg))), "content has digest " + sha(cfg).String()},
		{"negative size", manifestFor(sha(cfg), -1), "declares -1 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img, err := partial.CompressedToImage(rawImage{manifest: tc.manifest, config: cfg})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ReadConfig(img, "image x"); err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "image x: ") {
				t.Errorf("err = %v, want one naming image x and saying %q", err, tc.want)
			}
		})
	}
	img, err := partial.CompressedToImage(rawImage{manifest: manifestFor(sha(cfg), int64(len(cfg))), config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	got, err := ReadConfig(img, "image x")
	if err != nil || !IsBundle(got) || got.Architecture != "amd64" {
		t.Errorf("ReadConfig of a good config = %+v, %v", got, err)
	}
}
