package relocate_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/ferry-dev/ferry/internal/inventory"
	"github.com/ferry-dev/ferry/internal/registry"
	"github.com/ferry-dev/ferry/internal/testregistry"
	"github.com/ferry-dev/ferry/relocate"
)

// TestDeltaMountProbesAreBounded: an inventory (made by hand, as an
// archive's author may) names a thousand repositories of the destination's
// registry, none of which holds the left-out blobs. The import asks each
// blob's recorded repository, and then no more than the documented bound
// (not every repository for every blob), and fails naming the missing
// blobs and that the search stopped.
func TestDeltaMountProbesAreBounded(t *testing.T) {
	// distribution keeps each repository's blobs apart (go-containerregistry's
	// registry has one store for all).
	w := newDeltaWorld(t, testregistry.NewDistribution)
	a := impMust(name.NewRepository(w.reg.Repo("dst/a")))
	doc, err := relocate.TakeInventory(context.Background(), []name.Repository{a}, relocate.InventoryOptions{Remote: w.reg.RemoteOptions(t), Client: registry.New(w.reg.ClientOptions())})
	if err != nil {
		t.Fatal(err)
	}
	held := doc.Repositories[0]
	held.Repository = "ghost/r0000"
	doc.Repositories = []inventory.Repository{held}
	for i := 1; i < 1000; i++ {
		doc.Repositories = append(doc.Repositories, inventory.Repository{Registry: held.Registry, Repository: fmt.Sprintf("ghost/r%04d", i)})
	}
	path := filepath.Join(w.dir, "ghosts.json")
	if err := doc.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	delta, ex := w.delta(t, path)
	n := len(ex.Delta.LeftOut)
	if n < 2 || len(ex.Delta.Bases[0].Repositories) != 1000 {
		t.Fatalf("%d blobs left out, the base names %d repositories: the test proves nothing", n, len(ex.Delta.Bases[0].Repositories))
	}
	bound := relocate.MountProbesPerBlob*n + relocate.MountProbesExtra
	if bound >= n*1000 {
		t.Fatalf("bound %d, every repository for every blob %d: the test proves nothing", bound, n*1000)
	}
	for _, dry := range []bool{true, false} {
		opts := w.dst.options(t)
		opts.DryRun = dry
		w.reg.ResetCounts()
		_, err := relocate.Import(context.Background(), bytes.NewReader(delta), w.dst.repo, opts)
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("leaves out %d blobs", n)) || !strings.Contains(err.Error(), "stopped asking") {
			t.Errorf("dry run %v: %v; want the %d missing blobs named, and the search said to have stopped", dry, err, n)
		}
		probes, recorded := 0, 0
		for _, r := range w.reg.Requests() {
			if strings.HasPrefix(r.Repo, "ghost/") {
				probes++
				if r.Method != http.MethodHead || r.Kind != testregistry.KindBlob {
					t.Errorf("dry run %v: %s %s", dry, r.Method, r.Path)
				}
				if r.Repo == "ghost/r0000" {
					recorded++
				}
			}
		}
		if probes > bound || recorded != n {
			t.Errorf("dry run %v: %d requests to the repositories the delta names, %d to the one it records; want at most %d, and %d", dry, probes, recorded, bound, n)
		}
		if writes := w.reg.Writes("dst/imported"); len(writes) != 0 {
			t.Errorf("dry run %v: wrote %v", dry, writes)
		}
	}
}
