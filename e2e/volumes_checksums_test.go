package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferry-dev/ferry/internal/testregistry"
)

// copyFiles copies the regular files of src into a new temporary directory.
func copyFiles(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	es, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// Two exports of one bundle under two tags of the same length differ only
// in the volumes holding the head. One's set with the other's head volumes
// in place, beside its own checksum file (which says they are wrong),
// passes every structural check; import, inspect, verify, copy --tar and
// export --from-tar refuse it, naming volume .001, and nothing is tagged.
func TestHeadVolumesOfAnotherExportAreRefused(t *testing.T) {
	src := testregistry.NewDistribution(t)
	f := newExportFixture(t, src)
	rootRef, err := name.ParseReference(f.root)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Get(rootRef, src.RemoteOptions(t)...)
	if err != nil {
		t.Fatal(err)
	}
	type set struct {
		dir  string
		vols [][]byte
	}
	sets := map[string]set{}
	tags := []string{"v2", "v3", "v4", "v5", "v6", "v7"}
	for _, tag := range tags {
		tr, err := name.NewTag(rootRef.Context().String() + ":" + tag)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Tag(tr, desc, src.RemoteOptions(t)...); err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		mustFerry(t, "export", "-b", tr.String(), "-o", filepath.Join(dir, "r.tar.zst"), "--split-size", "1000")
		var vols [][]byte
		for i := 1; ; i++ {
			b, err := os.ReadFile(volume(filepath.Join(dir, "r.tar.zst"), i))
			if err != nil {
				break
			}
			vols = append(vols, b)
		}
		sets[tag] = set{dir, vols}
	}
	// Two sets whose volumes have the same sizes and differ in the first
	// ones only.
	var a, b string
	differ := 0
	for _, x := range tags {
		for _, y := range tags {
			if x >= y || len(sets[x].vols) != len(sets[y].vols) || a != "" {
				continue
			}
			n, same := 0, true
			for i := range sets[x].vols {
				if len(sets[x].vols[i]) != len(sets[y].vols[i]) {
					same = false
					break
				}
				if !bytes.Equal(sets[x].vols[i], sets[y].vols[i]) {
					if n != i {
						same = false
						break
					}
					n++
				}
			}
			if same && n > 0 && n < len(sets[x].vols)-1 {
				a, b, differ = x, y, n
			}
		}
	}
	if a == "" {
		t.Fatal("no two exports differ only in their first volumes")
	}
	t.Logf("the exports of %s and %s differ in their first %d volumes only", a, b, differ)
	mix := copyFiles(t, sets[a].dir)
	p := filepath.Join(mix, "r.tar.zst")
	for i := 0; i < differ; i++ {
		if err := os.WriteFile(volume(p, i+1), sets[b].vols[i], 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dst := testregistry.NewDistribution(t)
	refusedEverywhere(t, dst, dst.Repo("mixed"), p, "volume .001 (")
	repo := dst.Repo("mixed-copy")
	if r := ferry(t, nil, "copy", "--tar", p, "--to-repo", repo); r.Code != 1 || !bytes.Contains([]byte(r.Stderr), []byte("volume .001 (")) {
		t.Errorf("copy --tar: want exit 1 naming volume .001: %s", r)
	}
	if tags := tagsOf(t, dst, repo); len(tags) != 0 {
		t.Errorf("a refused copy --tar tagged %v", tags)
	}
	out := filepath.Join(t.TempDir(), "again.tar.zst")
	if r := ferry(t, nil, "export", "--from-tar", p, "-o", out); r.Code != 1 || !bytes.Contains([]byte(r.Stderr), []byte("volume .001 (")) {
		t.Errorf("export --from-tar: want exit 1 naming volume .001: %s", r)
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("a refused export --from-tar wrote %s", out)
	}
	// The sets as exported are read as before.
	mustFerry(t, "import", "-f", filepath.Join(sets[a].dir, "r.tar.zst"), "--to-repo", dst.Repo("clean"))
}
