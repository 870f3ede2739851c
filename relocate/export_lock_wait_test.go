package relocate

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/ferry-dev/ferry/internal/lockwait"
	"github.com/ferry-dev/ferry/internal/testregistry"
)

// An export whose directory another writer keeps locked says that it
// waits for that lock, naming the directory, rather than hanging without a
// word; and it finishes once the lock is released.
func TestExportFileSaysItWaitsForALockedDirectory(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	p, err := Resolve(context.Background(), Source{Bundle: w.rootTag}, Options{Remote: w.opts})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rec := &recorder{}
	out := filepath.Join(dir, "bundle.tar.zst")
	lockwait.Check(t, dir, rec.warned, func() error {
		_, err := ExportFile(context.Background(), p, out, ExportOptions{Remote: w.opts, Reporter: rec})
		return err
	})
	if _, err := os.Stat(out); err != nil {
		t.Errorf("no archive: %v", err)
	}
}

// An import whose --lock-output directory is locked by another writer says
// so too, once its tags are written, and writes the lock file once the
// lock is released.
func TestImportLockOutputSaysItWaitsForALockedDirectory(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	p, err := Resolve(context.Background(), Source{Bundle: w.rootTag}, Options{Remote: w.opts})
	if err != nil {
		t.Fatal(err)
	}
	var archive bytes.Buffer
	if _, err := Export(context.Background(), p, &archive, ExportOptions{Remote: w.opts}); err != nil {
		t.Fatal(err)
	}
	dst := testregistry.NewGGCR(t)
	repo, err := name.NewRepository(dst.Repo("far/root"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	lockOut := filepath.Join(dir, "bundle.lock.yml")
	rec := &recorder{}
	lockwait.Check(t, dir, rec.warned, func() error {
		_, err := Import(context.Background(), bytes.NewReader(archive.Bytes()), repo, ImportOptions{
			DestinationOptions: DestinationOptions{Remote: dst.RemoteOptions(t), LockOutput: lockOut, Reporter: rec},
			SpoolDir:           t.TempDir(),
		})
		return err
	})
	b, err := os.ReadFile(lockOut)
	if err != nil {
		t.Fatalf("no lock output: %v", err)
	}
	if want := "kind: BundleLock"; !strings.Contains(string(b), want) {
		t.Errorf("lock output lacks %q:\n%s", want, b)
	}
}
