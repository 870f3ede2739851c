//go:build unix

package e2e

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/internal/testregistry"
)

// started is a ferry process running in the background.
type started struct {
	cmd    *exec.Cmd
	stderr *lockedBuffer
	exited chan struct{}
	err    error
}

// startFerry starts ferry with TMPDIR set to tmpDir; stdout is set by the
// caller (nil: discarded). The process is killed if the test ends first.
func startFerry(t *testing.T, tmpDir string, stdout io.Writer, args ...string) *started {
	t.Helper()
	return startFerryIn(t, tmpDir, nil, stdout, args...)
}

// startFerryIn is startFerry with stdin as the process's standard input
// (nil: none).
func startFerryIn(t *testing.T, tmpDir string, stdin io.Reader, stdout io.Writer, args ...string) *started {
	t.Helper()
	home := t.TempDir()
	cmd := exec.Command(ferryBin, args...)
	cmd.Env = []string{"HOME=" + home, "DOCKER_CONFIG=" + filepath.Join(home, ".docker"), "PATH=" + os.Getenv("PATH"), "TMPDIR=" + tmpDir}
	s := &started{cmd: cmd, stderr: &lockedBuffer{}, exited: make(chan struct{})}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, s.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.err = cmd.Wait(); close(s.exited) }()
	t.Cleanup(func() {
		select {
		case <-s.exited:
		default:
			cmd.Process.Kill()
			<-s.exited
		}
	})
	return s
}

// wait waits for the process to end and returns its wait status.
func (s *started) wait(t *testing.T, within time.Duration) syscall.WaitStatus {
	t.Helper()
	select {
	case <-s.exited:
	case <-time.After(within):
		t.Fatalf("ferry did not end within %s:\n%s", within, s.stderr.String())
	}
	return s.cmd.ProcessState.Sys().(syscall.WaitStatus)
}

// assertEmptyDir fails the test if dir holds anything.
func assertEmptyDir(t *testing.T, dir, what string) {
	t.Helper()
	left, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range left {
		names = append(names, e.Name())
	}
	if len(names) > 0 {
		t.Errorf("%s left %v in %s", what, names, dir)
	}
}

func TestExportIntoAPipeClosedEarlyCleansUp(t *testing.T) {
	// As `ferry export -o - | head -c 100000`, or `-o - | ssh …` when ssh
	// dies: the reader goes away while layers are still being fetched and
	// spooled. The export must fail (not be killed by SIGPIPE, which runs
	// no cleanup) and leave nothing in TMPDIR.
	src := newBigSource(t)
	tmpDir := t.TempDir()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p := startFerry(t, tmpDir, pw, "export", "-b", src.bundle, "-o", "-")
	pw.Close()
	if _, err := io.ReadFull(pr, make([]byte, 100000)); err != nil {
		t.Fatalf("reading the first 100000 bytes of the archive: %v\n%s", err, p.stderr.String())
	}
	pr.Close()

	ws := p.wait(t, time.Minute)
	if ws.Signaled() {
		t.Fatalf("export was killed by %v instead of failing and cleaning up:\n%s", ws.Signal(), p.stderr.String())
	}
	if ws.ExitStatus() != 1 || !strings.Contains(p.stderr.String(), "broken pipe") {
		t.Errorf("want exit 1 naming the broken pipe, got exit %d:\n%s", ws.ExitStatus(), p.stderr.String())
	}
	assertEmptyDir(t, tmpDir, "an export into a closed pipe")
}

func TestExportHungUpCleansUp(t *testing.T) {
	// A closed terminal sends SIGHUP: it must stop the export as Ctrl-C
	// does, removing the partial archive.
	src := newBigSource(t)
	// The first layer hangs: the writer waits for it while the others are
	// fetched ahead.
	src.proxy.SetRules(blobGET(src.layers[0], testregistry.FaultStall))
	outDir, tmpDir := t.TempDir(), t.TempDir()
	p := startFerry(t, tmpDir, nil, "export", "-b", src.bundle, "-o", filepath.Join(outDir, "x.tar.zst"))

	deadline := time.Now().Add(time.Minute)
	for {
		outs, _ := os.ReadDir(outDir)
		if src.proxy.Hits()[0] > 0 && len(outs) > 0 {
			break
		}
		select {
		case <-p.exited:
			t.Fatalf("export ended (%v) before the hang-up:\n%s", p.err, p.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("export never reached the stalled blob with a temporary archive\n%s", p.stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	ws := p.wait(t, 30*time.Second)
	if ws.Signaled() || ws.ExitStatus() == 0 {
		t.Fatalf("want a failed export that cleaned up, got %v:\n%s", ws, p.stderr.String())
	}
	assertNothingLeft(t, outDir, tmpDir)
}

func TestImportGoesOnWhenStderrIsLost(t *testing.T) {
	// The reader of stderr (a terminal, a log pipe) goes away before the
	// import writes its first line: the import must still commit every
	// tag, the original one last, and exit 0.
	f, archive := exported(t)
	dst := testregistry.NewDistribution(t)
	repo := dst.Repo("far/release")
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	pr.Close()
	home := t.TempDir()
	// -v writes a line per manifest and tag, in the middle of the commit.
	cmd := exec.Command(ferryBin, "import", "-v", "-f", archive, "--to-repo", repo)
	cmd.Env = []string{"HOME=" + home, "DOCKER_CONFIG=" + filepath.Join(home, ".docker"), "PATH=" + os.Getenv("PATH")}
	cmd.Stderr = pw
	err = cmd.Run()
	pw.Close()
	if ws := cmd.ProcessState.Sys().(syscall.WaitStatus); ws.Signaled() || err != nil {
		t.Fatalf("import with a closed stderr: %v (%v)", err, ws)
	}
	assertTags(t, tagsOf(t, dst, repo), f.wantTags(t))
}

// TestExportToAFullDiskFails: /dev/full answers every write with ENOSPC, as
// a full disk does. The export must fail naming the cause, promptly, and
// leave nothing in the temporary directory.
func TestExportToAFullDiskFails(t *testing.T) {
	src := newBigSource(t)
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Fatalf("/dev/full (every Linux system has it): %v", err)
	}
	defer full.Close()
	tmpDir := t.TempDir()
	p := startFerry(t, tmpDir, full, "export", "-b", src.bundle, "-o", "-")
	ws := p.wait(t, time.Minute)
	if ws.Signaled() || ws.ExitStatus() != 1 || !strings.Contains(p.stderr.String(), "no space left on device") {
		t.Errorf("want exit 1 naming the full disk, got %v:\n%s", ws, p.stderr.String())
	}
	// The write failed, not a download: the error must not blame one.
	if msg := p.stderr.String(); !strings.Contains(msg, "writing the archive") || strings.Contains(msg, "fetch") {
		t.Errorf("the error does not say that writing the archive failed:\n%s", msg)
	}
	assertEmptyDir(t, tmpDir, "an export to a full disk")
}
