package e2e

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/internal/testregistry"
)

// cliRelease pushes a small bundle locking one image to src and exports it:
// the bundle's reference, the archive, and the bundle directory.
func cliRelease(t *testing.T, src *testregistry.Registry) (bundle, archive, dir string) {
	t.Helper()
	dir = bundleDir(t, seedImage(t, src, "src/app", 7))
	bundle = src.Repo("src/bundle") + ":v1"
	mustFerry(t, "push", "-b", bundle, "-f", dir)
	archive = filepath.Join(t.TempDir(), "release.tar.zst")
	mustFerry(t, "export", "-b", bundle, "-o", archive)
	return bundle, archive, dir
}

// A stray argument on the command line stopped urfave/cli from reading the
// flags after it: `copy … oops --dry-run` copied for real, `import … --dry-run`
// imported. Now it is refused (exit 2, naming it) and nothing is done: not
// one request reaches either registry, no file is written.
func TestCLIStrayArgumentDoesNothing(t *testing.T) {
	src := testregistry.NewDistribution(t)
	dst := testregistry.NewDistribution(t)
	bundle, archive, dir := cliRelease(t, src)
	out := t.TempDir()
	srcBefore, dstBefore := len(src.Requests()), len(dst.Requests())
	for _, tc := range []struct {
		args  []string
		stray string
	}{
		{[]string{"copy", "-b", bundle, "--to-repo", dst.Repo("mirror/x"), "oops", "--dry-run"}, "oops"},
		{[]string{"copy", "-b", bundle, "--to-repo", dst.Repo("mirror/x"), "oops"}, "oops"},
		{[]string{"import", "-f", archive, "--to-repo", dst.Repo("mirror/y"), "extra.tar.zst", "--dry-run", "-q"}, "extra.tar.zst"},
		{[]string{"import", "-f", archive, "--to-repo", dst.Repo("mirror/y"), "oops"}, "oops"},
		{[]string{"export", "-b", bundle, "-o", filepath.Join(out, "e.tar.zst"), "oops", "--json"}, "oops"},
		{[]string{"push", "-b", dst.Repo("mirror/p") + ":1", "-f", dir, "oops"}, "oops"},
		{[]string{"pull", "-b", bundle, "-o", filepath.Join(out, "pulled"), "oops"}, "oops"},
		{[]string{"inventory", "--repo", dst.Repo("mirror/x"), "-o", filepath.Join(out, "have.json"), "oops"}, "oops"},
		{[]string{"tag", "list", "-i", src.Repo("src/bundle"), "oops", "--digests"}, "oops"},
	} {
		args, stray := tc.args, tc.stray
		r := ferry(t, nil, args...)
		if r.Code != 2 || !strings.Contains(r.Stderr, `unexpected argument "`+stray+`"`) || r.Stdout != "" {
			t.Errorf("ferry %s: want exit 2 naming %q, nothing on stdout: %s", strings.Join(args, " "), stray, r)
		}
	}
	if n := len(src.Requests()) - srcBefore; n != 0 {
		t.Errorf("the source registry got %d requests from refused command lines", n)
	}
	if n := len(dst.Requests()) - dstBefore; n != 0 {
		t.Errorf("the destination registry got %d requests from refused command lines: %v", n, dst.Requests()[dstBefore:])
	}
	if left, _ := os.ReadDir(out); len(left) != 0 {
		t.Errorf("refused command lines left %v", left)
	}
}

// serve reads its flags wherever they stand: after the archive, --json and
// --repo were not read ("give one archive file").
func TestCLIServeReadsFlagsAfterTheArchive(t *testing.T) {
	src := testregistry.NewDistribution(t)
	_, archive, _ := cliRelease(t, src)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	p := startFerry(t, t.TempDir(), pw, "serve", "--addr", "127.0.0.1:0", archive, "--json", "--repo", "far/release")
	pw.Close()
	line, _ := bufio.NewReader(pr).ReadString('\n')
	var start struct {
		Host         string
		Repositories []string
	}
	if err := json.Unmarshal([]byte(line), &start); err != nil || start.Host == "" || !slices.Equal(start.Repositories, []string{"far/release"}) {
		t.Fatalf("serve's first line %q (%v): want the --json line, serving far/release only\n%s", line, err, p.stderr.String())
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if ws := p.wait(t, time.Minute); ws.ExitStatus() != 0 {
		t.Errorf("serve stopped with %v\n%s", ws, p.stderr.String())
	}
}

// Serving beyond loopback without TLS is refused as a usage error (exit 2):
// a flag is missing, nothing failed. So is a --tls-cert that does not
// exist, as every file named on the command line.
func TestCLIServeBeyondLoopbackWithoutTLSIsAUsageError(t *testing.T) {
	src := testregistry.NewDistribution(t)
	_, archive, _ := cliRelease(t, src)
	r := ferry(t, nil, "serve", "--addr", "0.0.0.0:0", archive)
	if r.Code != 2 || !strings.Contains(r.Stderr, "beyond loopback") || !strings.Contains(r.Stderr, "--insecure") {
		t.Errorf("serve on 0.0.0.0 without TLS: want exit 2 saying what is missing: %s", r)
	}
	missing := filepath.Join(t.TempDir(), "missing.pem")
	r = ferry(t, nil, "serve", "--addr", "127.0.0.1:0", archive, "--tls-cert", missing, "--tls-key", missing)
	if r.Code != 2 || !strings.Contains(r.Stderr, missing) {
		t.Errorf("serve with a --tls-cert that does not exist: want exit 2 naming it: %s", r)
	}
}

// verify - reads standard input, a file redirected there or a pipe, as
// /dev/stdin always did; damage read that way still fails it.
func TestCLIVerifyStandardInput(t *testing.T) {
	src := testregistry.NewDistribution(t)
	_, archive, _ := cliRelease(t, src)
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := ferryIn(t, nil, f, "verify", "-")
	if r.Code != 0 || !strings.Contains(r.Stderr, "OK: standard input verified") {
		t.Errorf("verify - < FILE: %s", r)
	}
	whole, err := os.ReadFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%x", sha256.Sum256(whole))
	// A bytes.Reader reaches ferry through a pipe.
	r = ferryIn(t, nil, bytes.NewReader(whole), "verify", "-", "--json")
	var res struct {
		Archive  string
		Verified bool
		SHA256   string
	}
	if err := json.Unmarshal([]byte(r.Stdout), &res); r.Code != 0 || err != nil || res.Archive != "-" || !res.Verified || res.SHA256 != want {
		t.Errorf("cat FILE | verify - --json: %+v (%v), want archive \"-\", verified, sha256 %s: %s", res, err, want, r)
	}
	damaged := bytes.Clone(whole)
	damaged[len(damaged)/2] ^= 0xff
	if r := ferryIn(t, nil, bytes.NewReader(damaged), "verify", "-"); r.Code != 1 || strings.Contains(r.Stderr, "OK:") {
		t.Errorf("verify - of a damaged archive: want exit 1: %s", r)
	}
}
