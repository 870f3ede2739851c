package lock_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/fixtures/golden"
	"github.com/ferry-dev/ferry/lock"
)

func TestParseBundle(t *testing.T) {
	path, err := golden.WriteFile(t.TempDir(), "bundle-basic/.imgpkg/bundle.yml")
	if err != nil {
		t.Fatal(err)
	}
	b, err := lock.ReadBundle(path)
	if err != nil {
		t.Fatal(err)
	}
	want := &lock.Bundle{
		APIVersion: lock.APIVersion,
		Kind:       "Bundle",
		Metadata:   lock.BundleMetadata{Name: "golden-basic"},
		Authors:    []lock.Author{{Name: "Example Author", Email: "author@example.com"}},
		Websites:   []lock.Website{{URL: "https://example.com"}},
	}
	if !reflect.DeepEqual(b, want) {
		t.Fatalf("got %+v, want %+v", b, want)
	}

	minimal, err := lock.ParseBundle([]byte(hdr+"kind: Bundle\n"), "bundle.yml")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(minimal, &lock.Bundle{APIVersion: lock.APIVersion, Kind: "Bundle"}) {
		t.Errorf("minimal bundle = %+v", minimal)
	}
}

func TestParseBundleErrors(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		line      int
		msg       string
	}{
		{"is an ImagesLock", hdr + "kind: ImagesLock\nimages: []\n", 2, "is an ImagesLock, expected Bundle"},
		{"unknown metadata field", hdr + "kind: Bundle\nmetadata:\n  name: x\n  version: 1.0\n", 5, `unknown field "version"`},
		{"unknown author field", hdr + "kind: Bundle\nauthors:\n- name: a\n  mail: a@b\n", 5, `unknown field "mail"`},
		{"websites as strings", hdr + "kind: Bundle\nwebsites:\n- https://example.com\n", 4, "cannot unmarshal !!str"},
		{"images belong in images.yml", hdr + "kind: Bundle\nimages: []\n", 3, `unknown field "images"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := lock.ParseBundle([]byte(tc.doc), "bundle.yml")
			wantParseError(t, err, "bundle.yml", tc.line, tc.msg)
		})
	}
}

func TestParseBundleLock(t *testing.T) {
	doc := "---\n" + hdr + "bundle:\n  image: index.docker.io/user/app@sha256:" + hexB + "\n  otherTags: a,b\n  tag: v1.0\nkind: BundleLock\n"
	l, err := lock.ParseBundleLock([]byte(doc), "lock.yml")
	if err != nil {
		t.Fatal(err)
	}
	want := &lock.BundleLock{APIVersion: lock.APIVersion, Kind: "BundleLock", Bundle: lock.BundleRef{
		Image: "index.docker.io/user/app@sha256:" + hexB, Tag: "v1.0", OtherTags: "a,b",
	}}
	if !reflect.DeepEqual(l, want) {
		t.Fatalf("got %+v, want %+v", l, want)
	}
	out, err := l.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != doc {
		t.Errorf("Marshal =\n%s\nwant\n%s", out, doc)
	}
	d, err := l.Bundle.Digest()
	if err != nil || d.String() != "index.docker.io/user/app@sha256:"+hexB {
		t.Errorf("Bundle.Digest() = %v, %v", d, err)
	}
}

func TestParseBundleLockErrors(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		line      int
		msg       string
	}{
		{"missing bundle", hdr + "kind: BundleLock\n", 1, "bundle.image is empty"},
		{"missing image", hdr + "kind: BundleLock\nbundle:\n  tag: v1\n", 4, "bundle.image is empty"},
		{"image is a tag", hdr + "kind: BundleLock\nbundle:\n  image: user/app:v1\n", 4, `bundle.image: image reference "user/app:v1" is a tag`},
		{"malformed image", hdr + "kind: BundleLock\nbundle:\n  image: user/app@sha256:zz\n", 4, "malformed image reference"},
		{"invalid tag", hdr + "kind: BundleLock\nbundle:\n  image: user/app@sha256:" + hexA + "\n  tag: -v1\n", 5, `bundle.tag "-v1" is not a valid tag`},
		{"too long tag", hdr + "kind: BundleLock\nbundle:\n  image: user/app@sha256:" + hexA + "\n  tag: " + strings.Repeat("t", 129) + "\n", 5, "is not a valid tag"},
		{"unknown field", hdr + "kind: BundleLock\nbundle:\n  image: user/app@sha256:" + hexA + "\n  digest: x\n", 5, `unknown field "digest"`},
		{"is an ImageLocations", hdr + "kind: ImageLocations\n", 2, "is an ImageLocations, expected BundleLock"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := lock.ParseBundleLock([]byte(tc.doc), "lock.yml")
			wantParseError(t, err, "lock.yml", tc.line, tc.msg)
		})
	}
}

func TestParseImageLocations(t *testing.T) {
	l, err := lock.ParseImageLocations(readGolden(t, "image-locations.yml"), "image-locations.yml")
	if err != nil {
		t.Fatal(err)
	}
	want := &lock.ImageLocations{APIVersion: lock.APIVersion, Kind: "ImageLocations", Images: []lock.ImageLocation{
		{Image: "127.0.0.1:5900/src/app1@sha256:" + hexA, IsBundle: false},
	}}
	if !reflect.DeepEqual(l, want) {
		t.Fatalf("got %+v, want %+v", l, want)
	}
	empty, err := lock.ParseImageLocations([]byte("---\n"+hdr+"images: null\nkind: ImageLocations\n"), "x")
	if err != nil || empty.Images != nil {
		t.Errorf("images: null parsed to %+v, %v", empty, err)
	}
}

func TestParseImageLocationsErrors(t *testing.T) {
	img := "127.0.0.1:5900/src/app1@sha256:" + hexA
	for _, tc := range []struct {
		name, doc string
		line      int
		msg       string
	}{
		{"isBundle not a bool", hdr + "kind: ImageLocations\nimages:\n- image: " + img + "\n  isBundle: maybe\n", 5, "cannot unmarshal !!str `maybe` into bool"},
		{"image is a tag", hdr + "kind: ImageLocations\nimages:\n- image: app:v1\n  isBundle: true\n", 4, "images[0].image: image reference \"app:v1\" is a tag"},
		{"image empty", hdr + "kind: ImageLocations\nimages:\n- isBundle: true\n", 4, "images[0].image is empty"},
		{"null item", hdr + "kind: ImageLocations\nimages:\n- null\n", 4, "empty (null) item"},
		{"unknown field", hdr + "kind: ImageLocations\nimages:\n- image: " + img + "\n  annotations: {}\n", 5, `unknown field "annotations"`},
		{"is a BundleLock", hdr + "kind: BundleLock\n", 2, "is a BundleLock, expected ImageLocations"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := lock.ParseImageLocations([]byte(tc.doc), "sha256-x.image-locations.imgpkg")
			wantParseError(t, err, "sha256-x.image-locations.imgpkg", tc.line, tc.msg)
		})
	}
}
