package relocate

import (
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/ferry-dev/ferry/internal/bundle"
	"github.com/ferry-dev/ferry/internal/registry"
)

// A node's image read straight from its repository gives its config to any
// caller (go-containerregistry's ConfigFile among them) only bounded and
// checked: a declared size over bundle.MaxConfigSize is refused before any
// fetch, and bytes that disagree with the descriptor are refused too.
func TestRepoImageConfigIsBoundedAndChecked(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	img := must(random.Image(100, 1))
	ref := must(name.NewDigest(w.pushImage(t, "cfg", img)))
	repo := must(registry.New(w.ep.ClientOptions()).Repo(ctx, ref.Context(), registry.Access{}))
	m := must(img.Manifest())

	imageWith := func(cfg v1.Descriptor) v1.Image {
		mf := *m
		mf.Config = cfg
		raw := must(json.Marshal(&mf))
		n := &node{source: ref, repo: repo, config: mf.Config, raw: raw, mediaType: mf.MediaType}
		return must(n.image(ctx))
	}
	if _, err := imageWith(m.Config).ConfigFile(); err != nil {
		t.Fatalf("the config as pushed: %v", err)
	}

	huge := m.Config
	huge.Size = bundle.MaxConfigSize + 1
	w.reg.ResetCounts()
	if _, err := imageWith(huge).ConfigFile(); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Errorf("a config declaring %d bytes: want a refusal naming the cap, got %v", huge.Size, err)
	}
	for _, r := range w.reg.Requests() {
		if strings.Contains(r.Path, "/blobs/") {
			t.Errorf("the oversized config was fetched: %s %s", r.Method, r.Path)
		}
	}

	short := m.Config
	short.Size--
	if _, err := imageWith(short).ConfigFile(); err == nil || !strings.Contains(err.Error(), short.Digest.String()) {
		t.Errorf("a config longer than its descriptor says: want an error naming %s, got %v", short.Digest, err)
	}

	// A layer is checked as it streams (a bundle layer too large to keep
	// is read that way): bytes that disagree with its descriptor fail at
	// their end.
	layer := m.Layers[0]
	wrong := *m
	wrong.Layers = []v1.Descriptor{layer}
	wrong.Layers[0].Size--
	raw := must(json.Marshal(&wrong))
	n := &node{source: ref, repo: repo, config: wrong.Config, raw: raw, mediaType: wrong.MediaType}
	l := must(must(n.image(ctx)).LayerByDigest(layer.Digest))
	rc := must(l.Compressed())
	defer rc.Close()
	if _, err := io.ReadAll(rc); err == nil {
		t.Errorf("layer %s read to its end with a descriptor one byte short: want an error", layer.Digest)
	}
}
