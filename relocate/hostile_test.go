package relocate_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/relocate"
)

// Registries and archives shaped by an attacker (issue 13).

// rawManifest is a manifest pushed exactly as written.
type rawManifest struct {
	raw []byte
	mt  types.MediaType
}

func (m rawManifest) RawManifest() ([]byte, error)        { return m.raw, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return m.mt, nil }

// pushRawImage pushes config as a blob and an OCI manifest over it whose
// layers are layers (which need not exist), and returns repo@digest.
func pushRawImage(t *testing.T, opts []remote.Option, repo name.Repository, config []byte, layers ...v1.Descriptor) name.Digest {
	t.Helper()
	cl := static.NewLayer(config, types.OCIConfigJSON)
	if err := remote.WriteLayer(repo, cl, opts...); err != nil {
		t.Fatal(err)
	}
	m := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1,
		Config: v1.Descriptor{MediaType: types.OCIConfigJSON, Size: int64(len(config)), Digest: impMust(cl.Digest())},
		Layers: layers}
	if m.Layers == nil {
		m.Layers = []v1.Descriptor{}
	}
	raw := impMust(json.Marshal(m))
	d, _, err := v1.SHA256(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	ref := repo.Digest(d.String())
	if err := remote.Put(ref, rawManifest{raw: raw, mt: types.OCIManifestSchema1}, opts...); err != nil {
		t.Fatal(err)
	}
	return ref
}

// TestCopyRefusesSizesThatOverflow (item 9): a registry's manifest whose
// layers claim 2^62 bytes each makes the copy's totals overflow; the copy
// refuses before anything is sent, naming the blob and its manifest.
func TestCopyRefusesSizesThatOverflow(t *testing.T) {
	src := impNewSource(t, 0)
	repo := impMust(name.NewRepository(src.ep.Repo("src/huge")))
	fake := func(c byte) v1.Descriptor {
		return v1.Descriptor{MediaType: types.OCILayer, Size: 1<<62 + 1, Digest: v1.Hash{Algorithm: "sha256", Hex: strings.Repeat(string(c), 64)}}
	}
	ref := pushRawImage(t, src.opts, repo, []byte(`{"architecture":"amd64","os":"linux"}`), fake('a'), fake('b'))
	p, err := relocate.Resolve(context.Background(), relocate.Source{Image: ref.String()}, relocate.Options{Remote: src.opts})
	if err != nil {
		t.Fatalf("resolve %s: %v", ref, err)
	}
	dst := impNewDest(t, false)
	for _, dry := range []bool{true, false} {
		opts := cpOptions(t, dst)
		opts.DryRun = dry
		res, err := relocate.Copy(context.Background(), p, dst.repo, opts)
		if err == nil {
			t.Fatalf("copy (dry run %v) accepted layers whose sizes overflow: %d bytes to upload", dry, res.BytesUploaded)
		}
		if !strings.Contains(err.Error(), "manifest "+ref.DigestStr()) || !strings.Contains(err.Error(), fmt.Sprint(int64(1<<62+1))) {
			t.Errorf("error %q does not name the manifest and the size", err)
		}
	}
	if tags := dst.tags(t); len(tags) != 0 {
		t.Errorf("destination tagged: %v", tags)
	}
}
