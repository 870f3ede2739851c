package relocate

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// A directory where an export would write or replace a file (its checksum
// file, a volume an earlier export left, a volume name a split archive may
// take) is refused before anything is downloaded, by CheckExportPath and
// by ExportFile itself, naming it: not once the whole archive is written.
// Directories no export of the name touches stay accepted.
func TestExportRefusesADirectoryInTheWayBeforeDownloading(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	sumLine := func(name, content string) string {
		return fmt.Sprintf("%x  %s\n", sha256.Sum256([]byte(content)), name)
	}
	for _, tc := range []struct {
		name  string
		files map[string]string
		dir   string
		split bool
		// refused: the export must refuse dir.
		refused bool
	}{
		{"the checksum file", nil, "x.sha256", false, true},
		{"the checksum file of volumes", nil, "x.sha256", true, true},
		// Without a checksum file no volume name is an earlier export's:
		// an unsplit export leaves them, a split one refuses them.
		{"a volume name without a checksum file, unsplit", map[string]string{"x.001": "o1"}, "x.003", false, false},
		{"a volume name without a checksum file, split", map[string]string{"x.001": "o1"}, "x.003", true, true},
		{"a volume the earlier checksum file lists", map[string]string{"x.001": "o1", "x.sha256": sumLine("x.001", "o1") + sumLine("x.002", "o2")}, "x.002", false, true},
		{"a volume name a split archive may take", map[string]string{"x": "old", "x.sha256": sumLine("x", "old")}, "x.050", true, true},
		{"a volume name no earlier export wrote, unsplit", map[string]string{"x": "old", "x.sha256": sumLine("x", "old")}, "x.050", false, false},
		// Readers of the new volumes would take it for an extra one.
		{"past the last volume an export writes", nil, "x.100", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, content := range tc.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Mkdir(filepath.Join(dir, tc.dir), 0o755); err != nil {
				t.Fatal(err)
			}
			before := dirNames(t, dir)
			path := filepath.Join(dir, "x")
			opts := ExportOptions{Remote: w.opts}
			if tc.split {
				opts.SplitSize = 1 << 20
			}
			want := filepath.Join(dir, tc.dir) + " is a directory"
			err := CheckExportPath(path, opts)
			switch {
			case !tc.refused && err != nil:
				t.Fatalf("CheckExportPath: %v, want no error", err)
			case tc.refused && (err == nil || !strings.Contains(err.Error(), want)):
				t.Fatalf("CheckExportPath: %v, want an error saying %q", err, want)
			case !tc.refused:
				return
			}
			p, err := Resolve(context.Background(), Source{Bundle: w.rootTag}, Options{Remote: w.opts})
			if err != nil {
				t.Fatal(err)
			}
			w.reg.ResetCounts()
			if _, err := ExportFile(context.Background(), p, path, opts); err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("ExportFile: %v, want an error saying %q", err, want)
			}
			if n := w.reg.Counts().Total(); n != 0 {
				t.Errorf("%d registry requests before refusing, want none", n)
			}
			if got := dirNames(t, dir); !slices.Equal(got, before) {
				t.Errorf("the directory holds %v, want %v as before", got, before)
			}
		})
	}
}
