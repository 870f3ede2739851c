//go:build unix

package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/internal/testregistry"
)

// stalledPipe is standard input whose sender (ssh, a slow network copy)
// sends the first three quarters of archive, then stops without closing
// the pipe. It returns the pipe's read end, for the process, and a channel
// closed once the process has read all but what the pipe buffers.
func stalledPipe(t *testing.T, archive string) (*os.File, <-chan struct{}) {
	t.Helper()
	b, err := os.ReadFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pr.Close(); pw.Close() })
	sent := make(chan struct{})
	go func() {
		pw.Write(b[:len(b)*3/4])
		close(sent)
	}()
	return pr, sent
}

// waitFor polls cond until it holds, failing the test after a minute or if
// the process ends first.
func waitFor(t *testing.T, p *started, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		select {
		case <-p.exited:
			t.Fatalf("ferry ended (%v) before %s:\n%s", p.err, what, p.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("never %s:\n%s", what, p.stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// `ferry export --from-tar - -o FILE` whose standard input stalls part way:
// Ctrl-C (SIGINT) must end it at once, removing the temporary archive, as
// it does for a stalled registry, although the read of standard input in
// progress never returns.
func TestExportFromAStalledPipeEndsOnInterrupt(t *testing.T) {
	src := newBigSource(t)
	archive := filepath.Join(t.TempDir(), "big.tar.zst")
	mustFerry(t, "export", "-b", src.bundle, "-o", archive)
	in, sent := stalledPipe(t, archive)
	outDir, tmpDir := t.TempDir(), t.TempDir()
	p := startFerryIn(t, tmpDir, in, nil, "export", "--from-tar", "-", "-o", filepath.Join(outDir, "x.tar.zst"))
	in.Close() // the process has its own copy
	waitFor(t, p, "reading the stream up to the stall with a temporary archive", func() bool {
		select {
		case <-sent:
		default:
			return false
		}
		outs, _ := os.ReadDir(outDir)
		return len(outs) > 0
	})
	time.Sleep(300 * time.Millisecond) // blocked in the read of the pipe
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	ws := p.wait(t, 20*time.Second)
	if ws.Signaled() || ws.ExitStatus() != 1 || !namesCancellation(p.stderr.String()) {
		t.Fatalf("want exit 1 naming the cancellation, got exit %d:\n%s", ws.ExitStatus(), p.stderr.String())
	}
	assertNothingLeft(t, outDir, tmpDir)
}

// `ferry import -f -` whose standard input stalls part way: SIGTERM ends it
// at once (its spooled blobs removed), rather than when the pipe moves.
func TestImportFromAStalledPipeEndsOnTerminate(t *testing.T) {
	src := newBigSource(t)
	archive := filepath.Join(t.TempDir(), "big.tar.zst")
	mustFerry(t, "export", "-b", src.bundle, "-o", archive)
	dst := testregistry.NewDistribution(t)
	proxy := testregistry.NewFaultProxy(t, dst)
	in, sent := stalledPipe(t, archive)
	spool, tmpDir := t.TempDir(), t.TempDir()
	p := startFerryIn(t, tmpDir, in, nil, "import", "-f", "-", "--to-repo", proxy.Repo("far/stalled"), "--spool-dir", spool)
	in.Close()
	waitFor(t, p, "reading the stream up to the stall while talking to the destination", func() bool {
		select {
		case <-sent:
		default:
			return false
		}
		return len(proxy.Requests()) > 0
	})
	time.Sleep(300 * time.Millisecond)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	ws := p.wait(t, 20*time.Second)
	if ws.Signaled() || ws.ExitStatus() != 1 || !namesCancellation(p.stderr.String()) {
		t.Fatalf("want exit 1 naming the cancellation, got exit %d:\n%s", ws.ExitStatus(), p.stderr.String())
	}
	assertEmptyDir(t, spool, "an import ended by SIGTERM")
	if _, ok := tagsOf(t, dst, dst.Repo("far/stalled"))["v1"]; ok {
		t.Error("the original tag was written by an import that never read its whole archive")
	}
}

// namesCancellation reports whether a command's error says a signal
// stopped it ("ferry: interrupted (SIGTERM): import stopped").
func namesCancellation(stderr string) bool {
	return strings.Contains(stderr, "ferry: interrupted (SIG") && strings.Contains(stderr, " stopped")
}
