package relocate

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/archive"
)

// TestCommitOrderPutsEveryChildFirstHoweverDeep: a chain of 200 nested
// indexes (deeper than any real one, as a hostile archive may make it) is
// committed innermost first, so that a registry, which refuses an index
// whose children are missing, takes every PUT.
func TestCommitOrderPutsEveryChildFirstHoweverDeep(t *testing.T) {
	manifests := map[v1.Hash][]byte{}
	put := func(v any) v1.Descriptor {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		d := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
		manifests[d] = b
		return v1.Descriptor{Digest: d, Size: int64(len(b))}
	}
	cfg := v1.Descriptor{MediaType: types.OCIConfigJSON, Size: 2, Digest: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(make([]byte, 32))}}
	inner := put(v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, Config: cfg})
	inner.MediaType = types.OCIManifestSchema1
	chain := []v1.Hash{inner.Digest}
	cur := inner
	for range 200 {
		cur = put(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{cur}})
		cur.MediaType = types.OCIImageIndex
		chain = append(chain, cur.Digest)
	}
	entries := []archive.Entry{{Descriptor: cur, Role: archive.RoleImage, OriginalRef: "example.com/deep@" + cur.Digest.String()}}
	h, err := newImportHead(entries, nil, func(d v1.Hash) ([]byte, bool) {
		b, ok := manifests[d]
		return b, ok
	})
	if err != nil {
		t.Fatal(err)
	}
	group := map[v1.Hash]int{}
	for i, g := range h.commit {
		for _, d := range g {
			group[d] = i
		}
	}
	for i := 1; i < len(chain); i++ {
		if group[chain[i-1]] >= group[chain[i]] {
			t.Fatalf("level %d is committed in group %d, its child in group %d: not children first", i, group[chain[i]], group[chain[i-1]])
		}
	}
}
