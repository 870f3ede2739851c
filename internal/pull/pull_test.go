package pull

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/fixtures"
	"github.com/ferry-dev/ferry/internal/bundle"
	"github.com/ferry-dev/ferry/internal/progress"
	"github.com/ferry-dev/ferry/internal/testregistry"
	"github.com/ferry-dev/ferry/lock"
)

// tamper serves a real registry, but answers GETs of one blob with other
// bytes of the same length: a corrupting proxy or a compromised mirror.
type tamper struct {
	h      http.Handler
	digest string
}

func (t *tamper) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/blobs/"+t.digest) {
		t.h.ServeHTTP(w, r)
		return
	}
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, r)
	body := rec.Body.Bytes()
	if len(body) > 20 {
		body[len(body)-20] ^= 0xff
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	w.Write(body)
}

func pushBundle(t *testing.T, host string) (name.Reference, v1.Hash) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "b")
	if err := fixtures.WriteBundleDir(dir, nil); err != nil {
		t.Fatal(err)
	}
	img, err := bundle.Build(context.Background(), []string{dir}, bundle.BuildOptions{Bundle: true})
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	ref, _ := name.ParseReference(host + "/b:v1")
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	d, _ := layers[0].Digest()
	return ref, d
}

func TestPullRefusesALayerThatDoesNotMatchItsDigest(t *testing.T) {
	tp := &tamper{h: registry.New(registry.Logger(log.New(io.Discard, "", 0)))}
	srv := httptest.NewServer(tp)
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	ref, layer := pushBundle(t, host)
	tp.digest = layer.String()

	out := filepath.Join(t.TempDir(), "out")
	_, err := Pull(context.Background(), ref, out, Options{Bundle: true})
	if err == nil || !strings.Contains(err.Error(), layer.String()) {
		t.Fatalf("want an error naming layer %s, got %v", layer, err)
	}
	if left, _ := os.ReadDir(out); len(left) != 0 {
		t.Fatalf("a tampered layer was extracted: %d entries", len(left))
	}
}

func TestOverwriteKeepsFilesWhenThePullFails(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	out := t.TempDir()
	mine := filepath.Join(out, "mine.txt")
	os.WriteFile(mine, []byte("keep me"), 0o644)

	missing, _ := name.ParseReference(host + "/nothing:v1")
	if _, err := Pull(context.Background(), missing, out, Options{Bundle: true, Overwrite: true}); err == nil {
		t.Fatal("pull of a missing bundle succeeded")
	}
	if b, err := os.ReadFile(mine); err != nil || !bytes.Equal(b, []byte("keep me")) {
		t.Fatalf("the user's file was lost by a failed --overwrite pull: %v", err)
	}

	// And a successful one replaces the contents.
	ref, _ := pushBundle(t, host)
	if _, err := Pull(context.Background(), ref, out, Options{Bundle: true, Overwrite: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(mine); !os.IsNotExist(err) {
		t.Fatal("--overwrite kept the old contents")
	}
	if _, err := os.Stat(filepath.Join(out, ".imgpkg", "images.yml")); err != nil {
		t.Fatal(err)
	}
}

func TestFailedPullLeavesNoDirectoryItCreated(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	ref, _ := pushBundle(t, host)
	out := filepath.Join(t.TempDir(), "new")
	// A bundle pulled as a plain image is refused.
	if _, err := Pull(context.Background(), ref, out, Options{Bundle: false}); err == nil || !strings.Contains(err.Error(), "use -b") {
		t.Fatalf("want a refusal suggesting -b, got %v", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("the failed pull left %s behind (%v)", out, err)
	}
}

// rawManifest is an OCI manifest pushed exactly as written.
type rawManifest []byte

func (m rawManifest) RawManifest() ([]byte, error)        { return m, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }

// TestPullRefusesAHugeDeclaredConfig (issue 13, item 2): an image whose
// manifest declares a 2 GiB config is refused before the config is
// fetched, naming the image and the declared size, whether it is pulled
// itself (-i) or is a bundle's lock image that -r must classify.
func TestPullRefusesAHugeDeclaredConfig(t *testing.T) {
	reg := testregistry.NewGGCR(t)
	opts := reg.RemoteOptions(t)
	repo, err := name.NewRepository(reg.Repo("team/app"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := static.NewLayer([]byte(`{"architecture":"amd64","os":"linux"}`), types.OCIConfigJSON)
	if err := remote.WriteLayer(repo, cfg, opts...); err != nil {
		t.Fatal(err)
	}
	cfgDigest, _ := cfg.Digest()
	raw, _ := json.Marshal(v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1,
		Config: v1.Descriptor{MediaType: types.OCIConfigJSON, Size: 2 << 30, Digest: cfgDigest}, Layers: []v1.Descriptor{}})
	d, _, _ := v1.SHA256(bytes.NewReader(raw))
	huge := repo.Digest(d.String())
	if err := remote.Put(huge, rawManifest(raw), opts...); err != nil {
		t.Fatal(err)
	}

	dir := filepath.Join(t.TempDir(), "b")
	if err := fixtures.WriteBundleDir(dir, []string{huge.String()}); err != nil {
		t.Fatal(err)
	}
	b, err := bundle.Build(context.Background(), []string{dir}, bundle.BuildOptions{Bundle: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := remote.Write(repo.Tag("v1"), b, opts...); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		ref  name.Reference
		o    Options
	}{
		{"-i", huge, Options{}},
		{"-b -r", repo.Tag("v1"), Options{Bundle: true, Recursive: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg.ResetCounts()
			tc.o.Remote = opts
			_, err := Pull(context.Background(), tc.ref, filepath.Join(t.TempDir(), "out"), tc.o)
			if err == nil || !strings.Contains(err.Error(), huge.String()) || !strings.Contains(err.Error(), "declares 2147483648 bytes") {
				t.Errorf("err = %v, want one naming %s and its declared config size", err, huge)
			}
			for _, r := range reg.Requests() {
				if r.Method == http.MethodGet && r.Ref == cfgDigest.String() {
					t.Errorf("the config was fetched")
				}
			}
		})
	}
}

// TestPullRefusesAnImagesYMLOverTheCap (issue 13, item 3): pull once
// extracted and parsed an images.yml of any size (248 MB cost 60 s and
// 7 GB). A bundle whose images.yml is one byte over lock.MaxDocumentSize
// is refused, naming the file and the cap, and leaves nothing behind.
func TestPullRefusesAnImagesYMLOverTheCap(t *testing.T) {
	reg := testregistry.NewGGCR(t)
	opts := reg.RemoteOptions(t)
	head := "apiVersion: imgpkg.carvel.dev/v1alpha1\nkind: ImagesLock\n# "
	yml := head + strings.Repeat("x", lock.MaxDocumentSize-len(head)) + "\n"
	ref := pushBundleTar(t, reg.Repo("team/big")+":v1", []tarEntry{
		{hdr: tar.Header{Name: ".imgpkg/", Typeflag: tar.TypeDir, Mode: 0o700}},
		{hdr: tar.Header{Name: ".imgpkg/images.yml", Typeflag: tar.TypeReg, Mode: 0o600}, body: yml},
	}, opts)
	out := filepath.Join(t.TempDir(), "out")
	_, err := Pull(context.Background(), ref, out, Options{Bundle: true, Remote: opts})
	if err == nil || !strings.Contains(err.Error(), filepath.Join(out, ".imgpkg", "images.yml")) || !strings.Contains(err.Error(), fmt.Sprintf("more than the %d bytes", lock.MaxDocumentSize)) {
		t.Fatalf("err = %v, want one naming images.yml and the cap", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("the failed pull left %s behind (%v)", out, err)
	}
}

// tarEntry is one entry of a hand-made layer: its header and, for a regular
// file, its content (the header's size is set from it).
type tarEntry struct {
	hdr  tar.Header
	body string
}

// pushBundleTar pushes to ref a bundle whose one layer holds entries exactly
// as given, in order: what pushBundleFiles cannot make (links, oversized or
// refused entries, a chosen order).
func pushBundleTar(t *testing.T, ref string, entries []tarEntry, opts []remote.Option) name.Reference {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.hdr
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	layer, err := tarball.LayerFromReader(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	img = labelBundle(t, img)
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img, opts...); err != nil {
		t.Fatal(err)
	}
	return r
}

// labelBundle returns img with the bundle label in its config.
func labelBundle(t *testing.T, img v1.Image) v1.Image {
	t.Helper()
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.DeepCopy()
	cfg.Config.Labels = map[string]string{bundle.LabelKey: "true"}
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		t.Fatal(err)
	}
	return img
}

// seedApp pushes a small image, the same in every repository, to repo:v1
// and returns its digest.
func seedApp(t *testing.T, repo string, opts []remote.Option) v1.Hash {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, static.NewLayer([]byte("app"), types.DockerLayer))
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.NewTag(repo + ":v1")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, opts...); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// pushBundleFiles builds a bundle of files (path → content, mode) and
// pushes it to ref.
func pushBundleFiles(t *testing.T, ref string, files map[string]string, modes map[string]os.FileMode, opts []remote.Option) name.Reference {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "b")
	for rel, content := range files {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if m, ok := modes[rel]; ok {
			if err := os.Chmod(p, m); err != nil {
				t.Fatal(err)
			}
		}
	}
	img, err := bundle.Build(context.Background(), []string{dir}, bundle.BuildOptions{Bundle: true})
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img, opts...); err != nil {
		t.Fatal(err)
	}
	return r
}

// imgpkg's pull (Bundle.pull, ImageRefs.UpdateRelativeToRepo) checks every
// image of the lock in the bundle's repository when there is no locations
// image, and when all are there writes images.yml back pointing there, in
// its canonical form, even when the lock already named that repository: a
// comment and a tag in the reference do not survive. Each distinct
// reference in its fully qualified form is checked once: imgpkg normalises
// the lock's names as it reads them, so "repo:v1@D" and "repo@D" are one
// (ferry used to check each distinct string).
func TestPullRewritesALockAlreadyNamingTheBundleRepository(t *testing.T) {
	reg := testregistry.NewGGCR(t)
	opts := reg.RemoteOptions(t)
	repo := reg.Repo("src/app1")
	app := seedApp(t, repo, opts)
	pushed := "# c\napiVersion: imgpkg.carvel.dev/v1alpha1\nkind: ImagesLock\nimages:\n" +
		"- image: " + repo + ":v1@" + app.String() + "\n" +
		"- image: " + repo + ":v1@" + app.String() + "\n" +
		"- image: " + repo + "@" + app.String() + "\n"
	ref := pushBundleFiles(t, repo+":bundle", map[string]string{".imgpkg/images.yml": pushed}, nil, opts)

	reg.ResetCounts()
	out := filepath.Join(t.TempDir(), "out")
	res, err := Pull(context.Background(), ref, out, Options{Bundle: true, Remote: opts})
	if err != nil {
		t.Fatal(err)
	}
	if res.Rewrite != RewriteChecked {
		t.Errorf("rewrite %q, want %q", res.Rewrite, RewriteChecked)
	}
	// As imgpkg's lockconfig.ImagesLock.WriteToPath writes it.
	want := "---\napiVersion: imgpkg.carvel.dev/v1alpha1\nimages:\n" +
		"- image: " + repo + "@" + app.String() + "\n" +
		"- image: " + repo + "@" + app.String() + "\n" +
		"- image: " + repo + "@" + app.String() + "\n" +
		"kind: ImagesLock\n"
	got, err := os.ReadFile(filepath.Join(out, ".imgpkg", "images.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("images.yml:\n%s\nwant:\n%s", got, want)
	}
	if heads := manifestHeads(reg, app); heads != 1 {
		t.Errorf("%d HEADs of %s@%s, want 1 (one per distinct normalised reference, as imgpkg)", heads, repo, app)
	}

	// A lock with no images: nothing to check, so imgpkg writes it back
	// too, without the images key (omitempty in lockconfig.ImagesLock).
	ref = pushBundleFiles(t, repo+":empty", map[string]string{".imgpkg/images.yml": "# c\napiVersion: imgpkg.carvel.dev/v1alpha1\nkind: ImagesLock\nimages: []\n"}, nil, opts)
	out = filepath.Join(t.TempDir(), "out")
	if res, err = Pull(context.Background(), ref, out, Options{Bundle: true, Remote: opts}); err != nil {
		t.Fatal(err)
	}
	want = "---\napiVersion: imgpkg.carvel.dev/v1alpha1\nkind: ImagesLock\n"
	if got, _ := os.ReadFile(filepath.Join(out, ".imgpkg", "images.yml")); res.Rewrite != RewriteChecked || string(got) != want {
		t.Errorf("empty lock: rewrite %q, images.yml:\n%s\nwant %q and:\n%s", res.Rewrite, got, RewriteChecked, want)
	}

	// A lock naming the bundle's repository whose image is not there is
	// not relocated: left as pushed.
	missing := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}
	pushed = "# c\napiVersion: imgpkg.carvel.dev/v1alpha1\nkind: ImagesLock\nimages:\n- image: " + repo + "@" + missing.String() + "\n"
	ref = pushBundleFiles(t, repo+":gone", map[string]string{".imgpkg/images.yml": pushed}, nil, opts)
	out = filepath.Join(t.TempDir(), "out")
	if res, err = Pull(context.Background(), ref, out, Options{Bundle: true, Remote: opts}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(out, ".imgpkg", "images.yml")); res.Rewrite != RewriteNone || string(got) != pushed {
		t.Errorf("rewrite %q, images.yml:\n%s\nwant none and as pushed", res.Rewrite, got)
	}
}

// manifestHeads counts the HEADs of the manifest d that reg received.
func manifestHeads(reg *testregistry.Registry, d v1.Hash) int {
	n := 0
	for _, r := range reg.Requests() {
		if r.Method == http.MethodHead && r.Kind == testregistry.KindManifest && r.Ref == d.String() {
			n++
		}
	}
	return n
}

// imgpkg rewrites images.yml with os.WriteFile over the extracted file,
// which keeps that file's mode: for a default push, the layer's owner bits
// copied to group and other, less the umask. Not parallel: it sets the
// process's umask.
func TestPullRewriteKeepsTheExtractedModeOfImagesYML(t *testing.T) {
	reg := testregistry.NewGGCR(t)
	opts := reg.RemoteOptions(t)
	src := reg.Repo("src/app1")
	dst := reg.Repo("far/b")
	app := seedApp(t, src, opts)
	seedApp(t, dst, opts) // the same image, now also in the bundle's repository
	lockDoc := "apiVersion: imgpkg.carvel.dev/v1alpha1\nkind: ImagesLock\nimages:\n- image: " + src + "@" + app.String() + "\n"
	for _, tc := range []struct {
		umask int
		mode  os.FileMode // of images.yml when pushed
		want  os.FileMode
	}{
		{0o077, 0o644, 0o600}, // the layer has 0600 (mode & 0700)
		{0o027, 0o755, 0o750}, // the layer has 0700
		{0o022, 0o644, 0o644},
	} {
		t.Run(fmt.Sprintf("umask %03o mode %03o", tc.umask, tc.mode), func(t *testing.T) {
			ref := pushBundleFiles(t, fmt.Sprintf("%s:u%o", dst, tc.umask),
				map[string]string{".imgpkg/images.yml": lockDoc}, map[string]os.FileMode{".imgpkg/images.yml": tc.mode}, opts)
			old := syscall.Umask(tc.umask)
			defer syscall.Umask(old)
			out := filepath.Join(t.TempDir(), "out")
			res, err := Pull(context.Background(), ref, out, Options{Bundle: true, Remote: opts})
			if err != nil {
				t.Fatal(err)
			}
			if res.Rewrite != RewriteChecked {
				t.Fatalf("rewrite %q, want %q", res.Rewrite, RewriteChecked)
			}
			fi, err := os.Stat(filepath.Join(out, ".imgpkg", "images.yml"))
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != tc.want {
				t.Errorf("rewritten images.yml has mode %03o, want %03o", fi.Mode().Perm(), tc.want)
			}
		})
	}
}

// tree lists the files under dir (slash-separated, relative) with their
// contents; directories appear only through their files.
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	got := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		got[filepath.ToSlash(rel)] = string(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// With -r, .imgpkg/bundles/sha256-<X>/ is named after nested bundle X's
// digest, so it must hold X's files and nothing else, whatever the root
// bundle's own layer put there: imgpkg's pull removes that directory before
// extracting X into it. ferry used to extract X on top, keeping a planted
// injected.yml beside X's files, failing with a duplicate-entry error that
// blamed X when a name collided, and failing on a file in the directory's
// place.
func TestPullRecursiveNestedDirectoryHoldsOnlyTheNestedBundle(t *testing.T) {
	reg := testregistry.NewGGCR(t)
	opts := reg.RemoteOptions(t)
	repo := reg.Repo("team/app")
	emptyLock := "apiVersion: imgpkg.carvel.dev/v1alpha1\nkind: ImagesLock\nimages: []\n"
	x := pushBundleFiles(t, repo+":x", map[string]string{".imgpkg/images.yml": emptyLock, "x.yml": "from x\n"}, nil, opts)
	desc, err := remote.Head(x, opts...)
	if err != nil {
		t.Fatal(err)
	}
	xd := desc.Digest
	rootLock := "apiVersion: imgpkg.carvel.dev/v1alpha1\nkind: ImagesLock\nimages:\n- image: " + repo + "@" + xd.String() + "\n"
	xdir := ".imgpkg/bundles/sha256-" + xd.Hex

	for _, tc := range []struct{ name, planted string }{
		{"beside X's files", xdir + "/injected.yml"},
		{"over a file of X", xdir + "/x.yml"},
		{"a file in the directory's place", xdir},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := pushBundleFiles(t, repo+":root", map[string]string{
				".imgpkg/images.yml": rootLock,
				"root.yml":           "from root\n",
				tc.planted:           "foreign\n",
			}, nil, opts)
			// Given as a user might type it, not clean: every Dir of the
			// result begins with it as given.
			out := filepath.Join(t.TempDir(), "out") + string(filepath.Separator) + "." + string(filepath.Separator)
			warns := &warnings{}
			res, err := Pull(context.Background(), root, out, Options{Bundle: true, Recursive: true, Remote: opts, Reporter: warns})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Nested) == 1 && (res.Dir != out || res.Nested[0].Dir != out+filepath.FromSlash(xdir)) {
				t.Errorf("dirs %q and %q; want %q and %q, both as -o was given", res.Dir, res.Nested[0].Dir, out, out+filepath.FromSlash(xdir))
			}
			// The user is told what was thrown away.
			if len(warns.lines) != 1 || !strings.Contains(warns.lines[0], filepath.FromSlash(xdir)) {
				t.Errorf("warnings %q, want one naming %s", warns.lines, xdir)
			}
			if len(res.Nested) != 1 || res.Nested[0].Digest != xd.String() {
				t.Fatalf("nested bundles %+v, want %s only", res.Nested, xd)
			}
			got := tree(t, filepath.Join(out, filepath.FromSlash(xdir)))
			if len(got) != 2 || got["x.yml"] != "from x\n" || got[".imgpkg/images.yml"] == "" {
				t.Errorf("%s holds %q, want X's x.yml and .imgpkg/images.yml only", xdir, got)
			}
			if b, err := os.ReadFile(filepath.Join(out, "root.yml")); err != nil || string(b) != "from root\n" {
				t.Errorf("root.yml: %q, %v", b, err)
			}
		})
	}
}

// A pull that fails after extraction began takes back everything it wrote
// and every directory it created, and nothing of the user's. ferry used to
// refuse to clean up "." (as if asked to replace it, which --overwrite
// refuses) and leave the extracted files in the current directory, and to
// remove only the last component of a/b/c.
func TestFailedPullLeavesNothingBehind(t *testing.T) {
	reg := testregistry.NewGGCR(t)
	opts := reg.RemoteOptions(t)
	ref := pushBundleTar(t, reg.Repo("team/bad")+":v1", []tarEntry{
		{hdr: tar.Header{Name: "good.txt", Typeflag: tar.TypeReg, Mode: 0o644}, body: "good\n"},
		{hdr: tar.Header{Name: ".imgpkg/images.yml", Typeflag: tar.TypeReg, Mode: 0o644}, body: "apiVersion: imgpkg.carvel.dev/v1alpha1\nkind: ImagesLock\nimages: []\n"},
		{hdr: tar.Header{Name: "escape", Typeflag: tar.TypeSymlink, Linkname: "../../../etc/passwd"}},
	}, opts)
	pull := func(t *testing.T, dir string, o Options) {
		t.Helper()
		o.Bundle, o.Remote = true, opts
		_, err := Pull(context.Background(), ref, dir, o)
		if err == nil || !strings.Contains(err.Error(), `"escape"`) {
			t.Fatalf("want an error naming the refused entry, got %v", err)
		}
		if strings.Contains(err.Error(), "cleaning up") {
			t.Errorf("the cleanup failed: %v", err)
		}
	}
	empty := func(t *testing.T, dir string) {
		t.Helper()
		if left, err := os.ReadDir(dir); err != nil || len(left) != 0 {
			t.Errorf("%s holds %v after the failed pull (%v)", dir, left, err)
		}
	}

	t.Run("-o . in an empty directory", func(t *testing.T) {
		t.Chdir(t.TempDir())
		pull(t, ".", Options{})
		empty(t, ".")
	})
	t.Run("-o a/b/c where a does not exist", func(t *testing.T) {
		t.Chdir(t.TempDir())
		pull(t, filepath.Join("a", "b", "c"), Options{})
		empty(t, ".")
	})
	t.Run("-o an existing empty directory", func(t *testing.T) {
		dir := t.TempDir()
		pull(t, dir, Options{})
		empty(t, dir) // and still there: it is the user's
	})
	t.Run("--overwrite", func(t *testing.T) {
		// The user's files were given up once the layer was verified (see
		// TestOverwriteKeepsFilesWhenThePullFails for before); no part of
		// the refused bundle stays in their place.
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "mine.txt"), []byte("old"), 0o644); err != nil {
			t.Fatal(err)
		}
		pull(t, dir, Options{Overwrite: true})
		empty(t, dir)
	})
}

// warnings is a progress.Reporter keeping the warnings it is given.
type warnings struct {
	progress.Nop
	lines []string
}

func (w *warnings) Warnf(format string, args ...any) {
	w.lines = append(w.lines, fmt.Sprintf(format, args...))
}
