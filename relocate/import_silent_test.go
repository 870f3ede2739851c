package relocate_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/internal/ctxio"
	"github.com/ferry-dev/ferry/internal/testregistry"
	"github.com/ferry-dev/ferry/relocate"
)

// silentStream gives the first after bytes of b, then nothing until
// released: a sender that stopped without closing the pipe.
type silentStream struct {
	r       io.Reader
	left    int64
	release chan struct{}
	once    sync.Once
}

func (s *silentStream) Read(p []byte) (int, error) {
	if s.left <= 0 {
		<-s.release
		return s.r.Read(p)
	}
	if int64(len(p)) > s.left {
		p = p[:s.left]
	}
	n, err := s.r.Read(p)
	s.left -= int64(n)
	return n, err
}

func (s *silentStream) open() { s.once.Do(func() { close(s.release) }) }

// An import from a stream whose uploads have all been refused for good
// (400) reports that as soon as it happens, even while the stream has gone
// silent: it does not wait for the next byte of a pipe (read, as the CLI
// reads standard input, through a ctxio.Detached) to notice, and no tag is
// written. With a spool directory too, where a large blob is copied to a
// file.
func TestImportFromASilentStreamEndsWhenUploadsFail(t *testing.T) {
	src := impNewSource(t, 6<<20)
	arch := src.export(t)
	for _, spool := range []bool{false, true} {
		for _, at := range []int64{16 << 10, 64 << 10, int64(len(arch)) - 1<<20} {
			t.Run(fmt.Sprintf("spool=%v at=%d", spool, at), func(t *testing.T) {
				dst := impNewDest(t, true)
				// Each upload starts late enough for the reader to reach
				// the silence first, and is refused for good.
				dst.proxy.SetRules(
					testregistry.Rule{Method: http.MethodPost, Kind: testregistry.KindUpload, Fault: testregistry.FaultStall, Delay: 300 * time.Millisecond},
					testregistry.Rule{Method: http.MethodPut, Kind: testregistry.KindUpload, Fault: testregistry.FaultStatus, Status: http.StatusBadRequest})
				opts := dst.options(t)
				// Enough uploaders that the reader never waits for one:
				// it reads on until the silence, and waits there.
				opts.Concurrency = 32
				if spool {
					opts.SpoolDir = t.TempDir()
				}
				in := &silentStream{r: bytes.NewReader(arch), left: at, release: make(chan struct{})}
				defer in.open()
				stdin := ctxio.NewDetached(context.Background(), in)
				defer stdin.Close()
				done := make(chan error, 1)
				go func() {
					_, err := relocate.Import(context.Background(), stdin, dst.repo, opts)
					done <- err
				}()
				var err error
				select {
				case err = <-done:
				case <-time.After(cancelGuard):
					in.open()
					t.Fatalf("import still waiting on the silent stream %v after its uploads were refused (%d blob PUTs)", cancelGuard, dst.proxy.Counts().Get(http.MethodPut, testregistry.KindUpload))
				}
				if err == nil {
					t.Fatal("import succeeded though every upload is refused")
				}
				if !strings.Contains(err.Error(), "HTTP 400 Bad Request") || strings.Contains(err.Error(), "context canceled") {
					t.Errorf("error %q: want the refused upload (HTTP 400 Bad Request), not a cancellation", err)
				}
				if tags := dst.tags(t); len(tags) > 0 {
					t.Errorf("tags written: %v", tags)
				}
			})
		}
	}
}
