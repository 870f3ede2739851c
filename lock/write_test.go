package lock_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/lock"
)

// The document imgpkg wrote into its locations image for the golden bundle
// must come out of Marshal byte for byte, or the locations image digest
// (and so imgpkg's view of the repository) differs.
func TestImageLocationsMarshalGolden(t *testing.T) {
	l := lock.ImageLocations{
		APIVersion: lock.APIVersion,
		Kind:       lock.KindImageLocations,
		Images: []lock.ImageLocation{{
			Image:    "127.0.0.1:5900/src/app1@sha256:862fa98b7c02f30d6a7e5654cdc84c8ebecffd32e61f8e2861fa4f41d4da5edf",
			IsBundle: false,
		}},
	}
	got, err := l.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if want := readGolden(t, "image-locations.yml"); string(got) != string(want) {
		t.Errorf("Marshal =\n%q\nwant (golden)\n%q", got, want)
	}
}

func TestImageLocationsMarshalSortsAndKeepsInput(t *testing.T) {
	imgs := []lock.ImageLocation{
		{Image: "registry.example.com/z@sha256:" + hexA, IsBundle: true},
		{Image: "nginx@sha256:" + hexB},
		{Image: "gcr.io/a@sha256:" + hexA},
	}
	orig := append([]lock.ImageLocation(nil), imgs...)
	got, err := lock.ImageLocations{Images: imgs}.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want := "---\n" + hdr + "images:\n" +
		"- image: gcr.io/a@sha256:" + hexA + "\n  isBundle: false\n" +
		"- image: nginx@sha256:" + hexB + "\n  isBundle: false\n" +
		"- image: registry.example.com/z@sha256:" + hexA + "\n  isBundle: true\n" +
		"kind: ImageLocations\n"
	if string(got) != want {
		t.Errorf("Marshal =\n%s\nwant\n%s", got, want)
	}
	if !reflect.DeepEqual(imgs, orig) {
		t.Errorf("Marshal reordered the caller's slice: %+v", imgs)
	}
}

// imgpkg marshals a nil slice without omitempty, so a bundle with no images
// gets "images: null"; an empty slice must not turn into "images: []".
func TestImageLocationsMarshalEmpty(t *testing.T) {
	want := "---\n" + hdr + "images: null\nkind: ImageLocations\n"
	for name, l := range map[string]lock.ImageLocations{
		"nil":   {},
		"empty": {Images: []lock.ImageLocation{}},
	} {
		got, err := l.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Errorf("%s: Marshal = %q, want %q", name, got, want)
		}
	}
}

func TestMarshalFormats(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    interface{ Marshal() ([]byte, error) }
		want string
	}{
		{"empty images lock", lock.ImagesLock{}, "---\n" + hdr + "kind: ImagesLock\n"},
		{"images lock keeps order and sorts keys", lock.ImagesLock{Images: []lock.ImageRef{
			{Image: "z.example.com/b@sha256:" + hexA, Annotations: map[string]string{"z": "1", "a": "yes"}},
			{Image: "nginx@sha256:" + hexB},
		}}, "---\n" + hdr + "images:\n" +
			"- annotations:\n    a: \"yes\"\n    z: \"1\"\n  image: z.example.com/b@sha256:" + hexA + "\n" +
			"- image: nginx@sha256:" + hexB + "\n" +
			"kind: ImagesLock\n"},
		{"bundle", lock.Bundle{
			Metadata: lock.BundleMetadata{Name: "golden-basic"},
			Authors:  []lock.Author{{Name: "Example Author", Email: "author@example.com"}},
			Websites: []lock.Website{{URL: "https://example.com"}},
		}, "---\n" + hdr + "authors:\n- email: author@example.com\n  name: Example Author\nkind: Bundle\nmetadata:\n  name: golden-basic\nwebsites:\n- url: https://example.com\n"},
		{"empty bundle", lock.Bundle{}, "---\n" + hdr + "kind: Bundle\n"},
		{"bundle lock", lock.BundleLock{Bundle: lock.BundleRef{Image: "index.docker.io/u/app@sha256:" + hexA, Tag: "v1"}},
			"---\n" + hdr + "bundle:\n  image: index.docker.io/u/app@sha256:" + hexA + "\n  tag: v1\nkind: BundleLock\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.m.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("Marshal =\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

func TestMarshalErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    interface{ Marshal() ([]byte, error) }
		msg  string
	}{
		{"images lock wrong kind", lock.ImagesLock{Kind: "BundleLock"}, `kind "BundleLock", expected ImagesLock`},
		{"images lock wrong apiVersion", lock.ImagesLock{APIVersion: "v1"}, `apiVersion "v1"`},
		{"images lock tag", lock.ImagesLock{Images: []lock.ImageRef{{Image: "nginx:1"}}}, "images[0].image"},
		{"images lock empty image", lock.ImagesLock{Images: []lock.ImageRef{{}}}, "empty image reference"},
		{"images lock bad annotation", lock.ImagesLock{Images: []lock.ImageRef{{Image: "nginx@sha256:" + hexA, Annotations: map[string]string{"a": "\xff"}}}}, "UTF-8"},
		{"bundle wrong kind", lock.Bundle{Kind: "ImagesLock"}, "expected Bundle"},
		{"bundle lock no image", lock.BundleLock{}, "bundle.image is empty"},
		{"bundle lock bad tag", lock.BundleLock{Bundle: lock.BundleRef{Image: "a@sha256:" + hexA, Tag: "a:b"}}, "not a valid tag"},
		{"locations tag", lock.ImageLocations{Images: []lock.ImageLocation{{Image: "a:b"}}}, "images[0].image"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.m.Marshal()
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("Marshal = %q, %v; want an error containing %q", b, err, tc.msg)
			}
		})
	}
}

func TestRoundTrips(t *testing.T) {
	il := &lock.ImagesLock{APIVersion: lock.APIVersion, Kind: lock.KindImagesLock, Images: []lock.ImageRef{
		{Image: "nginx@sha256:" + hexA, Annotations: map[string]string{"kbld.carvel.dev/id": "nginx:1", "empty": "", "yes": "true", "multi": "line\nbreak", "num": "0x10"}},
		{Image: "127.0.0.1:5900/src/app1@sha256:" + hexB},
	}}
	b, err := il.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	il2, err := lock.ParseImagesLock(b, "images.yml")
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if !reflect.DeepEqual(il, il2) {
		t.Errorf("ImagesLock round trip: %+v != %+v", il2, il)
	}

	bu := &lock.Bundle{APIVersion: lock.APIVersion, Kind: lock.KindBundle,
		Metadata: lock.BundleMetadata{Name: "héllo: world"},
		Authors:  []lock.Author{{Name: "A"}, {Email: "b@example.com"}},
		Websites: []lock.Website{{URL: "example.com"}},
	}
	if b, err = bu.Marshal(); err != nil {
		t.Fatal(err)
	}
	if bu2, err := lock.ParseBundle(b, "bundle.yml"); err != nil || !reflect.DeepEqual(bu, bu2) {
		t.Errorf("Bundle round trip: %+v, %v != %+v", bu2, err, bu)
	}

	bl := &lock.BundleLock{APIVersion: lock.APIVersion, Kind: lock.KindBundleLock, Bundle: lock.BundleRef{Image: "u/app@sha256:" + hexA, Tag: "1.0"}}
	if b, err = bl.Marshal(); err != nil {
		t.Fatal(err)
	}
	if bl2, err := lock.ParseBundleLock(b, "lock.yml"); err != nil || !reflect.DeepEqual(bl, bl2) {
		t.Errorf("BundleLock round trip: %+v, %v != %+v", bl2, err, bl)
	}

	loc := &lock.ImageLocations{APIVersion: lock.APIVersion, Kind: lock.KindImageLocations, Images: []lock.ImageLocation{
		{Image: "a.example.com/x@sha256:" + hexA, IsBundle: true},
		{Image: "b.example.com/y@sha256:" + hexB},
	}}
	if b, err = loc.Marshal(); err != nil {
		t.Fatal(err)
	}
	if loc2, err := lock.ParseImageLocations(b, "image-locations.yml"); err != nil || !reflect.DeepEqual(loc, loc2) {
		t.Errorf("ImageLocations round trip: %+v, %v != %+v", loc2, err, loc)
	}
}

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	l := lock.ImagesLock{Images: []lock.ImageRef{{Image: "nginx@sha256:" + hexA}}}
	want, err := l.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "images.yml")
	if err := os.WriteFile(path, []byte("old content that is longer than the new one, to catch a missing truncate\n"+strings.Repeat("x", 500)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := l.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("file holds %q, want %q", got, want)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	wantOnly(t, dir, "images.yml")

	// Each kind writes what it marshals.
	for name, w := range map[string]interface {
		Marshal() ([]byte, error)
		WriteFile(string) error
	}{
		"bundle.yml":          lock.Bundle{Metadata: lock.BundleMetadata{Name: "b"}},
		"lock.yml":            lock.BundleLock{Bundle: lock.BundleRef{Image: "u/a@sha256:" + hexA, Tag: "v1"}},
		"image-locations.yml": lock.ImageLocations{},
	} {
		p := filepath.Join(dir, name)
		if err := w.WriteFile(p); err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(p)
		want, _ := w.Marshal()
		if string(got) != string(want) {
			t.Errorf("%s holds %q, want %q", name, got, want)
		}
		// Private like imgpkg's lock outputs, not os.Create's 0666 &^ umask.
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode = %v, %v; want 0600", name, fi.Mode().Perm(), err)
		}
	}
	wantOnly(t, dir, "bundle.yml", "image-locations.yml", "images.yml", "lock.yml")
}

func TestWriteFileFailures(t *testing.T) {
	dir := t.TempDir()

	// An invalid document is refused before anything touches the disk.
	path := filepath.Join(dir, "images.yml")
	err := lock.ImagesLock{Images: []lock.ImageRef{{Image: "nginx:latest"}}}.WriteFile(path)
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("WriteFile of an invalid lock: %v, want an error naming %s", err, path)
	}
	wantOnly(t, dir)

	// A rename that fails (the target is a non-empty directory) leaves
	// neither a temporary file nor a changed target.
	target := filepath.Join(dir, "target")
	if err := os.MkdirAll(filepath.Join(target, "child"), 0o700); err != nil {
		t.Fatal(err)
	}
	err = lock.ImagesLock{}.WriteFile(target)
	if err == nil || !strings.Contains(err.Error(), target) {
		t.Errorf("WriteFile over a directory: %v, want an error naming %s", err, target)
	}
	wantOnly(t, dir, "target")

	// A missing directory is an error naming the path.
	missing := filepath.Join(dir, "no", "such", "dir", "images.yml")
	if err := (lock.ImagesLock{}).WriteFile(missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("WriteFile into a missing directory: %v", err)
	}
}

// wantOnly checks that dir holds exactly names (no temporary files left).
func wantOnly(t *testing.T, dir string, names ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if len(got) != len(names) || (len(names) > 0 && !reflect.DeepEqual(got, names)) {
		t.Errorf("directory holds %q, want %q", got, names)
	}
}
