package volumes

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ferry-dev/ferry/internal/atomicfile"
)

// snapshot is a directory's files and their contents.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = string(b)
	}
	return out
}

// newFiles writes each content to a temporary file for the name beside
// it, and returns the files and their checksum lines.
func newFiles(t *testing.T, names, contents []string) ([]*atomicfile.File, []atomicfile.Checksum) {
	t.Helper()
	files, sums, err := createFiles(names, contents)
	if err != nil {
		t.Fatal(err)
	}
	return files, sums
}

// createFiles is newFiles for a goroutine other than the test's, which
// must not call t.Fatal.
func createFiles(names, contents []string) ([]*atomicfile.File, []atomicfile.Checksum, error) {
	var files []*atomicfile.File
	var sums []atomicfile.Checksum
	for i, name := range names {
		f, err := atomicfile.Create(name)
		if err != nil {
			return nil, nil, err
		}
		files = append(files, f)
		if _, err := f.Write([]byte(contents[i])); err != nil {
			return nil, nil, err
		}
		s := sha256.Sum256([]byte(contents[i]))
		sums = append(sums, atomicfile.Checksum{Path: name, Sum: s[:]})
	}
	return files, sums, nil
}

// seed writes files directly, as an earlier export left them.
func seed(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestPutReplacesAllAnEarlierExportLeft(t *testing.T) {
	for _, tc := range []struct {
		name    string
		earlier map[string]string
		split   bool
	}{
		{"volumes with a gap, by fewer volumes", map[string]string{"a.001": "o1", "a.002": "o2", "a.004": "o4", "a.099": "o99", "a.sha256": sumLine("a.001", "o1") + sumLine("a.002", "o2") + sumLine("a.004", "o4") + sumLine("a.099", "o99")}, true},
		{"an unsplit archive, by volumes", map[string]string{"a": "old", "a.sha256": "old"}, true},
		{"volumes, by an unsplit archive", map[string]string{"a.001": "o1", "a.002": "o2", "a.003": "o3", "a.sha256": sumLine("a.001", "o1") + sumLine("a.002", "o2") + sumLine("a.003", "o3")}, false},
		// The old checksum file goes aside first: a crash after it
		// leaves it hidden, and what it lists is still the export's.
		{"a mix a crash may leave, by volumes", map[string]string{"a.001": "o1", ".a.sha256.old-0123456789ab": sumLine("a.001", "o1"), ".a.old-0123456789ab": "old", ".a.001.old-0123456789ab": "o1"}, true},
	} {
		for _, noLinks := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s, no hard links %v", tc.name, noLinks), func(t *testing.T) {
				dir := t.TempDir()
				path := filepath.Join(dir, "a")
				seed(t, dir, tc.earlier)
				// Files that are not the archive's stay.
				keep := map[string]string{"a.01": "keep", "a.tar": "keep", "b.001": "keep", ".a.old-0123456789": "keep", ".b.001.old-0123456789ab": "keep", "a.1000": "keep", "a.2024": "keep"}
				seed(t, dir, keep)
				names, contents := []string{path}, []string{"new"}
				if tc.split {
					names, contents = []string{Name(path, 1), Name(path, 2)}, []string{"n1", "n2"}
				}
				files, sums := newFiles(t, names, contents)
				ops := osOps
				// Where a new file takes an old one's name, the name
				// holds the old file until the new one replaces it; but
				// no old checksum file is left beside new files.
				ops.renameIn = func(f *atomicfile.File) error {
					_, err := os.Stat(f.Path())
					_, was := tc.earlier[filepath.Base(f.Path())]
					switch {
					case strings.HasSuffix(f.Path(), ".sha256") && err == nil:
						t.Errorf("the old %s is still there when the new one is renamed in", f.Path())
					case strings.HasSuffix(f.Path(), ".sha256"), !was, noLinks:
					case err != nil:
						t.Errorf("%s went missing before the new one replaced it: %v", f.Path(), err)
					}
					return f.Rename()
				}
				if noLinks {
					ops.link = func(string, string) error { return errors.ErrUnsupported }
				}
				warnings, err := put(path, files, sums, ops)
				if err != nil {
					t.Fatal(err)
				}
				// One warning for each file a crash left set aside.
				aside := 0
				for name := range tc.earlier {
					if strings.Contains(name, ".old-") {
						aside++
					}
				}
				if len(warnings) != aside {
					t.Errorf("warnings %v, want %d", warnings, aside)
				}
				got := snapshot(t, dir)
				want := maps.Clone(keep)
				var side strings.Builder
				for i, name := range names {
					want[filepath.Base(name)] = contents[i]
					fmt.Fprintf(&side, "%x  %s\n", sha256.Sum256([]byte(contents[i])), filepath.Base(name))
				}
				want["a.sha256"] = side.String()
				if !maps.Equal(got, want) {
					t.Errorf("directory holds %v, want %v", got, want)
				}
			})
		}
	}
}

// A failure at any step of putting the new archive in place leaves the
// earlier one exactly as it was, and nothing of the new one: whether the
// new files take the old ones' names or not.
func TestPutFailureLeavesTheEarlierArchive(t *testing.T) {
	failing := func(n int, do func() error) func() error {
		calls := 0
		return func() error {
			if calls++; calls == n {
				return errInjected
			}
			return do()
		}
	}
	for _, tc := range []struct {
		name string
		ops  func() fsOps
	}{
		{"setting an old file aside", func() fsOps {
			ops := osOps
			ops.link = func(string, string) error { return errors.ErrUnsupported }
			var o, n string
			f := failing(2, func() error { return os.Rename(o, n) })
			ops.rename = func(o2, n2 string) error { o, n = o2, n2; return f() }
			return ops
		}},
		{"renaming in the second new file", func() fsOps {
			ops := osOps
			var file *atomicfile.File
			f := failing(2, func() error { return file.Rename() })
			ops.renameIn = func(fl *atomicfile.File) error { file = fl; return f() }
			return ops
		}},
		{"renaming in the checksum file", func() fsOps {
			ops := osOps
			ops.renameIn = func(fl *atomicfile.File) error {
				if strings.HasSuffix(fl.Path(), ".sha256") {
					return errInjected
				}
				return fl.Rename()
			}
			return ops
		}},
		{"syncing the directory", func() fsOps {
			ops := osOps
			f := failing(1, func() error { return nil })
			ops.syncDir = func(string) error { return f() }
			return ops
		}},
	} {
		for _, sc := range []struct {
			name    string
			earlier map[string]string
			names   []string
		}{
			{"unsplit, by 3 volumes", map[string]string{"a": "old", "a.sha256": "old sums"}, []string{"a.001", "a.002", "a.003"}},
			{"4 volumes, by 2", map[string]string{"a.001": "o1", "a.002": "o2", "a.003": "o3", "a.004": "o4", "a.sha256": sumLine("a.001", "o1") + sumLine("a.002", "o2") + sumLine("a.003", "o3") + sumLine("a.004", "o4")}, []string{"a.001", "a.002"}},
			{"unsplit, by unsplit", map[string]string{"a": "old", "a.sha256": "old sums"}, []string{"a"}},
		} {
			forSpellings(t, tc.name+", "+sc.name, func(t *testing.T, dir, path string) {
				seed(t, dir, sc.earlier)
				var names, contents []string
				for _, n := range sc.names {
					names, contents = append(names, path+strings.TrimPrefix(n, "a")), append(contents, "new "+n)
				}
				files, sums := newFiles(t, names, contents)
				if _, err := put(path, files, sums, tc.ops()); !errors.Is(err, errInjected) {
					t.Fatalf("put: %v, want the injected failure", err)
				}
				if got := snapshot(t, dir); !maps.Equal(got, sc.earlier) {
					t.Errorf("after a failed put the directory holds %v, want the earlier export %v", got, sc.earlier)
				}
			})
		}
	}
}

var errInjected = errors.New("injected")

func TestPutWarnsOfWhatItCouldNotRemove(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a")
	seed(t, dir, map[string]string{"a": "old", "a.sha256": "old"})
	files, sums := newFiles(t, []string{path}, []string{"new"})
	ops := osOps
	ops.remove = func(name string) error {
		if strings.Contains(name, ".old-") {
			return errInjected
		}
		return os.Remove(name)
	}
	warnings, err := put(path, files, sums, ops)
	if err != nil || len(warnings) != 2 {
		t.Fatalf("put: %v, warnings %v; want two", err, warnings)
	}
	if b, _ := os.ReadFile(path); string(b) != "new" {
		t.Errorf("%s holds %q", path, b)
	}
}

// sumLine is a checksum file's line for name holding content.
func sumLine(name, content string) string {
	return fmt.Sprintf("%x  %s\n", sha256.Sum256([]byte(content)), name)
}

// Only what an export of the name wrote is replaced: the volumes its
// checksum file lists. Archives of their own named like volumes (a
// release numbered app-1.0.099, with its own checksum file) and files
// no export of the name wrote stay, named in a warning: beside new
// volumes readers refuse them as extra volumes, and beside an unsplit
// archive a reader given one (or cat) reads it.
func TestPutKeepsWhatNoExportOfItWrote(t *testing.T) {
	for _, split := range []bool{false, true} {
		t.Run(fmt.Sprintf("split %v", split), func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "a")
			earlier := map[string]string{"a.001": "o1", "a.002": "o2", "a.003": "o3",
				"a.sha256": sumLine("a.001", "o1") + sumLine("a.002", "o2") + sumLine("a.003", "o3")}
			seed(t, dir, earlier)
			keep := map[string]string{
				"a.099": "release 99", "a.099.sha256": sumLine("a.099", "release 99"),
				"a.005":  "not an export's",
				"a.2024": "a backup",
			}
			seed(t, dir, keep)
			names, contents := []string{path}, []string{"new"}
			if split {
				names, contents = []string{Name(path, 1), Name(path, 2)}, []string{"n1", "n2"}
			}
			files, sums := newFiles(t, names, contents)
			warnings, err := put(path, files, sums, osOps)
			if err != nil {
				t.Fatal(err)
			}
			want := maps.Clone(keep)
			var side strings.Builder
			for i, name := range names {
				want[filepath.Base(name)] = contents[i]
				side.WriteString(sumLine(filepath.Base(name), contents[i]))
			}
			want["a.sha256"] = side.String()
			if got := snapshot(t, dir); !maps.Equal(got, want) {
				t.Errorf("directory holds %v, want %v", got, want)
			}
			// Named either way: beside new volumes readers refuse it;
			// beside an unsplit archive, a reader given it reads it.
			why := "would read it"
			if split {
				why = "extra volume"
			}
			if len(warnings) != 1 || !strings.Contains(warnings[0].Error(), "a.005 in place") || !strings.Contains(warnings[0].Error(), why) {
				t.Errorf("warnings %v; want one naming a.005, saying %q", warnings, why)
			}
		})
	}
}

// A file no export can be shown to have written, whose name a new volume
// takes (it appeared after CheckNames, while the export ran), fails the
// Put, named: it was once replaced without a word. The directory is left
// as it was, whatever the spelling of the path.
func TestPutRefusesToReplaceAStray(t *testing.T) {
	earlier := map[string]string{"a": "old", "a.sha256": sumLine("a", "old"), "a.002": "not an export's"}
	forSpellings(t, "refused", func(t *testing.T, dir, path string) {
		seed(t, dir, earlier)
		files, sums := newFiles(t, []string{Name(path, 1), Name(path, 2)}, []string{"n1", "n2"})
		_, err := put(path, files, sums, osOps)
		if err == nil || !strings.Contains(err.Error(), "a.002 is named like a volume of a") || !strings.Contains(err.Error(), "remove or move it") {
			t.Fatalf("put: %v, want a refusal naming a.002", err)
		}
		if got := snapshot(t, dir); !maps.Equal(got, earlier) {
			t.Errorf("after a refused put the directory holds %v, want %v", got, earlier)
		}
	})
}

// forSpellings runs test, in a fresh directory, for each way a user may
// spell the path of the archive "a" in it: as filepath.Join cleans it, with
// "./" or "//" inside (a script's "$DIR/./a", "$DIR/" + "/a"), and relative
// to the working directory ("./a", as in -o ./a).
func forSpellings(t *testing.T, name string, test func(t *testing.T, dir, path string)) {
	for _, sp := range []struct {
		name string
		path func(dir string) string
	}{
		{"clean", func(dir string) string { return filepath.Join(dir, "a") }},
		{"dot", func(dir string) string { return dir + "/./a" }},
		{"double slash", func(dir string) string { return dir + "//a" }},
		{"relative", func(string) string { return "./a" }},
	} {
		t.Run(name+", "+sp.name, func(t *testing.T) {
			dir := t.TempDir()
			if sp.name == "relative" {
				t.Chdir(dir)
			}
			test(t, dir, sp.path(dir))
		})
	}
}

// An unsplit archive replaced by another is replaced atomically for its
// readers: the old one is set aside by a hard link, so that its name
// never goes missing, whatever the spelling of the path.
func TestPutReplacesAnUnsplitArchiveWithoutItsNameGoingMissing(t *testing.T) {
	forSpellings(t, "replace", func(t *testing.T, dir, path string) {
		seed(t, dir, map[string]string{"a": "old", "a.sha256": sumLine("a", "old")})
		files, sums := newFiles(t, []string{path}, []string{"new"})
		ops := osOps
		var away []string
		ops.rename = func(o, n string) error {
			if filepath.Base(o) == "a" {
				away = append(away, o) // the name is empty until the new file comes in
			}
			return os.Rename(o, n)
		}
		if _, err := put(path, files, sums, ops); err != nil {
			t.Fatal(err)
		}
		if len(away) > 0 {
			t.Errorf("the old archive was renamed away (%v), leaving its name empty while the new one was renamed in", away)
		}
		if b, err := os.ReadFile(filepath.Join(dir, "a")); string(b) != "new" {
			t.Errorf("a holds %q, %v; want the new archive", b, err)
		}
	})
}

// Writers that put archives, split or not, under one name at once must
// leave one of them whole, its checksum file agreeing, and nothing else.
func TestPutRacing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out")
	const writers, rounds = 6, 60
	for round := range rounds {
		var wg sync.WaitGroup
		start := make(chan struct{})
		errs := make(chan error, writers)
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Even writers split into w volumes, odd ones do not.
				names := []string{path}
				if w%2 == 0 {
					names = nil
					for i := range w/2 + 1 {
						names = append(names, Name(path, i+1))
					}
				}
				contents := make([]string, len(names))
				for i := range names {
					contents[i] = fmt.Sprintf("round %d writer %d part %d", round, w, i)
				}
				files, sums, err := createFiles(names, contents)
				<-start
				if err != nil {
					errs <- fmt.Errorf("writer %d: %w", w, err)
					return
				}
				_, err = Put(path, files, sums)
				errs <- err
			}()
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		got := snapshot(t, dir)
		sums, err := ReadChecksums(path + ".sha256")
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if len(got) != len(sums)+1 {
			t.Fatalf("round %d: the directory holds %v, the checksum file lists %v", round, slices.Sorted(maps.Keys(got)), sums)
		}
		writer := ""
		for name, sum := range sums {
			content, ok := got[name]
			if !ok || fmt.Sprintf("%x", sha256.Sum256([]byte(content))) != sum {
				t.Fatalf("round %d: %s listed with %s, holds %q", round, name, sum, content)
			}
			w := content[:strings.Index(content, " part")]
			if writer != "" && w != writer {
				t.Fatalf("round %d: files of two writers in place: %q and %q", round, writer, w)
			}
			writer = w
		}
	}
}

// A split export over files named like volumes that no earlier export of
// the name wrote is refused before anything is written, naming them all;
// none is removed. An unsplit export is not: its archive is read as the
// file it is, whatever lies beside it.
func TestCheckNamesRefusesStrayVolumesOfASplitExport(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a")
	files := map[string]string{"a.001": "o1", "a.002": "o2", "a.sha256": sumLine("a.001", "o1") + sumLine("a.002", "o2"),
		"a.005": "x5", "a.007": "x7",
		"a.099": "release 99", "a.099.sha256": sumLine("a.099", "release 99"), "a.2024": "a backup"}
	seed(t, dir, files)
	err := CheckNames(path, true)
	if err == nil || !strings.Contains(err.Error(), "a.005, a.007:") || strings.Contains(err.Error(), "a.099") || strings.Contains(err.Error(), "a.2024") {
		t.Errorf("CheckNames(split) = %v; want a refusal naming a.005 and a.007 only", err)
	}
	if err := CheckNames(path, false); err != nil {
		t.Errorf("CheckNames(unsplit) = %v", err)
	}
	if got := snapshot(t, dir); !maps.Equal(got, files) {
		t.Errorf("CheckNames changed the directory: %v", got)
	}
	// Without a checksum file, nothing says an export wrote any of them:
	// all are named (a user's notes.tar.zst.007 was once deleted so).
	os.Remove(filepath.Join(dir, "a.sha256"))
	os.WriteFile(filepath.Join(dir, "a.100"), []byte("x"), 0o644)
	if err := CheckNames(path, true); err == nil || !strings.Contains(err.Error(), "a.001, a.002, a.005, a.007, a.100: named like volumes of a, but there is no a.sha256") {
		t.Errorf("CheckNames(split), no checksum file = %v; want a refusal naming a.001 to a.100", err)
	}
}

// TestPutKeepsVolumeNamesNoChecksumFileLists: without a checksum file (lost,
// or not in sha256sum format), files named like volumes may be anyone's.
// An unsplit export leaves them all, each named in a warning; a split one
// over one of them is refused (CheckNames refused it up front, so only a
// file that appeared since is concerned), a directory there too.
func TestPutKeepsVolumeNamesNoChecksumFileLists(t *testing.T) {
	for _, checksum := range []string{"", "not sha256sum lines"} {
		dir := t.TempDir()
		path := filepath.Join(dir, "r.tar.zst")
		mine := map[string]string{"r.tar.zst.001": "mine 1", "r.tar.zst.007": "my notes", "r.tar.zst.042": "mine 42"}
		if checksum != "" {
			mine["r.tar.zst.sha256"] = checksum
		}
		seed(t, dir, mine)
		files, sums := newFiles(t, []string{path}, []string{"new"})
		warnings, err := Put(path, files, sums)
		if err != nil {
			t.Fatal(err)
		}
		// Each is named: a reader given it, or cat, would read it.
		if len(warnings) != 3 || !strings.Contains(fmt.Sprint(warnings), "r.tar.zst.007 in place") {
			t.Errorf("checksum file %q: warnings %v, want one naming each of the 3 files left", checksum, warnings)
		}
		got := snapshot(t, dir)
		for name, content := range mine {
			if name != "r.tar.zst.sha256" && got[name] != content {
				t.Errorf("checksum file %q: an unsplit export left %s as %q, want %q", checksum, name, got[name], content)
			}
		}
		if got["r.tar.zst"] != "new" {
			t.Errorf("checksum file %q: the archive is %q", checksum, got["r.tar.zst"])
		}
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "r.tar.zst")
	files, sums := newFiles(t, []string{Name(path, 1), Name(path, 2)}, []string{"n1", "n2"})
	// Made after the files were created, which refuses it up front.
	if err := os.Mkdir(Name(path, 2), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Put(path, files, sums); err == nil || !strings.Contains(err.Error(), "r.tar.zst.002 is a directory") {
		t.Errorf("Put over a directory named like the second volume = %v, want a refusal naming it", err)
	}
	if fi, err := os.Stat(Name(path, 2)); err != nil || !fi.IsDir() {
		t.Errorf("the directory r.tar.zst.002 is gone: %v", err)
	}
	if _, err := os.Stat(Name(path, 1)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed Put left r.tar.zst.001: %v", err)
	}
}

// A copy a crashed Put set aside of an archive of its own named like a
// volume (app-1.0.099, with its own checksum file, beside app-1.0) is that
// archive's way back, not a leftover of an export to app-1.0: it stays.
func TestPutKeepsTheSetAsideCopyOfAnotherArchive(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app-1.0")
	other := map[string]string{
		"app-1.0.099.sha256":            sumLine("app-1.0.099", "release 99"),
		".app-1.0.099.old-0123456789ab": "release 99",
	}
	seed(t, dir, other)
	files, sums := newFiles(t, []string{path}, []string{"new"})
	warnings, err := Put(path, files, sums)
	if err != nil || len(warnings) != 0 {
		t.Fatalf("Put: %v, warnings %v", err, warnings)
	}
	got := snapshot(t, dir)
	for name, content := range other {
		if got[name] != content {
			t.Errorf("%s holds %q, want %q", name, got[name], content)
		}
	}
}
