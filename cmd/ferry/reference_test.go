package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/internal/regopts"
)

// An archive given where a registry reference is expected was read as
// Docker Hub's library/rel.tar.zst (or the registry "." for
// ./rel.tar.zst), and the user was told a host name does not resolve.
// It is refused before any registry is asked (the registries named here
// listen nowhere: a request would fail with exit 1), naming the command
// that reads an archive.
func TestArchiveGivenAsReferenceIsRefused(t *testing.T) {
	dir := t.TempDir()
	archive := filepath.Join(dir, "rel.tar.zst")
	if err := os.WriteFile(archive, []byte("not read"), 0o600); err != nil {
		t.Fatal(err)
	}
	lock := filepath.Join(dir, "images.yml")
	if err := os.WriteFile(lock, []byte("not read"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "x.tar.zst")
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"export", "-b", archive, "-o", out}, []string{"export: -b " + archive + " is a file", "ferry export --from-tar " + archive + " -o " + out, "ferry import -f " + archive}},
		{[]string{"export", "-i", archive, "-o", out}, []string{"export: -i " + archive + " is a file"}},
		{[]string{"export", "-b", lock, "-o", out}, []string{"is a file", "--lock " + lock}},
		{[]string{"export", "--lock", archive, "-o", out}, []string{"--lock takes an ImagesLock or BundleLock", "ferry export --from-tar " + archive}},
		// No such file, but no registry either and an archive's name.
		{[]string{"export", "-b", "rel.tar.zst", "-o", out}, []string{"-b rel.tar.zst names no registry and is named as an archive"}},
		{[]string{"export", "-b", "./rel.tar.gz", "-o", out}, []string{"-b ./rel.tar.gz names no registry"}},
		{[]string{"export", "-b", "rel.tar.zst.001", "-o", out}, []string{"-b rel.tar.zst.001 names no registry"}},
		{[]string{"copy", "-b", archive, "--to-repo", "127.0.0.1:1/x"}, []string{"copy: -b " + archive, "ferry copy --tar " + archive + " --to-repo 127.0.0.1:1/x"}},
		{[]string{"copy", "-b", archive, "--to-tar", out}, []string{"ferry export --from-tar " + archive + " -o " + out}},
		{[]string{"copy", "--lock", archive, "--to-repo", "127.0.0.1:1/x"}, []string{"--lock takes", "ferry copy --tar " + archive}},
		{[]string{"pull", "-b", archive, "-o", filepath.Join(dir, "o")}, []string{"pull: -b " + archive, "ferry import -f " + archive, "ferry serve " + archive}},
		{[]string{"pull", "-b", "./rel.tar.zst", "-o", filepath.Join(dir, "o")}, []string{"pull: -b ./rel.tar.zst names no registry"}},
		{[]string{"push", "-b", archive, "-f", dir}, []string{"push: -b " + archive, "ferry import -f " + archive}},
		{[]string{"tag", "list", "-i", archive}, []string{"tag list: -i " + archive + " is a file, not a repository", "ferry inspect " + archive}},
	} {
		wantUsage(t, tc.args, tc.want...)
	}
	if _, err := os.Stat(filepath.Join(dir, "o")); err == nil {
		t.Error("a refused pull created its directory")
	}
}

// References that name their registry are not taken for files, whatever
// they end in; nor are Docker Hub's names without an archive's ending.
func TestReferencesAreNotTakenForArchives(t *testing.T) {
	for _, ref := range []string{"127.0.0.1:1/rel/app:v1", "registry.example.com/x/app.tar:v1", "localhost/a.zst:1", "library/nginx:1", "team/app"} {
		if _, explicit := registryHost(ref); !explicit && archiveName.MatchString(ref) {
			t.Errorf("%q would be refused as an archive", ref)
		}
	}
	for _, file := range []string{"rel.tar.zst", "./rel.tar", "../a/b.tgz", "/abs/rel.tar.zst", "x.zst", "r.TAR.GZ", "rel.tar.zst.002"} {
		if _, explicit := registryHost(file); explicit || !archiveName.MatchString(file) {
			t.Errorf("%q is not read as an archive file", file)
		}
	}
}

// An archive that does not exist, named by a registry reference, says
// which command reads a registry (ferry import -f REF said only "no such
// file or directory").
func TestMissingArchiveThatIsAReferenceSaysSo(t *testing.T) {
	const ref = "127.0.0.1:1/rel/app:v1"
	out := filepath.Join(t.TempDir(), "o.tar.zst")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"import", "-f", ref, "--to-repo", "127.0.0.1:1/mirror/app"}, "ferry copy -b " + ref + " --to-repo 127.0.0.1:1/mirror/app"},
		{[]string{"copy", "--tar", ref, "--to-repo", "127.0.0.1:1/mirror/app"}, "ferry copy -b " + ref + " --to-repo 127.0.0.1:1/mirror/app"},
		{[]string{"export", "--from-tar", ref, "-o", out}, "ferry export -b " + ref + " -o " + out},
		{[]string{"inspect", ref}, "inspect reads an archive, not a registry; ferry export -b " + ref},
		{[]string{"verify", ref}, "verify reads an archive, not a registry; ferry export -b " + ref},
		{[]string{"serve", ref, "--addr", "127.0.0.1:0"}, "serve reads an archive, not a registry; ferry export -b " + ref},
	} {
		wantUsage(t, tc.args, "no such file or directory", ref+" reads as a registry reference", tc.want)
	}
	// A file name is only a file name.
	code, _, stderr := runFerry("inspect", filepath.Join(t.TempDir(), "missing.tar.zst"))
	if code != 2 || strings.Contains(stderr, "registry") {
		t.Errorf("inspect of a missing file: exit %d, %s", code, stderr)
	}
}

// tag list -i REPO:TAG said only that the repository "can only contain the
// characters …": it gets --to-repo's checks, naming the tag or digest.
// A repository without its registry is still Docker Hub's: tag list only
// reads.
func TestTagListNamesWhatIsNotARepository(t *testing.T) {
	wantUsage(t, []string{"tag", "list", "-i", "127.0.0.1:1/rel/app:v1"}, `tag list: -i "127.0.0.1:1/rel/app:v1" names a tag: give a repository (REGISTRY/PATH)`)
	wantUsage(t, []string{"tag", "list", "-i", "127.0.0.1:1/rel/app@sha256:0123"}, "names a digest")
	wantUsage(t, []string{"tag", "list", "-i", "127.0.0.1:1"}, "names a registry but no repository")
	wantUsage(t, []string{"tag", "list", "-i", "127.0.0.1:1/-a/app"}, `path component "-a"`)
	if _, err := parseRepository("team/app", regopts.Options{}, false); err != nil {
		t.Errorf("tag list refuses Docker Hub's team/app: %v", err)
	}
}

// Go's flag errors reached the user as they were: "flag provided but not
// defined: -bundel" (one dash, no command, no hint), a duration without
// its unit as "parse error", a flag before the command as unknown. They
// name the command, the flag as typed, the flag meant and the help.
func TestFlagErrorsNameTheCommandAndTheFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"export", "--bundel", "127.0.0.1:1/b:1", "-o", "x.tar.zst"}, []string{"export: unknown flag --bundel", "did you mean --bundle?", "ferry export --help"}},
		{[]string{"tag", "list", "--digest", "-i", "127.0.0.1:1/x"}, []string{"tag list: unknown flag --digest", "did you mean --digests?", "ferry tag list --help"}},
		{[]string{"import", "--frobnicate"}, []string{"import: unknown flag --frobnicate (ferry import --help"}},
		{[]string{"-q", "tag", "list", "-i", "127.0.0.1:1/x"}, []string{"-q goes after the command: ferry tag list -q"}},
		{[]string{"--bogus", "inspect", "a.tar.zst"}, []string{"unknown flag --bogus before the command", "ferry inspect --help"}},
		{[]string{"--bogus"}, []string{"unknown flag --bogus", "ferry --help"}},
		{[]string{"tag", "list", "-i", "127.0.0.1:1/x", "--registry-response-header-timeout", "5"}, []string{`tag list: --registry-response-header-timeout "5": give a duration with its unit: 5s`}},
		{[]string{"export", "-b", "127.0.0.1:1/b:1", "-o", "x.tar.zst", "--concurrency", "many"}, []string{`export: --concurrency "many": give a whole number`}},
		{[]string{"export", "-b", "127.0.0.1:1/b:1", "-o", filepath.Join(t.TempDir(), "x.tar.zst"), "--level", "ultra"}, []string{"export: --level: ", "ultra", "fastest, default, better or best"}},
		{[]string{"copy", "-b", "127.0.0.1:1/b:1", "--to-tar", filepath.Join(t.TempDir(), "x.tar.zst"), "--level", "ultra"}, []string{"copy: --level: "}},
	} {
		wantUsage(t, tc.args, tc.want...)
	}
	for _, tc := range []struct {
		a, b string
		d    int
	}{{"bundel", "bundle", 2}, {"digest", "digests", 1}, {"", "abc", 3}, {"same", "same", 0}, {"kitten", "sitting", 3}} {
		if d := editDistance(tc.a, tc.b); d != tc.d {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, d, tc.d)
		}
	}
}

// The label that makes an image a bundle, given to push -l, is a usage
// error (exit 2) as "-l novalue" is, found before any file is read: the
// build refused it with exit 1.
func TestPushReservedLabelIsAUsageError(t *testing.T) {
	for _, l := range []string{"dev.carvel.imgpkg.bundle=x", "dev.carvel.imgpkg.bundle="} {
		wantUsage(t, []string{"push", "-i", "127.0.0.1:1/x/y:1", "-f", t.TempDir(), "-l", l}, "push: -l", "dev.carvel.imgpkg.bundle is reserved")
	}
	wantUsage(t, []string{"push", "-i", "127.0.0.1:1/x/y:1", "-f", t.TempDir(), "-l", "novalue"}, `push: -l "novalue" is not KEY=VALUE`)
}

// A file of the same name as a reference says nothing against it unless
// it is an archive (by its name or its first bytes) or a lock file: a
// binary named after its image, or a note, lies beside users all the time.
// Here the references name a registry that listens nowhere, so a reference
// taken as such fails with exit 1, and one refused as a file with exit 2.
func TestFileNamedLikeAReference(t *testing.T) {
	t.Chdir(t.TempDir())
	if err := os.MkdirAll("127.0.0.1:1/x", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("127.0.0.1:1/x/app", []byte("a note"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("127.0.0.1:1/x/rel", []byte{0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0}, 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "o.tar.zst")
	if code, _, stderr := runFerry("export", "-i", "127.0.0.1:1/x/app", "-o", out, "--registry-retry-count", "1"); code != 1 || strings.Contains(stderr, "is a file") {
		t.Errorf("export -i of a reference that is also a plain file: exit %d, %s; want it read as the reference", code, stderr)
	}
	wantUsage(t, []string{"export", "-i", "127.0.0.1:1/x/rel", "-o", out}, "-i 127.0.0.1:1/x/rel is a file")
}

// A reference or repository flag's value that cannot be read is refused
// naming the command and the flag, as every other usage error is: import
// --to-repo mirror/app said only `ferry: "mirror/app" names no registry…`,
// pull and push no flag. One path reads them all (repoFlag, referenceFlag,
// tagFlag).
func TestReferenceErrorsNameTheCommandAndTheFlag(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "x.tar.zst")
	const bad = "127.0.0.1:1/Bad:1"
	digest := "127.0.0.1:1/x/y@sha256:" + strings.Repeat("0", 64)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"import", "-f", "rel.tar.zst", "--to-repo", "mirror/app"}, `ferry: import: --to-repo "mirror/app" names no registry`},
		{[]string{"copy", "--tar", "rel.tar.zst", "--to-repo", "mirror/app"}, `ferry: copy: --to-repo "mirror/app" names no registry`},
		{[]string{"copy", "-b", "127.0.0.1:1/b:1", "--to-repo", "127.0.0.1:1/a:v1"}, `ferry: copy: --to-repo "127.0.0.1:1/a:v1" names a tag`},
		{[]string{"inventory", "--repo", "127.0.0.1:1/x", "--repo", "mirror/app", "-o", filepath.Join(dir, "have.json")}, `ferry: inventory: --repo "mirror/app" names no registry`},
		{[]string{"tag", "list", "-i", "127.0.0.1:1/-a/app"}, `ferry: tag list: -i "127.0.0.1:1/-a/app" is not a repository`},
		{[]string{"export", "-b", bad, "-o", out}, `ferry: export: -b "` + bad + `" is not a reference`},
		{[]string{"export", "-i", bad, "-o", out}, `ferry: export: -i "` + bad + `" is not a reference`},
		{[]string{"copy", "-i", bad, "--to-repo", "127.0.0.1:1/x"}, `ferry: copy: -i "` + bad + `" is not a reference`},
		{[]string{"copy", "-b", bad, "--to-tar", out}, `ferry: copy: -b "` + bad + `" is not a reference`},
		{[]string{"pull", "-b", bad, "-o", filepath.Join(dir, "o")}, `ferry: pull: -b "` + bad + `" is not a reference`},
		{[]string{"pull", "-i", bad, "-o", filepath.Join(dir, "o")}, `ferry: pull: -i "` + bad + `" is not a reference`},
		{[]string{"push", "-b", digest, "-f", dir}, `ferry: push: -b "` + digest + `" is not a tag reference`},
		{[]string{"push", "-i", bad, "-f", dir, "--to-tar", out}, `ferry: push: -i "` + bad + `" is not a tag reference`},
	} {
		wantUsage(t, tc.args, tc.want)
	}
}

// --json refused beside an archive on standard output names the flag that
// sends it there: -o for export, --to-tar for copy and push (copy and push
// said "-o -", which they do not have).
func TestJSONBesideArchiveOnStdoutNamesTheFlag(t *testing.T) {
	wantUsage(t, []string{"export", "-i", "127.0.0.1:1/x/y:1", "-o", "-", "--json"}, "export: --json prints on standard output, which -o - uses")
	wantUsage(t, []string{"copy", "-i", "127.0.0.1:1/x/y:1", "--to-tar", "-", "--json"}, "copy: --json prints on standard output, which --to-tar - uses")
	wantUsage(t, []string{"push", "-b", "127.0.0.1:1/x/y:1", "-f", t.TempDir(), "--to-tar", "-", "--json"}, "push: --json prints on standard output, which --to-tar - uses")
}

// push --to-tar into a directory being pushed is a usage error (exit 2),
// naming both, before anything is built or written: the archive went into
// the next push's layer, which grew with each.
func TestPushToTarInsideAnInputIsAUsageError(t *testing.T) {
	dir := t.TempDir()
	archive := filepath.Join(dir, "out.tar.zst")
	wantUsage(t, []string{"push", "-b", "127.0.0.1:1/x/y:1", "-f", dir, "--to-tar", archive}, "push: --to-tar", archive, "inside the input directory "+dir)
	if entries, err := os.ReadDir(dir); err != nil || len(entries) != 0 {
		t.Errorf("a refused push --to-tar left %d entries in its input (%v)", len(entries), err)
	}
}
