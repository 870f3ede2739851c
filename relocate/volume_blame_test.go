package relocate_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/internal/volumes"
	"github.com/ferry-dev/ferry/relocate"
)

// splitSource exports a source with a 2 MiB layer into volumes of 256 KiB
// named after name, with their checksum file, and returns the archive's
// path and its volumes.
func splitSource(t *testing.T, name string) (string, []volumes.Volume) {
	t.Helper()
	src := impNewSource(t, 2<<20)
	data := src.export(t)
	path := filepath.Join(t.TempDir(), name)
	w, err := volumes.Create(path, 256<<10)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	vols, _, err := w.Commit()
	if err != nil {
		t.Fatal(err)
	}
	return path, vols
}

// A volume damaged in place keeps its size and every frame start, so the
// set passes the checks made before anything is read; the blob read
// through the damage fails. Its checksum line then names the volume, for
// an import and for a re-pack (export --from-tar) alike.
func TestReadingDamagedVolumesNamesTheVolume(t *testing.T) {
	path, vols := splitSource(t, "release.tar.zst")
	// The 2 MiB layer of random bytes fills the middle volumes.
	bad := len(vols) / 2
	vpath := volumes.Name(path, bad)
	b, err := os.ReadFile(vpath)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(vpath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	want := "volume " + volumes.Suffix(bad) + " (" + vpath + ") has sha256"

	for _, move := range []string{"import", "re-pack"} {
		t.Run(move, func(t *testing.T) {
			vs, err := volumes.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer vs.Close()
			ctx := context.Background()
			switch move {
			case "import":
				dst := impNewDest(t, false)
				_, err = relocate.Import(ctx, vs, dst.repo, dst.options(t))
				if got := dst.tags(t); len(got) != 0 {
					t.Errorf("the failed import tagged %v", got)
				}
			case "re-pack":
				var p *relocate.Plan
				if p, err = relocate.PlanArchive(vs); err == nil {
					_, err = relocate.Export(ctx, p, &bytes.Buffer{}, relocate.ExportOptions{})
				}
			}
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%s of volumes with %s damaged: %v\nwant it to say %q", move, volumes.Suffix(bad), err, want)
			}
		})
	}
}
