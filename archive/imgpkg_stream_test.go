package archive

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// An imgpkg tarball read front to back (a pipe) is named as what it is,
// with the way to read it, rather than refused for its entry names.
func TestNewReaderNamesAnImgpkgTarball(t *testing.T) {
	gold := goldenImgpkg(t)
	_, err := NewReader(bytes.NewReader(gold), ReaderOptions{})
	if !errors.Is(err, ErrImgpkgStream) || !strings.Contains(err.Error(), `"manifest.json"`) {
		t.Fatalf("NewReader of the golden imgpkg tarball: %v", err)
	}
	if _, err := Inspect(bytes.NewReader(gold)); !errors.Is(err, ErrImgpkgStream) {
		t.Fatalf("Inspect of the golden imgpkg tarball: %v", err)
	}
	// Its layers, without manifest.json first, are imgpkg's names too.
	layer := "sha256-" + strings.Repeat("ab", 32) + ".tar.gz"
	_, err = NewReader(bytes.NewReader(buildTar(t, []tarEntry{{name: layer, body: []byte("x")}})), ReaderOptions{})
	if !errors.Is(err, ErrImgpkgStream) || !strings.Contains(err.Error(), layer) {
		t.Fatalf("NewReader of a tar starting with an imgpkg layer: %v", err)
	}
	// A ferry archive's name rules are unchanged for anything else, and
	// manifest.json after the first entry is no imgpkg tarball.
	for _, es := range [][]tarEntry{
		{{name: "other.json", body: []byte("{}")}},
		{{name: "oci-layout", body: []byte(`{"imageLayoutVersion":"1.0.0"}`)}, {name: "manifest.json", body: []byte("[]")}},
	} {
		_, err = NewReader(bytes.NewReader(buildTar(t, es)), ReaderOptions{})
		if err == nil || errors.Is(err, ErrImgpkgStream) || !strings.Contains(err.Error(), "not a name of the layout") {
			t.Fatalf("NewReader of a tar starting with %s: %v", es[0].name, err)
		}
	}
}
