package manifest

import (
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/types"
)

func TestCheckType(t *testing.T) {
	const (
		image       = `{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":2,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},"layers":[]}`
		index       = `{"schemaVersion":2,"manifests":[]}`
		typedOCI    = `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":2,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},"layers":[]}`
		typedDocker = `{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":2,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},"layers":[]}`
		typedList   = `{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[]}`
		noConfig    = `{"schemaVersion":2,"layers":[]}`
		bothKinds   = `{"schemaVersion":2,"manifests":[],"config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":2,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"}}`
	)
	for _, tc := range []struct {
		name string
		mt   types.MediaType
		raw  string
		want string // "" for no error
	}{
		{"image without mediaType, declared an image", types.OCIManifestSchema1, image, ""},
		{"docker image declared docker", types.DockerManifestSchema2, typedDocker, ""},
		{"docker image without mediaType", types.DockerManifestSchema2, image, "no mediaType field"},
		{"index without mediaType, declared an index", types.OCIImageIndex, index, ""},
		{"docker list declared docker", types.DockerManifestList, typedList, ""},
		{"docker list without mediaType", types.DockerManifestList, index, "no mediaType field"},
		{"docker list with null mediaType", types.DockerManifestList, `{"schemaVersion":2,"mediaType":null,"manifests":[]}`, "no mediaType field"},
		{"image without mediaType, declared an index", types.OCIImageIndex, image, "it is an image manifest"},
		{"index without mediaType, declared an image", types.OCIManifestSchema1, index, "it is an index"},
		{"image declared a docker list", types.DockerManifestList, image, "it is an image manifest"},
		{"typed image declared an index", types.OCIImageIndex, typedOCI, "its mediaType is application/vnd.oci.image.manifest.v1+json"},
		{"typed image declared docker", types.DockerManifestSchema2, typedOCI, "its mediaType is"},
		{"image without config", types.OCIManifestSchema1, noConfig, "no config"},
		{"both kinds declared an index", types.OCIImageIndex, bothKinds, "it is an image manifest"},
		{"both kinds declared an image", types.OCIManifestSchema1, bothKinds, "it is an index"},
		{"not JSON", types.OCIManifestSchema1, "{", "not valid JSON"},
		// null is absent, as distribution reads it.
		{"index with null config and layers", types.OCIImageIndex, `{"schemaVersion":2,"manifests":[],"config":null,"layers":null}`, ""},
		{"image with null manifests", types.OCIManifestSchema1, `{"schemaVersion":2,"manifests":null,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":2,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},"layers":[]}`, ""},
		{"image with null config", types.OCIManifestSchema1, `{"schemaVersion":2,"config":null,"layers":[]}`, "no config"},
		{"other media types are the caller's", types.MediaType("application/json"), index, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckType(tc.mt, []byte(tc.raw))
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("CheckType: %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("CheckType: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
