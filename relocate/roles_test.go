package relocate_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/archive"
	"github.com/ferry-dev/ferry/relocate"
)

// relabel rewrites a plain tar archive's index.json so that the entry of d
// has role.
func relabel(t *testing.T, plain []byte, d v1.Hash, role archive.Role) []byte {
	t.Helper()
	changed := 0
	out := rewriteTar(t, plain, func(name string, body []byte) ([]byte, bool) {
		if name != "index.json" {
			return body, true
		}
		var idx v1.IndexManifest
		if err := json.Unmarshal(body, &idx); err != nil {
			t.Fatal(err)
		}
		for i := range idx.Manifests {
			if idx.Manifests[i].Digest == d {
				idx.Manifests[i].Annotations[archive.AnnotationRole] = string(role)
				changed++
			}
		}
		return impMust(json.Marshal(idx)), true
	})
	if changed != 1 {
		t.Fatalf("index.json lists %s %d times, want once", d, changed)
	}
	return out
}

// A nested bundle that index.json calls a plain image (its images.yml
// would go unchecked, its locations entry say it is no bundle, pull -r
// skip it) is refused by import, before any tag, and by verify; a dry run
// from a file refuses it too, one from a stream says what it could not
// check.
func TestARelabelledBundleIsRefused(t *testing.T) {
	src := impNewSource(t, 0)
	nested := impMust(src.nested.Digest())
	data := relabel(t, impZstdToTar(t, src.export(t)), nested, archive.RoleImage)

	path := filepath.Join(t.TempDir(), "relabelled.tar")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := relocate.VerifyFile(context.Background(), path, relocate.VerifyOptions{}); err == nil || !strings.Contains(err.Error(), nested.String()) || !strings.Contains(err.Error(), "dev.carvel.imgpkg.bundle") {
		t.Errorf("verify: %v; want it to name %s and the label", err, nested)
	}

	dst := impNewDest(t, false)
	opts := dst.options(t)
	opts.DryRun = true
	res, err := relocate.Import(context.Background(), bytes.NewReader(data), dst.repo, opts)
	if err != nil {
		t.Fatalf("dry run from a stream: %v", err)
	}
	if len(res.Unchecked) == 0 {
		t.Errorf("a dry run from a stream, with no bundle layer at the destination, says it checked everything: %+v", res)
	}

	_, err = relocate.Import(context.Background(), bytes.NewReader(data), dst.repo, dst.options(t))
	if err == nil {
		t.Fatal("import accepted a bundle that index.json calls an image")
	}
	for _, want := range []string{nested.String(), "nothing tagged", "dev.carvel.imgpkg.bundle"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if tags := dst.tags(t); len(tags) != 0 {
		t.Errorf("tags written: %v", tags)
	}
	// The layers and configs are in now: a dry run reads them and refuses.
	if _, err := relocate.Import(context.Background(), bytes.NewReader(data), dst.repo, opts); err == nil || !strings.Contains(err.Error(), nested.String()) {
		t.Errorf("dry run with the blobs at the destination: %v; want the refusal", err)
	}
}
