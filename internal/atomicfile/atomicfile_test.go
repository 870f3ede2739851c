package atomicfile

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func entries(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

func TestCommit(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.tar.zst")
	f, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := regexp.MatchString(`^\.out\.tar\.zst\.tmp-[0-9a-f]+$`, filepath.Base(f.Name())); !ok || filepath.Dir(f.Name()) != dir {
		t.Errorf("temporary name %s", f.Name())
	}
	if _, err := f.Write([]byte("hello ")); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("world")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("target exists before Commit: %v", err)
	}
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil || string(b) != "hello world" {
		t.Errorf("content %q, %v", b, err)
	}
	if got := entries(t, dir); len(got) != 1 || got[0] != "out.tar.zst" {
		t.Errorf("directory holds %v", got)
	}
	// Same mode as os.Create would give.
	ref, err := os.Create(filepath.Join(dir, "ref"))
	if err != nil {
		t.Fatal(err)
	}
	ref.Close()
	fi, _ := os.Stat(path)
	ri, _ := os.Stat(ref.Name())
	if fi.Mode() != ri.Mode() {
		t.Errorf("mode %v, os.Create gives %v", fi.Mode(), ri.Mode())
	}

	// Abort after Commit is a no-op; the file stays.
	if err := f.Abort(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("Abort after Commit removed the file: %v", err)
	}
	if err := f.Commit(); err == nil {
		t.Error("second Commit succeeded")
	}
	if _, err := f.Write([]byte("x")); err == nil {
		t.Error("Write after Commit succeeded")
	}
}

func TestCommitReplaces(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("new"))
	// Until Commit, the old file is intact.
	if b, _ := os.ReadFile(path); string(b) != "old" {
		t.Errorf("before Commit: %q", b)
	}
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "new" {
		t.Errorf("after Commit: %q", b)
	}
}

func TestAbort(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("partial"))
	if err := f.Abort(); err != nil {
		t.Fatal(err)
	}
	if err := f.Abort(); err != nil {
		t.Errorf("second Abort: %v", err)
	}
	if got := entries(t, dir); len(got) != 1 || got[0] != "a" {
		t.Errorf("directory holds %v", got)
	}
	if b, _ := os.ReadFile(path); string(b) != "old" {
		t.Errorf("Abort changed the target: %q", b)
	}
	if err := f.Commit(); err == nil {
		t.Error("Commit after Abort succeeded")
	}
}

func TestCreateFailsEarly(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct{ path, want string }{
		"missing directory": {filepath.Join(dir, "nope", "a"), "does not exist"},
		"parent is a file":  {filepath.Join(file, "a"), "not a directory"},
		"target is a dir":   {dir, "is a directory"},
	} {
		_, err := Create(tc.path)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.path) {
			t.Errorf("%s: %v, want an error naming %s and saying %q", name, err, tc.path, tc.want)
		}
	}
	// A read-only directory: TestCreateFailsEarlyInAReadOnlyDirectory.
}

func TestCreateChecksums(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bundle.tar.zst")
	content := []byte("archive bytes")
	if err := os.WriteFile(path, content, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(content)
	if err := writeChecksums(path+".sha256", []Checksum{{Path: path, Sum: sum[:]}}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path + ".sha256")
	if err != nil {
		t.Fatal(err)
	}
	if want := hex.EncodeToString(sum[:]) + "  bundle.tar.zst\n"; string(b) != want {
		t.Errorf("checksum file %q, want %q", b, want)
	}
	if got := entries(t, dir); len(got) != 2 {
		t.Errorf("directory holds %v", got)
	}
	if err := writeChecksums(path+".sha256", []Checksum{{Path: path, Sum: sum[:4]}}); err == nil {
		t.Error("a 4-byte sum was accepted")
	}

	// sha256sum itself agrees, also for a name it must escape.
	if _, err := exec.LookPath("sha256sum"); err != nil {
		t.Skip("no sha256sum")
	}
	odd := filepath.Join(dir, `odd\name`)
	if err := os.WriteFile(odd, content, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeChecksums(odd+".sha256", []Checksum{{Path: odd, Sum: sum[:]}}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"bundle.tar.zst.sha256", `odd\name.sha256`} {
		cmd := exec.Command("sha256sum", "-c", "--strict", f)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("sha256sum -c %s: %v\n%s", f, err, out)
		}
	}
	// And it notices a different file.
	os.WriteFile(path, []byte("tampered"), 0o644)
	cmd := exec.Command("sha256sum", "-c", "--status", "bundle.tar.zst.sha256")
	cmd.Dir = dir
	if err := cmd.Run(); err == nil {
		t.Error("sha256sum -c accepted a changed file")
	}
}

// Sync then Rename is Commit in two steps: nothing under the name until
// Rename; no write after Sync; Abort after Sync removes the temporary file.
func TestSyncThenRename(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a")
	f, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("data"))
	if err := f.Rename(); err == nil {
		t.Error("Rename before Sync succeeded")
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("more")); err == nil {
		t.Error("Write after Sync succeeded")
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("%s exists before Rename: %v", path, err)
	}
	if err := f.Rename(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "data" {
		t.Errorf("%s holds %q", path, b)
	}
	if got := entries(t, dir); len(got) != 1 {
		t.Errorf("directory holds %v", got)
	}

	g, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	g.Write([]byte("other"))
	if err := g.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := g.Abort(); err != nil {
		t.Fatal(err)
	}
	if got := entries(t, dir); len(got) != 1 {
		t.Errorf("after Abort of a synced file the directory holds %v", got)
	}
	if b, _ := os.ReadFile(path); string(b) != "data" {
		t.Errorf("Abort changed %s: %q", path, b)
	}
}

// writeChecksums writes and commits a checksum file.
func writeChecksums(sidecar string, sums []Checksum) error {
	f, err := CreateChecksums(sidecar, sums)
	if err != nil {
		return err
	}
	return f.Commit()
}

// TempTarget reads exactly the names Create gives temporary files.
func TestTempTargetReadsTheNamesCreateGives(t *testing.T) {
	dir := t.TempDir()
	f, err := Create(filepath.Join(dir, "out.tar.zst.002"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Abort()
	if target, ok := TempTarget(filepath.Base(f.Name())); !ok || target != "out.tar.zst.002" {
		t.Errorf("TempTarget(%s) = %q, %v; want out.tar.zst.002", filepath.Base(f.Name()), target, ok)
	}
	for _, name := range []string{
		"out.tar.zst.tmp-0123456789abcdef",   // no leading dot
		".out.tar.zst.tmp-0123456789abcde",   // 15 hex digits
		".out.tar.zst.tmp-0123456789abcdef0", // 17
		".out.tar.zst.tmp-0123456789ABCDEF",  // upper case
		".out.tar.zst.old-0123456789ab",      // set aside by volumes.Put
		".out.tar.zst.tmp-0123456789abcdef~", // an editor's backup
		"..tmp-0123456789abcdef",             // no target
	} {
		if target, ok := TempTarget(name); ok {
			t.Errorf("TempTarget(%s) = %q: not a name Create gives", name, target)
		}
	}
}
