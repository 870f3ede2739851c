package pull

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferry-dev/ferry/internal/testregistry"
)

// phaseRecorder keeps the phases a pull reports and the bytes it adds.
type phaseRecorder struct {
	mu     sync.Mutex
	phases []string
	totals []int64
	added  int64
	done   int
	// afterDone counts Start and Add calls after the last Done.
	afterDone int
}

func (r *phaseRecorder) Start(phase string, total int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.phases, r.totals = append(r.phases, phase), append(r.totals, total)
	if r.done > 0 {
		r.afterDone++
	}
}
func (r *phaseRecorder) Add(n int64)              { r.mu.Lock(); r.added += n; r.mu.Unlock() }
func (r *phaseRecorder) Logf(string, ...any)      {}
func (r *phaseRecorder) Warnf(f string, a ...any) { _ = fmt.Sprintf(f, a...) }
func (r *phaseRecorder) Done()                    { r.mu.Lock(); r.done++; r.mu.Unlock() }

// layerSize asks the registry how big ref's only layer is.
func layerSize(t *testing.T, ref name.Reference, opts []remote.Option) int64 {
	t.Helper()
	m, err := remote.Get(ref, opts...)
	if err != nil {
		t.Fatal(err)
	}
	mf, err := m.Image()
	if err != nil {
		t.Fatal(err)
	}
	man, err := mf.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(man.Layers) != 1 {
		t.Fatalf("%s has %d layers", ref, len(man.Layers))
	}
	return man.Layers[0].Size
}

// A pull reports each layer's download as a phase of the layer's size,
// with every byte added as it arrives (a bar on a terminal, a heartbeat in
// a log), and its result says how many bytes it downloaded, for the rate.
func TestPullReportsTheBytesItDownloads(t *testing.T) {
	reg := testregistry.NewGGCR(t)
	opts := reg.RemoteOptions(t)
	repo := reg.Repo("team/app")
	emptyLock := "apiVersion: imgpkg.carvel.dev/v1alpha1\nkind: ImagesLock\nimages: []\n"
	nested := pushBundleFiles(t, repo+":nested", map[string]string{".imgpkg/images.yml": emptyLock, "n.yml": "nested\n"}, nil, opts)
	desc, err := remote.Head(nested, opts...)
	if err != nil {
		t.Fatal(err)
	}
	rootLock := "apiVersion: imgpkg.carvel.dev/v1alpha1\nkind: ImagesLock\nimages:\n- image: " + repo + "@" + desc.Digest.String() + "\n"
	root := pushBundleFiles(t, repo+":root", map[string]string{".imgpkg/images.yml": rootLock, "r.yml": "root\n"}, nil, opts)
	want := []int64{layerSize(t, root, opts), layerSize(t, nested, opts)}

	rec := &phaseRecorder{}
	res, err := Pull(context.Background(), root, filepath.Join(t.TempDir(), "out"), Options{Bundle: true, Recursive: true, Remote: opts, Reporter: rec})
	if err != nil {
		t.Fatal(err)
	}
	var got []int64
	for i, p := range rec.phases {
		if p == "pull" {
			got = append(got, rec.totals[i])
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("download phases of %v bytes, want %v (phases %q)", got, want, rec.phases)
	}
	if rec.phases[0] != "pull: fetching "+root.String() {
		t.Errorf("first phase %q, want one naming %s", rec.phases[0], root)
	}
	if sum := want[0] + want[1]; rec.added != sum || res.TotalBytes() != sum {
		t.Errorf("added %d bytes, result says %d, want %d", rec.added, res.TotalBytes(), sum)
	}
	if rec.done == 0 || rec.afterDone != 0 {
		t.Errorf("Done called %d times, then %d phases started: want the pull to end its phase", rec.done, rec.afterDone)
	}
}
