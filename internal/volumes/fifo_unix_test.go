//go:build unix

package volumes

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// promptly runs f (which must not call t.Fatal) and fails the test if it has not returned within ten
// seconds: open(2) of a FIFO for reading waits for a writer. The FIFOs
// fifos are then opened for writing until f returns, so that a reader
// still waiting returns and the test ends.
func promptly(t *testing.T, fifos []string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Errorf("still waiting after 10 s on a FIFO among %v", fifos)
		// f may open a FIFO again once released: release it until done.
		for {
			for _, p := range fifos {
				if w, err := os.OpenFile(p, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
					w.Close()
				}
			}
			select {
			case <-done:
				t.FailNow()
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
}

func mkfifo(t *testing.T, path string) {
	t.Helper()
	os.Remove(path)
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestFIFOsBesideVolumesAreNotWaitedOn: a FIFO where a checksum file or a
// volume would be hung inspect, verify and import, beyond SIGTERM's reach.
// The set's checksum file as a FIFO is refused, naming it; a volume's own
// checksum file as a FIFO (FILE.001.sha256) is no checksum file, and the
// set reads without it; a volume swapped for a FIFO once the set is open
// is refused, naming it.
func TestFIFOsBesideVolumesAreNotWaitedOn(t *testing.T) {
	setup := func(t *testing.T) (string, []byte) {
		path := filepath.Join(t.TempDir(), "r.tar.zst")
		data := archiveBytes(10_000, 7)
		split(t, path, data, 3000)
		return path, data
	}
	wantErr := func(t *testing.T, err error, want ...string) {
		t.Helper()
		if err == nil {
			t.Errorf("no error, want one naming %q", want)
			return
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q does not say %q", err, w)
			}
		}
	}

	t.Run("the set's checksum file", func(t *testing.T) {
		path, _ := setup(t)
		fifo := path + ".sha256"
		mkfifo(t, fifo)
		for _, name := range []string{Name(path, 1), Name(path, 2), path} {
			promptly(t, []string{fifo}, func() {
				rc, err := OpenArchive(context.Background(), name)
				if err == nil {
					rc.Close()
				}
				wantErr(t, err, fifo, "named pipe")
			})
		}
		promptly(t, []string{fifo}, func() {
			_, err := ReadChecksums(fifo)
			wantErr(t, err, fifo, "named pipe")
		})
	})

	t.Run("a volume's own checksum file", func(t *testing.T) {
		path, data := setup(t)
		fifos := []string{Name(path, 1) + ".sha256", Name(path, 2) + ".sha256"}
		for _, f := range fifos {
			mkfifo(t, f)
		}
		promptly(t, fifos, func() {
			rc, err := OpenArchive(context.Background(), Name(path, 1))
			if err != nil {
				t.Error(err)
				return
			}
			defer rc.Close()
			if got, err := io.ReadAll(rc); err != nil || !bytes.Equal(got, data) {
				t.Errorf("the set reads %d bytes (%v), want its %d", len(got), err, len(data))
			}
		})
	})

	t.Run("a volume swapped once open", func(t *testing.T) {
		path, _ := setup(t)
		s, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		fifo := Name(path, 2)
		mkfifo(t, fifo)
		promptly(t, []string{fifo}, func() {
			_, err := io.ReadAll(s)
			wantErr(t, err, "volume .002", fifo, "named pipe")
		})
		promptly(t, []string{fifo}, func() {
			if !StartsAnArchive(fifo) {
				t.Error("StartsAnArchive(a FIFO) = false, want true (cannot be read: the error comes from opening it)")
			}
		})
	})
}
