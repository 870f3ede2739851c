package e2e

import (
	"archive/tar"
	"encoding/json"
	"io"
	"sort"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/internal/testregistry"
)

// TestImportedLocationsImagesHoldHandWrittenYAML reads the image-locations
// images an import wrote back from the registry with go-containerregistry
// and compares them with what imgpkg would write, spelled out by hand in the
// format of fixtures/golden/image-locations.yml, so that this check does not
// rest on ferry's own LocationsImage (which wantTags uses).
func TestImportedLocationsImagesHoldHandWrittenYAML(t *testing.T) {
	f, archive := exported(t)
	dst := testregistry.NewDistribution(t)
	repo := dst.Repo("far/locations")
	mustFerry(t, "import", "-f", archive, "--to-repo", repo)

	// The root locks app1, app2, the nested bundle and the index: in one
	// registry their references sort by repository path, which is the
	// order written here.
	refs := []string{f.app1.String(), f.app2.String(), f.inner.String(), f.index.String()}
	if !sort.StringsAreSorted(refs) {
		t.Fatalf("fixture references are not in the order assumed: %v", refs)
	}
	rootYAML := "---\n" +
		"apiVersion: imgpkg.carvel.dev/v1alpha1\n" +
		"images:\n" +
		"- image: " + f.app1.String() + "\n" +
		"  isBundle: false\n" +
		"- image: " + f.app2.String() + "\n" +
		"  isBundle: false\n" +
		"- image: " + f.inner.String() + "\n" +
		"  isBundle: true\n" +
		"- image: " + f.index.String() + "\n" +
		"  isBundle: false\n" +
		"kind: ImageLocations\n"
	innerYAML := "---\n" +
		"apiVersion: imgpkg.carvel.dev/v1alpha1\n" +
		"images:\n" +
		"- image: " + f.app3.String() + "\n" +
		"  isBundle: false\n" +
		"kind: ImageLocations\n"

	for _, tc := range []struct {
		bundle, want string
	}{
		{f.rootDigest, rootYAML},
		{f.inner.DigestStr(), innerYAML},
	} {
		tag := repo + ":sha256-" + hexOf(tc.bundle) + ".image-locations.imgpkg"
		got := readLocationsImage(t, dst, tag)
		if got != tc.want {
			t.Errorf("%s holds\n%s\nwant\n%s", tag, got, tc.want)
		}
	}
}

// readLocationsImage pulls a locations image, checks its shape (Docker
// schema2, one layer, a config with created 0001-01-01T00:00:00Z and no
// labels, the layer holding "." and image-locations.yml as imgpkg writes
// them) and returns image-locations.yml.
func readLocationsImage(t *testing.T, reg *testregistry.Registry, ref string) string {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r, reg.RemoteOptions(t)...)
	if err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
	if mt, _ := img.MediaType(); mt != types.DockerManifestSchema2 {
		t.Errorf("%s: media type %s, want %s", ref, mt, types.DockerManifestSchema2)
	}
	raw, err := img.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Created *string `json:"created"`
		Config  struct {
			Labels map[string]string `json:"Labels"`
		} `json:"config"`
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatalf("%s: config: %v", ref, err)
	}
	if cfg.Created == nil || *cfg.Created != "0001-01-01T00:00:00Z" {
		t.Errorf("%s: config created %v, want 0001-01-01T00:00:00Z\n%s", ref, cfg.Created, raw)
	}
	if cfg.Config.Labels != nil {
		t.Errorf("%s: config has labels %v, want none", ref, cfg.Config.Labels)
	}

	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("%s: %d layers (%v), want 1", ref, len(layers), err)
	}
	if mt, _ := layers[0].MediaType(); mt != types.DockerLayer {
		t.Errorf("%s: layer media type %s, want %s", ref, mt, types.DockerLayer)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	var names []string
	var yml string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: layer: %v", ref, err)
		}
		names = append(names, h.Name)
		switch h.Name {
		case ".":
			if h.Typeflag != tar.TypeDir || h.Mode&0o777 != 0o700 {
				t.Errorf("%s: entry . type %q mode %o, want a 0700 directory", ref, h.Typeflag, h.Mode)
			}
		case "image-locations.yml":
			if h.Typeflag != tar.TypeReg || h.Mode&0o777 != 0o600 {
				t.Errorf("%s: image-locations.yml type %q mode %o, want a 0600 file", ref, h.Typeflag, h.Mode)
			}
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			yml = string(b)
		}
	}
	if len(names) != 2 || names[0] != "." || names[1] != "image-locations.yml" {
		t.Errorf("%s: layer entries %v, want [. image-locations.yml]", ref, names)
	}
	return yml
}
