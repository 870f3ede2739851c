package e2e

import (
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/fixtures"
	"github.com/ferry-dev/ferry/internal/procfd"
	"github.com/ferry-dev/ferry/internal/testregistry"
)

// TestSpoolDirOfImportAndCopyFromTar: copy --tar - takes --spool-dir as
// import -f - does. A blob over the 4 MiB an import keeps in memory, read
// from a pipe, waits for its upload in a file in DIR that has no name
// (O_TMPFILE), so it is seen through the process's open files, not in a
// listing of DIR; once the command ends (here stopped by SIGTERM while its
// standard input stalls) DIR is empty and nothing was left in TMPDIR.
func TestSpoolDirOfImportAndCopyFromTar(t *testing.T) {
	reg := testregistry.NewDistribution(t)
	img, err := fixtures.Image(91, 2, 6<<20)
	if err != nil {
		t.Fatal(err)
	}
	d := seed2(t, reg, "src/big", img)
	mustFerry(t, "push", "-b", reg.Repo("src/bundle")+":v1", "-f", bundleDir(t, d))
	archive := filepath.Join(t.TempDir(), "big.tar.zst")
	mustFerry(t, "export", "-b", reg.Repo("src/bundle")+":v1", "-o", archive)
	for _, args := range [][]string{{"import", "-f", "-"}, {"copy", "--tar", "-"}} {
		t.Run(args[0], func(t *testing.T) {
			dst := testregistry.NewDistribution(t)
			in, _ := stalledPipe(t, archive)
			spool, tmpDir := t.TempDir(), t.TempDir()
			p := startFerryIn(t, tmpDir, in, nil, append(args, "--to-repo", dst.Repo("far/app"), "--spool-dir", spool)...)
			in.Close()
			waitFor(t, p, "a blob spooled in a file under --spool-dir", func() bool {
				n, _ := procfd.CountUnder(p.cmd.Process.Pid, spool)
				return n > 0
			})
			if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			ws := p.wait(t, 20*time.Second)
			if ws.Signaled() || ws.ExitStatus() != 1 || !namesCancellation(p.stderr.String()) {
				t.Fatalf("want exit 1 naming the cancellation, got exit %d:\n%s", ws.ExitStatus(), p.stderr.String())
			}
			assertEmptyDir(t, spool, args[0]+" ended by SIGTERM")
			assertEmptyDir(t, tmpDir, args[0]+" with --spool-dir")
		})
	}
}
