package relocate_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/internal/testregistry"
	"github.com/ferry-dev/ferry/relocate"
)

// A first import into an empty repository PUTs every manifest once: by its
// sha256-<hex>.imgpkg tag when it has one (a PUT by tag stores and tags in
// one request), by digest only when it has no tag (index children), and
// once more for each further tag of the same manifest (the user's tag, a
// locations image's .image-locations.imgpkg tag). Each blob is asked about
// at most once. The expected PUTs come from the archive's own index.json
// and head, read here with archive/tar, and from the tags the import
// reports, which checkFirstMove compares with the tags the test computed.
func TestImportPutsEachManifestOnceByItsTag(t *testing.T) {
	for _, via := range impVias {
		t.Run(via.name, func(t *testing.T) {
			src := impNewSource(t, 0)
			archive := src.export(t)
			dst := impNewDest(t, false)
			res, err := relocate.Import(context.Background(), via.open(archive), dst.repo, dst.options(t))
			if err != nil {
				t.Fatal(err)
			}
			reqs := dst.reg.Requests() // before checkFirstMove reads the destination
			checkFirstMove(t, src, dst, res)

			carried := impArchiveManifests(t, archive)
			tagged := map[string]int{} // digest -> tags the import wrote for it
			var want []string
			for _, tr := range res.Tags {
				tagged[tr.Digest]++
				want = append(want, tr.Tag)
			}
			for _, d := range carried {
				if tagged[d] == 0 {
					want = append(want, d)
				}
			}
			// In figures: the archive's manifests, plus the locations
			// manifests it does not carry, plus every tag beyond the first
			// one of its manifest.
			locations, extra := 0, 0
			for d, n := range tagged {
				if !slices.Contains(carried, d) {
					locations++
				}
				extra += n - 1
			}
			if len(want) != len(carried)+locations+extra {
				t.Fatalf("expected PUTs %d != %d carried + %d locations + %d extra tags", len(want), len(carried), locations, extra)
			}
			if extra == 0 || locations == 0 {
				t.Fatalf("the bundle yields %d extra tags and %d locations manifests; the test needs both", extra, locations)
			}

			got := impManifestPuts(reqs)
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("%d manifest PUTs, want %d (%d in the archive + %d locations + %d extra tags):\ngot  %v\nwant %v",
					len(got), len(want), len(carried), locations, extra, got, want)
			}
			for _, ref := range got {
				if strings.HasPrefix(ref, "sha256:") && tagged[ref] > 0 {
					t.Errorf("manifest %s PUT by digest although it has a tag, which stores it in the same request", ref)
				}
			}

			heads := map[string]int{}
			for _, r := range reqs {
				if r.Method == http.MethodHead && r.Kind == testregistry.KindBlob {
					heads[r.Ref]++
				}
			}
			for d, n := range heads {
				if n > 1 {
					t.Errorf("blob %s HEADed %d times, want at most once", d, n)
				}
			}
		})
	}
}

// impArchiveManifests returns the digest of every manifest and index an
// archive carries: the closure of its index.json, read from the tar with
// no help from ferry's reader.
func impArchiveManifests(t *testing.T, archive []byte) []string {
	t.Helper()
	entries := map[string][]byte{}
	rewriteTar(t, impZstdToTar(t, archive), func(name string, body []byte) ([]byte, bool) {
		entries[name] = body
		return body, true
	})
	var out []string
	seen := map[v1.Hash]bool{}
	var walk func(raw []byte)
	walk = func(raw []byte) {
		var idx v1.IndexManifest
		if err := json.Unmarshal(raw, &idx); err != nil {
			t.Fatal(err)
		}
		for _, d := range idx.Manifests {
			if !d.MediaType.IsImage() && !d.MediaType.IsIndex() || seen[d.Digest] {
				continue
			}
			seen[d.Digest] = true
			out = append(out, d.Digest.String())
			body, ok := entries["blobs/sha256/"+d.Digest.Hex]
			if !ok {
				t.Fatalf("archive lacks manifest %s", d.Digest)
			}
			if d.MediaType.IsIndex() {
				walk(body)
			}
		}
	}
	walk(entries["index.json"])
	return out
}
