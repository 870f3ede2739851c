package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/internal/testregistry"
)

// readFile returns a file's content.
func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// imagesLockOf is the ImagesLock imgpkg writes for one image, written out
// by hand: its format (sigs.k8s.io/yaml after "---", keys sorted) and the
// image's annotation, if any.
func imagesLockOf(image, annotation string) string {
	entry := "- image: " + image + "\n"
	if annotation != "" {
		entry = "- annotations:\n    kbld.carvel.dev/id: " + annotation + "\n  image: " + image + "\n"
	}
	return "---\napiVersion: imgpkg.carvel.dev/v1alpha1\nimages:\n" + entry + "kind: ImagesLock\n"
}

// TestLockOutputOfImagesIsAnImagesLockAsImgpkgWrites: imgpkg's copy -i IMG
// --to-repo R --lock-output F writes an ImagesLock naming R@digest, and
// copy --lock images.yml the input lock with each image rewritten to R,
// its annotations kept (pkg/imgpkg/cmd/copy.go, writeImagesLockOutput);
// an import of an -i archive writes what imgpkg's copy --tar of an -i
// tarball does. ferry refused all three, after resolving the source. The
// expected files are written out by hand, in imgpkg's format.
func TestLockOutputOfImagesIsAnImagesLockAsImgpkgWrites(t *testing.T) {
	src := testregistry.NewDistribution(t)
	dst := testregistry.NewDistribution(t)
	app := seedImage(t, src, "src/app", 5)
	dir := t.TempDir()

	// run runs ferry with args and --to-repo far/<name> --lock-output,
	// and checks the file against the lock of the image at far/<name>
	// with annotation.
	run := func(name, annotation string, args ...string) {
		t.Helper()
		repo, out := dst.Repo("far/"+name), filepath.Join(dir, name+".lock.yml")
		mustFerry(t, append(args, "--to-repo", repo, "--lock-output", out)...)
		if got, want := readFile(t, out), imagesLockOf(repo+"@"+app.DigestStr(), annotation); got != want {
			t.Errorf("ferry %s --lock-output wrote\n%s\nwant\n%s", strings.Join(args, " "), got, want)
		}
	}
	run("app", "", "copy", "-i", app.String())

	archive := filepath.Join(dir, "app.tar.zst")
	mustFerry(t, "export", "-i", app.String(), "-o", archive)
	run("imported", "", "import", "-f", archive)

	in := filepath.Join(dir, "images.yml")
	if err := os.WriteFile(in, []byte("---\napiVersion: imgpkg.carvel.dev/v1alpha1\nkind: ImagesLock\nimages:\n- image: "+app.String()+"\n  annotations:\n    kbld.carvel.dev/id: example.com/app\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run("locked", "example.com/app", "copy", "--lock", in)
}

// TestCopyChecksItsLockOutputBeforeAskingTheSource: a --lock-output in a
// directory that does not exist fails the copy before it resolves its
// source: not one request reaches either registry.
func TestCopyChecksItsLockOutputBeforeAskingTheSource(t *testing.T) {
	src := testregistry.NewDistribution(t)
	dst := testregistry.NewDistribution(t)
	app := seedImage(t, src, "src/app", 6)
	src.ResetCounts()
	out := filepath.Join(t.TempDir(), "missing", "app.lock.yml")
	r := ferry(t, nil, "copy", "-i", app.String(), "--to-repo", dst.Repo("far/app"), "--lock-output", out)
	if r.Code == 0 || !strings.Contains(r.Stderr, out) {
		t.Fatalf("copy with its lock output in a missing directory: %s", r)
	}
	if n := src.Counts().Total() + dst.Counts().Total(); n != 0 {
		t.Errorf("the copy made %d requests before refusing its lock output", n)
	}
}
