package relocate

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/internal/volumes"
)

// After `cat FILE.0* > FILE`, FILE.sha256 is the split export's: it lists
// the volumes. verify FILE checks the archive and does not take the first
// volume's sum for the archive's, nor claim the checksum file matched.
func TestVerifyJoinedVolumesIgnoresTheVolumesChecksumFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "release.tar.zst")
	writeBundleOnlyArchive(t, path, true)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	whole := sha256Hex(data)
	// The volumes a split export would have written, and its checksum
	// file, one line per volume.
	var lines strings.Builder
	size := len(data)/3 + 1
	for i := 1; i <= 3; i++ {
		part := data[(i-1)*size : min(i*size, len(data))]
		if err := os.WriteFile(volumes.Name(path, i), part, 0o644); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&lines, "%s  %s\n", sha256Hex(part), filepath.Base(volumes.Name(path, i)))
	}
	volumesSide := lines.String()
	wrong := strings.Repeat("0", 64)

	for _, tc := range []struct {
		name, side string
		// sidecar is whether the result says the checksum file matched;
		// fail, the error expected ("" for none).
		sidecar bool
		fail    string
	}{
		{"joined, the volumes listed", volumesSide, false, ""},
		{"the archive listed", whole + "  release.tar.zst\n", true, ""},
		{"the archive listed among volumes", volumesSide + whole + "  release.tar.zst\n", true, ""},
		{"the archive listed, wrong", wrong + "  release.tar.zst\n", false, "release.tar.zst.sha256 says " + wrong},
		{"renamed", whole + "  old-name.tar.zst\n", true, ""},
		{"renamed, wrong", wrong + "  old-name.tar.zst\n", false, "release.tar.zst.sha256 says " + wrong},
		{"two other files", whole + "  a.tar.zst\n" + whole + "  b.tar.zst\n", false, "release.tar.zst.sha256 names neither"},
		{"volumes and another file", volumesSide + whole + "  a.tar.zst\n", false, "release.tar.zst.sha256 names neither"},
		{"empty", "", false, "release.tar.zst.sha256 names neither"},
		{"not sha256sum", "garbage\n", false, "release.tar.zst.sha256: line 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(path+".sha256", []byte(tc.side), 0o644); err != nil {
				t.Fatal(err)
			}
			res, err := VerifyFile(context.Background(), path, VerifyOptions{})
			if tc.fail != "" {
				if err == nil || !strings.Contains(err.Error(), tc.fail) {
					t.Fatalf("got %v, want an error with %q", err, tc.fail)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !res.Verified || res.SHA256 != whole || len(res.Volumes) != 0 {
				t.Fatalf("result %+v", res)
			}
			if want := map[bool]string{true: path + ".sha256"}[tc.sidecar]; res.Sidecar != want {
				t.Fatalf("checksum file %q in the result, want %q", res.Sidecar, want)
			}
		})
	}
}
