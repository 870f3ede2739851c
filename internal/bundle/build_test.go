package bundle

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/fixtures/golden"
)

// Digests imgpkg v0.43 produced for golden/bundle-basic (golden/README.md).
const (
	goldenManifest         = "sha256:1dd1fe82d28c36e0cd1a72e97295ba91f1c9b705249fecbd9a99a84668c09922"
	goldenConfig           = "sha256:e750eb0993a66c2f2bdba1c75a61d71c8467fbcba0e3fad2fabf9678f4b0ec26"
	goldenLayer            = "sha256:9b0ff7cbb64fc95778032e3957067084a64c3bed42efcf0519f202e2a102392b"
	goldenDiffID           = "sha256:b97e3c9743e912b5592e0cd27a65744ddf2f9581448eac6b4631a65bebc71a25"
	goldenPreserveManifest = "sha256:a55b55e347f7c959beaa9d0c944d8967fd7ee501e44608b65b2a2aaf750c3668"
)

func TestBuildMatchesImgpkgGolden(t *testing.T) {
	img := build(t, []string{copyGolden(t)}, BuildOptions{Bundle: true})

	if got := digestOf(t, img); got != goldenManifest {
		t.Errorf("manifest digest %s, want %s", got, goldenManifest)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.MediaType != types.DockerManifestSchema2 {
		t.Errorf("manifest media type %s, want %s", m.MediaType, types.DockerManifestSchema2)
	}
	if m.Config.Digest.String() != goldenConfig || m.Config.Size != 317 {
		t.Errorf("config %s (%d bytes), want %s (317 bytes)", m.Config.Digest, m.Config.Size, goldenConfig)
	}
	if len(m.Layers) != 1 {
		t.Fatalf("%d layers, want 1", len(m.Layers))
	}
	l := m.Layers[0]
	if l.Digest.String() != goldenLayer || l.Size != 639 || l.MediaType != types.DockerLayer {
		t.Errorf("layer %s %s (%d bytes), want %s %s (639 bytes)", l.MediaType, l.Digest, l.Size, types.DockerLayer, goldenLayer)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.RootFS.DiffIDs[0].String(); got != goldenDiffID {
		t.Errorf("diff_id %s, want %s", got, goldenDiffID)
	}
	if !IsBundle(cfg) {
		t.Error("IsBundle(config) = false for a bundle")
	}
}

func TestBuildGoldenLayerListing(t *testing.T) {
	img := build(t, []string{copyGolden(t)}, BuildOptions{Bundle: true})
	entries, headers := layerEntries(t, img)
	var got []string
	for i, e := range entries {
		got = append(got, e.name)
		h := headers[i]
		if h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" {
			t.Errorf("%s: owner %d/%d %q/%q, want 0/0 and no names", h.Name, h.Uid, h.Gid, h.Uname, h.Gname)
		}
		if h.ModTime.Unix() != 0 {
			t.Errorf("%s: mtime %v, want the epoch", h.Name, h.ModTime)
		}
		if h.Format != tar.FormatUSTAR {
			t.Errorf("%s: format %v, want USTAR", h.Name, h.Format)
		}
	}
	want := []string{".", ".imgpkg", ".imgpkg/bundle.yml", ".imgpkg/images.yml", "README.txt",
		"config", "config/app.yml", "config/nested", "config/nested/private.txt", "config/run.sh"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("entries %q, want %q", got, want)
	}
	modes := map[string]int64{"config/run.sh": 0o700, "config/app.yml": 0o600, "config/nested": 0o700, ".": 0o700}
	for _, e := range entries {
		if want, ok := modes[e.name]; ok && e.mode != want {
			t.Errorf("%s: mode %o, want %o", e.name, e.mode, want)
		}
	}
}

func TestBuildPreservePermissionsMatchesImgpkgGolden(t *testing.T) {
	img := build(t, []string{copyGolden(t)}, BuildOptions{Bundle: true, PreservePermissions: true})
	if got := digestOf(t, img); got != goldenPreserveManifest {
		t.Errorf("manifest digest %s, want %s", got, goldenPreserveManifest)
	}
	entries, _ := layerEntries(t, img)
	for _, e := range entries {
		if e.name == "config/app.yml" && e.mode != 0o644 {
			t.Errorf("config/app.yml mode %o, want 644", e.mode)
		}
	}
}

// golden/locations-normalised: imgpkg pushed a directory holding only
// that images.yml; ferry gives the same bundle, the one whose locations
// image the golden data records.
func TestBuildNormalisedLockBundleMatchesImgpkgGolden(t *testing.T) {
	dir := writeTree(t, [2]string{".imgpkg/images.yml", string(readGolden(t, golden.NormalisedLock))})
	if got := digestOf(t, build(t, []string{dir}, BuildOptions{Bundle: true})); got != golden.NormalisedBundle {
		t.Errorf("manifest digest %s, want %s", got, golden.NormalisedBundle)
	}
}

func TestBuildExcludesRootGitByDefault(t *testing.T) {
	dir := copyGolden(t)
	if err := os.MkdirAll(filepath.Join(dir, ".git", "refs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".git", "HEAD"), []byte("ref: refs/heads/main\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := digestOf(t, build(t, []string{dir}, BuildOptions{Bundle: true})); got != goldenManifest {
		t.Errorf("with .git/HEAD: digest %s, want %s", got, goldenManifest)
	}
}

// imgpkg matches exclusions against whole relative paths, so only the root
// .git is left out by default, and other paths can be named.
func TestBuildExclusionsMatchRelativePaths(t *testing.T) {
	dir := writeTree(t,
		[2]string{".git/HEAD", "x"},
		[2]string{"sub/.git/HEAD", "y"},
		[2]string{"sub/keep.txt", "k"},
		[2]string{"sub/drop/a.txt", "a"},
		[2]string{"drop.txt", "d"},
	)
	names := func(opts BuildOptions) []string {
		entries, _ := layerEntries(t, build(t, []string{dir}, opts))
		var out []string
		for _, e := range entries {
			out = append(out, e.name)
		}
		return out
	}
	want := []string{".", "drop.txt", "sub", "sub/.git", "sub/.git/HEAD", "sub/drop", "sub/drop/a.txt", "sub/keep.txt"}
	if got := names(BuildOptions{}); !reflect.DeepEqual(got, want) {
		t.Errorf("default exclusions: %q, want %q", got, want)
	}
	want = []string{".", ".git", ".git/HEAD", "sub", "sub/.git", "sub/.git/HEAD", "sub/keep.txt"}
	if got := names(BuildOptions{Exclusions: []string{"sub/drop", "drop.txt"}}); !reflect.DeepEqual(got, want) {
		t.Errorf("custom exclusions: %q, want %q", got, want)
	}
}

func TestBuildIsDeterministic(t *testing.T) {
	files := [][2]string{{"b/z.txt", "z"}, {"a.txt", "a"}, {"b/a.txt", "ba"}, {"c/", ""}, {"B.txt", "upper"}}
	one := writeTree(t, files...)
	reversed := make([][2]string, len(files))
	for i, f := range files {
		reversed[len(files)-1-i] = f
	}
	two := writeTree(t, reversed...)
	// Times and owners on disk must not matter.
	if err := os.Chtimes(filepath.Join(two, "a.txt"), time.Unix(1e9, 0), time.Unix(1e9, 0)); err != nil {
		t.Fatal(err)
	}

	first := digestOf(t, build(t, []string{one}, BuildOptions{}))
	if again := digestOf(t, build(t, []string{one}, BuildOptions{})); again != first {
		t.Errorf("second build of one directory: %s, first %s", again, first)
	}
	if other := digestOf(t, build(t, []string{two}, BuildOptions{})); other != first {
		t.Errorf("same content created in another order: %s, want %s", other, first)
	}
	entries, _ := layerEntries(t, build(t, []string{two}, BuildOptions{}))
	var got []string
	for _, e := range entries {
		got = append(got, e.name)
	}
	want := []string{".", "B.txt", "a.txt", "b", "b/a.txt", "b/z.txt", "c"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("walk order %q, want %q (lexical by bytes)", got, want)
	}
}

// The layer is the gzip of a tar we can write ourselves from the rules, so
// its diff_id is checked against a digest computed here.
func TestBuildDiffIDIsSha256OfExpectedTar(t *testing.T) {
	dir := writeTree(t, [2]string{"a.txt", "hello"}, [2]string{"d/b.txt", "bee"})
	if err := os.Chmod(filepath.Join(dir, "d", "b.txt"), 0o754); err != nil {
		t.Fatal(err)
	}
	var want hashWriter
	tw := tar.NewWriter(&want)
	for _, h := range []struct {
		name, body string
		mode       int64
		dir        bool
	}{{".", "", 0o700, true}, {"a.txt", "hello", 0o600, false}, {"d", "", 0o700, true}, {"d/b.txt", "bee", 0o700, false}} {
		hdr := &tar.Header{Name: h.name, Mode: h.mode, Typeflag: tar.TypeReg, Size: int64(len(h.body))}
		if h.dir {
			hdr.Typeflag = tar.TypeDir
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(h.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	cfg, err := build(t, []string{dir}, BuildOptions{}).ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.RootFS.DiffIDs[0].String(); got != want.digest() {
		t.Errorf("diff_id %s, want %s", got, want.digest())
	}
}

type hashWriter struct{ data []byte }

func (h *hashWriter) Write(p []byte) (int, error) { h.data = append(h.data, p...); return len(p), nil }
func (h *hashWriter) digest() string {
	sum := sha256.Sum256(h.data)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Like imgpkg, each input directory contributes its own "." entry and its
// files in walk order, one input after the other; files given directly land
// at the root under their base name.
func TestBuildCombinesInputsInOrder(t *testing.T) {
	a := writeTree(t, [2]string{"x.txt", "x"}, [2]string{".imgpkg/images.yml", string(goldenImagesYML(t))})
	b := writeTree(t, [2]string{"sub/y.txt", "y"})
	single := filepath.Join(writeTree(t, [2]string{"notes.md", "n"}), "notes.md")
	img := build(t, []string{a, b, single}, BuildOptions{Bundle: true})
	entries, _ := layerEntries(t, img)
	var got []string
	for _, e := range entries {
		got = append(got, e.name)
	}
	want := []string{".", ".imgpkg", ".imgpkg/images.yml", "x.txt", ".", "sub", "sub/y.txt", "notes.md"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("entries %q, want %q", got, want)
	}
	if last := entries[len(entries)-1]; last.content != "n" || last.mode != 0o600 {
		t.Errorf("notes.md: content %q mode %o, want \"n\" 600", last.content, last.mode)
	}
}

func TestBuildPlainImage(t *testing.T) {
	dir := writeTree(t, [2]string{"a.txt", "a"})
	img := build(t, []string{dir}, BuildOptions{})
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Config.Labels != nil || IsBundle(cfg) {
		t.Errorf("plain image labels %v, want none", cfg.Config.Labels)
	}
	raw, err := img.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if want := `"config":{}`; !strings.Contains(string(raw), want) {
		t.Errorf("config %s lacks %s", raw, want)
	}

	labelled := build(t, []string{dir}, BuildOptions{Labels: map[string]string{"team": "blue"}})
	cfg, err = labelled.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg.Config.Labels, map[string]string{"team": "blue"}) {
		t.Errorf("labels %v, want team=blue only", cfg.Config.Labels)
	}
	b := build(t, []string{bundleTree(t)}, BuildOptions{Bundle: true, Labels: map[string]string{"team": "blue"}})
	cfg, err = b.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg.Config.Labels, map[string]string{"team": "blue", LabelKey: "true"}) {
		t.Errorf("bundle labels %v, want team=blue and %s", cfg.Config.Labels, LabelKey)
	}
}

func TestBuildCloseRemovesStagedLayer(t *testing.T) {
	tmp := t.TempDir()
	img, err := Build(context.Background(), []string{writeTree(t, [2]string{"a", "a"})}, BuildOptions{TempDir: tmp})
	if err != nil {
		t.Fatal(err)
	}
	// Staged without a name: a push killed outright leaves nothing.
	if n := countFiles(t, tmp); n != 0 {
		t.Fatalf("%d named files staged in TempDir, want none", n)
	}
	want := digestOf(t, img)
	if err := img.Close(); err != nil {
		t.Fatal(err)
	}
	if err := img.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if n := countFiles(t, tmp); n != 0 {
		t.Errorf("%d files left in TempDir after Close, want 0", n)
	}
	if got := digestOf(t, img); got != want {
		t.Errorf("digest after Close %s, want %s", got, want)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := layers[0].Compressed(); err == nil {
		t.Error("reading the layer after Close succeeded, want an error")
	}
}

func TestBuildFailureLeavesNoStagedFile(t *testing.T) {
	tmp := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Build(ctx, []string{writeTree(t, [2]string{"a", "a"})}, BuildOptions{TempDir: tmp})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled build: %v, want context.Canceled", err)
	}
	if n := countFiles(t, tmp); n != 0 {
		t.Errorf("%d files left in TempDir, want 0", n)
	}
}

func countFiles(t *testing.T, dir string) int {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

type recorder struct {
	mu     sync.Mutex
	total  int64
	added  int64
	phases []string
	done   int
}

func (r *recorder) Start(phase string, total int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.phases, r.total = append(r.phases, phase), total
}
func (r *recorder) Add(n int64)          { r.mu.Lock(); r.added += n; r.mu.Unlock() }
func (r *recorder) Logf(string, ...any)  {}
func (r *recorder) Warnf(string, ...any) {}
func (r *recorder) Done()                { r.mu.Lock(); r.done++; r.mu.Unlock() }

func TestBuildReportsBytes(t *testing.T) {
	r := &recorder{}
	build(t, []string{writeTree(t, [2]string{"a", "12345"}, [2]string{"d/b", "678"})}, BuildOptions{Reporter: r})
	if r.total != 8 || r.added != 8 || r.done != 1 || len(r.phases) != 1 {
		t.Errorf("reported phases %q total %d added %d done %d, want one phase of 8 bytes", r.phases, r.total, r.added, r.done)
	}
}

func TestBuildErrors(t *testing.T) {
	imagesYML := string(goldenImagesYML(t))
	tests := []struct {
		name  string
		setup func(t *testing.T) ([]string, BuildOptions, []string) // inputs, options, fragments
	}{
		{"no inputs", func(t *testing.T) ([]string, BuildOptions, []string) {
			return nil, BuildOptions{}, []string{"no directories"}
		}},
		{"missing input", func(t *testing.T) ([]string, BuildOptions, []string) {
			p := filepath.Join(t.TempDir(), "nope")
			return []string{p}, BuildOptions{}, []string{p}
		}},
		{"symlink", func(t *testing.T) ([]string, BuildOptions, []string) {
			dir := writeTree(t, [2]string{"a.txt", "a"})
			link := filepath.Join(dir, "sub", "link")
			mustMkdir(t, filepath.Dir(link))
			if err := os.Symlink("../a.txt", link); err != nil {
				t.Skip("symlinks unavailable:", err)
			}
			return []string{dir}, BuildOptions{}, []string{link, "symbolic link"}
		}},
		{"socket", func(t *testing.T) ([]string, BuildOptions, []string) {
			dir, err := os.MkdirTemp("", "fs") // short path: unix socket names are limited
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(dir) })
			sock := filepath.Join(dir, "s")
			l, err := net.Listen("unix", sock)
			if err != nil {
				t.Skip("unix sockets unavailable:", err)
			}
			t.Cleanup(func() { l.Close() })
			return []string{dir}, BuildOptions{}, []string{sock, "socket"}
		}},
		{"same file in two inputs", func(t *testing.T) ([]string, BuildOptions, []string) {
			a := writeTree(t, [2]string{"conf/x.yml", "1"})
			b := writeTree(t, [2]string{"conf/x.yml", "2"})
			return []string{a, b}, BuildOptions{}, []string{filepath.Join(a, "conf"), filepath.Join(b, "conf"), `"conf"`}
		}},
		{"same file given twice", func(t *testing.T) ([]string, BuildOptions, []string) {
			a := writeTree(t, [2]string{"x.yml", "1"})
			f := filepath.Join(writeTree(t, [2]string{"x.yml", "2"}), "x.yml")
			return []string{a, f}, BuildOptions{}, []string{filepath.Join(a, "x.yml"), f}
		}},
		{"reserved label", func(t *testing.T) ([]string, BuildOptions, []string) {
			return []string{bundleTree(t)}, BuildOptions{Bundle: true, Labels: map[string]string{LabelKey: "true"}}, []string{LabelKey}
		}},
		{"reserved label on plain image", func(t *testing.T) ([]string, BuildOptions, []string) {
			return []string{writeTree(t, [2]string{"a", "a"})}, BuildOptions{Labels: map[string]string{LabelKey: "x"}}, []string{LabelKey}
		}},
		{"plain image with .imgpkg", func(t *testing.T) ([]string, BuildOptions, []string) {
			dir := bundleTree(t)
			return []string{dir}, BuildOptions{}, []string{filepath.Join(dir, ".imgpkg"), "bundle"}
		}},
		{"bundle without .imgpkg", func(t *testing.T) ([]string, BuildOptions, []string) {
			dir := writeTree(t, [2]string{"a", "a"})
			return []string{dir}, BuildOptions{Bundle: true}, []string{dir, ".imgpkg/images.yml"}
		}},
		{"bundle whose .imgpkg is excluded", func(t *testing.T) ([]string, BuildOptions, []string) {
			dir := bundleTree(t)
			return []string{dir}, BuildOptions{Bundle: true, Exclusions: []string{".imgpkg"}}, []string{dir, ".imgpkg"}
		}},
		// imgpkg compares exclusions with the clean relative paths of its
		// walk, the input itself being ".": these would leave out the whole
		// input (an empty layer), or nothing where the user meant something.
		{"empty exclusion", func(t *testing.T) ([]string, BuildOptions, []string) {
			return []string{writeTree(t, [2]string{"a", "a"})}, BuildOptions{Exclusions: []string{""}}, []string{`exclusion ""`, "whole input"}
		}},
		{"dot exclusion", func(t *testing.T) ([]string, BuildOptions, []string) {
			return []string{writeTree(t, [2]string{"a", "a"})}, BuildOptions{Exclusions: []string{".git", "sub/.."}}, []string{`exclusion "sub/.."`, "whole input"}
		}},
		{"exclusion not clean", func(t *testing.T) ([]string, BuildOptions, []string) {
			return []string{writeTree(t, [2]string{"secret", "s"})}, BuildOptions{Exclusions: []string{"./secret"}}, []string{`"./secret"`, "nothing", `write "secret"`}
		}},
		{"exclusion with a trailing slash", func(t *testing.T) ([]string, BuildOptions, []string) {
			return []string{writeTree(t, [2]string{"sub/a", "a"})}, BuildOptions{Exclusions: []string{"sub/"}}, []string{`"sub/"`, `write "sub"`}
		}},
		{"absolute exclusion", func(t *testing.T) ([]string, BuildOptions, []string) {
			return []string{writeTree(t, [2]string{"a", "a"})}, BuildOptions{Exclusions: []string{"/a"}}, []string{`"/a"`, "relative"}
		}},
		{"exclusion outside the input", func(t *testing.T) ([]string, BuildOptions, []string) {
			return []string{writeTree(t, [2]string{"a", "a"})}, BuildOptions{Exclusions: []string{"../a"}}, []string{`"../a"`, "relative"}
		}},
		{"bundle with two .imgpkg", func(t *testing.T) ([]string, BuildOptions, []string) {
			a, b := bundleTree(t), bundleTree(t)
			return []string{a, b}, BuildOptions{Bundle: true}, []string{filepath.Join(a, ".imgpkg"), filepath.Join(b, ".imgpkg")}
		}},
		{"bundle with a second, nested .imgpkg", func(t *testing.T) ([]string, BuildOptions, []string) {
			dir := bundleTree(t, [2]string{"vendor/.imgpkg/images.yml", imagesYML})
			return []string{dir}, BuildOptions{Bundle: true}, []string{filepath.Join(dir, ".imgpkg"), filepath.Join(dir, "vendor", ".imgpkg"), "exactly one"}
		}},
		{"bundle with nested .imgpkg", func(t *testing.T) ([]string, BuildOptions, []string) {
			dir := writeTree(t, [2]string{"config/.imgpkg/images.yml", imagesYML})
			return []string{dir}, BuildOptions{Bundle: true}, []string{filepath.Join(dir, "config", ".imgpkg"), "root"}
		}},
		{"bundle with .imgpkg file", func(t *testing.T) ([]string, BuildOptions, []string) {
			dir := writeTree(t, [2]string{".imgpkg", "not a dir"})
			return []string{dir}, BuildOptions{Bundle: true}, []string{filepath.Join(dir, ".imgpkg"), "not a directory"}
		}},
		{"bundle without images.yml", func(t *testing.T) ([]string, BuildOptions, []string) {
			dir := writeTree(t, [2]string{".imgpkg/bundle.yml", "apiVersion: imgpkg.carvel.dev/v1alpha1\nkind: Bundle\n"})
			return []string{dir}, BuildOptions{Bundle: true}, []string{filepath.Join(dir, ".imgpkg", "images.yml")}
		}},
		{"bundle with invalid images.yml", func(t *testing.T) ([]string, BuildOptions, []string) {
			dir := writeTree(t, [2]string{".imgpkg/images.yml", "apiVersion: imgpkg.carvel.dev/v1alpha1\nkind: ImagesLock\nimages:\n- image: nginx:latest\n"})
			return []string{dir}, BuildOptions{Bundle: true}, []string{filepath.Join(dir, ".imgpkg", "images.yml")}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inputs, opts, fragments := tc.setup(t)
			opts.TempDir = t.TempDir()
			img, err := Build(context.Background(), inputs, opts)
			if err == nil {
				_ = img.Close()
			}
			t.Log(err)
			wantErr(t, err, fragments...)
			if n := countFiles(t, opts.TempDir); n != 0 {
				t.Errorf("%d staged files left after a failed build", n)
			}
		})
	}
}

// imgpkg v0.43's push never reads .imgpkg/bundle.yml (bundle.Contents
// only checks that .imgpkg/images.yml exists), so it pushes any bundle.yml:
// one with fields ferry does not know, an empty or comment-only one, one of
// another kind, one that is not YAML, even a directory of that name. ferry
// used to refuse all but a valid Bundle document. It pushes them as they
// are, the same layer as imgpkg's, and warns about what it cannot read;
// a file that says nothing is no metadata, not worth a warning.
func TestBuildPushesAnyBundleYMLAsImgpkgDoes(t *testing.T) {
	for _, tc := range []struct {
		name, content string // content "" with dir: a directory
		dir           bool
		warn          string // what the one warning says; "" for none
	}{
		{name: "unknown fields", content: "apiVersion: imgpkg.carvel.dev/v1alpha1\nkind: Bundle\nmetadata:\n  name: x\n  version: \"1.0\"\ndescription: hello\n", warn: "unknown field"},
		{name: "comments only", content: "# just notes\n"},
		{name: "empty", content: ""},
		{name: "document markers only", content: "---\n...\n"},
		{name: "another kind", content: "apiVersion: imgpkg.carvel.dev/v1alpha1\nkind: ImagesLock\n", warn: "ImagesLock"},
		{name: "not YAML", content: "a: [\n", warn: "bundle.yml"},
		{name: "a directory", dir: true, warn: "directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			entry := [2]string{".imgpkg/bundle.yml", tc.content}
			if tc.dir {
				entry = [2]string{".imgpkg/bundle.yml/", ""}
			}
			dir := bundleTree(t, entry)
			warns := &warnRecorder{}
			img := build(t, []string{dir}, BuildOptions{Bundle: true, Reporter: warns})
			entries, _ := layerEntries(t, img)
			found := false
			for _, e := range entries {
				if e.name == BundleMetadataPath {
					found = true
					if !tc.dir && e.content != tc.content {
						t.Errorf("bundle.yml in the layer holds %q, want %q", e.content, tc.content)
					}
				}
			}
			if !found {
				t.Errorf("no %s in the layer", BundleMetadataPath)
			}
			switch {
			case tc.warn == "" && len(warns.lines) != 0:
				t.Errorf("warnings %q, want none", warns.lines)
			case tc.warn != "" && (len(warns.lines) != 1 || !strings.Contains(warns.lines[0], tc.warn) || !strings.Contains(warns.lines[0], filepath.Join(dir, ".imgpkg", "bundle.yml"))):
				t.Errorf("warnings %q, want one naming %s and saying %q", warns.lines, filepath.Join(dir, ".imgpkg", "bundle.yml"), tc.warn)
			}
		})
	}
}

// warnRecorder keeps the warnings it is given.
type warnRecorder struct {
	recorder
	lines []string
}

func (w *warnRecorder) Warnf(format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.lines = append(w.lines, fmt.Sprintf(format, args...))
}

func mustMkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

// onStart runs a function when Build starts copying, which is after the
// inputs were listed and the temporary file created: the moment to change
// things under a running build.
type onStart struct {
	recorder
	fn func()
}

func (o *onStart) Start(phase string, total int64) { o.recorder.Start(phase, total); o.fn() }

func TestBuildCancelledWhileCopyingLeavesNoStagedFile(t *testing.T) {
	tmp := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := Build(ctx, []string{writeTree(t, [2]string{"a", "a"})}, BuildOptions{TempDir: tmp, Reporter: &onStart{fn: cancel}})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("build cancelled while copying: %v, want context.Canceled", err)
	}
	if n := countFiles(t, tmp); n != 0 {
		t.Errorf("%d files left in TempDir, want 0", n)
	}
}

func TestBuildFileShrinkingWhileCopyingIsAnError(t *testing.T) {
	dir := writeTree(t, [2]string{"a.txt", "twelve bytes"})
	victim := filepath.Join(dir, "a.txt")
	tmp := t.TempDir()
	_, err := Build(context.Background(), []string{dir}, BuildOptions{TempDir: tmp, Reporter: &onStart{fn: func() {
		if err := os.WriteFile(victim, []byte("short"), 0o644); err != nil {
			t.Error(err)
		}
	}}})
	wantErr(t, err, victim, "shrank")
	if n := countFiles(t, tmp); n != 0 {
		t.Errorf("%d files left in TempDir, want 0", n)
	}
}

// The tar header promises the size the walk saw: a file that grew since
// used to be cut to it, silently.
func TestBuildFileGrowingWhileCopyingIsAnError(t *testing.T) {
	dir := writeTree(t, [2]string{"a.txt", "twelve bytes"})
	victim := filepath.Join(dir, "a.txt")
	tmp := t.TempDir()
	_, err := Build(context.Background(), []string{dir}, BuildOptions{TempDir: tmp, Reporter: &onStart{fn: func() {
		f, err := os.OpenFile(victim, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString(" and more"); err != nil {
			t.Error(err)
		}
	}}})
	wantErr(t, err, victim, "grew", "while push was reading it")
	if n := countFiles(t, tmp); n != 0 {
		t.Errorf("%d files left in TempDir, want 0", n)
	}
}

// images.yml is validated, then copied: what the layer holds is the lock
// that was checked, even if the file is rewritten in between.
func TestBuildStagesTheImagesLockItValidated(t *testing.T) {
	want := goldenImagesYML(t)
	dir := bundleTree(t)
	victim := filepath.Join(dir, ".imgpkg", "images.yml")
	img := build(t, []string{dir}, BuildOptions{Bundle: true, TempDir: t.TempDir(), Reporter: &onStart{fn: func() {
		// Same size, same file: only the bytes differ.
		if err := os.WriteFile(victim, bytes.Repeat([]byte("x"), len(want)), 0o644); err != nil {
			t.Fatal(err)
		}
	}}})
	entries, _ := layerEntries(t, img)
	for _, e := range entries {
		if e.name == ImagesLockPath && e.content != string(want) {
			t.Errorf("images.yml in the layer holds %q, want the lock validated, %q", e.content, want)
		}
	}
}
