package relocate

import (
	"context"
	"errors"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/ferry-dev/ferry/internal/registry"
	"github.com/ferry-dev/ferry/internal/testregistry"
)

// TestABlobMissingAtTheSourceIsSaidToBeTheSources: the source registry
// answers 404 for one layer of app2 after the plan was made. Copy and
// export say that the source no longer has that layer of that image
// (digests short, each once), and what the run did not do, rather than
// an upload failure at the destination; the registry's answer stays
// wrapped.
func TestABlobMissingAtTheSourceIsSaidToBeTheSources(t *testing.T) {
	t.Parallel()
	w, proxy := proxiedWorld(t)
	_, layers := blobsOf(t, w.app2)
	gone := layers[len(layers)-1]
	app2 := must(w.app2.Digest())
	short := func(s string) string { return s[:len("sha256:")+12] }
	want := "source " + w.ep.Repo("app2") + " no longer has layer " + short(gone.String()) +
		" of image " + w.ep.Repo("app2") + "@" + short(app2.String()) + " (HTTP 404): "
	proxy.AddRule(testregistry.Rule{
		Kind:   testregistry.KindBlob,
		Path:   regexp.MustCompile(regexp.QuoteMeta(gone.String())),
		Fault:  testregistry.FaultStatus,
		Status: 404,
	})
	check := func(what string, err error, then string) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s: no error", what)
		}
		if !strings.Contains(err.Error(), want+then) {
			t.Errorf("%s: error\n %s\nwant it to say\n %s", what, err, want+then)
		}
		if strings.Contains(err.Error(), gone.Hex[12:]) || strings.Count(err.Error(), gone.Hex[:12]) != 1 {
			t.Errorf("%s: error %s does not name the layer once, short", what, err)
		}
		var te *transport.Error
		if !errors.As(err, &te) {
			t.Errorf("%s: the registry's answer is not wrapped: %v", what, err)
		}
	}

	p, err := Resolve(context.Background(), Source{Bundle: w.rootTag}, Options{Remote: w.opts})
	if err != nil {
		t.Fatal(err)
	}
	_, err = ExportFile(context.Background(), p, filepath.Join(t.TempDir(), "b.tar.zst"), ExportOptions{Remote: w.opts, Concurrency: 2})
	check("export", err, "the archive was not completed")

	dst := testregistry.NewGGCR(t)
	repo := must(name.NewRepository(dst.Repo("dst/copied")))
	p, err = Resolve(context.Background(), Source{Bundle: w.rootTag}, Options{Remote: w.opts})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Copy(context.Background(), p, repo, CopyOptions{DestinationOptions: DestinationOptions{
		Remote: dst.RemoteOptions(t), Client: registry.New(dst.ClientOptions()), Concurrency: 2}})
	check("copy", err, "nothing was tagged at the destination "+repo.String())
}
