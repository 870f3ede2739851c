package relocate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/archive"
	"github.com/ferry-dev/ferry/internal/inventory"

	"github.com/ferry-dev/ferry/internal/progress"
)

// A --since path that does not exist, or a directory, is how ferry was
// called, as a file that is neither an archive nor an inventory is: the
// error matches ErrNotABase (export) and ErrNotABaseArchive (verify), and
// names the path.
func TestReadSinceOfNoFileOrADirectory(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, path, want string }{
		{"missing", filepath.Join(dir, "v1.tar.zst"), "no such file"},
		{"directory", dir, "is a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadSince(t.Context(), tc.path, nil)
			if !errors.Is(err, ErrNotABase) || !strings.Contains(err.Error(), tc.path) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ReadSince: %v; want ErrNotABase naming %s, %q", err, tc.path, tc.want)
			}
			_, _, err = openBases(t.Context(), []string{tc.path}, progress.Nop{})
			if !errors.Is(err, ErrNotABaseArchive) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("openBases: %v; want ErrNotABaseArchive, %q", err, tc.want)
			}
		})
	}
}

// TestSinceAnInventoryOfTooManyRepositories: an inventory listing more
// repositories than a delta's base may name is refused when --since reads
// it, naming the count and the bound, not later while the archive's head
// is written; at the bound it is read.
func TestSinceAnInventoryOfTooManyRepositories(t *testing.T) {
	doc := func(n int) string {
		var repos []string
		for i := range n {
			repos = append(repos, fmt.Sprintf(`{"registry": "reg.example:5000", "repository": "mirror/app%d", "tags": 0, "manifests": [], "blobs": []}`, i))
		}
		return `{"mediaType": "` + inventory.MediaType + `", "formatVersion": 1, "createdBy": "hand", "created": "2026-11-29T16:00:46Z", "repositories": [` + strings.Join(repos, ", ") + `]}`
	}
	dir := t.TempDir()
	for _, n := range []int{archive.MaxBaseRepositories, archive.MaxBaseRepositories + 1} {
		path := filepath.Join(dir, fmt.Sprintf("have-%d.json", n))
		if err := os.WriteFile(path, []byte(doc(n)), 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := ReadSince(context.Background(), path, nil)
		switch {
		case n <= archive.MaxBaseRepositories && (err != nil || len(s.Base.Repositories) != n):
			t.Errorf("%d repositories: %v; want them read", n, err)
		case n > archive.MaxBaseRepositories && (err == nil || !strings.Contains(err.Error(), fmt.Sprintf("lists %d repositories", n)) || !strings.Contains(err.Error(), path)):
			t.Errorf("%d repositories: %v; want a refusal naming the file and the count", n, err)
		}
	}
}

// TestSinceADeviceIsNotAPipe: a character device is neither a file nor
// a pipe an inventory comes through: refused as not a regular file,
// rather than read (or waited on) as a stream.
func TestSinceADeviceIsNotAPipe(t *testing.T) {
	_, err := ReadSince(context.Background(), os.DevNull, nil)
	if !errors.Is(err, ErrNotABase) || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("--since %s: %v; want ErrNotABase, not a regular file", os.DevNull, err)
	}
}
