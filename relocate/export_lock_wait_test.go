package relocate

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/ferry-dev/ferry/internal/atomicfile"
	"github.com/ferry-dev/ferry/internal/testregistry"
)

// waitsSayingSo runs work while dir is locked by another holder (as by a
// ferry stopped with ^Z), and checks that rec receives a warning naming
// dir and the other process, that work does not end while the lock is
// held, and that it ends without error once it is released.
func waitsSayingSo(t *testing.T, dir string, rec *recorder, work func() error) {
	t.Helper()
	unlock, err := atomicfile.LockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- work() }()
	said := func() bool {
		return slices.ContainsFunc(rec.warned(), func(s string) bool {
			return strings.Contains(s, "waiting for the lock on "+dir) && strings.Contains(s, "another process")
		})
	}
	for deadline := time.Now().Add(30 * time.Second); !said(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			warnings := rec.warned()
			unlock()
			<-done
			t.Fatalf("no warning of the wait; warnings %q", warnings)
		}
	}
	select {
	case err := <-done:
		t.Fatalf("the work ended while the directory was locked: %v", err)
	default:
	}
	unlock()
	if err := <-done; err != nil {
		t.Fatalf("the work did not finish once the lock was released: %v", err)
	}
}

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
	waitsSayingSo(t, dir, rec, func() error {
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
	waitsSayingSo(t, dir, rec, func() error {
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
