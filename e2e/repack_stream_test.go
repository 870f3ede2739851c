package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/ferry-dev/ferry/fixtures"
	"github.com/ferry-dev/ferry/fixtures/golden"
	"github.com/ferry-dev/ferry/internal/testregistry"
)

// export --from-tar re-packs what import reads: an imgpkg tarball gzip'd,
// or any archive on standard input, read front to back. Each gives the
// archive the plain tarball, read at random, gives, whose import has
// imgpkg's golden tags and digests.
func TestExportFromGzipOrStreamedTarball(t *testing.T) {
	dir := t.TempDir()
	tarball, err := golden.WriteFile(dir, "basic.imgpkg.tar")
	if err != nil {
		t.Fatal(err)
	}
	plain, err := os.ReadFile(tarball)
	if err != nil {
		t.Fatal(err)
	}
	gz := fixtures.Gzip(plain)
	gzipped := filepath.Join(dir, "basic.imgpkg.tar.gz")
	if err := os.WriteFile(gzipped, gz, 0o644); err != nil {
		t.Fatal(err)
	}

	want := filepath.Join(dir, "want.tar.zst")
	mustFerry(t, "export", "--from-tar", tarball, "-o", want)
	wantSum := fileSHA256(t, want)

	dst := testregistry.NewDistribution(t)
	fromGzip := filepath.Join(dir, "from-gzip.tar.zst")
	mustFerry(t, "export", "--from-tar", gzipped, "-o", fromGzip)
	if fileSHA256(t, fromGzip) != wantSum {
		t.Error("export --from-tar of the gzip'd tarball differs from that of the tarball")
	}
	repo := dst.Repo("repacked/gzip")
	mustFerry(t, "import", "-f", fromGzip, "--to-repo", repo)
	assertTags(t, tagsOf(t, dst, repo), goldenImgpkgTags())

	// Standard input, a pipe: the tarball, gzip'd or not, and a ferry
	// archive (re-packed at its own level: the same bytes).
	wantBytes, err := os.ReadFile(want)
	if err != nil {
		t.Fatal(err)
	}
	for name, in := range map[string][]byte{"tarball": plain, "gzip'd tarball": gz, "ferry archive": wantBytes} {
		out := filepath.Join(t.TempDir(), "from-stdin.tar.zst")
		if r := ferryIn(t, nil, bytes.NewReader(in), "export", "--from-tar", "-", "-o", out); r.Code != 0 {
			t.Fatalf("export --from-tar - of the %s: %s", name, r)
		}
		if fileSHA256(t, out) != wantSum {
			t.Errorf("export --from-tar - of the %s differs from export --from-tar of the tarball", name)
		}
	}

	// A tarball whose layers come in another order than the one the
	// re-packed archive writes: the early one is held aside, the result
	// is the same.
	reordered, err := fixtures.ReorderTar(plain)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "from-reordered.tar.zst")
	if r := ferryIn(t, nil, bytes.NewReader(reordered), "export", "--from-tar", "-", "-o", out); r.Code != 0 {
		t.Fatalf("export --from-tar - of a reordered tarball: %s", r)
	}
	if fileSHA256(t, out) != wantSum {
		t.Error("export --from-tar - of the reordered tarball differs")
	}

	// A stream cut short is refused and leaves nothing under -o.
	out = filepath.Join(t.TempDir(), "cut.tar.zst")
	if r := ferryIn(t, nil, bytes.NewReader(gz[:len(gz)-20]), "export", "--from-tar", "-", "-o", out); r.Code == 0 {
		t.Fatalf("export --from-tar - of a truncated gzip stream succeeded: %s", r)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("a failed re-pack left %s: %v", out, err)
	}
}
