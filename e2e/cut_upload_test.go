package e2e

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/ferry-dev/ferry/fixtures"
	"github.com/ferry-dev/ferry/internal/testregistry"
)

// TestImportSurvivesABlobCutMidUpload: a connection dropped in the middle
// of a blob upload must not fail the import. From a file, the blob is read
// again into a new upload session (resending into the session that holds
// part of it is refused by distribution with 416). From a pipe, where the
// blob cannot be read again, the upload resumes from what the registry
// holds, out of the bytes ferry keeps of it; nothing touches the disk.
func TestImportSurvivesABlobCutMidUpload(t *testing.T) {
	src := testregistry.NewDistribution(t)
	// 8 MiB: larger than what an import from a pipe holds in memory, so it
	// streams.
	img, err := fixtures.Image(77, 1, 8<<20)
	if err != nil {
		t.Fatal(err)
	}
	ref := seed2(t, src, "src/big", img)
	archive := filepath.Join(t.TempDir(), "big.tar.zst")
	mustFerry(t, "export", "-i", ref.String(), "-o", archive)
	d, _ := img.Digest()

	for _, tc := range []struct {
		name, request string
		stdin         bool
	}{
		{"file", "PUT /v2/", false},
		{"pipe", "PATCH /v2/", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := testregistry.NewDistribution(t, testregistry.WithFilesystem(t.TempDir()))
			proxy := testregistry.NewCutProxy(t, dst)
			proxy.Arm(tc.request, 2<<20, 1)
			tmp := t.TempDir()
			env := []string{"TMPDIR=" + tmp}
			if tc.stdin {
				f, err := os.Open(archive)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				// Not the *os.File itself, which the child would get as is
				// (a regular file, read at random): exec copies this one
				// through a pipe.
				pipe := struct{ io.Reader }{f}
				if r := ferryIn(t, env, pipe, "import", "-f", "-", "--to-repo", proxy.Repo("dst/big")); r.Code != 0 {
					t.Fatalf("import from a pipe: %s", r)
				}
			} else if r := ferry(t, env, "import", "-f", archive, "--to-repo", proxy.Repo("dst/big")); r.Code != 0 {
				t.Fatalf("import from a file: %s", r)
			}
			if proxy.Cuts() != 1 {
				t.Fatal("the proxy never cut an upload; the test proves nothing")
			}
			if got := digestOf(t, dst, dst.Repo("dst/big")+"@"+d.String()); got != d.String() {
				t.Fatalf("imported image %s, want %s", got, d)
			}
			if left, _ := os.ReadDir(tmp); len(left) != 0 {
				t.Errorf("the import wrote to the temporary directory: %v", left)
			}
		})
	}
}
