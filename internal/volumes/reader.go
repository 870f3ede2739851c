package volumes

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/ferry-dev/ferry/internal/fifo"
	"github.com/ferry-dev/ferry/internal/hashing"
)

// Set is the volumes of one archive, read as the one file they make: an
// io.ReaderAt with a Size (so archive.OpenFile reads it at random, as it
// reads a file) and an io.Reader (front to back). Open checks what it can
// without reading the volumes; Read checks each volume's sha256 against
// the checksum file as it reaches the volume's end. A Set is safe for
// concurrent ReadAt; Read is not, and neither is Close.
type Set struct {
	base    string
	sidecar string
	vols    []*vol
	size    int64

	// Read's state: the offset, and the hash of the current volume.
	pos  int64
	h    *hashing.Async
	sums []string
	err  error
}

// vol is one volume of a Set.
type vol struct {
	path        string
	start, size int64
	// want is the volume's sha256 in the checksum file, "" when unknown.
	want string
	// The file is opened on first read, once, so that concurrent readers
	// of different volumes never wait for each other.
	once sync.Once
	f    *os.File
	err  error
}

// volumeSuffix matches a path that may name a volume: a dot and exactly
// three digits, as volumes are numbered (.001 to .999). Export writes at
// most MaxVolumes; more, numbered by hand or by another tool, are still
// read. Four digits or more name something else (backup.tar.zst.2024).
var volumeSuffix = regexp.MustCompile(`^(.+)\.([0-9]{3})$`)

// VolumeNumber returns i when file is the name of volume i of the archive
// named name ("release.tar.zst.002" is volume 2 of "release.tar.zst"), and
// false when it names no volume of it.
func VolumeNumber(file, name string) (int, bool) {
	m := volumeSuffix.FindStringSubmatch(file)
	if m == nil || m[1] != name {
		return 0, false
	}
	i, err := strconv.Atoi(m[2])
	if err != nil || i <= 0 {
		return 0, false
	}
	return i, true
}

// wholeArchive reports whether the file at path is an archive of its own
// whatever its name: its own checksum file (path.sha256, as export writes
// it beside an unsplit archive) lists it. app-1.0.100, exported as such,
// is no volume of app-1.0.
func wholeArchive(path string) bool {
	sums, err := ReadChecksums(path + ".sha256")
	if err != nil {
		return false
	}
	_, ok := sums[filepath.Base(path)]
	return ok
}

// setOf returns the archive of which path is a volume, and false when path
// is not read as a volume. A name ending with a volume's suffix is not
// enough (app-1.0.100, a release named after its version, is a file): path
// must be one of a set, whose first volume exists or whose checksum file
// lists path. A first volume that does not exist while volumes after it
// do, or a volume the checksum file lists, is of the set too, so that Open
// names it as missing. A file whose own checksum file (path.sha256, as
// export writes it beside an unsplit archive) lists it is a whole archive,
// whatever its name: nightly.002 exported as such, beside nightly.001.
func setOf(path string) (string, bool) {
	m := volumeSuffix.FindStringSubmatch(path)
	if m == nil || m[2] == "000" {
		return "", false
	}
	if wholeArchive(path) {
		return "", false
	}
	base := m[1]
	listed := func() bool {
		sums, err := ReadChecksums(base + ".sha256")
		_, ok := sums[filepath.Base(path)]
		return err == nil && ok
	}
	fi, err := os.Stat(path)
	switch {
	case err == nil:
		if !fi.Mode().IsRegular() {
			return "", false
		}
		if _, err := os.Stat(Name(base, 1)); err == nil || listed() {
			return base, true
		}
		// A later volume whose set lost its first volume and checksum
		// file usually starts in the middle of a zstd frame: read as a
		// file it would only be "not an archive". Read as a volume, it is
		// named with what is missing. (One that happens to start on a
		// frame is read as a file, and refused as not being an archive.)
		return base, m[2] != "001" && !StartsAnArchive(path)
	case errors.Is(err, fs.ErrNotExist):
		if m[2] != "001" && !listed() {
			return "", false
		}
		_, err := list(base)
		return base, err == nil
	}
	return "", false
}

// StartsAnArchive reports whether the file at path begins as an archive of
// its own does: a zstd frame (or skippable frame), gzip, or a tar header.
// It is true when the file cannot be read, so that the error comes from
// opening it as a file. Only a regular file is read: a FIFO is not waited
// on.
func StartsAnArchive(path string) bool {
	f, err := openRegular(path)
	if err != nil {
		return true
	}
	defer f.Close()
	head := make([]byte, 262)
	n, _ := io.ReadFull(f, head)
	head = head[:n]
	switch {
	case len(head) >= 4 && (string(head[:4]) == "\x28\xb5\x2f\xfd" || head[0]&0xf0 == 0x50 && string(head[1:4]) == "\x2a\x4d\x18"):
		return true
	case len(head) >= 2 && head[0] == 0x1f && head[1] == 0x8b:
		return true
	case len(head) >= 262 && string(head[257:262]) == "ustar":
		return true
	}
	return false
}

// Open opens the volumes of an archive for reading. path is the archive's
// name (release.tar.zst, when only its volumes exist) or the name of any
// of its volumes (release.tar.zst.001; see setOf for when a name ending
// with three digits is read as a volume). It returns an error matching
// fs.ErrNotExist when there are no such volumes.
//
// Before anything is read it checks that the set is whole, naming the
// volume at fault: when path.sha256 lists volumes (as export writes it),
// exactly those volumes are present (one it lists is "missing", one it
// does not is "not listed": an extra volume, from another export);
// otherwise the volumes are numbered from .001 without a gap.
//
// The rest the bytes tell: CheckSizes checks the split size; which volume
// ends the archive, and whether volumes of equal size are in order, the
// caller checks against the archive's own structure (its seek table); and
// Read compares each volume with its sha256.
func Open(path string) (*Set, error) {
	if base, ok := setOf(path); ok {
		return openSet(base)
	}
	return openSet(path)
}

// openSet opens the volumes of the archive base.
func openSet(base string) (*Set, error) {
	present, err := list(base)
	if err != nil {
		return nil, err
	}
	s := &Set{base: base}
	listed, err := s.readSidecar()
	if err != nil {
		return nil, err
	}
	n, err := expect(base, present, listed, s.sidecar)
	if err != nil {
		return nil, fmt.Errorf("volumes of %s: %w", base, err)
	}
	for i := 1; i <= n; i++ {
		fi, err := os.Stat(Name(base, i))
		if err != nil {
			return nil, fmt.Errorf("volumes of %s: volume %s: %w", base, Suffix(i), err)
		}
		if !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("volume %s (%s) is not a regular file", Suffix(i), Name(base, i))
		}
		// Export writes no empty volume, and one adds nothing to the
		// bytes: without a checksum file to list the set, an empty extra
		// volume would pass every other check.
		if fi.Size() == 0 {
			return nil, fmt.Errorf("volumes of %s: volume %s (%s) is empty: truncated, or not of this export", base, Suffix(i), Name(base, i))
		}
		s.vols = append(s.vols, &vol{path: Name(base, i), start: s.size, size: fi.Size(), want: listed[i]})
		s.size += fi.Size()
	}
	return s, nil
}

// list returns the numbers of the volumes of base present in its
// directory. A file that is a whole archive by its own checksum file is
// not one of them.
func list(base string) (map[int]bool, error) {
	dir, name := filepath.Split(base)
	if dir == "" {
		dir = "."
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", base, err)
	}
	present := map[int]bool{}
	for _, e := range entries {
		if i, ok := VolumeNumber(e.Name(), name); ok && !wholeArchive(filepath.Join(dir, e.Name())) {
			present[i] = true
		}
	}
	if len(present) == 0 {
		return nil, fmt.Errorf("open %s: no such file, nor volumes %s: %w", base, filepath.Base(Name(base, 1))+"…", fs.ErrNotExist)
	}
	return present, nil
}

// readSidecar reads base.sha256 and returns the sums it gives volumes of
// base, by number. A checksum file that names no volume (that of an
// unsplit archive) is not the set's, and is ignored here.
func (s *Set) readSidecar() (map[int]string, error) {
	path := s.base + ".sha256"
	sums, err := ReadChecksums(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	listed := map[int]string{}
	name := filepath.Base(s.base)
	for file, sum := range sums {
		if i, ok := VolumeNumber(file, name); ok {
			listed[i] = sum
		}
	}
	if len(listed) == 0 {
		return nil, nil
	}
	s.sidecar = path
	return listed, nil
}

// expect decides how many volumes the set has, or names the one missing
// or extra.
func expect(base string, present map[int]bool, listed map[int]string, sidecar string) (int, error) {
	nums := func(m map[int]bool) []int {
		out := make([]int, 0, len(m))
		for i := range m {
			out = append(out, i)
		}
		sort.Ints(out)
		return out
	}
	if listed != nil {
		l := map[int]bool{}
		for i := range listed {
			l[i] = true
		}
		ln := nums(l)
		n := ln[len(ln)-1]
		for i := 1; i <= n; i++ {
			switch {
			case !l[i]:
				return 0, fmt.Errorf("%s lists volumes up to %s but not volume %s: damaged checksum file", filepath.Base(sidecar), Suffix(n), Suffix(i))
			case !present[i]:
				return 0, fmt.Errorf("volume %s is missing (%s lists volumes %s to %s)", Suffix(i), filepath.Base(sidecar), Suffix(1), Suffix(n))
			}
		}
		for _, i := range nums(present) {
			if !l[i] {
				return 0, fmt.Errorf("volume %s (%s) is not listed in %s, which lists volumes %s to %s: an extra volume, from another export?",
					Suffix(i), Name(base, i), filepath.Base(sidecar), Suffix(1), Suffix(n))
			}
		}
		return n, nil
	}
	pn := nums(present)
	for k, i := range pn {
		if i != k+1 {
			if k == 0 {
				return 0, fmt.Errorf("volume %s is missing (found %s)", Suffix(1), ranges(pn))
			}
			return 0, fmt.Errorf("volume %s is missing (found %s to %s, then %s)", Suffix(k+1), Suffix(1), Suffix(k), Suffix(i))
		}
	}
	return len(pn), nil
}

// ranges says which volumes nums (sorted) are, runs of consecutive
// numbers as one: ".002 to .004, .007".
func ranges(nums []int) string {
	var parts []string
	for i := 0; i < len(nums); {
		j := i
		for j+1 < len(nums) && nums[j+1] == nums[j]+1 {
			j++
		}
		if j == i {
			parts = append(parts, Suffix(nums[i]))
		} else {
			parts = append(parts, Suffix(nums[i])+" to "+Suffix(nums[j]))
		}
		i = j + 1
	}
	return strings.Join(parts, ", ")
}

// CheckSizes checks that every volume but the last has the split size,
// taken as the largest of them, that the last is no larger, and that no
// volume is empty: a volume that breaks the rule was truncated, or the
// volumes are out of order. Open does not call it: the caller decides
// whether the archive's own structure explains the set better (an extra
// volume after a short last one looks like a truncated one).
func (s *Set) CheckSizes() error {
	var split int64
	largest := 0
	for i, v := range s.vols {
		if v.size == 0 {
			return fmt.Errorf("volume %s (%s) is empty", Suffix(i+1), v.path)
		}
		if i < len(s.vols)-1 && v.size > split {
			split, largest = v.size, i
		}
	}
	for i, v := range s.vols[:len(s.vols)-1] {
		if v.size < split {
			return fmt.Errorf("volume %s (%s) has %d bytes, volume %s %d: truncated, or the volumes are out of order (every volume but the last has the split size)",
				Suffix(i+1), v.path, v.size, Suffix(largest+1), split)
		}
	}
	if last := s.vols[len(s.vols)-1]; len(s.vols) > 1 && last.size > split {
		return fmt.Errorf("volume %s (%s), the last, has %d bytes, more than the %d of the others: the volumes are out of order, or from different exports",
			Suffix(len(s.vols)), last.path, last.size, split)
	}
	return nil
}

// Base returns the archive's path without a volume suffix.
func (s *Set) Base() string { return s.base }

// Sidecar returns the checksum file that lists the volumes, "" if none.
func (s *Set) Sidecar() string { return s.sidecar }

// Size returns the length of the archive: the volumes' sizes added up.
func (s *Set) Size() int64 { return s.size }

// Len returns the number of volumes.
func (s *Set) Len() int { return len(s.vols) }

// End returns the offset in the archive at which volume i (from 1) ends.
func (s *Set) End(i int) int64 {
	v := s.vols[i-1]
	return v.start + v.size
}

// Locate returns the volume (from 1) that holds offset off of the archive.
func (s *Set) Locate(off int64) int {
	i := sort.Search(len(s.vols), func(i int) bool { return s.vols[i].start+s.vols[i].size > off })
	return min(i, len(s.vols)-1) + 1
}

// Volumes describes the volumes; their SHA256 is set once Read has read
// them all.
func (s *Set) Volumes() []Volume {
	out := make([]Volume, len(s.vols))
	for i, v := range s.vols {
		out[i] = Volume{Path: v.path, Size: v.size}
		if i < len(s.sums) {
			out[i].SHA256 = s.sums[i]
		}
	}
	return out
}

// file returns volume i's open file. Open found it a regular file; one
// swapped for a FIFO since is refused, not waited on.
func (s *Set) file(i int) (*os.File, error) {
	v := s.vols[i]
	v.once.Do(func() {
		if v.f, v.err = openRegular(v.path); v.err != nil {
			v.err = fmt.Errorf("volume %s: %w", Suffix(i+1), v.err)
		}
	})
	return v.f, v.err
}

// ReadAt implements io.ReaderAt over the joined volumes. A volume that has
// fewer bytes than Open found (shrunk since) is an error naming it.
func (s *Set) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("volumes %s: negative offset %d", s.base, off)
	}
	n := 0
	for len(p) > 0 {
		if off >= s.size {
			return n, io.EOF
		}
		i := s.Locate(off) - 1
		v := s.vols[i]
		f, err := s.file(i)
		if err != nil {
			return n, err
		}
		want := min(int64(len(p)), v.start+v.size-off)
		m, err := f.ReadAt(p[:want], off-v.start)
		n += m
		off += int64(m)
		p = p[m:]
		if int64(m) < want {
			if err == nil || err == io.EOF {
				err = fmt.Errorf("volume %s (%s) is shorter than when it was opened: %w", Suffix(i+1), v.path, io.ErrUnexpectedEOF)
			} else {
				err = fmt.Errorf("volume %s (%s): %w", Suffix(i+1), v.path, err)
			}
			return n, err
		}
	}
	return n, nil
}

// Read implements io.Reader, front to back. At the end of each volume it
// compares the volume's sha256 with the checksum file's, when there is
// one, and fails naming the volume if they differ.
func (s *Set) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if s.pos >= s.size {
		return 0, io.EOF
	}
	i := s.Locate(s.pos) - 1
	v := s.vols[i]
	want := min(int64(len(p)), v.start+v.size-s.pos)
	if s.h == nil {
		s.h = hashing.NewAsync()
	}
	n, err := s.ReadAt(p[:want], s.pos)
	s.h.Write(p[:n])
	s.pos += int64(n)
	if err != nil && err != io.EOF {
		s.err = err
		return n, err
	}
	if s.pos == v.start+v.size {
		sum := s.h.Sum()
		s.sums = append(s.sums, sum)
		if v.want != "" && v.want != sum {
			s.err = s.sumError(i, sum)
			return n, s.err
		}
	}
	return n, nil
}

// CheckSums reads every volume the checksum file lists and compares its
// sha256 with its line, returning an error naming the first that differs
// (nil when all match, or when there is no checksum file). It is how a
// caller that failed on the archive's bytes finds the volume to blame:
// Read compares a volume only at its end, and a reader of the archive may
// stop at the damage, before that.
func (s *Set) CheckSums() error {
	for i := range s.vols {
		if err := s.CheckSum(i + 1); err != nil {
			return err
		}
	}
	return nil
}

// CheckSum reads volume i (from 1) and compares its sha256 with its line
// in the checksum file, returning an error naming it if they differ (nil
// when they match, or when there is no checksum file). A reader at random
// compares so the volumes whose bytes it trusts without a digest of their
// own (an archive's head and seek table) before it uses them.
func (s *Set) CheckSum(i int) error {
	v := s.vols[i-1]
	if v.want == "" {
		return nil
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(s, v.start, v.size)); err != nil {
		return err
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != v.want {
		return s.sumError(i-1, sum)
	}
	return nil
}

// sumError names volume i, whose sha256 is sum and not its line's.
func (s *Set) sumError(i int, sum string) error {
	v := s.vols[i]
	return &SumError{Volume: Suffix(i + 1), Path: v.path, Got: sum, Want: v.want, Sidecar: filepath.Base(s.sidecar)}
}

// SumError is a volume whose sha256 is not the one its checksum file's
// line gives: damaged, out of order, or from another export.
type SumError struct {
	// Volume is its suffix (.002), Path its file, Sidecar the checksum
	// file's name; Got and Want are hex sha256 sums.
	Volume, Path, Got, Want, Sidecar string
}

func (e *SumError) Error() string {
	return fmt.Sprintf("volume %s (%s) has sha256 %s, %s says %s: damaged, out of order, or from another export",
		e.Volume, e.Path, e.Got, e.Sidecar, e.Want)
}

// Close closes the volumes' files. The Set must not be read afterwards.
func (s *Set) Close() error {
	if s.h != nil {
		s.h.Close()
		s.h = nil
	}
	var first error
	for _, v := range s.vols {
		// A volume never opened is closed for good: reading it now fails.
		v.once.Do(func() { v.err = os.ErrClosed })
		if v.f != nil {
			if err := v.f.Close(); err != nil && first == nil {
				first = err
			}
		}
	}
	return first
}

// maxChecksumFile bounds the checksum files ReadChecksums reads: a line is
// about a hundred bytes, and export writes one per volume (at most
// MaxVolumes).
const maxChecksumFile = 16 << 20

// checkRegular refuses f, opened from path, unless it is a regular file.
func checkRegular(f *os.File, path string) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	switch m := fi.Mode(); {
	case m&fs.ModeNamedPipe != 0:
		return fmt.Errorf("%s is a named pipe (FIFO), not a regular file", path)
	case !m.IsRegular():
		return fmt.Errorf("%s is not a regular file (mode %s)", path, m.Type())
	}
	return nil
}

// ReadChecksums reads a checksum file in sha256sum format (text or binary
// mode, GNU's escaped names included) and returns the hex sum of each file
// it names, by name as written, but for a leading "./" (sha256sum ./FILE.0*
// writes one, and sha256sum -c finds the same file) and for a directory
// that every line names (sha256sum dir/FILE.0*, run beside dir): the files
// are read beside the checksum file. A file given two different sums is an
// error, and so is one that is not a regular file (a FIFO is not waited
// on) or is over maxChecksumFile bytes.
func ReadChecksums(path string) (map[string]string, error) {
	sums, _, err := readChecksums(path)
	return sums, err
}

// readChecksums is ReadChecksums, and reports whether the names had a
// directory in common, stripped: such a file was not written by an export
// (which writes bare names), so it proves nothing of what one wrote.
func readChecksums(path string) (sums map[string]string, stripped bool, err error) {
	f, err := openRegular(path)
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	// One byte past the cap tells a file over it from one at it: cut at
	// the cap, its last line would be read as a whole one.
	b, err := io.ReadAll(io.LimitReader(f, maxChecksumFile+1))
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", path, err)
	}
	if len(b) > maxChecksumFile {
		return nil, false, fmt.Errorf("%s is more than %d bytes, the most ferry reads of a checksum file", path, maxChecksumFile)
	}
	type line struct {
		n         int
		name, sum string
	}
	var lines []line
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		text := sc.Text()
		if strings.TrimSpace(text) == "" {
			continue
		}
		escaped := strings.HasPrefix(text, `\`)
		text = strings.TrimPrefix(text, `\`)
		sum, name, ok := strings.Cut(text, " ")
		if !ok || len(sum) != 2*sha256.Size || name == "" || (name[0] != ' ' && name[0] != '*') {
			return nil, false, fmt.Errorf("%s: line %d is not in sha256sum format", path, n)
		}
		if _, err := hex.DecodeString(sum); err != nil {
			return nil, false, fmt.Errorf("%s: line %d is not in sha256sum format", path, n)
		}
		name = name[1:]
		if escaped {
			name = strings.NewReplacer(`\\`, `\`, `\n`, "\n", `\r`, "\r").Replace(name)
		}
		for strings.HasPrefix(name, "./") && len(name) > 2 {
			name = name[2:]
		}
		lines = append(lines, line{n, name, strings.ToLower(sum)})
	}
	if err := sc.Err(); err != nil {
		return nil, false, fmt.Errorf("%s: %w", path, err)
	}
	// One directory on every line: the files beside the checksum file.
	dir := ""
	for i, l := range lines {
		d, _, ok := cutLast(l.name, "/")
		if !ok || (i > 0 && d != dir) {
			dir = ""
			break
		}
		dir = d
	}
	out := map[string]string{}
	for _, l := range lines {
		name := l.name
		if dir != "" {
			name = strings.TrimPrefix(name, dir+"/")
		}
		// sha256sum -c checks every line: a file named twice, one sum
		// wrong, fails there whichever line comes first. Keeping either
		// line would make ferry's answer depend on their order.
		if prev, seen := out[name]; seen && prev != l.sum {
			return nil, false, fmt.Errorf("%s: line %d gives %s another sum than an earlier line (%s): sha256sum -c would fail one of them", path, l.n, name, prev)
		}
		out[name] = l.sum
	}
	return out, dir != "", nil
}

// cutLast slices s around the last sep.
func cutLast(s, sep string) (before, after string, found bool) {
	if i := strings.LastIndex(s, sep); i >= 0 {
		return s[:i], s[i+len(sep):], true
	}
	return s, "", false
}

// OpenArchive opens the archive at path for reading: the file itself, or
// the Set of its volumes when path is a volume of one (FILE.001; setOf
// says when a name ending with three digits is) or when there is no file
// at path but there are volumes of it (FILE.001, …). Both are an
// io.ReaderAt whose size archive.RandomAccess finds. A named pipe (FIFO)
// is opened by fifo.Open: until its writer comes the open waits, and ends
// with ctx.Err() when ctx is done, where the open of a plain open(2) would
// wait for the writer whatever signal came (on Linux; elsewhere it does).
func OpenArchive(ctx context.Context, path string) (io.ReadCloser, error) {
	if base, ok := setOf(path); ok {
		return openSet(base)
	}
	var f *os.File
	var err error
	if fi, serr := os.Stat(path); serr == nil && fi.Mode()&fs.ModeNamedPipe != 0 {
		if f, err = fifo.Open(ctx, path); err != nil && ctx.Err() != nil {
			return nil, fmt.Errorf("open %s: waiting for the named pipe's writer: %w", path, err)
		}
	} else {
		f, err = os.Open(path)
	}
	if err == nil {
		return f, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if _, lerr := list(path); lerr != nil {
		return nil, err
	}
	return openSet(path)
}
