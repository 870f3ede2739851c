package relocate_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/fixtures"
	"github.com/ferry-dev/ferry/fixtures/golden"
	"github.com/ferry-dev/ferry/relocate"
)

// FuzzVerify reads any bytes as an archive with verify, which applies
// every rule an import does before it writes (issue 13): it answers, an
// error or a result, and never panics. The seeds are the golden imgpkg
// tarball and the same images as a ferry archive (zstd, and plain tar),
// each also without the image its bundle locks (item 1's shape: a bundle
// whose images.yml names an image index.json does not list), which verify
// must refuse.
func FuzzVerify(f *testing.F) {
	gold, err := golden.ReadFile("basic.imgpkg.tar")
	if err != nil {
		f.Fatal(err)
	}
	noApp1, err := fixtures.DropImgpkgImage(gold, golden.App1)
	if err != nil {
		f.Fatal(err)
	}
	p, err := relocate.PlanArchive(bytes.NewReader(gold))
	if err != nil {
		f.Fatal(err)
	}
	var zst bytes.Buffer
	if _, err := relocate.Export(context.Background(), p, &zst, relocate.ExportOptions{}); err != nil {
		f.Fatal(err)
	}
	plain := impZstdToTar(f, zst.Bytes())
	plainNoApp1 := dropEntry(f, plain, golden.App1)
	for _, seed := range [][]byte{gold, noApp1, zst.Bytes(), plain, plainNoApp1} {
		f.Add(seed)
	}
	// The seeds without app1 are refused, naming it: the target's seeds
	// have the shape they are meant to have.
	for _, bad := range [][]byte{noApp1, plainNoApp1} {
		if _, err := verifyBytes(f, bad); err == nil || !strings.Contains(err.Error(), golden.App1) {
			f.Fatalf("verify of an archive without app1: %v, want a refusal naming %s", err, golden.App1)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := verifyBytes(t, data)
		if err == nil && (res == nil || !res.Verified) {
			t.Fatalf("verify returned no error and no verified result: %+v", res)
		}
	})
}

// verifyBytes writes data to a file and verifies it.
func verifyBytes(t testing.TB, data []byte) (*relocate.VerifyResult, error) {
	path := filepath.Join(t.TempDir(), "a.tar")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return relocate.VerifyFile(context.Background(), path, relocate.VerifyOptions{})
}

// dropEntry rewrites a plain tar ferry archive without the index.json
// entry of the image whose manifest has digest d, and without that
// manifest, its config and layers.
func dropEntry(t testing.TB, plain []byte, d string) []byte {
	h, err := v1.NewHash(d)
	if err != nil {
		t.Fatal(err)
	}
	var m v1.Manifest
	var found bool
	rewriteTar(t, plain, func(name string, body []byte) ([]byte, bool) {
		if name == "blobs/sha256/"+h.Hex {
			found = json.Unmarshal(body, &m) == nil
		}
		return body, true
	})
	if !found {
		t.Fatalf("manifest %s is not in the archive", d)
	}
	drop := map[string]bool{"blobs/sha256/" + h.Hex: true, "blobs/sha256/" + m.Config.Digest.Hex: true}
	for _, l := range m.Layers {
		drop["blobs/sha256/"+l.Digest.Hex] = true
	}
	return rewriteTar(t, plain, func(name string, body []byte) ([]byte, bool) {
		if drop[name] {
			return nil, false
		}
		if name == "index.json" {
			var idx v1.IndexManifest
			if err := json.Unmarshal(body, &idx); err != nil {
				t.Fatal(err)
			}
			idx.Manifests = slices.DeleteFunc(idx.Manifests, func(e v1.Descriptor) bool { return e.Digest == h })
			b, err := json.Marshal(idx)
			if err != nil {
				t.Fatal(err)
			}
			body = b
		}
		return body, true
	})
}
