package bundle

import (
	"context"
	"testing"

	"github.com/ferry-dev/ferry/internal/procfd"
)

// The staged layer is a file in TempDir without a name, open while the
// image is and freed by Close: a push killed outright leaves nothing.
func TestBuildStagesTheLayerWithoutAName(t *testing.T) {
	tmp := t.TempDir()
	img, err := Build(context.Background(), []string{writeTree(t, [2]string{"a", "a"})}, BuildOptions{TempDir: tmp})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := procfd.CountUnder(0, tmp); err != nil || n != 1 {
		t.Errorf("files open in TempDir while the image is: %d, %v; want 1", n, err)
	}
	if n := countFiles(t, tmp); n != 0 {
		t.Errorf("%d named files in TempDir, want none", n)
	}
	if _, err := img.Digest(); err != nil {
		t.Fatal(err)
	}
	if err := img.Close(); err != nil {
		t.Fatal(err)
	}
	if n, err := procfd.CountUnder(0, tmp); err != nil || n != 0 {
		t.Errorf("files open in TempDir after Close: %d, %v; want 0", n, err)
	}
}
