//go:build linux

package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/internal/procfd"
	"github.com/ferry-dev/ferry/internal/testregistry"
)

// fifoFed makes a FIFO and writes b to it once ferry opens it, in two
// pieces a moment apart, then closes it.
func fifoFed(t *testing.T, name string, b []byte) string {
	t.Helper()
	fifo := filepath.Join(t.TempDir(), name)
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	go func() {
		w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			return
		}
		defer w.Close()
		w.Write(b[:len(b)/2])
		time.Sleep(100 * time.Millisecond)
		w.Write(b[len(b)/2:]) // fails once ferry has stopped reading: fine
	}()
	// A writer still waiting for a reader (ferry failed before opening
	// it) is let go.
	t.Cleanup(func() {
		if f, err := os.OpenFile(fifo, os.O_RDWR|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
	})
	return fifo
}

// TestDeltaSinceAnInventoryThroughAPipe: the far side's inventory comes
// back through a pipe (`--since <(ssh far ferry inventory --repo R -o -)`,
// which gives ferry /dev/fd/N of an anonymous pipe, or a FIFO), never
// landing in a file: the delta leaves out what an inventory file would,
// records the sha256 of what came through, and imports onto v1.
func TestDeltaSinceAnInventoryThroughAPipe(t *testing.T) {
	r := newReleases(t)
	dst := testregistry.NewDistribution(t)
	repo := dst.Repo("far/release")
	mustFerry(t, "import", "-f", r.v1Arch, "--to-repo", repo)
	have := []byte(mustFerry(t, "inventory", "--repo", repo, "-o", "-").Stdout)
	sum := sha256.Sum256(have)
	shared := len(archiveBlobs(t, r.v2Full)) - len(archiveManifests(t, r.v2Full)) - (len(r.newInV2) - manifestCount(t, r, r.newInV2))

	for _, tc := range []struct{ name, since, baseName string }{
		{"fifo", fifoFed(t, "have.json", have), "have.json"},
		// Standard input, a pipe here, as /dev/stdin: /dev/fd/0.
		{"anonymous pipe", "/dev/stdin", "stdin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			delta := filepath.Join(t.TempDir(), "v2.tar.zst")
			res := ferryIn(t, nil, bytes.NewReader(have), "export", "-b", r.v2, "-o", delta, "--since", tc.since, "--json")
			if res.Code != 0 {
				t.Fatalf("export --since %s: %s", tc.since, res)
			}
			var ex struct {
				LeftOut int
				Bases   []struct{ Kind, Name, SHA256 string }
			}
			if err := json.Unmarshal([]byte(res.Stdout), &ex); err != nil {
				t.Fatal(err)
			}
			if ex.LeftOut != shared || len(ex.Bases) != 1 || ex.Bases[0].Kind != "inventory" || ex.Bases[0].Name != tc.baseName || ex.Bases[0].SHA256 != hex.EncodeToString(sum[:]) {
				t.Errorf("left out %d blobs with bases %+v; want the %d configs and layers v2 shares with v1, since inventory %s of sha256 %x", ex.LeftOut, ex.Bases, shared, tc.baseName, sum)
			}
			mustFerry(t, "import", "-f", delta, "--to-repo", repo)
		})
	}
}

// TestDeltaSinceAnArchiveThroughAPipeIsRefused: an archive base is read at
// random; from a pipe it is a usage error saying so, and nothing is
// written.
func TestDeltaSinceAnArchiveThroughAPipeIsRefused(t *testing.T) {
	r := newReleases(t)
	b, err := os.ReadFile(r.v1Arch)
	if err != nil {
		t.Fatal(err)
	}
	fifo := fifoFed(t, "v1.tar.zst", b)
	out := filepath.Join(t.TempDir(), "v2.tar.zst")
	res := ferry(t, nil, "export", "-b", r.v2, "-o", out, "--since", fifo)
	if res.Code != 2 || !strings.Contains(res.Stderr, fifo) || !strings.Contains(res.Stderr, "give the archive's file") {
		t.Errorf("want a usage error naming %s and saying to give the archive's file: %s", fifo, res)
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("wrote %s", out)
	}
}

// TestDeltaSinceAFIFONobodyWritesEndsOnInterrupt: `--since FIFO` whose
// writer never comes (ssh never connected): Ctrl-C ends ferry at once,
// although open(2) of a FIFO waits for a writer and no signal ends that
// wait.
func TestDeltaSinceAFIFONobodyWritesEndsOnInterrupt(t *testing.T) {
	r := newReleases(t)
	fifo := filepath.Join(t.TempDir(), "have.json")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	outDir := t.TempDir()
	interruptWaitingOnFIFO(t, fifo, outDir, "export", "-b", r.v2, "-o", filepath.Join(outDir, "v2.tar.zst"), "--since", fifo)
}

// interruptWaitingOnFIFO runs ferry with args, waits until it has the FIFO
// at fifo open (waiting for its writer, which never comes), sends it one
// SIGINT and checks that it ends at once with exit 1, naming the
// cancellation and the FIFO, leaving nothing in outDir nor in its
// temporary directory.
func interruptWaitingOnFIFO(t *testing.T, fifo, outDir string, args ...string) {
	t.Helper()
	tmpDir := t.TempDir()
	p := startFerry(t, tmpDir, nil, args...)
	waitFor(t, p, "opening the FIFO", func() bool {
		targets, _ := procfd.Targets(p.cmd.Process.Pid)
		return slices.Contains(targets, fifo)
	})
	time.Sleep(200 * time.Millisecond) // waiting for its writer
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	ws := p.wait(t, 20*time.Second)
	if ws.Signaled() || ws.ExitStatus() != 1 || !namesCancellation(p.stderr.String()) || !strings.Contains(p.stderr.String(), fifo) {
		t.Fatalf("want exit 1 naming the cancellation and %s, got exit %d:\n%s", fifo, ws.ExitStatus(), p.stderr.String())
	}
	assertNothingLeft(t, outDir, tmpDir)
}
