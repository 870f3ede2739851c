package inventory_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/internal/inventory"
)

func hash(c string) v1.Hash { return v1.Hash{Algorithm: "sha256", Hex: strings.Repeat(c, 64)} }

func TestRoundTripAndBlobs(t *testing.T) {
	doc := &inventory.Document{
		MediaType: inventory.MediaType, FormatVersion: 1, CreatedBy: "ferry test",
		Created: time.Date(2026, 11, 29, 16, 0, 0, 0, time.UTC),
		Repositories: []inventory.Repository{
			{Registry: "reg.example:5000", Repository: "mirror/app", Tags: 2,
				Manifests: []inventory.Item{{Digest: hash("e"), Size: 400}},
				Blobs:     []inventory.Item{{Digest: hash("b"), Size: 20}, {Digest: hash("a"), Size: 10}}},
			{Registry: "reg.example:5000", Repository: "mirror/base",
				Blobs: []inventory.Item{{Digest: hash("a"), Size: 10}, {Digest: hash("c"), Size: 30}}},
		},
	}
	path := filepath.Join(t.TempDir(), "have.json")
	if err := doc.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !inventory.Sniff(raw) || inventory.Sniff([]byte{0x28, 0xb5, 0x2f, 0xfd}) {
		t.Error("Sniff does not tell an inventory from an archive")
	}
	// Lists are sorted, so the same holdings give the same bytes.
	if i, j := strings.Index(string(raw), hash("a").Hex), strings.Index(string(raw), hash("b").Hex); i < 0 || j < i {
		t.Error("blobs are not sorted by digest")
	}
	got, err := inventory.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	blobs := got.Blobs()
	if len(blobs) != 3 || blobs[hash("a")].Repository != "reg.example:5000/mirror/app" || blobs[hash("c")].Repository != "reg.example:5000/mirror/base" {
		t.Errorf("Blobs = %v; want a (first held by mirror/app), b and c", blobs)
	}
}

func TestParseRefuses(t *testing.T) {
	// A document followed by white space alone is one document.
	if _, err := inventory.Parse([]byte(`{"mediaType":"`+inventory.MediaType+`","formatVersion":1}`+"\n\n"), "have.json"); err != nil {
		t.Errorf("a document and a blank line: %v", err)
	}
	for name, doc := range map[string]string{
		"media type":  `{"mediaType":"application/json","formatVersion":1}`,
		"newer":       `{"mediaType":"` + inventory.MediaType + `","formatVersion":9}`,
		"no registry": `{"mediaType":"` + inventory.MediaType + `","formatVersion":1,"repositories":[{"repository":"x"}]}`,
		"bad digest":  `{"mediaType":"` + inventory.MediaType + `","formatVersion":1,"repositories":[{"registry":"r","repository":"x","blobs":[{"digest":"md5:abc","size":1}]}]}`,
		"negative":    `{"mediaType":"` + inventory.MediaType + `","formatVersion":1,"repositories":[{"registry":"r","repository":"x","blobs":[{"digest":"sha256:` + strings.Repeat("a", 64) + `","size":-1}]}]}`,
		"not json":    `release notes`,
		// Two inventories joined with cat: the second would be dropped.
		"two documents": `{"mediaType":"` + inventory.MediaType + `","formatVersion":1}` + "\n" + `{"mediaType":"` + inventory.MediaType + `","formatVersion":1}`,
		"trailing text": `{"mediaType":"` + inventory.MediaType + `","formatVersion":1} garbage`,
	} {
		if _, err := inventory.Parse([]byte(doc), "have.json"); err == nil || !strings.Contains(err.Error(), "have.json") {
			t.Errorf("%s: %v, want an error naming the file", name, err)
		}
	}
}

// TestEmptyListsAreWrittenAsLists: a repository that is empty or does not
// exist holds no manifests and no blobs, which docs/inventory.md gives as
// lists: [], never null.
func TestEmptyListsAreWrittenAsLists(t *testing.T) {
	for _, d := range []*inventory.Document{
		{MediaType: inventory.MediaType, FormatVersion: 1, Repositories: []inventory.Repository{{Registry: "r.example", Repository: "missing"}}},
		{MediaType: inventory.MediaType, FormatVersion: 1},
	} {
		b, err := d.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "null") {
			t.Errorf("an inventory writes null:\n%s", b)
		}
		if len(d.Repositories) > 0 && (!strings.Contains(string(b), `"manifests": []`) || !strings.Contains(string(b), `"blobs": []`)) {
			t.Errorf("an empty repository's lists are not written []:\n%s", b)
		}
	}
}
