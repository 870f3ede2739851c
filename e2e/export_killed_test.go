//go:build unix

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/internal/testregistry"
)

// An export killed with SIGKILL (or by a second signal) runs no cleanup:
// its temporary archive stays. The next export to the same name removes
// it, naming it and its size, and leaves only its own archive.
func TestExportRemovesWhatAKilledExportToItsNameLeft(t *testing.T) {
	src := newBigSource(t)
	for _, split := range []bool{false, true} {
		t.Run(fmt.Sprintf("split %v", split), func(t *testing.T) {
			outDir := t.TempDir()
			out := filepath.Join(outDir, "x.tar.zst")
			args := []string{"export", "-b", src.bundle, "-o", out}
			if split {
				args = append(args, "--split-size", "3M")
			}
			// The first layer hangs: the export waits for it with its
			// temporary file open.
			src.proxy.SetRules(blobGET(src.layers[0], testregistry.FaultStall))
			p := startFerry(t, t.TempDir(), nil, args...)
			waitFor(t, p, "writing a temporary archive while the first layer hangs", func() bool {
				outs, _ := os.ReadDir(outDir)
				return src.proxy.Hits()[0] > 0 && len(outs) > 0
			})
			if err := p.cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			<-p.exited
			left, err := os.ReadDir(outDir)
			if err != nil {
				t.Fatal(err)
			}
			if len(left) == 0 {
				t.Fatal("the killed export left nothing: nothing to test")
			}
			var wants []string
			for _, e := range left {
				fi, err := e.Info()
				if err != nil {
					t.Fatal(err)
				}
				wants = append(wants, fmt.Sprintf("removed %s (%d bytes)", filepath.Join(outDir, e.Name()), fi.Size()))
			}
			src.proxy.SetRules()
			r := mustFerry(t, args...)
			for _, want := range wants {
				if !strings.Contains(r.Stderr, want) {
					t.Errorf("stderr does not say %q:\n%s", want, r.Stderr)
				}
			}
			var got []string
			now, err := os.ReadDir(outDir)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range now {
				got = append(got, e.Name())
			}
			want := []string{"x.tar.zst", "x.tar.zst.sha256"}
			if split {
				want = []string{"x.tar.zst.001", "x.tar.zst.002", "x.tar.zst.003", "x.tar.zst.sha256"}
			}
			if !slices.Equal(got, want) {
				t.Errorf("the directory holds %v, want %v", got, want)
			}
		})
	}
}
