package e2e

import (
	"os/exec"
	"path/filepath"
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
