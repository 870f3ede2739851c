//go:build unix

package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/fixtures"
	"github.com/ferry-dev/ferry/internal/testregistry"
)

// bigSource is a bundle whose one image has four 2 MiB layers, each over
// the size export keeps in memory, so blobs fetched ahead of the writer are
// spooled to disk. Everything is read through a fault proxy: the lock names
// the image at the proxy's address.
type bigSource struct {
	proxy  *testregistry.FaultProxy
	bundle string    // REPO:TAG of the bundle, at the proxy
	layers []v1.Hash // in archive order (sorted by digest)
}

func newBigSource(t *testing.T) *bigSource {
	t.Helper()
	reg := testregistry.NewDistribution(t)
	img, err := fixtures.Image(77, 4, 2<<20)
	if err != nil {
		t.Fatal(err)
	}
	d := seed2(t, reg, "src/big", img)
	proxy := testregistry.NewFaultProxy(t, reg)
	viaProxy, err := name.NewDigest(proxy.Repo("src/big") + "@" + d.DigestStr())
	if err != nil {
		t.Fatal(err)
	}
	mustFerry(t, "push", "-b", reg.Repo("src/bundle")+":v1", "-f", bundleDir(t, viaProxy))
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	s := &bigSource{proxy: proxy, bundle: proxy.Repo("src/bundle") + ":v1"}
	for _, l := range m.Layers {
		s.layers = append(s.layers, l.Digest)
	}
	sort.Slice(s.layers, func(i, j int) bool { return s.layers[i].String() < s.layers[j].String() })
	return s
}

// blobGET selects the GETs of one blob.
func blobGET(d v1.Hash, fault testregistry.Fault) testregistry.Rule {
	return testregistry.Rule{
		Method: "GET", Kind: testregistry.KindBlob,
		Path:  regexp.MustCompile(regexp.QuoteMeta(d.String()) + "$"),
		Fault: fault, Status: 500,
	}
}

// assertNothingLeft checks that a failed export left nothing in its output
// directory (no archive, no .sha256, no temporary file) and no spool
// directory in its TMPDIR.
func assertNothingLeft(t *testing.T, outDir, tmpDir string) {
	t.Helper()
	if left, _ := os.ReadDir(outDir); len(left) != 0 {
		var names []string
		for _, e := range left {
			names = append(names, e.Name())
		}
		t.Errorf("the failed export left %v in the output directory", names)
	}
	if left, _ := os.ReadDir(tmpDir); len(left) != 0 {
		t.Errorf("the export wrote to the temporary directory: %v", left)
	}
}

func TestExportFailingMidWayLeavesNoFile(t *testing.T) {
	src := newBigSource(t)
	for _, tc := range []struct {
		label string
		fault testregistry.Fault
	}{
		{"500", testregistry.FaultStatus},
		{"dropped", testregistry.FaultDrop},
	} {
		t.Run(tc.label, func(t *testing.T) {
			// The third of four layers: the archive has been partly
			// written, and the fourth may be spooled ahead.
			bad := src.layers[2]
			src.proxy.SetRules(blobGET(bad, tc.fault))
			outDir, tmpDir := t.TempDir(), t.TempDir()
			r := ferry(t, []string{"TMPDIR=" + tmpDir}, "export", "-b", src.bundle,
				"-o", filepath.Join(outDir, "x.tar.zst"), "--registry-retry-count", "1")
			if hits := src.proxy.Hits()[0]; hits == 0 {
				t.Fatalf("the fault was never injected: %s", r)
			}
			if r.Code != 1 || !strings.Contains(r.Stderr, bad.Hex) {
				t.Errorf("want exit 1 naming blob %s: %s", bad, r)
			}
			assertNothingLeft(t, outDir, tmpDir)
		})
	}
}

func TestExportInterruptedMidWayLeavesNoFile(t *testing.T) {
	src := newBigSource(t)
	// The first layer hangs: the writer waits for it while the others are
	// fetched ahead (into memory: nothing but the archive goes to disk).
	src.proxy.SetRules(blobGET(src.layers[0], testregistry.FaultStall))
	outDir, tmpDir := t.TempDir(), t.TempDir()

	home := t.TempDir()
	cmd := exec.Command(ferryBin, "export", "-b", src.bundle, "-o", filepath.Join(outDir, "x.tar.zst"))
	cmd.Env = []string{"HOME=" + home, "DOCKER_CONFIG=" + filepath.Join(home, ".docker"), "PATH=" + os.Getenv("PATH"), "TMPDIR=" + tmpDir}
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var waitErr error
	exited := make(chan struct{})
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			cmd.Process.Kill()
			<-exited
		}
	})

	// Interrupt only once the export is in the middle of writing: the stalled
	// GET is in flight and the temporary archive exists.
	deadline := time.Now().Add(time.Minute)
	for {
		outs, _ := os.ReadDir(outDir)
		if src.proxy.Hits()[0] > 0 && len(outs) > 0 {
			break
		}
		select {
		case <-exited:
			t.Fatalf("export ended (%v) before it could be interrupted:\n%s", waitErr, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("export never reached the stalled blob with a temporary archive (hits %v, out %v)\n%s",
				src.proxy.Hits(), outs, stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		if waitErr == nil {
			t.Fatalf("an interrupted export exited 0:\n%s", stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("export did not end within 30s of SIGINT:\n%s", stderr.String())
	}
	assertNothingLeft(t, outDir, tmpDir)
}

// lockedBuffer is a bytes.Buffer that a running process may write while the
// test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
