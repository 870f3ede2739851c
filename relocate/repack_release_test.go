package relocate

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ferry-dev/ferry/fixtures"
	"github.com/ferry-dev/ferry/fixtures/golden"
	"github.com/ferry-dev/ferry/internal/procfd"
	"github.com/ferry-dev/ferry/internal/progress"
)

// gzipReversedTarball is imgpkg's basic tarball, gzip'd, with its layers in
// reverse digest order: read as a stream, the second layer of the plan
// arrives first and is spooled to a temporary file until its turn.
func gzipReversedTarball(t *testing.T) []byte {
	t.Helper()
	plain, err := golden.ReadFile("basic.imgpkg.tar")
	if err != nil {
		t.Fatal(err)
	}
	reordered, err := fixtures.ReorderTar(plain)
	if err != nil {
		t.Fatal(err)
	}
	return fixtures.Gzip(reordered)
}

// openSpools counts this process's open files in dir, named or not.
func openSpools(t *testing.T, dir string) int {
	t.Helper()
	n, err := procfd.CountUnder(0, dir)
	if err != nil {
		t.Skipf("open files are counted through /proc/self/fd: %v", err)
	}
	return n
}

// checkReleased fails unless the plan's spool files are closed and gone
// from dir and its archive Reader (the decompressor) is closed.
func checkReleased(t *testing.T, p *Plan, dir string) {
	t.Helper()
	if n := openSpools(t, dir); n != 0 {
		t.Errorf("%d temporary files of the stream still open", n)
	}
	if left, err := os.ReadDir(dir); err != nil || len(left) != 0 {
		t.Errorf("temporary directory after release: %v, %v; want it empty", left, err)
	}
	if _, _, _, err := p.stream.r.Next(); err == nil || !strings.Contains(err.Error(), "Reader is closed") {
		t.Errorf("the stream's archive Reader after release: Next says %v, want it closed", err)
	}
}

// cancelAt cancels the export once n bytes are reported written.
type cancelAt struct {
	progress.Nop
	mu      sync.Mutex // Reporters may be called from any goroutine
	n, seen int64
	cancel  func()
	at      func()
}

func (c *cancelAt) Add(n int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen += n
	if c.seen >= c.n && c.cancel != nil {
		c.at()
		c.cancel()
		c.cancel = nil
	}
}

// An export of a stream that is cancelled part way, while a blob waits in
// a temporary file for its turn, releases that file and the stream's
// decompressor when it returns.
func TestRepackStreamReleasedWhenExportFails(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("TMPDIR", dir)
	p, err := PlanArchive(io.MultiReader(bytes.NewReader(gzipReversedTarball(t))))
	if err != nil {
		t.Fatal(err)
	}
	last := p.Blobs[len(p.Blobs)-1]
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	spooled := -1
	rep := &cancelAt{n: p.TotalBytes - last.Size, cancel: cancel, at: func() { spooled = openSpools(t, dir) }}
	_, err = Export(ctx, p, io.Discard, ExportOptions{Reporter: rep})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("export cancelled before the last blob: %v", err)
	}
	if spooled != 1 {
		t.Fatalf("%d temporary files open when the export was cancelled, want the last blob's one", spooled)
	}
	checkReleased(t, p, dir)
}

// A plan of a stream never exported is released by Close, which is safe
// to call twice; the plan cannot be read after.
func TestRepackStreamReleasedByClose(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("TMPDIR", dir)
	p, err := PlanArchive(io.MultiReader(bytes.NewReader(gzipReversedTarball(t))))
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range p.Blobs[:len(p.Blobs)-1] {
		rc, err := p.local[b.Digest]()
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := openSpools(t, dir); n != 1 {
		t.Fatalf("%d temporary files open before the last blob, want its one", n)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	checkReleased(t, p, dir)
	if _, err := p.local[p.Blobs[len(p.Blobs)-1].Digest](); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("a blob of a closed plan: %v, want an error", err)
	}
	// Another plan's Close does nothing.
	if err := (&Plan{}).Close(); err != nil {
		t.Error(err)
	}
}

// ExportFile releases a plan of a stream even when it cannot create its
// file, and so never reads the plan.
func TestRepackStreamReleasedWhenExportFileCannotStart(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("TMPDIR", dir)
	p, err := PlanArchive(io.MultiReader(bytes.NewReader(gzipReversedTarball(t))))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "missing", "out.tar.zst")
	if _, err := ExportFile(context.Background(), p, out, ExportOptions{}); err == nil {
		t.Fatalf("export to %s, in no directory: no error", out)
	}
	checkReleased(t, p, dir)
}
