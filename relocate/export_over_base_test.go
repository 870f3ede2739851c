package relocate

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/internal/volumes"
)

// An export whose output is the file its --since base was read from (or
// one of the base's volumes, or the base's volumes are what the output
// would replace) is refused before anything is written, naming both
// (ErrOutputIsABase): `export -o s2.tar.zst --since s2.tar.zst` replaced
// the full base with its delta. Another name, beside the base, is fine.
func TestExportRefusesToReplaceItsSinceBase(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := context.Background()
	plan := func() *Plan {
		t.Helper()
		p, err := Resolve(ctx, Source{Bundle: w.rootTag}, Options{Remote: w.opts})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	exportTo := func(path string, opts ExportOptions) (*ExportResult, error) {
		t.Helper()
		opts.Remote = w.opts
		return ExportFile(ctx, plan(), path, opts)
	}
	dir := t.TempDir()
	whole := filepath.Join(dir, "s2.tar.zst")
	if _, err := exportTo(whole, ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	split := filepath.Join(dir, "v.tar.zst")
	if _, err := exportTo(split, ExportOptions{SplitSize: 64 << 10}); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.tar.zst")
	if err := os.Symlink("s2.tar.zst", link); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, since, out string
		splitSize        int64
	}{
		{"the base itself", whole, whole, 0},
		{"the base itself, split", whole, whole, 64 << 10},
		{"the base through a symbolic link", whole, link, 0},
		{"the base's first volume, unsplit over its volumes", volumes.Name(split, 1), split, 0},
		{"the base's volumes by their name", split, split, 64 << 10},
		{"a volume of the base as the output's volume", split, split, 1 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base, err := ReadSince(ctx, tc.since, nil)
			if err != nil {
				t.Fatal(err)
			}
			snap := snapshot(t, dir)
			opts := ExportOptions{Since: []*Since{base}, SplitSize: tc.splitSize}
			err = CheckExportPath(tc.out, opts)
			if !errors.Is(err, ErrOutputIsABase) || !strings.Contains(err.Error(), tc.since) || !strings.Contains(err.Error(), tc.out) {
				t.Errorf("CheckExportPath: %v, want ErrOutputIsABase naming %s and %s", err, tc.out, tc.since)
			}
			p := plan()
			w.reg.ResetCounts()
			opts.Remote = w.opts
			if _, err := ExportFile(ctx, p, tc.out, opts); !errors.Is(err, ErrOutputIsABase) {
				t.Errorf("ExportFile: %v, want ErrOutputIsABase", err)
			}
			if n := w.reg.Counts().Total(); n != 0 {
				t.Errorf("%d registry requests before refusing, want none", n)
			}
			if after := snapshot(t, dir); !equalSnapshots(snap, after) {
				t.Errorf("the directory changed: %v, want %v", keys(after), keys(snap))
			}
		})
	}
	// Beside the base, under another name: the delta is written.
	base, err := ReadSince(ctx, whole, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckExportPath(filepath.Join(dir, "s3.tar.zst"), ExportOptions{Since: []*Since{base}}); err != nil {
		t.Errorf("CheckExportPath of another name: %v", err)
	}
	if _, err := exportTo(filepath.Join(dir, "s3.tar.zst"), ExportOptions{Since: []*Since{base}}); err != nil {
		t.Errorf("ExportFile of another name: %v", err)
	}
}

// snapshot is every file of dir, by name, with its bytes.
func snapshot(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, name := range dirNames(t, dir) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		out[name] = b
	}
	return out
}

func equalSnapshots(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || !bytes.Equal(v, w) {
			return false
		}
	}
	return true
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
