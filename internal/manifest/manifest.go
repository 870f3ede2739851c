// Package manifest checks that a manifest's bytes are of the kind its
// declared media type says. A registry's Content-Type, a descriptor's
// mediaType and imgpkg's manifest.json all declare a type that the bytes
// themselves need not repeat (the mediaType field is optional in OCI), so
// a reader that trusted the declaration alone could take an image for an
// index with no children and carry it without its config and layers.
package manifest

import (
	"encoding/json"
	"fmt"

	"github.com/google/go-containerregistry/pkg/v1/types"
)

// CheckType checks raw, an image manifest or index declared to be of type
// mt (an image or index media type), the way the CNCF distribution
// registry does before storing one: a mediaType field must be mt, and is
// required for Docker's types (distribution refuses a Docker manifest or
// list without one: its schema makes the field mandatory), optional for
// OCI's; an index has no config or layers; an image manifest has a config
// and no list of manifests. It returns nil for other media types, which
// callers refuse or handle themselves. The error says what the bytes are
// and what was declared, for the caller to wrap with where they came from.
func CheckType(mt types.MediaType, raw []byte) error {
	if !mt.IsImage() && !mt.IsIndex() {
		return nil
	}
	var probe struct {
		MediaType types.MediaType `json:"mediaType"`
		Manifests json.RawMessage `json:"manifests"`
		Config    json.RawMessage `json:"config"`
		Layers    json.RawMessage `json:"layers"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil {
		return fmt.Errorf("not valid JSON: %w", err)
	}
	// A field given as null is absent, as for distribution's validators.
	has := func(f json.RawMessage) bool { return len(f) > 0 && string(f) != "null" }
	if probe.MediaType != "" && probe.MediaType != mt {
		return fmt.Errorf("its mediaType is %s, but it was declared %s", probe.MediaType, mt)
	}
	switch {
	case mt.IsIndex() && (has(probe.Config) || has(probe.Layers)):
		return fmt.Errorf("declared an index (%s), but it has a config or layers: it is an image manifest", mt)
	case mt.IsImage() && has(probe.Manifests):
		return fmt.Errorf("declared an image manifest (%s), but it has a list of manifests: it is an index", mt)
	case mt.IsImage() && !has(probe.Config):
		return fmt.Errorf("declared an image manifest (%s), but it has no config", mt)
	}
	// The kind is checked first: bytes of the other kind say more than a
	// missing field.
	if probe.MediaType == "" && (mt == types.DockerManifestSchema2 || mt == types.DockerManifestList) {
		return fmt.Errorf("declared %s, but it has no mediaType field, which a Docker manifest or manifest list must have: a registry such as CNCF distribution refuses to store it", mt)
	}
	return nil
}
