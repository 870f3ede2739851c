package lock_test

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/lock"
)

// realLock is an images.yml as imgpkg and kbld write it, of about size
// bytes: the plain case hostile documents are compared with.
func realLock(size int) []byte {
	var b strings.Builder
	b.WriteString("---\napiVersion: imgpkg.carvel.dev/v1alpha1\nimages:\n")
	for i := 0; b.Len() < size-200; i++ {
		fmt.Fprintf(&b, "- annotations:\n    kbld.carvel.dev/id: registry.example.com/team/app-%d:v1.2.3\n  image: registry.example.com/team/app-%d@sha256:%064x\n", i, i, i)
	}
	b.WriteString("kind: ImagesLock\n")
	return []byte(b.String())
}

// parseCost parses data and returns what it allocated and how long it took.
func parseCost(data []byte) (alloc uint64, took time.Duration, err error) {
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	_, err = lock.ParseImagesLock(data, "images.yml")
	took = time.Since(start)
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc, took, err
}

// TestParseCostIsBounded (issue 13, item 3): documents shaped to make the
// YAML parser work hard cost no more to refuse than a real lock of the
// same size costs to parse. Each was once far worse: a flow sequence of
// one-letter scalars allocated 250 times its size, repeated keys made
// yaml.v3 write an error for every pair (8 KiB took seconds, 64 KiB never
// finished), a mapping of many keys compared each with every other, and
// aliases multiplied what was decoded. Bounded by comparison, not by the
// clock.
func TestParseCostIsBounded(t *testing.T) {
	hdr := "apiVersion: imgpkg.carvel.dev/v1alpha1\nkind: ImagesLock\n"
	img := "nginx@sha256:" + hexA
	var annotations strings.Builder
	for i := range 500 {
		fmt.Fprintf(&annotations, "k%d: v, ", i)
	}
	var keys strings.Builder
	for i := range 50_000 {
		fmt.Fprintf(&keys, "annotation-key-%06d: annotation-value, ", i)
	}
	for _, tc := range []struct {
		name string
		doc  string
		want string
	}{
		{"flow sequence of one-letter scalars", hdr + "images: [" + strings.Repeat("a,", 512<<10) + "a]\n", "YAML tokens"},
		{"one annotation key repeated", hdr + "images:\n- image: " + img + "\n  annotations: {" + strings.Repeat("kbld.carvel.dev/id: registry.example.com/app, ", 900) + "}\n", `mapping key "kbld.carvel.dev/id" already defined`},
		{"a mapping of 50,000 keys", hdr + "images:\n- image: " + img + "\n  annotations: {" + keys.String() + "}\n", "a mapping of 50000 keys"},
		{"aliases to an image of 500 annotations", hdr + "images:\n- &r {image: " + img + ", annotations: {" + annotations.String() + "}}\n" + strings.Repeat("- *r                            \n", 3000), "aliases expand the document"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plainAlloc, plainTook, err := parseCost(realLock(len(tc.doc)))
			if err != nil {
				t.Fatal(err)
			}
			alloc, took, err := parseCost([]byte(tc.doc))
			t.Logf("%d bytes: %d bytes allocated in %v; a real lock of that size %d in %v", len(tc.doc), alloc, took, plainAlloc, plainTook)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one saying %q", err, tc.want)
			}
			if alloc > 2*plainAlloc+1<<20 {
				t.Errorf("allocated %d bytes, more than twice the %d of a real lock of the same size", alloc, plainAlloc)
			}
			if took > 5*plainTook+100*time.Millisecond {
				t.Errorf("took %v, more than five times the %v of a real lock of the same size", took, plainTook)
			}
		})
	}
}

// TestDocumentSizeCap: one cap for every lock document, however it is
// read. A document of MaxDocumentSize bytes parses; one byte more is
// refused, naming the size, before it is parsed (or, from a file, read).
func TestDocumentSizeCap(t *testing.T) {
	doc := func(size int) []byte {
		head := hdr + "kind: ImagesLock\nimages:\n- image: nginx@sha256:" + hexA + "\n# "
		return []byte(head + strings.Repeat("x", size-len(head)-1) + "\n")
	}
	at, over := doc(lock.MaxDocumentSize), doc(lock.MaxDocumentSize+1)
	if _, err := lock.ParseImagesLock(at, "at.yml"); err != nil {
		t.Errorf("a document of exactly %d bytes: %v", lock.MaxDocumentSize, err)
	}
	_, err := lock.ParseImagesLock(over, "over.yml")
	wantParseError(t, err, "over.yml", 0, fmt.Sprintf("%d bytes, more than the %d", lock.MaxDocumentSize+1, lock.MaxDocumentSize))

	path := filepath.Join(t.TempDir(), "images.yml")
	if err := os.WriteFile(path, over, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = lock.ReadImagesLock(path)
	wantParseError(t, err, path, 0, fmt.Sprintf("more than the %d bytes", lock.MaxDocumentSize))
	if _, err := lock.ReadDocument(path); err == nil {
		t.Error("ReadDocument read a file over the cap")
	}
	if k := lock.DocumentKind(over); k != "" {
		t.Errorf("DocumentKind of a document over the cap = %q, want \"\"", k)
	}
	if k := lock.DocumentKind(at); k != lock.KindImagesLock {
		t.Errorf("DocumentKind = %q, want %s", k, lock.KindImagesLock)
	}
}

// TestHostileShapesAreNamed: what checkTree refuses is reported like any
// other ParseError, with the line where it applies.
func TestHostileShapesAreNamed(t *testing.T) {
	img := "nginx@sha256:" + hexA
	for _, tc := range []struct {
		name string
		doc  string
		line int
		msg  string
	}{
		{"alias inside its anchor", hdr + "kind: ImagesLock\nimages: &a [*a]\n", 3, "alias *a refers to the node that contains it"},
		{"repeated annotation", hdr + "kind: ImagesLock\nimages:\n- image: " + img + "\n  annotations:\n    a: b\n    a: c\n", 7, `mapping key "a" already defined at line 6`},
		// foo is a key of the mapping merged into the second image, not of
		// the one that merges it: only the walk into merges finds it.
		{"unknown field in a merged mapping", hdr + "kind: ImagesLock\nimages:\n- image: " + img + "\n  annotations: &a {foo: bar}\n- <<: *a\n  image: " + img + "\n", 5, `unknown field "foo"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := lock.ParseImagesLock([]byte(tc.doc), "images.yml")
			wantParseError(t, err, "images.yml", tc.line, tc.msg)
		})
	}
	// Merges and aliases that stay small are YAML a person may write.
	l, err := lock.ParseImagesLock([]byte(hdr+"kind: ImagesLock\nimages:\n- &r {image: "+img+", annotations: {a: b}}\n- <<: *r\n  annotations: {c: d}\n- *r\n"), "images.yml")
	if err != nil || len(l.Images) != 3 || l.Images[1].Annotations["c"] != "d" || l.Images[2].Annotations["a"] != "b" {
		t.Errorf("merge and alias: %+v, %v", l, err)
	}
}
