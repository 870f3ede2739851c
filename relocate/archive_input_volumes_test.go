package relocate

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/archive"
	"github.com/ferry-dev/ferry/internal/volumes"
)

// splitInto writes the archive at path as volumes of size bytes beside it
// (no checksum file) and returns how many.
func splitInto(t *testing.T, path string, size int) int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for off := 0; off < len(data); off += size {
		n++
		if err := os.WriteFile(volumes.Name(path, n), data[off:min(off+size, len(data))], 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

// With a small split size the archive's head spans several volumes: two of
// them swapped are not blamed on volume .001 alone.
func TestCheckVolumesNamesTheVolumesTheHeadSpans(t *testing.T) {
	dir := t.TempDir()
	whole := filepath.Join(dir, "whole.tar.zst")
	writeBundleOnlyArchive(t, whole, true)
	for _, tc := range []struct {
		name string
		size int
		a, b int
		want []string
	}{
		// The head in many volumes: .002 and .003 swapped.
		{"head over volumes", 100, 2, 3, []string{"volumes .001 to ", "do not start the archive", "one of them"}},
		// .001 swapped: nothing of the head reads, .001 is named.
		{"first swapped", 100, 1, 2, []string{"volume .001 does not start the archive"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "release.tar.zst")
			b, _ := os.ReadFile(whole)
			os.WriteFile(path, b, 0o644)
			n := splitInto(t, path, tc.size)
			os.Remove(path)
			if n < 5 {
				t.Fatalf("%d volumes: the archive is too small for the test", n)
			}
			va, _ := os.ReadFile(volumes.Name(path, tc.a))
			vb, _ := os.ReadFile(volumes.Name(path, tc.b))
			os.WriteFile(volumes.Name(path, tc.a), vb, 0o644)
			os.WriteFile(volumes.Name(path, tc.b), va, 0o644)
			vs, err := volumes.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer vs.Close()
			err = checkVolumes(vs)
			t.Log(err)
			if err == nil {
				t.Fatal("swapped volumes pass")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q", w)
				}
			}
			// The volumes named reach the second of those swapped.
			if m := regexp.MustCompile(`volumes \.001 to \.(\d{3})`).FindStringSubmatch(err.Error()); m != nil {
				if last, _ := strconv.Atoi(m[1]); last < max(tc.a, tc.b) {
					t.Errorf("the volumes named end at .%s, before volume .%03d", m[1], max(tc.a, tc.b))
				}
			}
		})
	}
}

// With a checksum file, only the volumes holding the head and the trailer
// are hashed before the archive is used: a damaged volume holding nothing
// but blob bytes is not read at open (a re-import of blobs the destination
// has never reads it), while a damaged first volume is refused there.
func TestOpenHashesOnlyTheHeadAndTrailerVolumes(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "release.tar.zst")
	writeManyBundlesArchive(t, path, 1, 1<<20)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := archive.OpenFile(bytes.NewReader(data), int64(len(data)), archive.ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	start, end := f.BlobSpan()
	const size = 64 << 10
	n := splitInto(t, path, size)
	os.Remove(path)
	var sums strings.Builder
	for i := 1; i <= n; i++ {
		b, _ := os.ReadFile(volumes.Name(path, i))
		fmt.Fprintf(&sums, "%x  %s\n", sha256.Sum256(b), filepath.Base(volumes.Name(path, i)))
	}
	if err := os.WriteFile(path+".sha256", []byte(sums.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	// A volume wholly after the one where the blobs start and before the
	// trailer.
	mid := int(start/size) + 2
	if int64(mid)*size > end || mid >= n {
		t.Fatalf("volume .%03d is not blob bytes only (blobs %d to %d, %d volumes)", mid, start, end, n)
	}
	flip := func(i int) (undo func()) {
		p := volumes.Name(path, i)
		b, _ := os.ReadFile(p)
		b[len(b)/2] ^= 0xff
		os.WriteFile(p, b, 0o644)
		return func() { b[len(b)/2] ^= 0xff; os.WriteFile(p, b, 0o644) }
	}

	undo := flip(mid)
	_, c, err := OpenSeekable(context.Background(), path)
	if err != nil {
		t.Fatalf("a damaged blob-only volume .%03d was read at open: %v", mid, err)
	}
	c.Close()
	undo()

	flip(1)
	if _, c, err := OpenSeekable(context.Background(), path); err == nil {
		c.Close()
		t.Fatal("a damaged first volume (the head's) was not refused at open")
	} else if !strings.Contains(err.Error(), "volume .001") {
		t.Errorf("error does not name volume .001: %v", err)
	}
}
