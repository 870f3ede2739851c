package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/internal/testregistry"
)

// A push to a tag of the shape of another manifest's bookkeeping tag
// (sha256-<hex>.imgpkg, cosign's .sig) is refused before anything is
// written, as a bad reference is: exit 2 (README: exit status), to the
// registry and with --to-tar alike. An ordinary tag ending in .imgpkg is
// pushed.
func TestPushToABookkeepingTagIsAUsageError(t *testing.T) {
	reg := testregistry.NewGGCR(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "app.yml"), []byte("replicas: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	other := strings.Repeat("ab", 32)
	for _, tag := range []string{"sha256-" + other + ".imgpkg", "sha256-" + other + ".sig"} {
		ref := reg.Repo("team/app") + ":" + tag
		if code, _, stderr := runFerry("push", "-i", ref, "-f", dir); code != 2 || !strings.Contains(stderr, "bookkeeping tag") || !strings.Contains(stderr, tag) {
			t.Errorf("push -i %s: exit %d, stderr %q; want exit 2 naming the tag", ref, code, stderr)
		}
		out := filepath.Join(t.TempDir(), "app.tar.zst")
		if code, _, stderr := runFerry("push", "-i", ref, "-f", dir, "--to-tar", out); code != 2 || !strings.Contains(stderr, "bookkeeping tag") {
			t.Errorf("push -i %s --to-tar: exit %d, stderr %q; want exit 2 naming the tag", ref, code, stderr)
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Errorf("push -i %s --to-tar left %s (%v)", ref, out, err)
		}
	}
	if w := reg.Writes("team/app"); len(w) != 0 {
		t.Errorf("refused pushes wrote: %v", w)
	}
	if code, _, stderr := runFerry("push", "-i", reg.Repo("team/app")+":v1.imgpkg", "-f", dir); code != 0 {
		t.Errorf("push to v1.imgpkg: exit %d, %s", code, stderr)
	}
}
