package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/archive"
	"github.com/ferry-dev/ferry/relocate"
)

// An import writes one locations image, with its own-digest tag, per
// bundle digest: a nested bundle that index.json lists twice (locked under
// two repositories) still counts once.
func TestInspectCountsLocationsTagsPerBundleDigest(t *testing.T) {
	root := "sha256:" + strings.Repeat("1", 64)
	nested := "sha256:" + strings.Repeat("2", 64)
	inv := &relocate.Inventory{
		Images: []relocate.InventoryImage{
			{Digest: root, Role: string(archive.RoleBundle), Tag: "v1"},
			{Digest: nested, Role: string(archive.RoleNestedBundle), OriginalRef: "a.example/one@" + nested},
			{Digest: nested, Role: string(archive.RoleNestedBundle), OriginalRef: "b.example/two@" + nested},
		},
		Tags: []string{"v1"},
	}
	var out bytes.Buffer
	printImportTags(&out, inv)
	if !strings.Contains(out.String(), "(2 tags, known at import)") {
		t.Errorf("inspect's tag list:\n%s\nwant 2 locations tags (two bundle digests)", out.String())
	}
}

// verify's summary counts the bundles whose images.yml it checked, as
// such: an imgpkg tarball of one bundle (basic.imgpkg.tar, which imgpkg
// wrote of bundle-basic and the one image it locks) has one. A
// "bundle lock" is another imgpkg document, which verify does not read.
func TestVerifySummarySaysWhatItCountsOfBundles(t *testing.T) {
	code, _, stderr := runFerry("verify", "../../fixtures/golden/basic.imgpkg.tar")
	if code != 0 || !strings.Contains(stderr, "2 images, 4 blobs") || !strings.Contains(stderr, "the images.yml of 1 bundle checked") || strings.Contains(stderr, "bundle lock") {
		t.Errorf("verify: exit %d, stderr:\n%s\nwant the images.yml of 1 bundle checked, no bundle lock", code, stderr)
	}
}
