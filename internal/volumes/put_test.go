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
	var files []*atomicfile.File
	var sums []atomicfile.Checksum
	for i, name := range names {
		f, err := atomicfile.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write([]byte(contents[i])); err != nil {
			t.Fatal(err)
		}
		s := sha256.Sum256([]byte(contents[i]))
		files = append(files, f)
		sums = append(sums, atomicfile.Checksum{Path: name, Sum: s[:]})
	}
	return files, sums
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
		{"volumes with a gap, by fewer volumes", map[string]string{"a.001": "o1", "a.002": "o2", "a.004": "o4", "a.005": "o5", "a.sha256": "old"}, true},
		{"an unsplit archive, by volumes", map[string]string{"a": "old", "a.sha256": "old"}, true},
		{"volumes, by an unsplit archive", map[string]string{"a.001": "o1", "a.002": "o2", "a.003": "o3", "a.sha256": "old"}, false},
		{"a mix a crash may leave, by volumes", map[string]string{"a": "old", "a.001": "o1", "a.sha256": "old"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "a")
			seed(t, dir, tc.earlier)
			// Files that are not the archive's stay.
			seed(t, dir, map[string]string{"a.1000": "keep", "a.tar": "keep", "b.001": "keep"})
			names, contents := []string{path}, []string{"new"}
			if tc.split {
				names, contents = []string{Name(path, 1), Name(path, 2)}, []string{"n1", "n2"}
			}
			files, sums := newFiles(t, names, contents)
			warnings, err := Put(path, files, sums)
			if err != nil || len(warnings) > 0 {
				t.Fatal(err, warnings)
			}
			got := snapshot(t, dir)
			want := map[string]string{"a.1000": "keep", "a.tar": "keep", "b.001": "keep"}
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

// A failure at any step of putting the new archive in place leaves the
// earlier one exactly as it was, and nothing of the new one.
func TestPutFailureLeavesTheEarlierArchive(t *testing.T) {
	fail := errors.New("injected")
	for _, tc := range []struct {
		name string
		ops  func(dir string) fsOps
	}{
		{"moving the second old file aside", func(string) fsOps {
			ops, n := osOps, 0
			ops.rename = func(o, n2 string) error {
				if n++; n == 2 {
					return fail
				}
				return os.Rename(o, n2)
			}
			return ops
		}},
		{"writing the checksum file", func(string) fsOps {
			ops := osOps
			ops.checksums = func(string, []atomicfile.Checksum) error { return fail }
			return ops
		}},
		{"syncing the directory", func(string) fsOps {
			ops, n := osOps, 0
			ops.syncDir = func(dir string) error {
				if n++; n == 1 {
					return fail
				}
				return atomicfile.SyncDir(dir)
			}
			return ops
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "a")
			earlier := map[string]string{"a.001": "o1", "a.002": "o2", "a.003": "o3", "a.sha256": "old sums"}
			seed(t, dir, earlier)
			files, sums := newFiles(t, []string{Name(path, 1), Name(path, 2), Name(path, 3)}, []string{"n1", "n2", "n3"})
			if _, err := put(path, files, sums, tc.ops(dir)); !errors.Is(err, fail) {
				t.Fatalf("put: %v, want the injected failure", err)
			}
			if got := snapshot(t, dir); !maps.Equal(got, earlier) {
				t.Errorf("after a failed put the directory holds %v, want the earlier export %v", got, earlier)
			}
		})
	}
}

func TestPutWarnsOfWhatItCouldNotRemove(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a")
	seed(t, dir, map[string]string{"a": "old", "a.sha256": "old"})
	files, sums := newFiles(t, []string{path}, []string{"new"})
	ops := osOps
	ops.remove = func(name string) error {
		if strings.Contains(name, ".old-") {
			return fail()
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

func fail() error { return errors.New("injected") }

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
				files, sums := newFiles(t, names, contents)
				<-start
				_, err := Put(path, files, sums)
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
