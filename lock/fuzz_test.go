package lock_test

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/lock"
)

// FuzzParseImagesLock checks that no input panics the parser, that every
// rejection is a *lock.ParseError, and that whatever parses survives
// Marshal → Parse unchanged (and Marshal is then stable), so ferry never
// writes a lock it would not read back.
func FuzzParseImagesLock(f *testing.F) {
	for _, seed := range []string{
		"",
		"---\n",
		hdr + "kind: ImagesLock\n",
		hdr + "kind: ImagesLock\nimages: []\n",
		"---\n" + hdr + "images:\n- annotations:\n    kbld.carvel.dev/id: example.com/app1\n  image: 127.0.0.1:5900/src/app1@sha256:" + hexA + "\nkind: ImagesLock\n",
		hdr + "kind: ImagesLock\nimages:\n- image: nginx@sha256:" + hexA + "\n  annotations: {a: \"1\", \"yes\": no, \"\": ~, n: 1e3}\n",
		hdr + "kind: ImagesLock\nimages:\n- image: &a nginx:1@sha256:" + hexB + "\n- image: *a\n",
		`{"apiVersion":"imgpkg.carvel.dev/v1alpha1","kind":"ImagesLock","images":[{"image":"a/b@sha256:` + hexA + `","annotations":{"k":"v\u0000"}}]}`,
		hdr + "kind: ImagesLock\nimages:\n- image: nginx:1.25\n",
		hdr + "kind: ImagesLock\nimages:\n- image: nginx@sha256:abc\n",
		hdr + "kind: BundleLock\n",
		hdr + "kind: ImagesLock\nfoo: bar\n",
		hdr + "kind: ImagesLock\nimages: [\n",
		hdr + "kind: ImagesLock\n---\nkind: x\n",
		hdr + "kind: ImagesLock\nimages:\n- image: nginx@sha256:" + hexA + "\n  annotations:\n    a: !!binary /w==\n",
		hdr + "kind: ImagesLock\nimages:\n- image: nginx@sha256:" + hexA + "\n  annotations:\n    a: |\n      two\n      lines\n    b: \"\\t\\x01 \\u00e9\"\n",
		"a: &a [*a, *a]\n",
		hdr + "kind: ImagesLock\nimages:\n- image: nginx@sha256:" + hexA + "\n  annotations: {'<<': x}\n",
		// Shapes of issue 13 (item 3), small: a dense flow sequence, a
		// repeated key, an alias inside its anchor, aliases multiplying a
		// mapping, merges, and a long run of distinct keys.
		hdr + "kind: ImagesLock\nimages: [" + strings.Repeat("a,", 64) + "a]\n",
		hdr + "kind: ImagesLock\nimages:\n- image: nginx@sha256:" + hexA + "\n  annotations: {" + strings.Repeat("k: v, ", 8) + "}\n",
		hdr + "kind: ImagesLock\nimages: &a [*a]\n",
		hdr + "kind: ImagesLock\nimages:\n- &r {image: nginx@sha256:" + hexA + ", annotations: {a: b, c: d}}\n" + strings.Repeat("- *r\n", 16),
		hdr + "kind: ImagesLock\nimages:\n- &r {image: nginx@sha256:" + hexA + "}\n- <<: *r\n  annotations: {e: f}\n- <<: [*r]\n  foo: x\n",
		hdr + "kind: ImagesLock\nimages:\n- image: nginx@sha256:" + hexA + "\n  annotations:\n" + strings.Repeat("    kbld.carvel.dev/id-x: registry.example.com/app\n", 4),
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := lock.ParseImagesLock(data, "fuzz.yml")
		if err != nil {
			var pe *lock.ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v (%T) is not a *lock.ParseError", err, err)
			}
			if l != nil {
				t.Fatalf("got a lock along with error %v", err)
			}
			return
		}
		out, err := l.Marshal()
		if err != nil {
			t.Fatalf("parsed lock does not marshal: %v\nlock: %+v", err, l)
		}
		l2, err := lock.ParseImagesLock(out, "remarshalled.yml")
		if err != nil {
			t.Fatalf("marshalled lock does not parse: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(l, l2) {
			t.Fatalf("round trip changed the lock:\n%+v\n%+v\n%s", l, l2, out)
		}
		out2, err := l2.Marshal()
		if err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("Marshal is not stable (%v):\n%s\n%s", err, out, out2)
		}
	})
}
