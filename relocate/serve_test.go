package relocate_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/archive"
	"github.com/ferry-dev/ferry/fixtures"
	"github.com/ferry-dev/ferry/fixtures/golden"
	"github.com/ferry-dev/ferry/internal/testregistry"
	"github.com/ferry-dev/ferry/relocate"
)

func openArchive(t *testing.T, data []byte) *archive.File {
	t.Helper()
	f, err := archive.OpenFile(bytes.NewReader(data), int64(len(data)), archive.ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func viewTags(r *relocate.ViewRepository) map[string]string {
	out := map[string]string{}
	for tag, d := range r.Tags {
		out[tag] = d.String()
	}
	return out
}

// checkViewContent checks that everything a view's repositories name is at
// hand with the right bytes: manifests in the view, blobs in the view or
// the archive, tags on manifests of their repository.
func checkViewContent(t *testing.T, f *archive.File, v *relocate.RegistryView) {
	t.Helper()
	for _, r := range v.Repositories {
		for tag, d := range r.Tags {
			if !r.Manifests[d] {
				t.Errorf("%s:%s names %s, which the repository does not hold", r.Name, tag, d)
			}
		}
		for d := range r.Manifests {
			m, ok := v.Manifests[d]
			if sum := sha256.Sum256(m.Raw); !ok || hex.EncodeToString(sum[:]) != d.Hex || m.MediaType == "" {
				t.Errorf("%s: manifest %s: in the view %v, media type %q, bytes hash to %x", r.Name, d, ok, m.MediaType, sum)
			}
		}
		for d := range r.Blobs {
			if b, ok := v.Blobs[d]; ok {
				if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != d.Hex {
					t.Errorf("%s: view blob %s hashes to %x", r.Name, d, sum)
				}
			} else if !f.Has(d) {
				t.Errorf("%s: blob %s is neither in the view nor in the archive", r.Name, d)
			}
		}
	}
}

func TestRepoViewHasExactlyTheTagsAnImportWrites(t *testing.T) {
	s := newArtSource(t)
	f := openArchive(t, s.exportWith(t, true, true))
	for _, repoBased := range []bool{false, true} {
		v, err := relocate.RepoView(t.Context(), f, "far/release", relocate.RepoViewOptions{RepoBasedTags: repoBased})
		if err != nil {
			t.Fatal(err)
		}
		if got := slices.Collect(maps.Keys(v.Repositories)); len(got) != 1 || got[0] != "far/release" {
			t.Fatalf("repositories %v, want only far/release", got)
		}
		r := v.Repositories["far/release"]
		want := s.wantArtTags(t, true, repoBased)
		if repoBased {
			// The images' tags name their source repository; the locations
			// images' own tags never do.
			for repo, img := range map[string]interface{ Digest() (v1.Hash, error) }{
				"src-app1": s.app1, "src-app2": s.app2, "src-multi": s.idx, "src-nested": s.nested, "src-root": s.root,
			} {
				d := impMust(img.Digest())
				delete(want, "sha256-"+d.Hex+".imgpkg")
				want[repo+"-sha256-"+d.Hex+".imgpkg"] = d.String()
			}
		}
		if diff := impDiffTags(viewTags(r), want); diff != "" {
			t.Errorf("repo-based %v: tags differ from an import's:\n%s", repoBased, diff)
		}
		// Everything the archive holds, and the locations images.
		for d := range s.blobs(t) {
			if !r.Blobs[d] {
				t.Errorf("blob %s is not served", d)
			}
		}
		checkViewContent(t, f, v)
		app2 := impMust(s.app2.Digest())
		refs := r.Referrers[app2]
		if len(refs) != 1 || refs[0].Digest != impMust(s.ref.Digest()) || refs[0].ArtifactType != "application/vnd.example.sbom.v1+json" {
			t.Errorf("referrers of app2: %+v, want the SBOM artifact with its config media type as artifact type", refs)
		}
	}
}

func TestMirrorViewPutsEachImageBackInItsRepository(t *testing.T) {
	s := newArtSource(t)
	f := openArchive(t, s.exportWith(t, true, true))
	v, err := relocate.MirrorView(f.Head(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Warnings) != 0 {
		t.Errorf("warnings: %v", v.Warnings)
	}
	dig := func(img interface{ Digest() (v1.Hash, error) }) v1.Hash { return impMust(img.Digest()) }
	want := map[string]struct {
		tags      map[string]string
		manifests []v1.Hash
	}{
		"src/app1":   {map[string]string{s.sigTag: dig(s.sig).String()}, []v1.Hash{dig(s.app1), dig(s.sig)}},
		"src/app2":   {map[string]string{}, []v1.Hash{dig(s.app2), dig(s.ref)}},
		"src/multi":  {map[string]string{}, []v1.Hash{dig(s.idx)}},
		"src/nested": {map[string]string{}, []v1.Hash{dig(s.nested)}},
		"src/root":   {map[string]string{"v1": dig(s.root).String(), s.attTag: dig(s.att).String()}, []v1.Hash{dig(s.root), dig(s.att)}},
	}
	for _, c := range impMust(s.idx.IndexManifest()).Manifests {
		m := want["src/multi"]
		m.manifests = append(m.manifests, c.Digest)
		want["src/multi"] = m
	}
	if got := slices.Sorted(maps.Keys(v.Repositories)); !slices.Equal(got, slices.Sorted(maps.Keys(want))) {
		t.Fatalf("repositories %v, want %v", got, slices.Sorted(maps.Keys(want)))
	}
	for name, w := range want {
		r := v.Repositories[name]
		if diff := impDiffTags(viewTags(r), w.tags); diff != "" {
			t.Errorf("%s: tags:\n%s", name, diff)
		}
		if len(r.Manifests) != len(w.manifests) {
			t.Errorf("%s: %d manifests, want %d", name, len(r.Manifests), len(w.manifests))
		}
		for _, d := range w.manifests {
			if !r.Manifests[d] {
				t.Errorf("%s: manifest %s missing", name, d)
			}
		}
	}
	// Blobs belong to the repositories whose manifests reference them:
	// app1's layers are in src/app1, not in src/multi.
	app1 := impMust(s.app1.Manifest())
	if !v.Repositories["src/app1"].Blobs[app1.Layers[0].Digest] || v.Repositories["src/multi"].Blobs[app1.Layers[0].Digest] {
		t.Error("app1's layer is not served in src/app1 alone")
	}
	if refs := v.Repositories["src/app2"].Referrers[dig(s.app2)]; len(refs) != 1 || refs[0].Digest != dig(s.ref) {
		t.Errorf("referrers of app2 in src/app2: %+v", refs)
	}
	if len(v.Blobs) != 0 {
		t.Errorf("a mirror adds no blobs, got %d", len(v.Blobs))
	}
	checkViewContent(t, f, v)
}

// TestRepoViewRefusesADeltaThatLeftOutABundleLayer: a delta since an
// archive of the same bundle leaves out every bundle's layer, so the
// images.yml a RepoView builds the locations images from is not in it.
// RepoView says so, naming the bundle and what to do instead, rather than
// failing as if the archive were damaged ("blob … is not in the archive").
func TestRepoViewRefusesADeltaThatLeftOutABundleLayer(t *testing.T) {
	w := newDeltaWorld(t, testregistry.NewGGCR)
	delta, ex := w.delta(t, w.full)
	w.bundleLayersLeftOut(t, ex)
	_, err := relocate.RepoView(t.Context(), openArchive(t, delta), "far/release", relocate.RepoViewOptions{})
	if err == nil {
		t.Fatal("RepoView of a delta without the bundles' layers succeeded")
	}
	root := impMust(w.src.root.Digest()).String()
	for _, want := range []string{"bundle ", root, "images.yml", "delta left out", "full.tar.zst", "without --repo", "import it"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	// The base itself, which carries the layers, is served.
	full, err := os.ReadFile(w.full)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := relocate.RepoView(t.Context(), openArchive(t, full), "far/release", relocate.RepoViewOptions{}); err != nil {
		t.Errorf("RepoView of the full archive: %v", err)
	}
}

// TestRepoViewRefusesABundleWhoseLockedImageIsMissing (issue 13, item 1,
// through serve): an archive without an image its bundle locks, which
// import and verify refuse, was served with --repo, its locations image
// telling pull that the image was in the repository. RepoView refuses it,
// naming the image, as an import would.
func TestRepoViewRefusesABundleWhoseLockedImageIsMissing(t *testing.T) {
	gold, err := golden.ReadFile("basic.imgpkg.tar")
	if err != nil {
		t.Fatal(err)
	}
	bad, err := fixtures.DropImgpkgImage(gold, golden.App1)
	if err != nil {
		t.Fatal(err)
	}
	open := func(b []byte) *archive.ImgpkgTar {
		f, err := archive.OpenImgpkg(bytes.NewReader(b), int64(len(b)), archive.ReaderOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	_, err = relocate.RepoView(t.Context(), open(bad), "far/release", relocate.RepoViewOptions{})
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:5900/src/app1@"+golden.App1) || !strings.Contains(err.Error(), "not in the archive") {
		t.Fatalf("RepoView of a tarball without a locked image: %v; want a refusal naming it", err)
	}
	// The whole tarball is served.
	if _, err := relocate.RepoView(t.Context(), open(gold), "far/release", relocate.RepoViewOptions{}); err != nil {
		t.Errorf("RepoView of basic.imgpkg.tar: %v", err)
	}
}
