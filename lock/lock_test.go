package lock_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/fixtures/golden"
	"github.com/ferry-dev/ferry/lock"
)

const (
	hexA = "862fa98b7c02f30d6a7e5654cdc84c8ebecffd32e61f8e2861fa4f41d4da5edf"
	hexB = "1dd1fe82d28c36e0cd1a72e97295ba91f1c9b705249fecbd9a99a84668c09922"
	hdr  = "apiVersion: imgpkg.carvel.dev/v1alpha1\n"
)

func readGolden(t *testing.T, name string) []byte {
	t.Helper()
	b, err := golden.ReadFile(name)
	if err != nil {
		t.Fatalf("golden data: %v", err)
	}
	return b
}

// wantParseError checks that err is a *lock.ParseError for source at line
// whose message contains msg.
func wantParseError(t *testing.T, err error, source string, line int, msg string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one containing %q", msg)
	}
	var pe *lock.ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T) is not a *lock.ParseError", err, err)
	}
	if pe.Source != source {
		t.Errorf("Source = %q, want %q", pe.Source, source)
	}
	if pe.Line != line {
		t.Errorf("Line = %d, want %d (error: %v)", pe.Line, line, err)
	}
	if !strings.Contains(pe.Msg, msg) {
		t.Errorf("error %q does not contain %q", err, msg)
	}
	if !strings.Contains(err.Error(), source) {
		t.Errorf("error %q does not name the source %q", err, source)
	}
}

func TestParseImagesLockErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		doc  string
		line int
		msg  string
	}{
		{"empty file", "", 0, "empty document"},
		{"only a separator", "---\n", 1, "empty document"},
		{"null document", "null\n", 1, "empty document"},
		{"bad yaml", hdr + "kind: ImagesLock\nimages: [\n", 3, "did not find expected node content"},
		{"bad indentation", hdr + "kind: ImagesLock\nimages:\n- image: a\n image: b\n", 4, ""},
		{"tab indentation", hdr + "kind: ImagesLock\nimages:\n\t- image: a\n", 4, "cannot start any token"},
		{"not a mapping", "- image: a\n", 1, "expected a mapping (ImagesLock), got a sequence"},
		{"scalar document", "hello\n", 1, "got !!str"},
		{"missing kind", hdr + "images: []\n", 1, "missing kind, expected ImagesLock"},
		{"kind not a string", hdr + "kind: [ImagesLock]\n", 2, "kind must be a string"},
		{"kind null", hdr + "kind:\n", 2, "kind must be a string"},
		{"is a BundleLock", hdr + "kind: BundleLock\n", 2, "is a BundleLock, expected ImagesLock"},
		{"is a Bundle", "\n" + hdr + "kind: Bundle\n", 3, "is a Bundle, expected ImagesLock"},
		{"is an ImageLocations", hdr + "kind: ImageLocations\n", 2, "is an ImageLocations, expected ImagesLock"},
		{"unknown kind", hdr + "kind: PackageRepository\n", 2, `unknown kind "PackageRepository"`},
		{"kind is case sensitive", hdr + "kind: imageslock\n", 2, `unknown kind "imageslock"`},
		{"missing apiVersion", "kind: ImagesLock\n", 1, "missing apiVersion"},
		{"wrong apiVersion", "kind: ImagesLock\napiVersion: imgpkg.carvel.dev/v1\n", 2, `unsupported apiVersion "imgpkg.carvel.dev/v1"`},
		{"old apiVersion", "kind: ImagesLock\napiVersion: imgpkg.k14s.io/v1alpha1\n", 2, "unsupported apiVersion"},
		{"unknown top-level field", hdr + "kind: ImagesLock\nimage: x\n", 3, `unknown field "image"`},
		{"field names are case sensitive", hdr + "kind: ImagesLock\nImages: []\n", 3, `unknown field "Images"`},
		{"unknown entry field", hdr + "kind: ImagesLock\nimages:\n- image: nginx@sha256:" + hexA + "\n  digest: x\n", 5, `unknown field "digest"`},
		{"two unknown fields", hdr + "kind: ImagesLock\nfoo: 1\nbar: 2\n", 3, `unknown field "foo"; line 4: unknown field "bar"`},
		{"duplicate key", hdr + "kind: ImagesLock\nkind: ImagesLock\n", 3, `mapping key "kind" already defined at line 2`},
		{"images is a mapping", hdr + "kind: ImagesLock\nimages:\n  image: x\n", 4, "cannot unmarshal !!map"},
		{"annotations is a list", hdr + "kind: ImagesLock\nimages:\n- image: nginx@sha256:" + hexA + "\n  annotations: [a]\n", 5, "cannot unmarshal !!seq"},
		{"image missing", hdr + "kind: ImagesLock\nimages:\n- annotations: {a: b}\n", 4, "images[0].image is empty"},
		{"null item", hdr + "kind: ImagesLock\nimages:\n- image: nginx@sha256:" + hexA + "\n-\n", 5, "empty (null) item"},
		{"tilde item", hdr + "kind: ImagesLock\nimages:\n- ~\n", 4, "empty (null) item"},
		{"image empty", hdr + "kind: ImagesLock\nimages:\n- image: \"\"\n", 4, "images[0].image is empty"},
		{"image is a tag", hdr + "kind: ImagesLock\nimages:\n- image: nginx@sha256:" + hexA + "\n- image: nginx:1.25\n", 5, `images[1].image: image reference "nginx:1.25" is a tag`},
		{"image has no tag nor digest", hdr + "kind: ImagesLock\nimages:\n- image: registry.example.com/app\n", 4, "is a tag, not a digest"},
		{"short digest", hdr + "kind: ImagesLock\nimages:\n- image: nginx@sha256:abc\n", 4, "malformed image reference"},
		{"upper-case digest", hdr + "kind: ImagesLock\nimages:\n- image: nginx@sha256:" + strings.ToUpper(hexA) + "\n", 4, "malformed image reference"},
		{"unknown algorithm", hdr + "kind: ImagesLock\nimages:\n- image: nginx@md5:" + hexA[:32] + "\n", 4, "malformed image reference"},
		{"upper-case repository", hdr + "kind: ImagesLock\nimages:\n- image: Nginx@sha256:" + hexA + "\n", 4, "malformed image reference"},
		{"two digests", hdr + "kind: ImagesLock\nimages:\n- image: a@sha256:" + hexA + "@sha256:" + hexA + "\n", 4, "malformed image reference"},
		{"second document", hdr + "kind: ImagesLock\n---\n" + hdr + "kind: ImagesLock\n", 3, "more than one YAML document"},
		{"merge-key annotation", hdr + "kind: ImagesLock\nimages:\n- image: nginx@sha256:" + hexA + "\n  annotations: {'<<': x}\n", 5, "cannot be written back"},
		{"binary annotation", hdr + "kind: ImagesLock\nimages:\n- image: nginx@sha256:" + hexA + "\n  annotations:\n    a: !!binary /w==\n", 6, "not valid UTF-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := lock.ParseImagesLock([]byte(tc.doc), "images.yml")
			if l != nil {
				t.Errorf("got a lock %+v along with the error", l)
			}
			wantParseError(t, err, "images.yml", tc.line, tc.msg)
		})
	}
}

func TestParseImagesLockValid(t *testing.T) {
	app1 := "127.0.0.1:5900/src/app1@sha256:" + hexA
	for _, tc := range []struct {
		name string
		doc  string
		want *lock.ImagesLock
	}{
		{"no images key", hdr + "kind: ImagesLock\n", &lock.ImagesLock{APIVersion: lock.APIVersion, Kind: "ImagesLock"}},
		{"empty images", "---\n" + hdr + "kind: ImagesLock\nimages: []\n", &lock.ImagesLock{APIVersion: lock.APIVersion, Kind: "ImagesLock"}},
		{"null images", hdr + "kind: ImagesLock\nimages:\n", &lock.ImagesLock{APIVersion: lock.APIVersion, Kind: "ImagesLock"}},
		{"trailing empty document", hdr + "kind: ImagesLock\n---\n", &lock.ImagesLock{APIVersion: lock.APIVersion, Kind: "ImagesLock"}},
		{"json syntax", `{"apiVersion":"imgpkg.carvel.dev/v1alpha1","kind":"ImagesLock","images":[{"image":"` + app1 + `"}]}`,
			&lock.ImagesLock{APIVersion: lock.APIVersion, Kind: "ImagesLock", Images: []lock.ImageRef{{Image: app1}}}},
		{"written form kept", hdr + "kind: ImagesLock\nimages:\n- image: nginx@sha256:" + hexA + "\n- image: docker.io/library/nginx:1.25@sha256:" + hexB + "\n  annotations: {}\n",
			&lock.ImagesLock{APIVersion: lock.APIVersion, Kind: "ImagesLock", Images: []lock.ImageRef{
				{Image: "nginx@sha256:" + hexA},
				{Image: "docker.io/library/nginx:1.25@sha256:" + hexB},
			}}},
		{"annotations and anchors", hdr + "kind: ImagesLock\nimages:\n- image: &img " + app1 + "\n  annotations:\n    kbld.carvel.dev/id: example.com/app1\n    n: 1\n- image: *img\n",
			&lock.ImagesLock{APIVersion: lock.APIVersion, Kind: "ImagesLock", Images: []lock.ImageRef{
				{Image: app1, Annotations: map[string]string{"kbld.carvel.dev/id": "example.com/app1", "n": "1"}},
				{Image: app1},
			}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := lock.ParseImagesLock([]byte(tc.doc), "images.yml")
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestReadImagesLockGolden(t *testing.T) {
	path, err := golden.WriteFile(t.TempDir(), "bundle-basic/.imgpkg/images.yml")
	if err != nil {
		t.Fatal(err)
	}
	l, err := lock.ReadImagesLock(path)
	if err != nil {
		t.Fatal(err)
	}
	want := &lock.ImagesLock{APIVersion: lock.APIVersion, Kind: "ImagesLock", Images: []lock.ImageRef{{
		Image:       "127.0.0.1:5900/src/app1@sha256:" + hexA,
		Annotations: map[string]string{"kbld.carvel.dev/id": "example.com/app1"},
	}}}
	if !reflect.DeepEqual(l, want) {
		t.Fatalf("got %+v, want %+v", l, want)
	}
	// imgpkg's bundle images.yml is already in imgpkg's written form.
	out, err := l.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if g := readGolden(t, "bundle-basic/.imgpkg/images.yml"); string(out) != string(g) {
		t.Errorf("Marshal =\n%s\nwant (golden)\n%s", out, g)
	}
}

func TestReadErrorsNameThePath(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.yml")
	for name, read := range map[string]func(string) error{
		"ImagesLock":     func(p string) error { _, err := lock.ReadImagesLock(p); return err },
		"Bundle":         func(p string) error { _, err := lock.ReadBundle(p); return err },
		"BundleLock":     func(p string) error { _, err := lock.ReadBundleLock(p); return err },
		"ImageLocations": func(p string) error { _, err := lock.ReadImageLocations(p); return err },
	} {
		t.Run(name, func(t *testing.T) {
			err := read(missing)
			if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), missing) {
				t.Errorf("missing file: %v, want a not-exist error naming %s", err, missing)
			}
			bad := filepath.Join(dir, name+".yml")
			if err := os.WriteFile(bad, []byte(hdr+"kind: Nope\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			wantParseError(t, read(bad), bad, 2, `unknown kind "Nope"`)
		})
	}
}

func TestNormalizeDigestRef(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"nginx@sha256:" + hexA, "index.docker.io/library/nginx@sha256:" + hexA},
		{"docker.io/nginx@sha256:" + hexA, "index.docker.io/library/nginx@sha256:" + hexA},
		{"docker.io/user/app@sha256:" + hexA, "index.docker.io/user/app@sha256:" + hexA},
		{"index.docker.io/library/nginx@sha256:" + hexA, "index.docker.io/library/nginx@sha256:" + hexA},
		{"gcr.io/project/deep/path/app@sha256:" + hexA, "gcr.io/project/deep/path/app@sha256:" + hexA},
		{"127.0.0.1:5900/src/app1@sha256:" + hexA, "127.0.0.1:5900/src/app1@sha256:" + hexA},
		{"localhost:5000/app@sha256:" + hexA, "localhost:5000/app@sha256:" + hexA},
		{"nginx:1.25@sha256:" + hexA, "index.docker.io/library/nginx@sha256:" + hexA},
	} {
		d, err := lock.NormalizeDigestRef(tc.in)
		if err != nil {
			t.Errorf("NormalizeDigestRef(%q): %v", tc.in, err)
			continue
		}
		if d.String() != tc.want || d.Name() != tc.want {
			t.Errorf("NormalizeDigestRef(%q) = %q (Name %q), want %q", tc.in, d.String(), d.Name(), tc.want)
		}
		if d.DigestStr() != "sha256:"+hexA {
			t.Errorf("NormalizeDigestRef(%q).DigestStr() = %q", tc.in, d.DigestStr())
		}
	}
	for _, in := range []string{"", "nginx", "nginx:1.25", "nginx@sha256:abc", "nginx@" + hexA, "UPPER@sha256:" + hexA, "a b@sha256:" + hexA} {
		if d, err := lock.NormalizeDigestRef(in); err == nil {
			t.Errorf("NormalizeDigestRef(%q) = %v, want an error", in, d)
		}
	}
}

func TestImageRefDigest(t *testing.T) {
	r := lock.ImageRef{Image: "nginx@sha256:" + hexA}
	d, err := r.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if want := "index.docker.io/library/nginx@sha256:" + hexA; d.String() != want {
		t.Errorf("Digest() = %s, want %s", d, want)
	}
	if r.Image != "nginx@sha256:"+hexA {
		t.Errorf("Digest() changed Image to %q", r.Image)
	}
}

func TestIsEmptyDocument(t *testing.T) {
	for doc, want := range map[string]bool{
		"":                         true,
		"\n\n":                     true,
		"# notes\n# more\n":        true,
		"---\n":                    true,
		"---\n...\n---\n# c\n":     true,
		"~\n":                      true,
		"kind: Bundle\n":           false,
		"---\n---\nkind: Bundle\n": false,
		"a: [\n":                   false,
		"x\n":                      false,
	} {
		if got := lock.IsEmptyDocument([]byte(doc)); got != want {
			t.Errorf("IsEmptyDocument(%q) = %v, want %v", doc, got, want)
		}
	}
}
