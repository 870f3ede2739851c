package relocate_test

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/internal/registry"
	"github.com/ferry-dev/ferry/internal/testregistry"
	"github.com/ferry-dev/ferry/relocate"
)

// A registry failing a blob's download says which HTTP status it answered,
// as an import's or a copy's error does: "UNKNOWN" alone tells the user
// nothing.
func TestExportErrorNamesTheHTTPStatus(t *testing.T) {
	reg := testregistry.NewGGCR(t)
	proxy := testregistry.NewFaultProxy(t, reg)
	src := impNewSourceAt(t, &proxy.Endpoint, 0)
	layer := impMust(src.app2.Manifest()).Layers[0].Digest
	proxy.SetRules(testregistry.Rule{
		Method: http.MethodGet, Kind: testregistry.KindBlob,
		Path:  regexp.MustCompile(regexp.QuoteMeta("/blobs/"+layer.String()) + "$"),
		Fault: testregistry.FaultStatus, Status: http.StatusInternalServerError,
	})
	opts := relocate.ExportOptions{Remote: src.opts, Client: registry.New(src.ep.ClientOptions())}
	for _, to := range []string{"stream", "file", "volumes"} {
		t.Run(to, func(t *testing.T) {
			p := cpPlan(t, src)
			var err error
			switch o, path := opts, filepath.Join(t.TempDir(), "a.tar.zst"); to {
			case "stream":
				_, err = relocate.Export(context.Background(), p, io.Discard, o)
			case "file":
				_, err = relocate.ExportFile(context.Background(), p, path, o)
			case "volumes":
				o.SplitSize = 1 << 20
				_, err = relocate.ExportFile(context.Background(), p, path, o)
			}
			if err == nil {
				t.Fatal("export succeeded though the registry fails a blob with 500")
			}
			if !strings.Contains(err.Error(), "HTTP 500 Internal Server Error") || !strings.Contains(err.Error(), layer.String()) {
				t.Errorf("error %q: want the blob and HTTP 500 Internal Server Error", err)
			}
		})
	}
}
