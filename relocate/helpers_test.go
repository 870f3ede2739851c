package relocate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/fixtures"
	"github.com/ferry-dev/ferry/internal/bundle"
	"github.com/ferry-dev/ferry/internal/testregistry"
)

// world is the content most tests export: a root bundle locking two images
// that share a layer and a nested bundle, which locks a multi-platform
// index and (again) the first image.
type world struct {
	reg  *testregistry.Registry // nil when reached through a proxy
	ep   *testregistry.Endpoint
	opts []remote.Option

	shared     v1.Layer
	app1, app2 v1.Image
	idx        v1.ImageIndex
	nested     v1.Image
	root       v1.Image

	app1Ref, app2Ref, idxRef, nestedRef string // as written in the locks
	rootTag                             string // REPO:TAG given with -b
}

func newWorld(t testing.TB) *world {
	t.Helper()
	reg := testregistry.NewGGCR(t)
	w := newWorldAt(t, &reg.Endpoint)
	w.reg = reg
	return w
}

// newWorldAt pushes the world through ep; every reference names ep.
func newWorldAt(t testing.TB, ep *testregistry.Endpoint) *world {
	t.Helper()
	w := &world{ep: ep, opts: ep.RemoteOptions(t)}

	w.shared = must(random.Layer(3000, types.DockerLayer))
	base1 := must(random.Image(1500, 1))
	w.app1 = must(mutate.AppendLayers(base1, w.shared))
	base2 := must(random.Image(2500, 1))
	// A layer above the in-memory spool limit, so that exports with
	// concurrency spool it to a temporary file.
	big := must(random.Layer(memSpoolMax+4096, types.DockerLayer))
	w.app2 = must(mutate.AppendLayers(base2, w.shared, big))

	w.idx = platformIndex(t)

	w.app1Ref = w.pushImage(t, "app1", w.app1)
	w.app2Ref = w.pushImage(t, "app2", w.app2)
	w.idxRef = w.pushIndex(t, "multi", w.idx)
	w.nested, w.nestedRef = w.pushBundle(t, "nested", "", []string{w.idxRef, w.app1Ref})
	w.root, _ = w.pushBundle(t, "root", "v1", []string{w.app1Ref, w.app2Ref, w.nestedRef})
	w.rootTag = ep.Repo("root") + ":v1"
	return w
}

// platformIndex is an OCI index of two single-layer images for two
// platforms.
func platformIndex(t testing.TB) v1.ImageIndex {
	t.Helper()
	var adds []mutate.IndexAddendum
	for i, arch := range []string{"amd64", "arm64"} {
		img := must(random.Image(int64(700+i), 1))
		adds = append(adds, mutate.IndexAddendum{
			Add: img,
			Descriptor: v1.Descriptor{
				Platform: &v1.Platform{OS: "linux", Architecture: arch},
			},
		})
	}
	return mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...)
}

func (w *world) pushImage(t testing.TB, repo string, img v1.Image) string {
	t.Helper()
	d := must(img.Digest())
	ref := must(name.NewDigest(w.ep.Repo(repo) + "@" + d.String()))
	if err := remote.Write(ref, img, w.opts...); err != nil {
		t.Fatal(err)
	}
	return ref.String()
}

func (w *world) pushIndex(t testing.TB, repo string, idx v1.ImageIndex) string {
	t.Helper()
	d := must(idx.Digest())
	ref := must(name.NewDigest(w.ep.Repo(repo) + "@" + d.String()))
	if err := remote.WriteIndex(ref, idx, w.opts...); err != nil {
		t.Fatal(err)
	}
	return ref.String()
}

// pushBundle builds a bundle locking images with the bundle package (the
// same bytes as imgpkg) and pushes it, under tag if given.
func (w *world) pushBundle(t testing.TB, repo, tag string, images []string) (v1.Image, string) {
	return PushTestBundle(t, w.ep, w.opts, repo, tag, images)
}

// PushTestBundle builds a bundle locking images with the bundle package and
// pushes it to ep's repo, tagged when tag is set. It returns the image read
// back from the registry and its repo@digest.
func PushTestBundle(t testing.TB, ep *testregistry.Endpoint, opts []remote.Option, repo, tag string, images []string) (v1.Image, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "bundle")
	if err := fixtures.WriteBundleDir(dir, images); err != nil {
		t.Fatal(err)
	}
	img, err := bundle.Build(context.Background(), []string{dir}, bundle.BuildOptions{Bundle: true, TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	d := must(img.Digest())
	var ref name.Reference = must(name.NewDigest(ep.Repo(repo) + "@" + d.String()))
	if tag != "" {
		ref = must(name.NewTag(ep.Repo(repo) + ":" + tag))
	}
	if err := remote.Write(ref, img, opts...); err != nil {
		t.Fatal(err)
	}
	// The staged layer goes away with Close; the copy read back from the
	// registry outlives it.
	return must(remote.Image(ref, opts...)), ep.Repo(repo) + "@" + d.String()
}

// must turns a (value, error) pair into the value. It is for building
// fixtures, where an error is a broken test setup: the panic fails the test
// with the stack that shows which step broke.
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// blobsOf returns the config and layer digests of img.
func blobsOf(t testing.TB, img v1.Image) (config v1.Hash, layers []v1.Hash) {
	t.Helper()
	m := must(img.Manifest())
	for _, l := range m.Layers {
		layers = append(layers, l.Digest)
	}
	return m.Config.Digest, layers
}

// expectedBlobs is every config and layer of imgs and of idx's children,
// computed from the images the test built, not from a plan.
func expectedBlobs(t testing.TB, idx v1.ImageIndex, imgs ...v1.Image) (configs, layers map[v1.Hash]bool) {
	t.Helper()
	im := must(idx.IndexManifest())
	for _, d := range im.Manifests {
		imgs = append(imgs, must(idx.Image(d.Digest)))
	}
	configs, layers = map[v1.Hash]bool{}, map[v1.Hash]bool{}
	for _, img := range imgs {
		c, ls := blobsOf(t, img)
		configs[c] = true
		for _, l := range ls {
			layers[l] = true
		}
	}
	return configs, layers
}

func sortedHashes(m map[v1.Hash]bool) []string {
	var out []string
	for h := range m {
		out = append(out, h.String())
	}
	sort.Strings(out)
	return out
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// recorder is a progress.Reporter that keeps what it is told.
type recorder struct {
	mu       sync.Mutex
	started  []string
	total    int64
	added    int64
	logs     []string
	warnings []string
	done     int
	onAdd    func(total int64)
}

func (r *recorder) Start(phase string, total int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.started = append(r.started, phase)
	r.total = total
}

func (r *recorder) Add(n int64) {
	r.mu.Lock()
	r.added += n
	added, f := r.added, r.onAdd
	r.mu.Unlock()
	if f != nil {
		f(added)
	}
}

func (r *recorder) Logf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.logs = append(r.logs, fmt.Sprintf(format, args...))
}

func (r *recorder) Warnf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.warnings = append(r.warnings, fmt.Sprintf(format, args...))
}

// warned returns the warnings so far, safe to read while a run goes on.
func (r *recorder) warned() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.warnings)
}

func (r *recorder) Done() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.done++
}

// dirNames lists the names in dir, for checks that nothing was left behind.
func dirNames(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
