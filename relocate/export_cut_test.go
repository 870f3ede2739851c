package relocate_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/ferry-dev/ferry/internal/testregistry"
	"github.com/ferry-dev/ferry/relocate"
)

// A download whose connection drops after its last byte, before the end
// of the stream (a chunked HTTP/1.1 response without its terminating
// chunk, an HTTP/2 stream reset), has all the blob: resuming it asks for
// nothing more. Resumed from byte 0 instead, the writer read the blob's
// first byte again past its end and failed the export with "longer than".
func TestExportResumesADownloadCutAfterItsLastByte(t *testing.T) {
	reg := testregistry.NewGGCR(t)
	proxy := newCutProxy(t, reg)
	proxy.atEnd = true
	src := impNewSourceAt(t, &proxy.Endpoint, 5<<20)
	p := cpPlan(t, src)
	clean := src.export(t)

	m := impMust(src.app2.Manifest())
	big := m.Layers[len(m.Layers)-1]
	if big.Size < 5<<20 {
		t.Fatalf("the largest layer is %d bytes, want at least 5 MiB", big.Size)
	}
	proxy.cut(big.Digest, 1)
	var buf bytes.Buffer
	if _, err := relocate.Export(context.Background(), p, &buf, relocate.ExportOptions{Remote: src.opts, CreatedBy: "ferry import tests"}); err != nil {
		t.Fatalf("export through a download cut after its last byte: %v", err)
	}
	if !bytes.Equal(buf.Bytes(), clean) {
		t.Error("the export differs from a clean one")
	}
	if left := proxy.left(); left != 0 {
		t.Fatalf("%d cuts left: the export never read the blob through the proxy", left)
	}
}
