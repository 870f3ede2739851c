//go:build linux

package relocate_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/archive"
	"github.com/ferry-dev/ferry/internal/inventory"
	"github.com/ferry-dev/ferry/relocate"
)

// handInventory is an inventory written by hand, of n blobs held by
// reg.example:5000/mirror/app, and the blobs it lists.
func handInventory(n int) (string, map[v1.Hash]bool) {
	var items []string
	want := map[v1.Hash]bool{}
	for i := range n {
		h := v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%064x", i+1)}
		want[h] = true
		items = append(items, fmt.Sprintf(`{"digest": %q, "size": %d}`, h, i))
	}
	return `{"mediaType": "` + inventory.MediaType + `", "formatVersion": 1, "createdBy": "hand", "created": "2026-11-29T16:00:46Z", "repositories": [{"registry": "reg.example:5000", "repository": "mirror/app", "tags": 1, "manifests": [], "blobs": [` +
		strings.Join(items, ", ") + `]}]}`, want
}

// mkfifo makes a FIFO in a temporary directory.
func mkfifo(t *testing.T, name string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// feed writes chunks to the FIFO at path once a reader opens it, pausing
// before each, and closes it. The returned channel gives its error.
func feed(path string, pause time.Duration, chunks ...string) <-chan error {
	done := make(chan error, 1)
	go func() {
		w, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			done <- err
			return
		}
		defer w.Close()
		for _, c := range chunks {
			time.Sleep(pause)
			if _, err := w.WriteString(c); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	return done
}

// unblock opens the FIFO at path for writing and closes it, so that a
// writer still waiting for a reader (feed) ends.
func unblock(path string) {
	if w, err := os.OpenFile(path, os.O_RDWR|syscall.O_NONBLOCK, 0); err == nil {
		w.Close()
	}
}

// readSinceWithin is ReadSince, failing the test if it takes more than d.
func readSinceWithin(t *testing.T, ctx context.Context, path string, d time.Duration) (*relocate.Since, error) {
	t.Helper()
	type result struct {
		s   *relocate.Since
		err error
	}
	done := make(chan result, 1)
	go func() {
		s, err := relocate.ReadSince(ctx, path, nil)
		done <- result{s, err}
	}()
	select {
	case r := <-done:
		return r.s, r.err
	case <-time.After(d):
		t.Fatalf("ReadSince(%s) did not return within %s", path, d)
		return nil, nil
	}
}

// checkHandInventory checks that s is the inventory doc, each of want held
// by the repository it names, recorded with the sha256 of doc's bytes.
func checkHandInventory(t *testing.T, s *relocate.Since, doc string, want map[v1.Hash]bool) {
	t.Helper()
	if s.Base.Kind != archive.BaseInventory || len(s.Blobs) != len(want) || s.Base.SHA256 != fileSum([]byte(doc)) || s.Base.Created != "2026-11-29T16:00:46Z" {
		t.Errorf("base %+v with %d blobs; want an inventory of %d, sha256 %s", s.Base, len(s.Blobs), len(want), fileSum([]byte(doc)))
	}
	for h := range want {
		if s.Blobs[h] != "reg.example:5000/mirror/app" {
			t.Errorf("blob %s held by %q", h, s.Blobs[h])
		}
	}
}

// TestSinceAnInventoryFromAFIFO: `--since FIFO`, an inventory written to a
// named pipe by another process (ssh far ferry inventory -o - > FIFO): it
// is read as it comes, the writer opening the FIFO after ferry does and
// writing in pieces, and recorded with the sha256 of what came through.
func TestSinceAnInventoryFromAFIFO(t *testing.T) {
	doc, want := handInventory(300)
	fifo := mkfifo(t, "have.json")
	n := len(doc) / 3
	written := feed(fifo, 100*time.Millisecond, doc[:n], doc[n:2*n], doc[2*n:])
	t.Cleanup(func() { unblock(fifo) })
	s, err := readSinceWithin(t, t.Context(), fifo, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-written; err != nil {
		t.Fatal(err)
	}
	checkHandInventory(t, s, doc, want)
	if s.Base.Name != "have.json" {
		t.Errorf("base named %q, want have.json", s.Base.Name)
	}
}

// TestSinceAnInventoryFromProcessSubstitution: `--since <(ssh far ferry
// inventory --repo R -o -)` gives ferry /dev/fd/N, an anonymous pipe whose
// writer is already there.
func TestSinceAnInventoryFromProcessSubstitution(t *testing.T) {
	if _, err := os.Stat("/dev/fd"); err != nil {
		t.Fatalf("no /dev/fd on this system: %v", err)
	}
	doc, want := handInventory(300)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	go func() {
		defer pw.Close()
		for i := 0; i < len(doc); i += 1000 {
			pw.WriteString(doc[i:min(i+1000, len(doc))])
			time.Sleep(5 * time.Millisecond)
		}
	}()
	path := fmt.Sprintf("/dev/fd/%d", pr.Fd())
	s, err := readSinceWithin(t, t.Context(), path, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	checkHandInventory(t, s, doc, want)
}

// TestSinceAnArchiveFromAPipeIsRefused: an archive base is read at random
// (its table of contents and seek table at its end): from a pipe it is
// refused, saying why and what to give instead, as a usage error; so is a
// pipe whose writer wrote nothing.
func TestSinceAnArchiveFromAPipeIsRefused(t *testing.T) {
	// The first bytes of a zstd frame, then more: what an archive sends.
	zstd := "\x28\xb5\x2f\xfd" + strings.Repeat("\x00", 8192)
	for _, tc := range []struct {
		name, data, want string
	}{
		{"archive", zstd, "give the archive's file"},
		{"nothing", "", "gave nothing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fifo := mkfifo(t, "v1.tar.zst")
			feed(fifo, 0, tc.data)
			t.Cleanup(func() { unblock(fifo) })
			_, err := readSinceWithin(t, t.Context(), fifo, time.Minute)
			if !errors.Is(err, relocate.ErrNotABase) || !strings.Contains(err.Error(), fifo) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ReadSince: %v; want ErrNotABase naming %s, %q", err, fifo, tc.want)
			}
		})
	}
}

// TestSinceAFIFOEndsWithItsContext: a FIFO nothing writes to, or whose
// writer stops part way without closing it, does not keep ReadSince once
// its context is done (ferry got SIGINT or SIGTERM): open(2) of a FIFO
// waits for a writer and a read of a pipe for its bytes, neither of which
// a signal ends by itself.
func TestSinceAFIFOEndsWithItsContext(t *testing.T) {
	doc, _ := handInventory(10)
	for _, tc := range []struct {
		name string
		sent string // what the writer sends before it stalls; "": no writer
	}{
		{"no writer", ""},
		{"stalled writer", doc[:len(doc)/2]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fifo := mkfifo(t, "have.json")
			if tc.sent != "" {
				stalled := make(chan struct{})
				t.Cleanup(func() { close(stalled) })
				go func() {
					w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
					if err != nil {
						return
					}
					defer w.Close()
					w.WriteString(tc.sent)
					<-stalled
				}()
			}
			t.Cleanup(func() { unblock(fifo) })
			ctx, cancel := context.WithCancel(t.Context())
			time.AfterFunc(300*time.Millisecond, cancel)
			start := time.Now()
			_, err := readSinceWithin(t, ctx, fifo, 20*time.Second)
			if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), fifo) {
				t.Errorf("ReadSince after %s: %v; want context.Canceled naming %s", time.Since(start), err, fifo)
			}
		})
	}
}

// TestVerifySinceAFIFOIsRefusedWithoutWaiting: verify --since reads its
// base archives at random, so a FIFO is refused as one at once, not
// opened (which would wait for a writer that may never come).
func TestVerifySinceAFIFOIsRefusedWithoutWaiting(t *testing.T) {
	path := filepath.Join(t.TempDir(), "release.tar.zst")
	if err := os.WriteFile(path, impNewSource(t, 0).export(t), 0o644); err != nil {
		t.Fatal(err)
	}
	fifo := mkfifo(t, "v1.tar.zst")
	t.Cleanup(func() { unblock(fifo) })
	done := make(chan error, 1)
	go func() {
		_, err := relocate.VerifyFile(t.Context(), path, relocate.VerifyOptions{Since: []string{fifo}})
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, relocate.ErrNotABaseArchive) || !strings.Contains(err.Error(), fifo) || !strings.Contains(err.Error(), "give the file") {
			t.Errorf("verify --since a FIFO: %v; want ErrNotABaseArchive naming it", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("verify --since a FIFO nothing writes to is still waiting after a minute")
	}
}
