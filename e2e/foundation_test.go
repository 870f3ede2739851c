package e2e

import (
	"archive/tar"
	"cmp"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferry-dev/ferry/internal/bundle"
	"github.com/ferry-dev/ferry/internal/testregistry"
	"github.com/ferry-dev/ferry/lock"
)

// From fixtures/golden/README.md: digests imgpkg v0.43 gave for bundle-basic.
const (
	goldenBundle         = "sha256:1dd1fe82d28c36e0cd1a72e97295ba91f1c9b705249fecbd9a99a84668c09922"
	goldenBundlePreserve = "sha256:a55b55e347f7c959beaa9d0c944d8967fd7ee501e44608b65b2a2aaf750c3668"
)

func TestPushGoldenBundleGivesImgpkgDigests(t *testing.T) {
	reg := testregistry.NewDistribution(t)
	dir := goldenBundleDir(t)
	// .git is excluded by default, so it must not change the digest.
	os.MkdirAll(filepath.Join(dir, ".git"), 0o755)
	os.WriteFile(filepath.Join(dir, ".git", "HEAD"), []byte("ref: refs/heads/main\n"), 0o644)

	lockFile := filepath.Join(t.TempDir(), "bundle.lock.yml")
	repo := reg.Repo("golden/bundle")
	r := mustFerry(t, "push", "-b", repo+":v1", "-f", dir, "--lock-output", lockFile, "--json")

	var out struct {
		Image, Digest string
		Tags          []string
	}
	if err := json.Unmarshal([]byte(r.Stdout), &out); err != nil {
		t.Fatalf("--json output is not JSON: %v\n%s", err, r)
	}
	if out.Digest != goldenBundle {
		t.Fatalf("pushed digest %s, imgpkg gives %s", out.Digest, goldenBundle)
	}
	for _, tag := range []string{"v1", "sha256-" + strings.TrimPrefix(goldenBundle, "sha256:") + ".imgpkg"} {
		if got := digestOf(t, reg, repo+":"+tag); got != goldenBundle {
			t.Errorf("tag %s points at %s, want %s", tag, got, goldenBundle)
		}
	}
	bl, err := lock.ReadBundleLock(lockFile)
	if err != nil {
		t.Fatal(err)
	}
	if bl.Bundle.Image != repo+"@"+goldenBundle || bl.Bundle.Tag != "v1" {
		t.Fatalf("BundleLock %+v", bl.Bundle)
	}

	r = mustFerry(t, "push", "-b", repo+":v1-preserve", "-f", dir, "--preserve-permissions", "--json")
	if !strings.Contains(r.Stdout, goldenBundlePreserve) {
		t.Fatalf("with --preserve-permissions want %s: %s", goldenBundlePreserve, r)
	}
}

func TestPushRefusesBadBundlesAndPushesNothing(t *testing.T) {
	reg := testregistry.NewDistribution(t)
	cases := map[string]struct {
		prepare func(dir string)
		args    []string
		want    string
		code    int // the exit status when not 1
	}{
		"no .imgpkg": {
			prepare: func(dir string) { os.RemoveAll(filepath.Join(dir, ".imgpkg")) },
			want:    ".imgpkg",
		},
		"invalid images.yml": {
			prepare: func(dir string) {
				os.WriteFile(filepath.Join(dir, ".imgpkg", "images.yml"), []byte("apiVersion: imgpkg.carvel.dev/v1alpha1\nkind: ImagesLock\nimages:\n- image: nginx:latest\n"), 0o644)
			},
			want: "images.yml",
		},
		"symlink": {
			prepare: func(dir string) { os.Symlink("/etc/passwd", filepath.Join(dir, "config", "link")) },
			want:    "link",
		},
		"reserved label": {
			args: []string{"-l", "dev.carvel.imgpkg.bundle=false"},
			want: "dev.carvel.imgpkg.bundle",
			code: 2, // how push was called, as -l novalue
		},
	}
	for label, tc := range cases {
		t.Run(label, func(t *testing.T) {
			dir := goldenBundleDir(t)
			if tc.prepare != nil {
				tc.prepare(dir)
			}
			path := "bad/" + strings.ReplaceAll(label, " ", "-")
			repo := reg.Repo(path)
			args := append([]string{"push", "-b", repo + ":v1", "-f", dir}, tc.args...)
			r := ferry(t, nil, args...)
			code := cmp.Or(tc.code, 1)
			if r.Code != code || !strings.Contains(r.Stderr, tc.want) {
				t.Fatalf("want exit %d naming %q: %s", code, tc.want, r)
			}
			rp, _ := name.NewRepository(repo)
			if tags, err := remote.List(rp, reg.RemoteOptions(t)...); err == nil && len(tags) > 0 {
				t.Fatalf("tags written after a refused push: %v", tags)
			}
			// Nothing at all: no blob upload begun, no manifest.
			if w := reg.Writes(path); len(w) != 0 {
				t.Fatalf("a refused push sent %d requests that write: %v", len(w), w)
			}
		})
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	for _, args := range [][]string{
		{"push", "-f", "."},
		{"push", "-b", "127.0.0.1:1/a:v1", "-i", "127.0.0.1:1/b:v1", "-f", "."},
		{"pull", "-b", "127.0.0.1:1/a:v1"},
		{"tag", "list"},
		{"push", "--no-such-flag"},
		// An exclusion that would leave out the whole input, or nothing.
		{"push", "-i", "127.0.0.1:1/a:v1", "-f", ".", "--file-exclusion", ""},
		{"push", "-i", "127.0.0.1:1/a:v1", "-f", ".", "--file-exclusion", "./secret"},
	} {
		r := ferry(t, nil, args...)
		if r.Code != 2 {
			t.Errorf("ferry %s: want exit 2, %s", strings.Join(args, " "), r)
		}
	}
}

func TestTagListHidesInternalTags(t *testing.T) {
	reg := testregistry.NewDistribution(t)
	repo := reg.Repo("golden/bundle")
	mustFerry(t, "push", "-b", repo+":v1", "-f", goldenBundleDir(t))

	r := mustFerry(t, "tag", "list", "-i", repo)
	if strings.TrimSpace(r.Stdout) != "v1" {
		t.Fatalf("want only v1: %s", r)
	}
	r = mustFerry(t, "tag", "list", "-i", repo, "--imgpkg-internal-tags", "--digests")
	internal := "sha256-" + strings.TrimPrefix(goldenBundle, "sha256:") + ".imgpkg\t" + goldenBundle
	if !strings.Contains(r.Stdout, internal) || !strings.Contains(r.Stdout, "v1\t"+goldenBundle) {
		t.Fatalf("want both tags with digests: %s", r)
	}
}

// nestedFixture pushes, with ferry, an inner bundle locking one image and an
// outer bundle locking the inner bundle and another image.
func nestedFixture(t *testing.T, reg *testregistry.Registry) (outer string, inner, app1, app2 name.Digest) {
	t.Helper()
	app1 = seedImage(t, reg, "src/app1", 10)
	app2 = seedImage(t, reg, "src/app2", 20)
	innerRepo := reg.Repo("src/inner")
	r := mustFerry(t, "push", "-b", innerRepo+":v1", "-f", bundleDir(t, app1), "--json")
	var pushed struct{ Image string }
	json.Unmarshal([]byte(r.Stdout), &pushed)
	inner, err := name.NewDigest(pushed.Image)
	if err != nil {
		t.Fatalf("push result %q: %v", r.Stdout, err)
	}
	outer = reg.Repo("src/outer") + ":v1"
	mustFerry(t, "push", "-b", outer, "-f", bundleDir(t, inner, app2))
	return outer, inner, app1, app2
}

func TestPullRecursiveWritesNestedBundles(t *testing.T) {
	reg := testregistry.NewDistribution(t)
	outer, inner, app1, app2 := nestedFixture(t, reg)
	out := filepath.Join(t.TempDir(), "out")
	mustFerry(t, "pull", "-b", outer, "-o", out, "-r")

	l, err := lock.ReadImagesLock(filepath.Join(out, ".imgpkg", "images.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Images) != 2 || l.Images[0].Image != inner.String() || l.Images[1].Image != app2.String() {
		t.Fatalf("outer images.yml changed although not relocated: %+v", l.Images)
	}
	nested := filepath.Join(out, ".imgpkg", "bundles", strings.Replace(inner.DigestStr(), ":", "-", 1))
	nl, err := lock.ReadImagesLock(filepath.Join(nested, ".imgpkg", "images.yml"))
	if err != nil {
		t.Fatalf("nested bundle not pulled: %v", err)
	}
	if len(nl.Images) != 1 || nl.Images[0].Image != app1.String() {
		t.Fatalf("nested images.yml %+v", nl.Images)
	}
	if b, err := os.ReadFile(filepath.Join(out, "config", "app.yml")); err != nil || len(b) == 0 {
		t.Fatalf("bundle files not written: %v", err)
	}

	// Without -r, no nested bundles; a non-empty directory is refused.
	r := ferry(t, nil, "pull", "-b", outer, "-o", out)
	if r.Code != 1 || !strings.Contains(r.Stderr, "not empty") {
		t.Fatalf("want refusal of a non-empty dir: %s", r)
	}
	mustFerry(t, "pull", "-b", outer, "-o", out, "--overwrite")
	if _, err := os.Stat(filepath.Join(out, ".imgpkg", "bundles")); !os.IsNotExist(err) {
		t.Fatalf("--overwrite without -r left nested bundles: %v", err)
	}
}

// relocate copies the outer/inner bundles and apps of nestedFixture into
// dst the way an import does, with or without the locations images.
func relocateByHand(t *testing.T, reg *testregistry.Registry, dst string, withLocations bool, refs ...name.Digest) {
	t.Helper()
	opts := reg.RemoteOptions(t)
	dstRepo, _ := name.NewRepository(dst)
	for _, ref := range refs {
		img, err := remote.Image(ref, opts...)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(dstRepo.Digest(ref.DigestStr()), img, opts...); err != nil {
			t.Fatal(err)
		}
		if !withLocations {
			continue
		}
		cfg, _ := img.ConfigFile()
		if !bundle.IsBundle(cfg) {
			continue
		}
		l, err := bundle.ReadImagesLock(img, ref.String())
		if err != nil {
			t.Fatal(err)
		}
		locs := lock.ImageLocations{APIVersion: lock.APIVersion, Kind: lock.KindImageLocations}
		for _, li := range l.Images {
			isB := false
			for _, r := range refs {
				if r.String() == li.Image {
					ri, _ := remote.Image(r, opts...)
					c, _ := ri.ConfigFile()
					isB = bundle.IsBundle(c)
				}
			}
			locs.Images = append(locs.Images, lock.ImageLocation{Image: li.Image, IsBundle: isB})
		}
		li, err := bundle.LocationsImage(locs)
		if err != nil {
			t.Fatal(err)
		}
		d, _ := img.Digest()
		if err := remote.Write(dstRepo.Tag("sha256-"+d.Hex+".image-locations.imgpkg"), li, opts...); err != nil {
			t.Fatal(err)
		}
	}
}

func TestPullAfterRelocationRewritesImagesLock(t *testing.T) {
	for _, withLocations := range []bool{true, false} {
		t.Run(map[bool]string{true: "locations image", false: "digest check"}[withLocations], func(t *testing.T) {
			reg := testregistry.NewDistribution(t)
			outer, inner, app1, app2 := nestedFixture(t, reg)
			outerRef, _ := name.NewTag(outer)
			outerDigest, _ := name.NewDigest(outerRef.Context().String() + "@" + digestOf(t, reg, outer))
			dst := reg.Repo("far/mirror")
			relocateByHand(t, reg, dst, withLocations, outerDigest, inner, app1, app2)

			out := filepath.Join(t.TempDir(), "out")
			r := mustFerry(t, "pull", "-b", dst+"@"+outerDigest.DigestStr(), "-o", out, "-r")
			want := map[bool]string{true: "image-locations", false: "found there by digest"}[withLocations]
			if !strings.Contains(r.Stderr, want) {
				t.Fatalf("pull does not say it used the %s: %s", want, r)
			}
			l, _ := lock.ReadImagesLock(filepath.Join(out, ".imgpkg", "images.yml"))
			if len(l.Images) != 2 || l.Images[0].Image != dst+"@"+inner.DigestStr() || l.Images[1].Image != dst+"@"+app2.DigestStr() {
				t.Fatalf("images.yml not rewritten to %s: %+v", dst, l.Images)
			}
			if l.Images[0].Annotations["kbld.carvel.dev/id"] != inner.String() {
				t.Fatalf("annotations lost: %+v", l.Images[0])
			}
			nested := filepath.Join(out, ".imgpkg", "bundles", strings.Replace(inner.DigestStr(), ":", "-", 1))
			nl, err := lock.ReadImagesLock(filepath.Join(nested, ".imgpkg", "images.yml"))
			if err != nil || nl.Images[0].Image != dst+"@"+app1.DigestStr() {
				t.Fatalf("nested images.yml not rewritten: %+v %v", nl, err)
			}
		})
	}
}

func TestPullPartlyRelocatedLeavesImagesLock(t *testing.T) {
	reg := testregistry.NewDistribution(t)
	app1 := seedImage(t, reg, "src/app1", 1)
	app2 := seedImage(t, reg, "src/app2", 2)
	repo := reg.Repo("src/bundle")
	mustFerry(t, "push", "-b", repo+":v1", "-f", bundleDir(t, app1, app2))
	// Only app1 also exists in the bundle's repository.
	relocateByHand(t, reg, repo, false, app1)
	out := filepath.Join(t.TempDir(), "out")
	mustFerry(t, "pull", "-b", repo+":v1", "-o", out)
	l, _ := lock.ReadImagesLock(filepath.Join(out, ".imgpkg", "images.yml"))
	if l.Images[0].Image != app1.String() || l.Images[1].Image != app2.String() {
		t.Fatalf("images.yml rewritten although app2 is not in %s: %+v", repo, l.Images)
	}
}

func TestPullRefusesEntriesEscapingTheDirectory(t *testing.T) {
	reg := testregistry.NewDistribution(t)
	for label, entries := range map[string][]tar.Header{
		"dotdot":   {{Name: "../escape.txt", Typeflag: tar.TypeReg, Size: 3, Mode: 0o644}},
		"absolute": {{Name: "/tmp/ferry-abs-escape.txt", Typeflag: tar.TypeReg, Size: 3, Mode: 0o644}},
		"dotdot-after-good-files": {
			{Name: ".imgpkg/", Typeflag: tar.TypeDir, Mode: 0o755},
			{Name: ".imgpkg/images.yml", Typeflag: tar.TypeReg, Size: 3, Mode: 0o644},
			{Name: "../escape.txt", Typeflag: tar.TypeReg, Size: 3, Mode: 0o644},
		},
		"symlink": {
			{Name: "link", Typeflag: tar.TypeSymlink, Linkname: "..", Mode: 0o777},
			{Name: "link/escape.txt", Typeflag: tar.TypeReg, Size: 3, Mode: 0o644},
		},
	} {
		t.Run(label, func(t *testing.T) {
			img := maliciousBundle(t, entries)
			ref := seed2(t, reg, "evil/"+label, img)
			parent := t.TempDir()
			out := filepath.Join(parent, "out")
			r := ferry(t, nil, "pull", "-b", ref.String(), "-o", out)
			if r.Code != 1 {
				t.Fatalf("want exit 1: %s", r)
			}
			if _, err := os.Stat(filepath.Join(parent, "escape.txt")); !os.IsNotExist(err) {
				t.Fatalf("a file was written outside the output directory")
			}
			if _, err := os.Stat("/tmp/ferry-abs-escape.txt"); !os.IsNotExist(err) {
				t.Fatalf("a file was written at an absolute path")
			}
			if left, _ := os.ReadDir(out); len(left) != 0 {
				t.Fatalf("a failed pull left %d entries in the output directory", len(left))
			}
		})
	}
}

func TestAuthAndTLS(t *testing.T) {
	reg := testregistry.NewDistribution(t, testregistry.WithAuth("ferry", "s3cr3t-pass"), testregistry.WithTLS())
	repo := reg.Repo("secure/bundle")
	dir := goldenBundleDir(t)
	ca := "--registry-ca-cert-path=" + reg.CACertPath

	r := ferry(t, nil, "push", "-b", repo+":v1", "-f", dir, ca)
	if r.Code != 1 || !strings.Contains(r.Stderr, "--registry-username") {
		t.Fatalf("want an auth error that says how to log in: %s", r)
	}
	r = ferry(t, nil, "push", "-b", repo+":v1", "-f", dir, ca, "--registry-username", "ferry", "--registry-password", "wrong-pass")
	if r.Code != 1 || strings.Contains(r.Stdout+r.Stderr, "wrong-pass") {
		t.Fatalf("want failure that never prints the password: %s", r)
	}
	r = ferry(t, []string{"FERRY_USERNAME=ferry", "FERRY_PASSWORD=s3cr3t-pass"}, "push", "-b", repo+":v1", "-f", dir, ca)
	if r.Code != 0 || strings.Contains(r.Stdout+r.Stderr, "s3cr3t-pass") {
		t.Fatalf("push with env credentials: %s", r)
	}
	// Without the CA, TLS verification must fail (and say so), not fall back.
	r = ferry(t, []string{"FERRY_USERNAME=ferry", "FERRY_PASSWORD=s3cr3t-pass"}, "tag", "list", "-i", repo)
	if r.Code != 1 || !(strings.Contains(r.Stderr, "certificate") || strings.Contains(r.Stderr, "x509")) {
		t.Fatalf("want a certificate verification error: %s", r)
	}
	r = ferry(t, []string{"FERRY_USERNAME=ferry", "FERRY_PASSWORD=s3cr3t-pass"}, "tag", "list", "-i", repo, ca)
	if r.Code != 0 || strings.TrimSpace(r.Stdout) != "v1" {
		t.Fatalf("tag list with CA: %s", r)
	}
	out := filepath.Join(t.TempDir(), "out")
	r = ferry(t, nil, "pull", "-b", repo+":v1", "-o", out, ca, "--registry-username", "ferry", "--registry-password", "s3cr3t-pass")
	if r.Code != 0 {
		t.Fatalf("pull with flags: %s", r)
	}
}
