package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/internal/testregistry"
)

// The defects a new user's audit found in ferry's human output and in
// its command-line errors.

// Full digests made human lines 125 to 190 columns wide: inspect's
// references by digest beside its short DIGEST column, pull's summary, and
// a nested bundle pulled into a directory named after its digest with
// that digest in front again. They are abbreviated to 12 hex digits as the
// DIGEST column is; -v keeps them whole. inspect of standard input names
// it as verify does.
func TestHumanOutputAbbreviatesDigests(t *testing.T) {
	src := testregistry.NewDistribution(t)
	inner := src.Repo("rel/inner") + ":v1"
	mustFerry(t, "push", "-b", inner, "-f", bundleDir(t, seedImage(t, src, "rel/app", 3)))
	innerDigest := digestOf(t, src, inner)
	innerHex := hexOf(innerDigest)
	innerByDigest := src.Repo("rel/inner") + "@" + innerDigest
	outer := src.Repo("rel/outer") + ":v1"
	outerDir := filepath.Join(t.TempDir(), "outer")
	if err := os.MkdirAll(filepath.Join(outerDir, ".imgpkg"), 0o755); err != nil {
		t.Fatal(err)
	}
	lock := "apiVersion: imgpkg.carvel.dev/v1alpha1\nkind: ImagesLock\nimages:\n- image: " + innerByDigest + "\n"
	if err := os.WriteFile(filepath.Join(outerDir, ".imgpkg", "images.yml"), []byte(lock), 0o644); err != nil {
		t.Fatal(err)
	}
	mustFerry(t, "push", "-b", outer, "-f", outerDir)
	outerDigest := digestOf(t, src, outer)
	short := func(d string) string { return d[:len("sha256:")+12] }

	dir := filepath.Join(t.TempDir(), "pulled")
	r := mustFerry(t, "pull", "-b", outer, "-o", dir, "-r")
	text := r.Stdout + r.Stderr
	for _, want := range []string{
		"Pulled " + outer + " (" + short(outerDigest) + ") into " + dir + " in ",
		"Pulled nested bundle into " + filepath.Join(dir, ".imgpkg", "bundles", "sha256-"+innerHex) + "\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("pull -r does not say %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, hexOf(outerDigest)) || strings.Contains(text, innerDigest) {
		t.Errorf("pull -r prints a full digest (the nested bundle's only in its directory's name):\n%s", text)
	}
	r = mustFerry(t, "pull", "-b", outer, "-o", filepath.Join(t.TempDir(), "v"), "-r", "-v")
	if text := r.Stdout + r.Stderr; !strings.Contains(text, "("+outerDigest+")") {
		t.Errorf("pull -v does not print the full digest:\n%s", text)
	}
	r = mustFerry(t, "pull", "-b", innerByDigest, "-o", filepath.Join(t.TempDir(), "d"))
	if text := r.Stdout + r.Stderr; !strings.Contains(text, "Pulled "+src.Repo("rel/inner")+"@"+short(innerDigest)+" into ") || strings.Count(text, innerHex[:12]) != 1 {
		t.Errorf("pull of a reference by digest does not name it once, abbreviated:\n%s", text)
	}

	archive := filepath.Join(t.TempDir(), "outer.tar.zst")
	mustFerry(t, "export", "-b", outer, "-o", archive)
	nestedLine := func(listing string) string {
		for _, l := range strings.Split(listing, "\n") {
			if strings.HasPrefix(l, "nested-bundle ") {
				return l
			}
		}
		t.Fatalf("inspect lists no nested bundle:\n%s", listing)
		return ""
	}
	r = mustFerry(t, "inspect", archive)
	if l := nestedLine(r.Stdout); !strings.Contains(l, " "+src.Repo("rel/inner")+"@"+short(innerDigest)+" ") || strings.Contains(l, innerHex) {
		t.Errorf("inspect's nested bundle line does not abbreviate its reference by digest:\n%s", l)
	}
	r = mustFerry(t, "inspect", archive, "-v")
	if l := nestedLine(r.Stdout); strings.Count(l, innerHex) != 2 {
		t.Errorf("inspect -v does not print the full digests (reference and DIGEST column):\n%s", l)
	}
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r = ferryIn(t, nil, f, "inspect", "-")
	if r.Code != 0 || !strings.HasPrefix(r.Stdout, "Archive: standard input (format 1") {
		t.Errorf("inspect - does not name standard input as verify does:\n%s", r)
	}
}

// A plain image given to copy -b was to be "exported" with -i, whatever
// the command; a directory holding .imgpkg given to push -i was to be
// "built" as a bundle, which push does with -b.
func TestWrongSourceKindSaysTheFlag(t *testing.T) {
	reg := testregistry.NewDistribution(t)
	plain := seedImage(t, reg, "rel/plain", 5)
	r := ferry(t, nil, "copy", "-b", plain.String(), "--to-repo", reg.Repo("mirror/plain"))
	if r.Code != 1 || !strings.Contains(r.Stderr, "not a bundle") || !strings.Contains(r.Stderr, "use -i to carry it as an image") {
		t.Errorf("copy -b of a plain image: want exit 1 saying to carry it with -i: %s", r)
	}
	r = ferry(t, nil, "push", "-i", reg.Repo("rel/dir")+":v1", "-f", bundleDir(t, plain))
	if r.Code != 1 || !strings.Contains(r.Stderr, "is a bundle: push it with -b") {
		t.Errorf("push -i of a bundle directory: want exit 1 saying to push it with -b: %s", r)
	}
}
