package pull

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/ferry-dev/ferry/internal/testregistry"
)

// TestPullSaysNotFoundAndRefusesAnIndex: a missing tag or repository is
// said in plain words, once, with the registry's answer still wrapped; an
// image index is "not a bundle" for -b, and for -i ferry names its images
// rather than silently picking a platform.
func TestPullSaysNotFoundAndRefusesAnIndex(t *testing.T) {
	reg := testregistry.NewGGCR(t)
	opts := reg.RemoteOptions(t)
	bref, _ := pushBundle(t, reg.Host)
	idx, err := random.Index(100, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	iref, err := name.ParseReference(reg.Repo("app/idx") + ":v1")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(iref, idx, opts...); err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		ref    string
		bundle bool
		want   []string
		notFnd bool
	}{
		{bref.Context().String() + ":v9", true, []string{"bundle " + bref.Context().String() + ":v9 not found: the repository has no tag v9 (ferry tag list -i " + bref.Context().String() + " lists them)"}, true},
		{reg.Repo("nosuch") + ":v1", false, []string{"image " + reg.Repo("nosuch") + ":v1 not found: " + reg.Host + " has no repository nosuch"}, true},
		{iref.String(), true, []string{iref.String() + " is an image index (application/vnd.oci.image.index.v1+json), not a bundle"}, false},
		{iref.String(), false, []string{iref.String() + " is an image index", "does not pick a platform",
			reg.Repo("app/idx") + "@" + im.Manifests[0].Digest.String(), reg.Repo("app/idx") + "@" + im.Manifests[1].Digest.String()}, false},
	} {
		ref, err := name.ParseReference(tc.ref)
		if err != nil {
			t.Fatal(err)
		}
		_, err = Pull(context.Background(), ref, filepath.Join(t.TempDir(), "out"), Options{Bundle: tc.bundle, Remote: opts})
		if err == nil {
			t.Fatalf("pull %s: no error", tc.ref)
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("pull %s: error %q does not say %q", tc.ref, err, w)
			}
		}
		if strings.Count(err.Error(), tc.ref) != 1 {
			t.Errorf("pull %s: error %q names the reference %d times, want once", tc.ref, err, strings.Count(err.Error(), tc.ref))
		}
		var te *transport.Error
		if tc.notFnd && !errors.As(err, &te) {
			t.Errorf("pull %s: the registry's answer is not wrapped: %v", tc.ref, err)
		}
	}
}
