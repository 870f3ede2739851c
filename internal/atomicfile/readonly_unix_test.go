//go:build unix

package atomicfile

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// readOnlyChildEnv names, in the environment of a child process of the
// test binary, the read-only directory it tries to create a file in
// (TestMain): the check of TestCreateFailsEarlyInAReadOnlyDirectory, run
// as nobody when the tests run as root.
const readOnlyChildEnv = "FERRY_ATOMICFILE_TEST_READONLY_DIR"

// nobody is the user and group the child runs as.
const nobody = 65534

func TestMain(m *testing.M) {
	if dir := os.Getenv(readOnlyChildEnv); dir != "" {
		_, err := Create(filepath.Join(dir, "a"))
		fmt.Printf("euid %d: %v\n", os.Geteuid(), err)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestCreateFailsEarlyInAReadOnlyDirectory: Create refuses a directory it
// may not write in at once, saying so. Root writes to read-only
// directories, and CI runs the tests as root: then the Create runs in a
// child process of this test binary as nobody, which needs every parent
// of TMPDIR (the test's temporary directory's parent and itself it makes
// traversable) to be searchable by nobody.
func TestCreateFailsEarlyInAReadOnlyDirectory(t *testing.T) {
	dir := t.TempDir()
	ro := filepath.Join(dir, "ro")
	if err := os.Mkdir(ro, 0o555); err != nil {
		t.Fatal(err)
	}
	var got string
	if os.Geteuid() == 0 {
		got = createAsNobody(t, dir, ro)
	} else {
		_, err := Create(filepath.Join(ro, "a"))
		got = fmt.Sprintf("euid %d: %v", os.Geteuid(), err)
	}
	if !strings.Contains(got, "directory "+ro) || !strings.Contains(got, "is not writable") {
		t.Errorf("read-only directory: %s; want an error saying %s is not writable", got, ro)
	}
	if left := entries(t, ro); len(left) != 0 {
		t.Errorf("the read-only directory holds %v", left)
	}
}

// createAsNobody runs, as nobody, a copy of the test binary that tries to
// create a file in ro, a directory of dir, and returns what it printed.
// The copy is in dir, which it makes reachable to nobody: the test
// binary's own directory and t.TempDir's are root's alone.
func createAsNobody(t *testing.T, dir, ro string) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "atomicfile.test")
	copyFile(t, exe, bin)
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin)
	cmd.Dir = "/"
	cmd.Env = append(os.Environ(), readOnlyChildEnv+"="+ro)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("running the check as nobody (uid %d): %v\n%s", nobody, err, out)
	}
	got := strings.TrimSpace(string(out))
	if !strings.HasPrefix(got, fmt.Sprintf("euid %d: ", nobody)) {
		t.Fatalf("the child did not run as nobody: %s", got)
	}
	return got
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestCreateInADropBox: a directory others may write in but not list (a
// drop box, mode 0733) takes a new file: creating and renaming need no
// more, so Create must not fail because it cannot open the directory to
// lock it.
func TestCreateInADropBox(t *testing.T) {
	dir := t.TempDir()
	box := filepath.Join(dir, "box")
	if err := os.Mkdir(box, 0o733); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(box, 0o733); err != nil { // the umask may have taken bits
		t.Fatal(err)
	}
	var got string
	if os.Geteuid() == 0 {
		got = createAsNobody(t, dir, box)
	} else {
		_, err := Create(filepath.Join(box, "a"))
		got = fmt.Sprintf("euid %d: %v", os.Geteuid(), err)
	}
	if !strings.HasSuffix(strings.TrimSpace(got), ": <nil>") || strings.HasPrefix(got, "euid 0:") {
		t.Errorf("Create in a drop box: %s; want it to succeed as a user who cannot list the directory", got)
	}
}
