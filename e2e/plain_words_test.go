package e2e

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/internal/testregistry"
)

// TestImportNamesTheFileAfterTheCommand: an import into a registry nobody
// listens on says it cannot reach that registry, without the archive's
// name in front as if the file were at fault; an archive that is not one
// is named after the command, as what the import read ("import FILE to
// REPO: …").
func TestImportNamesTheFileAfterTheCommand(t *testing.T) {
	reg := testregistry.NewGGCR(t)
	img := seedImage(t, reg, "app/m1", 1)
	dir := t.TempDir()
	archive := filepath.Join(dir, "rel.tar.zst")
	mustFerry(t, "export", "-i", img.String(), "-o", archive)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	r := ferry(t, nil, "import", "-f", archive, "--to-repo", closed+"/x")
	if r.Code != 1 || !strings.HasPrefix(r.Stderr, "ferry: cannot reach registry "+closed) || strings.Contains(r.Stderr, "rel.tar.zst") {
		t.Errorf("import into a closed port: %s\nwant \"ferry: cannot reach registry %s…\", without the archive's name", r, closed)
	}

	junk := filepath.Join(dir, "notarch.tar.zst")
	if err := os.WriteFile(junk, []byte("not an archive at all\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = ferry(t, nil, "import", "-f", junk, "--to-repo", reg.Repo("x"))
	if r.Code != 1 || !strings.HasPrefix(r.Stderr, "ferry: import "+junk+" to "+reg.Repo("x")+": ") {
		t.Errorf("import of a file that is no archive: %s\nwant it named after the command", r)
	}
}

// TestMissingTagSaysNotFound: export, copy and pull of a tag the
// repository does not have say so in one line, with the command that
// lists its tags, not the request's URL and the registry's error code.
func TestMissingTagSaysNotFound(t *testing.T) {
	reg := testregistry.NewDistribution(t)
	seedImage(t, reg, "app/m1", 1)
	ref := reg.Repo("app/m1") + ":v9"
	want := "ferry: bundle " + ref + " not found: the repository has no tag v9 (ferry tag list -i " + reg.Repo("app/m1") + " lists them)\n"
	dir := t.TempDir()
	for _, args := range [][]string{
		{"export", "-b", ref, "-o", filepath.Join(dir, "x.tar.zst")},
		{"copy", "-b", ref, "--to-repo", reg.Repo("far/m1")},
		{"pull", "-b", ref, "-o", filepath.Join(dir, "out")},
	} {
		r := ferry(t, nil, args...)
		if r.Code != 1 || r.Stderr != want {
			t.Errorf("ferry %s: %s\nwant exit 1 and %q", strings.Join(args, " "), r, want)
		}
	}
}
