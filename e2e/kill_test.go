package e2e

import (
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/internal/testregistry"
)

// TestImportKilledThenRerunCompletes kills ferry with SIGKILL while an upload
// hangs, so no cleanup code runs, and checks that the human tag was never
// written and that a second run completes the import.
func TestImportKilledThenRerunCompletes(t *testing.T) {
	f, archive := exported(t)
	dst := testregistry.NewDistribution(t)
	// After two completed uploads, every further upload hangs.
	proxy := testregistry.NewFaultProxy(t, dst, testregistry.Rule{Kind: testregistry.KindUpload, Fault: testregistry.FaultStall, AfterUploads: 2})
	repo := "far/killed"

	cmd := exec.Command(ferryBin, "import", "-f", archive, "--to-repo", proxy.Repo(repo))
	home := t.TempDir()
	cmd.Env = []string{"HOME=" + home, "DOCKER_CONFIG=" + filepath.Join(home, ".docker"), "TMPDIR=" + t.TempDir()}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for proxy.Uploads() < 2 {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("the import never reached two uploads")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // let it block on the hung upload
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	if _, ok := tagsOf(t, dst, dst.Repo(repo))["v1"]; ok {
		t.Fatal("the original tag exists after the import was killed mid-way")
	}
	proxy.SetRules()
	mustFerry(t, "import", "-f", archive, "--to-repo", proxy.Repo(repo))
	assertTags(t, tagsOf(t, dst, dst.Repo(repo)), f.wantTags(t))
}

// TestImportKilledAtAnyMomentThenRerunEndsTheSame kills an import with
// SIGKILL at 20 moments spread over a whole run (drawn from a fixed seed,
// so a failure can be replayed), half of them reading from a file and half
// from a pipe. After each kill the original tag is either absent or every
// tag is already what a clean import writes (it is the commit point); a
// second run then always ends with exactly the clean import's tags.
func TestImportKilledAtAnyMomentThenRerunEndsTheSame(t *testing.T) {
	f, archive := exported(t)
	want := f.wantTags(t)
	dst := testregistry.NewDistribution(t)
	// Each request takes a little longer, so that a run lasts long enough
	// for the moments to fall in every phase (probe, uploads, manifests,
	// tags) rather than all before the first request.
	proxy := testregistry.NewFaultProxy(t, dst, testregistry.Rule{Fault: testregistry.FaultStall, Delay: 5 * time.Millisecond})

	start := time.Now()
	mustFerry(t, "import", "-f", archive, "--to-repo", proxy.Repo("far/clean"))
	whole := time.Since(start)
	t.Logf("a clean import took %s", whole)
	assertTags(t, tagsOf(t, dst, dst.Repo("far/clean")), want)

	rng := rand.New(rand.NewPCG(9, 27))
	for i := range 20 {
		repo := fmt.Sprintf("far/killed-%02d", i)
		at := time.Duration(rng.Int64N(int64(whole)))
		pipe := i%2 == 1
		args := []string{"import", "-f", archive, "--to-repo", proxy.Repo(repo)}
		cmd := exec.Command(ferryBin, args...)
		if pipe {
			args[2] = "-"
			cmd = exec.Command(ferryBin, args...)
			in, err := os.Open(archive)
			if err != nil {
				t.Fatal(err)
			}
			defer in.Close()
			cmd.Stdin = struct{ io.Reader }{in}
		}
		home := t.TempDir()
		cmd.Env = []string{"HOME=" + home, "DOCKER_CONFIG=" + filepath.Join(home, ".docker"), "TMPDIR=" + t.TempDir()}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(at)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()

		got := tagsOf(t, dst, dst.Repo(repo))
		if _, ok := got["v1"]; ok && !maps.Equal(got, want) {
			// Killed after the commit point, or it finished: everything
			// must be in place already.
			t.Errorf("kill %d at %s of %s (pipe %v): v1 is written but the tags are %v, want %v", i, at, whole, pipe, got, want)
		}
		mustFerry(t, "import", "-f", archive, "--to-repo", proxy.Repo(repo))
		if got := tagsOf(t, dst, dst.Repo(repo)); !maps.Equal(got, want) {
			t.Errorf("kill %d at %s of %s (pipe %v), then re-run: tags %v, want a clean import's %v", i, at, whole, pipe, got, want)
		}
	}
}

// TestImportKilledAtEachPhaseThenRerunEndsTheSame makes certain of what
// the random moments above leave to timing: a kill in each phase of an
// import, held there by a request that hangs until the kill. Killed at
// once; after a first blob upload (the next one hangs); and at the commit
// point (the original tag's PUT hangs), where every other tag is already
// what a clean import writes. The original tag is never there after a
// kill, and a second run ends with the clean import's tags.
func TestImportKilledAtEachPhaseThenRerunEndsTheSame(t *testing.T) {
	f, archive := exported(t)
	want := f.wantTags(t)
	dst := testregistry.NewDistribution(t)
	proxy := testregistry.NewFaultProxy(t, dst)
	for _, phase := range []struct {
		name  string
		hold  func() testregistry.Rule // nil: kill as soon as it starts
		check func(t *testing.T, got map[string]string)
	}{
		{name: "start"},
		{
			name: "uploads",
			hold: func() testregistry.Rule {
				return testregistry.Rule{Kind: testregistry.KindUpload, Fault: testregistry.FaultStall, AfterUploads: proxy.Uploads() + 1}
			},
		},
		{
			name: "commit",
			hold: func() testregistry.Rule {
				return testregistry.Rule{Method: http.MethodPut, Kind: testregistry.KindManifest, Path: regexp.MustCompile(`/manifests/v1$`), Fault: testregistry.FaultStall}
			},
			check: func(t *testing.T, got map[string]string) {
				rest := maps.Clone(want)
				delete(rest, "v1")
				if !maps.Equal(got, rest) {
					t.Errorf("killed at the original tag's PUT: tags %v, want every other tag of a clean import in place: %v", got, rest)
				}
			},
		},
	} {
		t.Run(phase.name, func(t *testing.T) {
			repo := "far/killed-at-" + phase.name
			if phase.hold != nil {
				proxy.SetRules(phase.hold())
			}
			cmd := exec.Command(ferryBin, "import", "-f", archive, "--to-repo", proxy.Repo(repo))
			home := t.TempDir()
			cmd.Env = []string{"HOME=" + home, "DOCKER_CONFIG=" + filepath.Join(home, ".docker"), "TMPDIR=" + t.TempDir()}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			if phase.hold != nil {
				deadline := time.Now().Add(time.Minute)
				for proxy.Hits()[0] == 0 {
					if time.Now().After(deadline) {
						cmd.Process.Kill()
						cmd.Wait()
						t.Fatalf("the import never reached the request held in phase %s", phase.name)
					}
					time.Sleep(10 * time.Millisecond)
				}
			}
			_ = cmd.Process.Signal(syscall.SIGKILL)
			_ = cmd.Wait()
			proxy.SetRules()

			got := tagsOf(t, dst, dst.Repo(repo))
			if _, ok := got["v1"]; ok {
				t.Fatalf("killed in phase %s: the original tag is written (tags %v)", phase.name, got)
			}
			if phase.check != nil {
				phase.check(t, got)
			}
			mustFerry(t, "import", "-f", archive, "--to-repo", proxy.Repo(repo))
			if got := tagsOf(t, dst, dst.Repo(repo)); !maps.Equal(got, want) {
				t.Errorf("killed in phase %s, then re-run: tags %v, want a clean import's %v", phase.name, got, want)
			}
		})
	}
}
