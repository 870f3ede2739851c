package volumes

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A file whose name only ends like a volume's (a release named after its
// version, a dated snapshot) is read as the file it is, not as a set with
// its first volume missing.
func TestOpenArchiveReadsAFileNamedLikeAVolume(t *testing.T) {
	dir := t.TempDir()
	// It starts as an archive does, with a zstd frame.
	data := append([]byte{0x28, 0xb5, 0x2f, 0xfd}, archiveBytes(3000, 5)...)
	for _, name := range []string{"app-1.0.100", "app-1.0.002", "snap.20240601", "x.0001"} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		rc, err := OpenArchive(context.Background(), path)
		if err != nil {
			t.Fatalf("OpenArchive(context.Background(), %s): %v", name, err)
		}
		if _, ok := rc.(*os.File); !ok {
			t.Errorf("OpenArchive(context.Background(), %s) is a %T, want the file", name, rc)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(got, data) {
			t.Errorf("OpenArchive(context.Background(), %s) reads other bytes", name)
		}
	}
	// Two releases side by side are two files, not volumes of one.
	rc, err := OpenArchive(context.Background(), filepath.Join(dir, "app-1.0.100"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := rc.(*os.File); !ok {
		t.Errorf("with app-1.0.002 beside it, app-1.0.100 is a %T", rc)
	}
	rc.Close()
}

// Beside a set, a release of its own named like one of its volumes (with
// its own checksum file) is no extra volume, and a file named with four
// digits or more is no volume at all.
func TestOpenSetBesideFilesNamedLikeVolumes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "release.tar.zst")
	data := archiveBytes(7000, 3)
	split(t, path, data, 3000)
	release := Name(path, 99)
	if err := os.WriteFile(release, []byte("release 99"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(release+".sha256", []byte(sumLine(filepath.Base(release), "release 99")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".2024", []byte("a backup"), 0o644); err != nil {
		t.Fatal(err)
	}
	rc, err := OpenArchive(context.Background(), path)
	if err != nil {
		t.Fatalf("OpenArchive(context.Background(), %s): %v", path, err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("the set reads %d bytes (%v), want its %d", len(got), err, len(data))
	}
}

// An empty volume adds nothing to the bytes, so nothing else would catch
// an empty extra volume where no checksum file lists the set: export
// writes none, and the set is refused naming it.
func TestOpenRefusesAnEmptyVolume(t *testing.T) {
	path := filepath.Join(t.TempDir(), "release.tar.zst")
	split(t, path, archiveBytes(7000, 3), 3000)
	os.Remove(path + ".sha256")
	if err := os.WriteFile(Name(path, 4), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Open(path)
	if err == nil || !strings.Contains(err.Error(), "volume .004") || !strings.Contains(err.Error(), "empty") {
		t.Errorf("Open with an empty .004: %v, want it named empty", err)
	}
}

// A volume of a set is read as one even when the set is broken, so that
// the volume at fault is named rather than the file read as an archive:
// without .001 nor a checksum file, .002 is still a volume, for it does
// not start as an archive does.
func TestOpenArchiveNamesTheMissingFirstVolume(t *testing.T) {
	for _, sidecar := range []bool{true, false} {
		path := filepath.Join(t.TempDir(), "release.tar.zst")
		split(t, path, archiveBytes(7000, 3), 3000)
		if !sidecar {
			os.Remove(path + ".sha256")
		}
		if err := os.Remove(Name(path, 1)); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{Name(path, 1), path, Name(path, 2)} {
			rc, err := OpenArchive(context.Background(), name)
			if err == nil {
				rc.Close()
			}
			if err == nil || !strings.Contains(err.Error(), "volume .001 is missing") {
				t.Errorf("OpenArchive(context.Background(), %s), checksum file %v: %v, want volume .001 named missing", name, sidecar, err)
			}
		}
		// A volume that is not there, and that nothing lists, is just
		// not there.
		if _, err := OpenArchive(context.Background(), Name(path, 7)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("OpenArchive of a .007 nobody lists: %v", err)
		}
	}
	// A volume the checksum file lists, missing, is named.
	path := filepath.Join(t.TempDir(), "release.tar.zst")
	split(t, path, archiveBytes(7000, 3), 3000)
	os.Remove(Name(path, 3))
	if _, err := OpenArchive(context.Background(), Name(path, 3)); err == nil || !strings.Contains(err.Error(), "volume .003 is missing") {
		t.Errorf("OpenArchive of the missing listed .003: %v", err)
	}
}

func TestVolumeNumber(t *testing.T) {
	for _, tc := range []struct {
		file, name string
		want       int
	}{
		{"a.tar.zst.001", "a.tar.zst", 1},
		{"a.tar.zst.999", "a.tar.zst", 999},
		{"a.tar.zst.1000", "a.tar.zst", 0},
		{"a.tar.zst.2024", "a.tar.zst", 0},
		{"a.tar.zst.000", "a.tar.zst", 0},
		{"a.tar.zst.01", "a.tar.zst", 0},
		{"a.tar.zst.0001", "a.tar.zst", 0},
		{"b.tar.zst.001", "a.tar.zst", 0},
		{"a.tar.zst", "a.tar.zst", 0},
	} {
		i, ok := VolumeNumber(tc.file, tc.name)
		if i != tc.want || ok != (tc.want > 0) {
			t.Errorf("VolumeNumber(%q, %q) = %d, %v; want %d", tc.file, tc.name, i, ok, tc.want)
		}
	}
}

func TestStartsAnArchive(t *testing.T) {
	dir := t.TempDir()
	tarHead := make([]byte, 512)
	copy(tarHead[257:], "ustar")
	for _, tc := range []struct {
		name string
		data []byte
		want bool
	}{
		{"zstd", []byte{0x28, 0xb5, 0x2f, 0xfd, 0}, true},
		{"skippable", []byte{0x5e, 0x2a, 0x4d, 0x18, 0}, true},
		{"gzip", []byte{0x1f, 0x8b, 8}, true},
		{"tar", tarHead, true},
		{"middle of a frame", archiveBytes(600, 9), false},
		{"empty", nil, false},
	} {
		path := filepath.Join(dir, tc.name)
		if err := os.WriteFile(path, tc.data, 0o644); err != nil {
			t.Fatal(err)
		}
		if got := StartsAnArchive(path); got != tc.want {
			t.Errorf("StartsAnArchive(%s) = %v, want %v", tc.name, got, tc.want)
		}
	}
	if !StartsAnArchive(filepath.Join(dir, "absent")) {
		t.Error("a file that cannot be read must be left to open as a file")
	}
}

// Two whole archives export wrote under names ending like volumes
// (nightly.001, nightly.002), each with its own checksum file, are two
// archives: each is read as the file it is, not as a volume of the other.
func TestOpenArchiveReadsAWholeArchiveItsChecksumFileNames(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "nightly")
	data := map[int][]byte{
		1: append([]byte{0x28, 0xb5, 0x2f, 0xfd}, archiveBytes(1500, 7)...),
		2: append([]byte{0x28, 0xb5, 0x2f, 0xfd}, archiveBytes(9000, 8)...),
	}
	for i, b := range data {
		path := Name(base, i)
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		line := sum(b) + "  " + filepath.Base(path) + "\n"
		if err := os.WriteFile(path+".sha256", []byte(line), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i, want := range data {
		rc, err := OpenArchive(context.Background(), Name(base, i))
		if err != nil {
			t.Fatalf("OpenArchive(context.Background(), %s): %v", Name(base, i), err)
		}
		if _, ok := rc.(*os.File); !ok {
			t.Errorf("OpenArchive(context.Background(), %s) is a %T, want the file its checksum file names", Name(base, i), rc)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(got, want) {
			t.Errorf("OpenArchive(context.Background(), %s) reads %d bytes, want the file's %d", Name(base, i), len(got), len(want))
		}
	}
}

// Without .001 and the checksum file, the error says which volumes there
// are, not only the first of them.
func TestMissingFirstVolumeListsTheVolumesFound(t *testing.T) {
	path := filepath.Join(t.TempDir(), "release.tar.zst")
	split(t, path, archiveBytes(12000, 9), 2000)
	os.Remove(path + ".sha256")
	for _, i := range []int{1, 5} {
		if err := os.Remove(Name(path, i)); err != nil {
			t.Fatal(err)
		}
	}
	_, err := Open(path)
	if err == nil || !strings.Contains(err.Error(), "volume .001 is missing (found .002 to .004, .006)") {
		t.Fatalf("Open without .001 and .005: %v, want the volumes found listed", err)
	}
}
