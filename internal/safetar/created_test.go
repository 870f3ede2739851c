package safetar

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Options.Created hears of every file and directory Extract creates, in
// order, and of nothing it found there: what a caller undoes, in reverse,
// when the extraction fails.
func TestExtractReportsWhatItCreates(t *testing.T) {
	_, out := workspace(t)
	must(t, os.Mkdir(filepath.Join(out, "there"), 0o755))
	var created []string
	err := Extract(context.Background(), bytes.NewReader(buildTar(t,
		file("a.txt", "a"),
		dir("there"),
		file("there/b.txt", "b"),
		file("new/deep/c.txt", "c"),
		dir("empty"),
	)), out, Options{Created: func(rel string) { created = append(created, rel) }})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"a.txt", "there/b.txt", "new", "new/deep", "new/deep/c.txt", "empty"}
	if !slices.Equal(created, want) {
		t.Errorf("Created heard %v, want %v", created, want)
	}
}

// A name already taken when its file is written is said to be one of two
// things: an entry the layer holds twice, or a file that something other
// than this extraction put in the output directory; it used to call both
// a duplicate entry.
func TestExtractTellsADuplicateFromAFileAlreadyThere(t *testing.T) {
	_, out := workspace(t)
	err := Extract(context.Background(), bytes.NewReader(buildTar(t, file("a.txt", "1"), file("a.txt", "2"))), out, Options{})
	if err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("a layer holding a.txt twice: %v, want an error saying it is there twice", err)
	}

	_, out = workspace(t)
	must(t, os.WriteFile(filepath.Join(out, "a.txt"), []byte("theirs"), 0o644))
	err = Extract(context.Background(), bytes.NewReader(buildTar(t, file("a.txt", "1"))), out, Options{})
	if err == nil || strings.Contains(err.Error(), "duplicate") || !strings.Contains(err.Error(), "not written by this extraction") {
		t.Errorf("a.txt already in the directory: %v, want an error saying something else put it there", err)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "a.txt")); string(b) != "theirs" {
		t.Errorf("a.txt holds %q, want it untouched", b)
	}
}
