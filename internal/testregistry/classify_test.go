package testregistry

import "testing"

func TestClassify(t *testing.T) {
	t.Parallel()
	const d = "sha256:0123abcd"
	for _, tc := range []struct {
		path      string
		kind      Kind
		repo, ref string
	}{
		{"/v2/", KindBase, "", ""},
		{"/v2", KindBase, "", ""},
		{"/v2/_catalog", KindCatalog, "", ""},
		{"/v2/a/b/tags/list", KindTags, "a/b", ""},
		{"/v2/a/b/manifests/v1", KindManifest, "a/b", "v1"},
		{"/v2/a/manifests/" + d, KindManifest, "a", d},
		{"/v2/a/b/blobs/" + d, KindBlob, "a/b", d},
		{"/v2/a/b/blobs/uploads/", KindUpload, "a/b", ""},
		{"/v2/a/b/blobs/uploads/uuid-1", KindUpload, "a/b", "uuid-1"},
		{"/v2/a/referrers/" + d, KindReferrers, "a", d},
		// Repository path components that look like API words.
		{"/v2/blobs/manifests/latest", KindManifest, "blobs", "latest"},
		{"/v2/x/manifests/blobs/" + d, KindBlob, "x/manifests", d},
		{"/metrics", KindOther, "", ""},
	} {
		kind, repo, ref := classify(tc.path)
		if kind != tc.kind || repo != tc.repo || ref != tc.ref {
			t.Errorf("classify(%q) = %q, %q, %q; want %q, %q, %q", tc.path, kind, repo, ref, tc.kind, tc.repo, tc.ref)
		}
	}
}

func TestCountsGet(t *testing.T) {
	t.Parallel()
	c := Counts{
		{Method: "PUT", Kind: KindUpload}:   3,
		{Method: "PATCH", Kind: KindUpload}: 2,
		{Method: "PUT", Kind: KindManifest}: 1,
	}
	if got := c.Get("PUT", KindUpload); got != 3 {
		t.Errorf("Get(PUT, upload) = %d, want 3", got)
	}
	if got := c.Get("", KindUpload); got != 5 {
		t.Errorf("Get(any, upload) = %d, want 5", got)
	}
	if got := c.Get("GET", KindBlob); got != 0 {
		t.Errorf("Get(GET, blob) = %d, want 0", got)
	}
	if got := c.Total(); got != 6 {
		t.Errorf("Total = %d, want 6", got)
	}
}
