package relocate_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/archive"
	"github.com/ferry-dev/ferry/internal/testregistry"
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
	return putRaw(t, opts, repo, impMust(json.Marshal(m)), types.OCIManifestSchema1)
}

// putRaw pushes raw, of media type mt, by digest into repo.
func putRaw(t *testing.T, opts []remote.Option, repo name.Repository, raw []byte, mt types.MediaType) name.Digest {
	t.Helper()
	d, _, err := v1.SHA256(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	ref := repo.Digest(d.String())
	if err := remote.Put(ref, rawManifest{raw: raw, mt: mt}, opts...); err != nil {
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

// dropImage rewrites a plain tar archive without the index.json entry of
// img and without its manifest, config and layers, except those keep names
// (blobs other images of the archive share).
func dropImage(t *testing.T, plain []byte, img v1.Image, keep map[v1.Hash]bool) []byte {
	t.Helper()
	d := impMust(img.Digest())
	m := impMust(img.Manifest())
	drop := map[string]bool{"blobs/sha256/" + d.Hex: true, "blobs/sha256/" + m.Config.Digest.Hex: true}
	for _, l := range m.Layers {
		if !keep[l.Digest] {
			drop["blobs/sha256/"+l.Digest.Hex] = true
		}
	}
	dropped := 0
	out := rewriteTar(t, plain, func(name string, body []byte) ([]byte, bool) {
		if drop[name] {
			dropped++
			return nil, false
		}
		if name == "index.json" {
			var idx v1.IndexManifest
			if err := json.Unmarshal(body, &idx); err != nil {
				t.Fatal(err)
			}
			n := len(idx.Manifests)
			idx.Manifests = slices.DeleteFunc(idx.Manifests, func(e v1.Descriptor) bool { return e.Digest == d })
			if len(idx.Manifests) != n-1 {
				t.Fatalf("index.json lists %s %d times", d, n-len(idx.Manifests))
			}
			body = impMust(json.Marshal(idx))
		}
		return body, true
	})
	if dropped != len(drop) {
		t.Fatalf("dropped %d entries, want %d", dropped, len(drop))
	}
	return out
}

// rewriteTar copies the plain tar archive entry by entry through edit,
// which returns each entry's new body, or false to leave it out.
func rewriteTar(t testing.TB, plain []byte, edit func(name string, body []byte) ([]byte, bool)) []byte {
	t.Helper()
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	tr := tar.NewReader(bytes.NewReader(plain))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, keep := edit(h.Name, impMust(io.ReadAll(tr)))
		if !keep {
			continue
		}
		h.Size = int64(len(body))
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// TestImportRefusesABundleWhoseLockedImageIsMissing (item 1): an archive
// whose index.json lists the bundle but not an image its images.yml locks
// (dropped, with its blobs, from a good export) is refused before any
// locations image or tag, naming the missing reference; `verify` refuses it
// too. Once the destination holds the image, the same archive imports.
func TestImportRefusesABundleWhoseLockedImageIsMissing(t *testing.T) {
	src := impNewSource(t, 0)
	keep := map[v1.Hash]bool{}
	for _, l := range impMust(src.app1.Manifest()).Layers {
		keep[l.Digest] = true
	}
	data := dropImage(t, impZstdToTar(t, src.export(t)), src.app2, keep)

	path := filepath.Join(t.TempDir(), "bad.tar")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := relocate.VerifyFile(context.Background(), path, relocate.VerifyOptions{}); err == nil || !strings.Contains(err.Error(), src.app2Ref) {
		t.Fatalf("verify: %v; want it to name %s", err, src.app2Ref)
	}

	dst := impNewDest(t, false)
	_, err := relocate.Import(context.Background(), bytes.NewReader(data), dst.repo, dst.options(t))
	if err == nil {
		t.Fatal("import accepted a bundle whose locked image is in neither the archive nor the destination")
	}
	for _, want := range []string{src.app2Ref, "nothing tagged", "neither in the archive nor in " + dst.repo.String()} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if tags := dst.tags(t); len(tags) != 0 {
		t.Errorf("tags written: %v", tags)
	}
	// The bundles' layers are in now, so a dry run reads their locks and
	// refuses as well.
	opts := dst.options(t)
	opts.DryRun = true
	if _, err := relocate.Import(context.Background(), bytes.NewReader(data), dst.repo, opts); err == nil || !strings.Contains(err.Error(), src.app2Ref) {
		t.Errorf("dry run: %v; want it to name %s", err, src.app2Ref)
	}

	// Present in the destination already: the rule is met.
	app2 := impMust(name.NewDigest(dst.reg.Repo("dst/imported") + "@" + impMust(src.app2.Digest()).String()))
	if err := remote.Write(app2, src.app2, dst.reg.RemoteOptions(t)...); err != nil {
		t.Fatal(err)
	}
	res, err := relocate.Import(context.Background(), bytes.NewReader(data), dst.repo, dst.options(t))
	if err != nil {
		t.Fatalf("import with the locked image already in the destination: %v", err)
	}
	if res.Tag != "v1" || dst.tags(t)["v1"] != impMust(src.root.Digest()).String() {
		t.Errorf("root tag not written: %+v", res)
	}
}

// TestImportStopsOnATagListLoop (item 5): an import lists the
// destination's tags before it writes any; a registry whose pagination
// loops once hung the import there. It fails, naming the registry, and
// writes no tag.
func TestImportStopsOnATagListLoop(t *testing.T) {
	src := impNewSource(t, 0)
	data := src.export(t)
	dst := impNewDest(t, true)
	// A repository that exists already, so that its tag list has pages.
	seed := impMust(random.Image(100, 1))
	if err := remote.Write(dst.repo.Tag("seed"), seed, dst.reg.RemoteOptions(t)...); err != nil {
		t.Fatal(err)
	}
	dst.proxy.AddRule(testregistry.Rule{
		Method: http.MethodGet,
		Kind:   testregistry.KindTags,
		Fault:  testregistry.FaultLink,
		Link:   `</v2/dst/imported/tags/list?n=100&last=a>; rel="next"`,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := relocate.Import(ctx, bytes.NewReader(data), dst.repo, dst.options(t))
	if ctx.Err() != nil {
		t.Fatalf("the import ran until its deadline: %v", err)
	}
	if err == nil || !strings.Contains(err.Error(), "registry "+dst.proxy.Host) || !strings.Contains(err.Error(), "loops") {
		t.Fatalf("err = %v, want one naming the registry %s and its loop", err, dst.proxy.Host)
	}
	if tags := dst.tags(t); len(tags) != 1 {
		t.Errorf("tags written: %v", tags)
	}
}

// TestRacingExportsLeaveAMatchingChecksum (item 7): exports of different
// content racing to one -o FILE must leave FILE.sha256 describing the
// archive actually in place (verify would otherwise call a good archive
// corrupt), whichever export wins.
func TestRacingExportsLeaveAMatchingChecksum(t *testing.T) {
	src := impNewSource(t, 0)
	var plans []*relocate.Plan
	for _, ref := range []string{src.app1Ref, src.app2Ref, src.idxRef} {
		p, err := relocate.Resolve(context.Background(), relocate.Source{Image: ref}, relocate.Options{Remote: src.opts})
		if err != nil {
			t.Fatal(err)
		}
		plans = append(plans, p)
	}
	path := filepath.Join(t.TempDir(), "out.tar.zst")
	for round := range 40 {
		sums := make([]string, len(plans))
		errs := make([]error, len(plans))
		var wg sync.WaitGroup
		for i, p := range plans {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := relocate.ExportFile(context.Background(), p, path, relocate.ExportOptions{Remote: src.opts})
				if err == nil {
					sums[i] = res.SHA256
				}
				errs[i] = err
			}()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		data := impMust(os.ReadFile(path))
		side := impMust(os.ReadFile(path + ".sha256"))
		got := fmt.Sprintf("%x", sha256.Sum256(data))
		if want := got + "  out.tar.zst\n"; string(side) != want {
			t.Fatalf("round %d: the archive in place has sha256 %s, its checksum file says %q", round, got, side)
		}
		if !slices.Contains(sums, got) {
			t.Fatalf("round %d: the archive in place (%s) is none of the exports' %v", round, got, sums)
		}
		res, err := relocate.VerifyFile(context.Background(), path, relocate.VerifyOptions{})
		if err != nil || res.Sidecar == "" {
			t.Fatalf("round %d: verify: %v (%+v)", round, err, res)
		}
	}
}

// TestResolveRefusesAHugeDeclaredConfig (item 2): a bundle locks an image
// whose manifest declares a 2 GiB config. Export and copy resolve the
// lock; the config is refused before it is fetched, naming the image and
// the declared size (go-containerregistry's ConfigFile read the whole
// declared size into memory first).
func TestResolveRefusesAHugeDeclaredConfig(t *testing.T) {
	src := impNewSource(t, 0)
	repo := impMust(name.NewRepository(src.ep.Repo("src/hugecfg")))
	cfg := []byte(`{"architecture":"amd64","os":"linux"}`)
	cl := static.NewLayer(cfg, types.OCIConfigJSON)
	if err := remote.WriteLayer(repo, cl, src.opts...); err != nil {
		t.Fatal(err)
	}
	raw := impMust(json.Marshal(v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1,
		Config: v1.Descriptor{MediaType: types.OCIConfigJSON, Size: 2 << 30, Digest: impMust(cl.Digest())}, Layers: []v1.Descriptor{}}))
	ref := putRaw(t, src.opts, repo, raw, types.OCIManifestSchema1)
	_, bundleRef := src.pushBundle(t, "src/hugecfg-bundle", "v1", []string{ref.String()})
	src.reg.ResetCounts()
	_, err := relocate.Resolve(context.Background(), relocate.Source{Bundle: bundleRef}, relocate.Options{Remote: src.opts})
	if err == nil {
		t.Fatal("resolve accepted a config declaring 2 GiB")
	}
	for _, want := range []string{ref.String(), "declares 2147483648 bytes"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	for _, r := range src.reg.Requests() {
		if r.Method == http.MethodGet && r.Kind == testregistry.KindBlob && r.Ref == impMust(cl.Digest()).String() {
			t.Errorf("the config was fetched: %s %s", r.Method, r.Ref)
		}
	}
}

// TestResolveRefusesAManifestAboveTheCap (item 2): an index whose child
// declares more than a manifest may have is refused before the child is
// fetched; a manifest served above the cap is refused once read.
func TestResolveRefusesAManifestAboveTheCap(t *testing.T) {
	src := impNewSource(t, 0)
	repo := impMust(name.NewRepository(src.ep.Repo("src/bigindex")))
	child := pushRawImage(t, src.opts, repo, []byte(`{"architecture":"amd64","os":"linux"}`))
	childDigest := impMust(v1.NewHash(child.DigestStr()))
	idx := impMust(json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex,
		Manifests: []v1.Descriptor{{MediaType: types.OCIManifestSchema1, Digest: childDigest, Size: archive.DefaultMaxManifestSize + 1}}}))
	ref := putRaw(t, src.opts, repo, idx, types.OCIImageIndex)
	src.reg.ResetCounts()
	_, err := relocate.Resolve(context.Background(), relocate.Source{Image: ref.String()}, relocate.Options{Remote: src.opts})
	if err == nil || !strings.Contains(err.Error(), childDigest.String()) || !strings.Contains(err.Error(), fmt.Sprint(archive.DefaultMaxManifestSize+1)) {
		t.Errorf("err = %v, want one naming %s and its declared size", err, childDigest)
	}
	for _, r := range src.reg.Requests() {
		if r.Kind == testregistry.KindManifest && r.Ref == childDigest.String() {
			t.Errorf("the child was fetched: %s %s", r.Method, r.Ref)
		}
	}

	// A manifest of 4 MiB and a bit, padded with an annotation.
	big := impMust(json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex,
		Annotations: map[string]string{"pad": strings.Repeat("x", archive.DefaultMaxManifestSize)}}))
	bigRef := putRaw(t, src.opts, repo, big, types.OCIImageIndex)
	_, err = relocate.Resolve(context.Background(), relocate.Source{Image: bigRef.String()}, relocate.Options{Remote: src.opts})
	if err == nil || !strings.Contains(err.Error(), bigRef.String()) || !strings.Contains(err.Error(), fmt.Sprintf("%d bytes", len(big))) {
		t.Errorf("err = %v, want one naming %s and its size", err, bigRef)
	}
}
