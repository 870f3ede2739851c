package e2e

import (
	"bytes"
	"io"
	"net"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/ferry-dev/ferry/fixtures"
	"github.com/ferry-dev/ferry/internal/testregistry"
)

// cuttingProxy forwards TCP connections to backend and, once, cuts the
// connection that carries a blob PATCH after 2 MiB of it went through: the
// registry then holds part of the blob in that upload session.
func cuttingProxy(t *testing.T, backend string) (addr string, cut *atomic.Bool) {
	t.Helper()
	cut = &atomic.Bool{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) {
				s, err := net.Dial("tcp", backend)
				if err != nil {
					c.Close()
					return
				}
				go func() { io.Copy(c, s); c.Close() }()
				buf := make([]byte, 32<<10)
				var sent int64 = -1
				for {
					n, err := c.Read(buf)
					if n > 0 {
						if sent < 0 && !cut.Load() && bytes.Contains(buf[:n], []byte("PATCH /v2/")) {
							sent = 0
						}
						if sent >= 0 {
							sent += int64(n)
							if sent > 2<<20 && cut.CompareAndSwap(false, true) {
								s.Write(buf[:n])
								s.Close()
								c.Close()
								return
							}
						}
						s.Write(buf[:n])
					}
					if err != nil {
						s.Close()
						return
					}
				}
			}(c)
		}
	}()
	return ln.Addr().String(), cut
}

// TestImportResendsABlobCutMidUpload: a connection dropped in the middle of
// a blob upload must start a new upload, not resend into the session that
// already holds part of the blob (which distribution refuses with 416).
func TestImportResendsABlobCutMidUpload(t *testing.T) {
	src := testregistry.NewDistribution(t)
	img, err := fixtures.Image(77, 1, 8<<20)
	if err != nil {
		t.Fatal(err)
	}
	ref := seed2(t, src, "src/big", img)
	archive := filepath.Join(t.TempDir(), "big.tar.zst")
	mustFerry(t, "export", "-i", ref.String(), "-o", archive)

	dst := testregistry.NewDistribution(t)
	proxy, cut := cuttingProxy(t, dst.Host)
	mustFerry(t, "import", "-f", archive, "--to-repo", proxy+"/dst/big")
	if !cut.Load() {
		t.Fatal("the proxy never cut an upload; the test proves nothing")
	}
	d, _ := img.Digest()
	if got := digestOf(t, dst, dst.Repo("dst/big")+"@"+d.String()); got != d.String() {
		t.Fatalf("imported image %s, want %s", got, d)
	}
}
