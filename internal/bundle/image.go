package bundle

import (
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// imgpkgImage wraps one layer the way imgpkg does for bundles, plain images
// and locations images alike: a Docker schema2 manifest over a config whose
// only history entry is imgpkg's and whose times are Go's zero time, which is
// what makes the digest depend on the content alone.
func imgpkgImage(layer v1.Layer, labels map[string]string) (v1.Image, error) {
	img, err := mutate.Append(empty.Image, mutate.Addendum{
		Layer: layer,
		History: v1.History{
			Author:    "imgpkg",
			CreatedBy: "imgpkg",
			Created:   v1.Time{},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("appending layer: %w", err)
	}
	if len(labels) == 0 {
		return img, nil
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	cfg = cfg.DeepCopy()
	cfg.Config.Labels = labels
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		return nil, fmt.Errorf("setting labels: %w", err)
	}
	return img, nil
}
