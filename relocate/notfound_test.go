package relocate_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/ferry-dev/ferry/internal/testregistry"
	"github.com/ferry-dev/ferry/relocate"
)

// TestResolveSaysNotFoundInPlainWords: a missing tag, repository or
// digest, and an image a bundle locks that is gone, are said in plain
// words (which of them is missing, the digest once and short), not as the
// request's URL and the registry's error code; the registry's answer stays
// wrapped for callers.
func TestResolveSaysNotFoundInPlainWords(t *testing.T) {
	for kind, reg := range map[string]*testregistry.Registry{"ggcr": testregistry.NewGGCR(t), "distribution": testregistry.NewDistribution(t)} {
		// go-containerregistry's registry says NAME_UNKNOWN of a missing
		// repository; distribution says MANIFEST_UNKNOWN (unknown tag),
		// and ferry does not ask again.
		noRepo := reg.Host + " has no repository app/nosuch"
		if kind == "distribution" {
			noRepo = "the repository has no tag v1 (ferry tag list -i " + reg.Repo("app/nosuch") + " lists them)"
		}
		opts := reg.RemoteOptions(t)
		img := impMust(random.Image(100, 1))
		if err := remote.Write(impMust(name.NewTag(reg.Repo("app/m1")+":v1")), img, opts...); err != nil {
			t.Fatal(err)
		}
		gone := impMust(random.Image(100, 1))
		goneD := impMust(gone.Digest())
		goneRef := reg.Repo("app/m1") + "@" + goneD.String()
		relocate.PushTestBundle(t, &reg.Endpoint, opts, "app/bundle", "v1", []string{goneRef})
		bundleRef := reg.Repo("app/bundle") + ":v1"
		short := func(s string) string { return s[:len("sha256:")+12] }

		for _, tc := range []struct {
			src  relocate.Source
			want string
		}{
			{relocate.Source{Bundle: reg.Repo("app/m1") + ":v9"},
				"bundle " + reg.Repo("app/m1") + ":v9 not found: the repository has no tag v9 (ferry tag list -i " + reg.Repo("app/m1") + " lists them)"},
			{relocate.Source{Image: reg.Repo("app/nosuch") + ":v1"},
				"image " + reg.Repo("app/nosuch") + ":v1 not found: " + noRepo},
			{relocate.Source{Image: reg.Repo("app/m1") + "@" + goneD.String()},
				"image " + reg.Repo("app/m1") + "@" + short(goneD.String()) + " not found: the repository has no manifest with that digest"},
			{relocate.Source{Bundle: bundleRef},
				"image " + reg.Repo("app/m1") + "@" + short(goneD.String()) + " (locked by bundle " + bundleRef + ") not found: the repository has no manifest with that digest"},
		} {
			_, err := relocate.Resolve(context.Background(), tc.src, relocate.Options{Remote: opts})
			if err == nil {
				t.Fatalf("%v: resolved", tc.src)
			}
			if err.Error() != tc.want {
				t.Errorf("%s %v:\n got %s\nwant %s", kind, tc.src, err, tc.want)
			}
			var te *transport.Error
			if !errors.As(err, &te) {
				t.Errorf("%v: the registry's answer is not wrapped: %v", tc.src, err)
			}
			if strings.Count(err.Error(), goneD.Hex[:12]) > 1 {
				t.Errorf("%v: the digest is repeated: %s", tc.src, err)
			}
		}
	}
}
