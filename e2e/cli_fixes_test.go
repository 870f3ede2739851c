package e2e

import (
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferry-dev/ferry/internal/testregistry"
)

// layerDigest asks reg which digest the only layer of ref has.
func layerDigest(t *testing.T, reg *testregistry.Registry, ref string) string {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r, reg.RemoteOptions(t)...)
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Layers) != 1 {
		t.Fatalf("%s has %d layers", ref, len(m.Layers))
	}
	return m.Layers[0].Digest.String()
}

// A pull without a terminal prints a heartbeat while its layer is on the
// way (here, held back longer than the 5 s heartbeat), and its summary
// says how long it took and how fast.
func TestPullHeartbeatAndRate(t *testing.T) {
	reg := testregistry.NewDistribution(t)
	mustFerry(t, "push", "-b", reg.Repo("team/app")+":v1", "-f", bundleDir(t))
	layer := layerDigest(t, reg, reg.Repo("team/app")+":v1")
	proxy := testregistry.NewFaultProxy(t, reg, testregistry.Rule{
		Method: http.MethodGet, Kind: testregistry.KindBlob, Path: regexp.MustCompile(regexp.QuoteMeta(layer) + "$"),
		Fault: testregistry.FaultStall, Delay: 6 * time.Second, Times: 1,
	})
	r := mustFerry(t, "pull", "-b", proxy.Repo("team/app")+":v1", "-o", filepath.Join(t.TempDir(), "out"))
	assertNoControls(t, "a heartbeat", r.Stderr)
	beat := regexp.MustCompile(`^pull: [0-9.]+ [KMG]?i?B of [0-9.]+ [KMG]?i?B \(\d+%\), [0-9.]+ [KMG]?i?B/s$`)
	summary := regexp.MustCompile(`^Pulled .* into .* in [0-9.]+s \([0-9.]+ [KMG]?i?B/s\)$`)
	var beats, summaries int
	for _, l := range strings.Split(r.Stderr, "\n") {
		switch {
		case beat.MatchString(l):
			if summaries > 0 {
				t.Errorf("a heartbeat after the summary: %q", l)
			}
			beats++
		case summary.MatchString(l):
			summaries++
		}
	}
	if beats == 0 || summaries != 1 {
		t.Errorf("want a heartbeat while the layer downloads and one summary with a duration and a rate:\n%s", r.Stderr)
	}
}
