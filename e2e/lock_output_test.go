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

	repo := dst.Repo("far/app")
	out := filepath.Join(dir, "app.lock.yml")
	mustFerry(t, "copy", "-i", app.String(), "--to-repo", repo, "--lock-output", out)
	want := "---\napiVersion: imgpkg.carvel.dev/v1alpha1\nimages:\n- image: " + repo + "@" + app.DigestStr() + "\nkind: ImagesLock\n"
	if got := readFile(t, out); got != want {
		t.Errorf("copy -i --lock-output wrote\n%s\nwant\n%s", got, want)
	}

	archive := filepath.Join(dir, "app.tar.zst")
	mustFerry(t, "export", "-i", app.String(), "-o", archive)
	repo = dst.Repo("far/imported")
	out = filepath.Join(dir, "imported.lock.yml")
	mustFerry(t, "import", "-f", archive, "--to-repo", repo, "--lock-output", out)
	want = "---\napiVersion: imgpkg.carvel.dev/v1alpha1\nimages:\n- image: " + repo + "@" + app.DigestStr() + "\nkind: ImagesLock\n"
	if got := readFile(t, out); got != want {
		t.Errorf("import --lock-output of an -i archive wrote\n%s\nwant\n%s", got, want)
	}

	in := filepath.Join(dir, "images.yml")
	if err := os.WriteFile(in, []byte("---\napiVersion: imgpkg.carvel.dev/v1alpha1\nkind: ImagesLock\nimages:\n- image: "+app.String()+"\n  annotations:\n    kbld.carvel.dev/id: example.com/app\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	repo = dst.Repo("far/locked")
	out = filepath.Join(dir, "locked.lock.yml")
	mustFerry(t, "copy", "--lock", in, "--to-repo", repo, "--lock-output", out)
	want = "---\napiVersion: imgpkg.carvel.dev/v1alpha1\nimages:\n- annotations:\n    kbld.carvel.dev/id: example.com/app\n  image: " + repo + "@" + app.DigestStr() + "\nkind: ImagesLock\n"
	if got := readFile(t, out); got != want {
		t.Errorf("copy --lock images.yml --lock-output wrote\n%s\nwant\n%s", got, want)
	}
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
