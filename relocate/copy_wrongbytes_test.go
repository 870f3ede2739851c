package relocate_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/internal/testregistry"
	"github.com/ferry-dev/ferry/relocate"
)

// wrongBytesProxy is a loopback reverse proxy in front of a registry that
// serves, for every GET of blob bad, other bytes than the registry holds:
// the same length with the first byte changed, or the blob with one byte
// more, as a broken cache or storage would.
type wrongBytesProxy struct {
	testregistry.Endpoint
	bad   v1.Hash
	extra bool
	// served counts the GETs of bad served, here rather than by the
	// registry, which records a request only once its handler returns,
	// perhaps after the client has seen the body.
	served atomic.Int32
}

func newWrongBytesProxy(t testing.TB, target *testregistry.Registry) *wrongBytesProxy {
	t.Helper()
	p := &wrongBytesProxy{}
	p.Endpoint = serveModifyingProxy(t, target, 0, func(resp *http.Response) error {
		if req := resp.Request; req.Method != http.MethodGet || p.bad == (v1.Hash{}) || !strings.HasSuffix(req.URL.Path, "/blobs/"+p.bad.String()) {
			return nil
		}
		p.served.Add(1)
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if p.extra {
			b = append(b, 'x')
		} else {
			b[0] ^= 0xff
		}
		resp.Body = io.NopCloser(bytes.NewReader(b))
		resp.ContentLength = int64(len(b))
		resp.Header.Set("Content-Length", strconv.Itoa(len(b)))
		return nil
	})
	return p
}

// TestCopyAndExportRefuseABlobTheSourceServesWrongAtOnce: a download that
// ends with other bytes than the blob's digest names (or more bytes than
// its size) was not cut: it is refused by copy as by export, from one
// download, with an error saying what came, not that reading failed part
// way, and without the backed-off attempts a cut download gets.
func TestCopyAndExportRefuseABlobTheSourceServesWrongAtOnce(t *testing.T) {
	for _, extra := range []bool{false, true} {
		t.Run(map[bool]string{false: "other bytes", true: "one byte more"}[extra], func(t *testing.T) {
			reg := testregistry.NewGGCR(t)
			proxy := newWrongBytesProxy(t, reg)
			src := impNewSourceAt(t, &proxy.Endpoint, 64<<10)
			p := cpPlan(t, src)
			m := impMust(src.app2.Manifest())
			big := m.Layers[len(m.Layers)-1]
			proxy.bad, proxy.extra = big.Digest, extra
			want := "bytes with digest"
			if extra {
				want = "more than the " + strconv.FormatInt(big.Size, 10) + " bytes expected"
			}

			dst := impNewDest(t, false)
			rec := &impRecorder{}
			opts := cpOptions(t, dst)
			opts.Reporter = rec
			_, err := relocate.Copy(context.Background(), p, dst.repo, opts)
			if err == nil {
				t.Fatal("copy succeeded with a blob the source serves wrong")
			}
			if msg := err.Error(); !containsAll(msg, big.Digest.String(), want) || strings.Contains(msg, "part way") {
				t.Errorf("copy error %q: want it to name %s and say %q, not that reading failed part way", msg, big.Digest, want)
			}
			if n := proxy.served.Swap(0); n != 1 {
				t.Errorf("copy downloaded the blob served wrong %d times, want 1", n)
			}
			for _, l := range rec.logs {
				if strings.Contains(l, "attempt") {
					t.Errorf("copy tried again: %s", l)
				}
			}
			if tags := dst.tags(t); len(tags) != 0 {
				t.Errorf("a failed copy wrote tags: %v", tags)
			}

			var buf bytes.Buffer
			_, err = relocate.Export(context.Background(), p, &buf, relocate.ExportOptions{Remote: src.opts})
			if err == nil || !strings.Contains(err.Error(), big.Digest.String()) {
				t.Errorf("export of a blob the source serves wrong: want an error naming %s, got %v", big.Digest, err)
			}
			if n := proxy.served.Load(); n != 1 {
				t.Errorf("export downloaded the blob served wrong %d times, want 1", n)
			}
		})
	}
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
