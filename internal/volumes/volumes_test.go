package volumes

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"4294967295": 4294967295,
		"4G":         4_000_000_000,
		"4g":         4_000_000_000,
		"4GB":        4_000_000_000,
		"700M":       700_000_000,
		"4.7G":       4_700_000_000,
		"1k":         1000,
		"1K":         1000,
		"2T":         2_000_000_000_000,
		"4Gi":        4 << 30,
		"4GiB":       4 << 30,
		"1.5Ki":      1536,
		"700Mi":      700 << 20,
		"0.5":        0, // refused below: less than a byte
		" 10 MiB ":   10 << 20,
		".5k":        500,
		"1.0000001k": 1000, // a fraction of a byte rounds down
	} {
		got, err := ParseSize(in)
		if want == 0 {
			if err == nil {
				t.Errorf("ParseSize(%q) = %d, want an error", in, got)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "G", "-1", "0", "4X", "4 G B", "1.2.3M", "9999999999T", "4GiBi", "0x10", "1_000", "4_0G", "_1k", "1e3"} {
		if got, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", in, got)
		}
	}
}

// archiveBytes is what a split writes: n pseudo-random bytes.
func archiveBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// split writes data through a Writer of volume size size, in chunks of
// random lengths, and commits.
func split(t *testing.T, path string, data []byte, size int64) []Volume {
	t.Helper()
	w, err := Create(path, size)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for p := data; len(p) > 0; {
		n := min(len(p), 1+r.IntN(3*int(size)))
		m, err := w.Write(p[:n])
		if err != nil || m != n {
			t.Fatalf("Write: %d, %v", m, err)
		}
		p = p[n:]
	}
	vols, warnings, err := w.Commit()
	if err != nil || len(warnings) > 0 {
		t.Fatal(err, warnings)
	}
	return vols
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestSplitJoinsToTheArchive(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "release.tar.zst")
	data := archiveBytes(10_000, 1)
	// What earlier exports left: an unsplit archive, more volumes, and
	// the checksum file that says they are an export's.
	var stale strings.Builder
	for _, name := range []string{path, Name(path, 5), Name(path, 6)} {
		if err := os.WriteFile(name, []byte("stale"), 0o644); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&stale, "%s  %s\n", sum([]byte("stale")), filepath.Base(name))
	}
	if err := os.WriteFile(path+".sha256", []byte(stale.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	vols := split(t, path, data, 3000)
	if len(vols) != 4 {
		t.Fatalf("%d volumes, want 4", len(vols))
	}
	var joined []byte
	var side strings.Builder
	for i, v := range vols {
		b, err := os.ReadFile(Name(path, i+1))
		if err != nil {
			t.Fatal(err)
		}
		want := int64(3000)
		if i == 3 {
			want = 1000
		}
		if int64(len(b)) != want || v.Size != want || v.Path != Name(path, i+1) || v.SHA256 != sum(b) {
			t.Errorf("volume %d: %d bytes on disk, result %+v", i+1, len(b), v)
		}
		joined = append(joined, b...)
		side.WriteString(sum(b) + "  release.tar.zst" + Suffix(i+1) + "\n")
	}
	if !bytes.Equal(joined, data) {
		t.Fatal("the volumes joined are not the archive")
	}
	got, err := os.ReadFile(path + ".sha256")
	if err != nil || string(got) != side.String() {
		t.Fatalf("checksum file %q (%v), want %q", got, err, side.String())
	}
	left, _ := os.ReadDir(dir)
	var names []string
	for _, e := range left {
		names = append(names, e.Name())
	}
	if want := "release.tar.zst.001 release.tar.zst.002 release.tar.zst.003 release.tar.zst.004 release.tar.zst.sha256"; strings.Join(names, " ") != want {
		t.Fatalf("directory holds %v, want %s (no temporary file, nothing stale)", names, want)
	}
}

func TestSplitExactMultipleHasNoEmptyVolume(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a")
	vols := split(t, path, archiveBytes(6000, 2), 3000)
	if len(vols) != 2 {
		t.Fatalf("%d volumes, want 2", len(vols))
	}
	if _, err := os.Stat(Name(path, 3)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a third volume exists: %v", err)
	}
}

func TestAbortLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	w, err := Create(filepath.Join(dir, "a"), 100)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(archiveBytes(350, 3))
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Fatalf("abort left %v", left)
	}
	if _, err := w.Write([]byte("x")); err == nil {
		t.Fatal("Write after Abort succeeded")
	}
}

func TestTooManyVolumesFails(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a")
	w, err := Create(path, 10)
	if err != nil {
		t.Fatal(err)
	}
	// One byte more than 99 volumes of 10 bytes hold: a 100th volume,
	// a.100, which cat a.0* would leave out. The Writer goes on counting
	// so that it names the size needed: ceil(991/99) = 11.
	data := archiveBytes(MaxVolumes*10+1, 5)
	for p := data; len(p) > 0; p = p[min(len(p), 7):] {
		if _, err := w.Write(p[:min(len(p), 7)]); err != nil {
			t.Fatalf("Write: %v", err)
		}
	}
	_, _, err = w.Commit()
	if err == nil || !strings.Contains(err.Error(), "a split size of at least 11 bytes") || !strings.Contains(err.Error(), "more than 99 volumes") {
		t.Fatalf("writing 991 bytes as volumes of 10: %v, want a refusal naming a split size of at least 11 bytes", err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Fatalf("failed split left %d files", len(left))
	}
	// The size it names is enough.
	if vols := split(t, path, data, 11); len(vols) != 91 {
		t.Fatalf("991 bytes as volumes of 11: %d volumes, want 91", len(vols))
	}
}

func TestTooManyVolumesRemovesTheVolumesAtOnce(t *testing.T) {
	dir := t.TempDir()
	w, err := Create(filepath.Join(dir, "a"), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	if _, err := w.Write(make([]byte, MaxVolumes+1)); err != nil {
		t.Fatal(err)
	}
	// The export goes on to its end, only to be refused: the volumes
	// written so far hold no disk meanwhile.
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Fatalf("%d files left once the volumes overflowed", len(left))
	}
}

func TestMostVolumesJoinWithTheDocumentedGlob(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "release.tar.zst")
	data := archiveBytes(MaxVolumes*10, 6)
	if vols := split(t, path, data, 10); len(vols) != MaxVolumes {
		t.Fatalf("%d volumes, want %d", len(vols), MaxVolumes)
	}
	// cat release.tar.zst.0*: the shell sorts the names the glob matches.
	names, err := filepath.Glob(path + ".0*")
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(names)
	var joined []byte
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		joined = append(joined, b...)
	}
	if !bytes.Equal(joined, data) {
		t.Fatalf("cat %s.0* (%d files, %d bytes) is not the archive (%d bytes)", path, len(names), len(joined), len(data))
	}
}

func TestCommitFailureRenamesNothing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a")
	w, err := Create(path, 100)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(archiveBytes(250, 4))
	// The third volume's final name is taken by a directory, which Put
	// refuses to replace before it renames anything (put_test.go fails
	// renames part way).
	if err := os.Mkdir(Name(path, 3), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, _, err := w.Commit(); err == nil {
		t.Fatal("Commit succeeded")
	}
	left, _ := os.ReadDir(dir)
	if len(left) != 1 || left[0].Name() != "a.003" {
		var names []string
		for _, e := range left {
			names = append(names, e.Name())
		}
		t.Fatalf("after a failed commit the directory holds %v, want only the directory a.003", names)
	}
}

func TestCreateFailsEarlyOnAMissingDirectory(t *testing.T) {
	_, err := Create(filepath.Join(t.TempDir(), "nope", "a"), 10)
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("Create in a missing directory: %v", err)
	}
}

func TestSetReadsTheJoinedArchive(t *testing.T) {
	path := filepath.Join(t.TempDir(), "release.tar.zst")
	data := archiveBytes(10_000, 5)
	split(t, path, data, 3000)
	for _, name := range []string{path, Name(path, 1), Name(path, 3)} {
		s, err := Open(name)
		if err != nil {
			t.Fatalf("Open(%s): %v", name, err)
		}
		if s.Size() != int64(len(data)) || s.Len() != 4 || s.Base() != path || s.Sidecar() != path+".sha256" {
			t.Fatalf("Open(%s): size %d, %d volumes, base %s, sidecar %s", name, s.Size(), s.Len(), s.Base(), s.Sidecar())
		}
		// At random, across volume boundaries.
		r := rand.New(rand.NewPCG(7, 8))
		for range 200 {
			off := r.IntN(len(data))
			n := r.IntN(7000)
			p := make([]byte, n)
			m, err := s.ReadAt(p, int64(off))
			wantN := min(n, len(data)-off)
			if m != wantN || !bytes.Equal(p[:m], data[off:off+m]) {
				t.Fatalf("ReadAt(%d bytes at %d) = %d, %v", n, off, m, err)
			}
			if (m < n) != (err == io.EOF) {
				t.Fatalf("ReadAt(%d bytes at %d) = %d, %v: EOF only at the end", n, off, m, err)
			}
		}
		// Front to back.
		got, err := io.ReadAll(s)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("ReadAll: %d bytes, %v", len(got), err)
		}
		for i, v := range s.Volumes() {
			b, _ := os.ReadFile(Name(path, i+1))
			if v.SHA256 != sum(b) || v.Size != int64(len(b)) {
				t.Errorf("volume %d after a full read: %+v", i+1, v)
			}
		}
		if s.Locate(0) != 1 || s.Locate(2999) != 1 || s.Locate(3000) != 2 || s.Locate(9999) != 4 || s.End(2) != 6000 {
			t.Error("Locate/End disagree with the volumes")
		}
		s.Close()
	}
}

// brokenSet splits an archive into 4 volumes of 3000 bytes (the last 1000),
// lets break_ damage them, and returns the error Open, then a full Read,
// give.
func brokenSet(t *testing.T, withSidecar bool, break_ func(path string)) error {
	t.Helper()
	path := filepath.Join(t.TempDir(), "release.tar.zst")
	split(t, path, archiveBytes(10_000, 6), 3000)
	if !withSidecar {
		os.Remove(path + ".sha256")
	}
	break_(path)
	s, err := Open(path)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.CheckSizes(); err != nil {
		return err
	}
	_, err = io.ReadAll(s)
	return err
}

func TestSetNamesTheBrokenVolume(t *testing.T) {
	swap := func(a, b string) {
		tmp := a + ".swap"
		os.Rename(a, tmp)
		os.Rename(b, a)
		os.Rename(tmp, b)
	}
	for _, tc := range []struct {
		name    string
		sidecar bool
		break_  func(path string)
		want    string
	}{
		{"missing", true, func(p string) { os.Remove(Name(p, 3)) }, "volume .003 is missing"},
		{"missing, no checksum file", false, func(p string) { os.Remove(Name(p, 3)) }, "volume .003 is missing"},
		{"missing first", false, func(p string) { os.Remove(Name(p, 1)) }, "volume .001 is missing"},
		{"missing last", true, func(p string) { os.Remove(Name(p, 4)) }, "volume .004 is missing"},
		{"extra", true, func(p string) { os.WriteFile(Name(p, 5), []byte("x"), 0o644) }, "volume .005"},
		{"truncated", true, func(p string) { os.Truncate(Name(p, 2), 2000) }, "volume .002"},
		{"truncated, no checksum file", false, func(p string) { os.Truncate(Name(p, 2), 2000) }, "volume .002"},
		{"truncated last", true, func(p string) { os.Truncate(Name(p, 4), 500) }, "volume .004"},
		{"empty", false, func(p string) { os.Truncate(Name(p, 4), 0) }, "volume .004"},
		{"short one moved to the middle", false, func(p string) { swap(Name(p, 2), Name(p, 4)) }, "volume .002"},
		{"reordered", true, func(p string) { swap(Name(p, 2), Name(p, 3)) }, "volume .002"},
		{"damaged", true, func(p string) {
			b, _ := os.ReadFile(Name(p, 3))
			b[100] ^= 1
			os.WriteFile(Name(p, 3), b, 0o644)
		}, "volume .003"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := brokenSet(t, tc.sidecar, tc.break_)
			t.Log(err)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error naming %q", err, tc.want)
			}
		})
	}
}

func TestCheckSumsNamesTheDamagedVolume(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a")
	split(t, path, archiveBytes(10_000, 11), 3000)
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.CheckSums(); err != nil {
		t.Fatalf("intact volumes: %v", err)
	}
	b, _ := os.ReadFile(Name(path, 3))
	b[5] ^= 1
	os.WriteFile(Name(path, 3), b, 0o644)
	if err := s.CheckSums(); err == nil || !strings.Contains(err.Error(), "volume .003") {
		t.Fatalf("damaged volume 3: %v", err)
	}
}

func TestOpenArchive(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "release.tar.zst")
	if _, err := OpenArchive(context.Background(), path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("no file, no volumes: %v", err)
	}
	data := archiveBytes(5000, 9)
	split(t, path, data, 2000)
	for _, name := range []string{path, Name(path, 2)} {
		rc, err := OpenArchive(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := rc.(*Set); !ok {
			t.Fatalf("OpenArchive(context.Background(), %s) is a %T, want the volumes", name, rc)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(got, data) {
			t.Fatalf("OpenArchive(context.Background(), %s) reads other bytes", name)
		}
	}
	// A file under the archive's own name is what the user names.
	os.WriteFile(path, []byte("unsplit"), 0o644)
	rc, err := OpenArchive(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := rc.(*os.File); !ok {
		t.Fatalf("OpenArchive(context.Background(), %s) with a file there is a %T", path, rc)
	}
	rc.Close()
}

func TestSidecarOfTheUnsplitArchiveIsIgnored(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a")
	split(t, path, archiveBytes(5000, 10), 2000)
	os.WriteFile(path+".sha256", []byte(strings.Repeat("0", 64)+"  a\n"), 0o644)
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Sidecar() != "" {
		t.Fatalf("sidecar %s taken for the volumes' listing", s.Sidecar())
	}
	if _, err := io.ReadAll(s); err != nil {
		t.Fatal(err)
	}
}

func TestReadChecksums(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.sha256")
	a, b := strings.Repeat("ab", 32), strings.Repeat("CD", 32)
	os.WriteFile(path, []byte(a+"  plain.001\n"+b+" *binary.002\n\\"+a+"  new\\nline\\\\x\n\n"), 0o644)
	got, err := ReadChecksums(path)
	if err != nil {
		t.Fatal(err)
	}
	if got["plain.001"] != a || got["binary.002"] != strings.ToLower(b) || got["new\nline\\x"] != a || len(got) != 3 {
		t.Fatalf("ReadChecksums = %v", got)
	}
	// A file given two sums: sha256sum -c would check both lines, so
	// keeping either one would make the answer depend on their order.
	twice := strings.Repeat("00", 32) + "  a\n" + a + "  a\n"
	for _, bad := range []string{"xyz  a\n", a + "a\n", a + "\n", strings.Repeat("zz", 32) + "  a\n", twice} {
		os.WriteFile(path, []byte(bad), 0o644)
		if _, err := ReadChecksums(path); err == nil {
			t.Errorf("ReadChecksums accepted %q", bad)
		}
	}
	// The same line twice (a file concatenated to itself) passes
	// sha256sum -c, and here.
	os.WriteFile(path, []byte(a+"  a\n"+strings.ToUpper(a)+"  a\n"), 0o644)
	if got, err := ReadChecksums(path); err != nil || got["a"] != a {
		t.Errorf("the same sum twice: %v, %v", got, err)
	}
	// sha256sum ./r.tar.zst.0* writes the names with ./, and sha256sum -c
	// finds the same files; the same file named both ways with two sums
	// is refused as any file with two sums is.
	os.WriteFile(path, []byte(a+"  ./r.tar.zst.001\n"+b+" *./r.tar.zst.002\n"), 0o644)
	if got, err := ReadChecksums(path); err != nil || got["r.tar.zst.001"] != a || got["r.tar.zst.002"] != strings.ToLower(b) || len(got) != 2 {
		t.Errorf("names with ./: %v, %v", got, err)
	}
	os.WriteFile(path, []byte(a+"  ./r\n"+b+"  r\n"), 0o644)
	if _, err := ReadChecksums(path); err == nil {
		t.Error("ReadChecksums accepted ./r and r with two sums")
	}
	// sha256sum dir/r.tar.zst.0*, run beside dir, writes the directory
	// into each name. The file is read beside the volumes, so the
	// directory every line names is dropped: import once ignored such a
	// file, which verify refused, and with it the check of the head
	// volumes. Such a file is not an export's (it writes bare names).
	os.WriteFile(path, []byte(a+"  /abs/dir/r.tar.zst.001\n"+b+" */abs/dir/r.tar.zst.002\n"), 0o644)
	if got, stripped, err := readChecksums(path); err != nil || !stripped || got["r.tar.zst.001"] != a || got["r.tar.zst.002"] != strings.ToLower(b) || len(got) != 2 {
		t.Errorf("names in one directory: %v, %v, %v", got, stripped, err)
	}
	// Lines in different directories name other files: kept as written
	// (two files of one name there are no conflict).
	os.WriteFile(path, []byte(a+"  a/r.tar.zst.001\n"+b+"  b/r.tar.zst.001\n"), 0o644)
	if got, stripped, err := readChecksums(path); err != nil || stripped || got["a/r.tar.zst.001"] != a || got["b/r.tar.zst.001"] != strings.ToLower(b) || len(got) != 2 {
		t.Errorf("names in two directories: %v, %v, %v", got, stripped, err)
	}
}

// TestReadChecksumsRefusesAFileOverItsCap: a checksum file was read up to
// its cap and no further, so a line the cap cut in half was read as a
// whole one (here, a name cut short, which names a volume). A file at the
// cap is read; one byte over, it is refused, naming the file and the cap.
func TestReadChecksumsRefusesAFileOverItsCap(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.tar.zst.sha256")
	last := strings.Repeat("ab", 32) + "  r.tar.zst.001"
	// Blank lines (which are skipped) up to the last line, which ends at
	// the cap.
	pad := bytes.Repeat([]byte(" "), maxChecksumFile-len(last))
	for i := 999; i < len(pad); i += 1000 {
		pad[i] = '\n'
	}
	pad[len(pad)-1] = '\n'
	atCap := append(pad, last...)
	if len(atCap) != maxChecksumFile {
		t.Fatalf("built %d bytes, want %d", len(atCap), maxChecksumFile)
	}
	os.WriteFile(path, atCap, 0o644)
	if got, err := ReadChecksums(path); err != nil || len(got) != 1 || got["r.tar.zst.001"] != strings.Repeat("ab", 32) {
		t.Errorf("a file of %d bytes: %v, %v", len(atCap), got, err)
	}
	// The same last line, with more of its name past the cap.
	os.WriteFile(path, append(atCap, "0\n"...), 0o644)
	got, err := ReadChecksums(path)
	if err == nil {
		t.Fatalf("a file over the cap read as %d lines, r.tar.zst.001's %q", len(got), got["r.tar.zst.001"])
	}
	for _, want := range []string{path, fmt.Sprint(maxChecksumFile)} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}
