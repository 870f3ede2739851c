package relocate_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/archive"
	"github.com/ferry-dev/ferry/fixtures/golden"
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
	// Each line names the bundle, its digest in parentheses, and says why
	// in words: one parenthesis after another read as two asides.
	for _, u := range res.Unchecked {
		if !strings.Contains(u, "whose layer is not at hand") || strings.Contains(u, ") (") {
			t.Errorf("dry run: not checked %q; want the reason in words, no parentheses back to back", u)
		}
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

// In a delta that left the relabelled bundle's config out (its base has
// it, with the bundles' layers), verify cannot check it alone and says
// so; given the base, it reads the config there and refuses.
func TestVerifyReadsALeftOutConfigFromTheBase(t *testing.T) {
	src := impNewSource(t, 0)
	ctx := context.Background()
	dir := t.TempDir()
	base := filepath.Join(dir, "v1.tar.zst")
	if err := os.WriteFile(base, src.export(t), 0o644); err != nil {
		t.Fatal(err)
	}
	since, err := relocate.ReadSince(t.Context(), base, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := relocate.Resolve(ctx, relocate.Source{Bundle: src.rootTagRef}, relocate.Options{Remote: src.opts})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := relocate.Export(ctx, p, &buf, relocate.ExportOptions{Remote: src.opts, CreatedBy: "ferry tests", Since: []*relocate.Since{since}}); err != nil {
		t.Fatal(err)
	}
	nested := impMust(src.nested.Digest())
	delta := filepath.Join(dir, "delta.tar")
	if err := os.WriteFile(delta, relabel(t, impZstdToTar(t, buf.Bytes()), nested, archive.RoleImage), 0o644); err != nil {
		t.Fatal(err)
	}

	res, err := relocate.VerifyFile(ctx, delta, relocate.VerifyOptions{})
	if err != nil {
		t.Fatalf("verify without the base: %v", err)
	}
	if len(res.Unchecked) == 0 {
		t.Errorf("verify without the base claims to have checked everything: %+v", res)
	}
	_, err = relocate.VerifyFile(ctx, delta, relocate.VerifyOptions{Since: []string{base}})
	if err == nil || !strings.Contains(err.Error(), nested.String()) || !strings.Contains(err.Error(), "dev.carvel.imgpkg.bundle") {
		t.Errorf("verify with the base: %v; want the relabelled bundle refused", err)
	}
}

// An imgpkg tarball verified front to back (gzip-compressed here) is
// reported as one, with no seek table status (it has no frames of ferry's).
func TestVerifyNamesAGzippedImgpkgTarball(t *testing.T) {
	gold, err := golden.ReadFile("basic.imgpkg.tar")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "basic.imgpkg.tar.gz")
	if err := os.WriteFile(path, impGzip(t, gold), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := relocate.VerifyFile(context.Background(), path, relocate.VerifyOptions{})
	if err != nil || res.Format != relocate.FormatImgpkg || res.SeekTable != "" {
		t.Fatalf("verify: %+v, %v; want format imgpkg and no seek table status", res, err)
	}
}

// reseal reads a ferry archive and writes it again, seekable, with the
// index.json edit returns: a hostile archive that a file reader takes.
func reseal(t *testing.T, data []byte, edit func([]byte) []byte) []byte {
	t.Helper()
	ar, err := archive.NewReader(bytes.NewReader(data), archive.ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer ar.Close()
	head := ar.Head()
	index := edit(impMust(json.Marshal(head.Index)))
	var out bytes.Buffer
	w, err := archive.NewWriter(&out, archive.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteHeader(index, head.Manifests); err != nil {
		t.Fatal(err)
	}
	for {
		d, size, rd, err := ar.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := w.WriteBlob(d, size, rd); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// serve's view of an archive as a repository (--repo) is what an import
// would make: an archive import refuses for a relabelled bundle is refused.
func TestRepoViewRefusesARelabelledBundle(t *testing.T) {
	src := impNewSource(t, 0)
	nested := impMust(src.nested.Digest())
	data := reseal(t, src.export(t), func(index []byte) []byte {
		var idx v1.IndexManifest
		if err := json.Unmarshal(index, &idx); err != nil {
			t.Fatal(err)
		}
		for i := range idx.Manifests {
			if idx.Manifests[i].Digest == nested {
				idx.Manifests[i].Annotations[archive.AnnotationRole] = string(archive.RoleImage)
			}
		}
		return impMust(json.Marshal(idx))
	})
	_, err := relocate.RepoView(t.Context(), openArchive(t, data), "far/release", relocate.RepoViewOptions{})
	if err == nil || !strings.Contains(err.Error(), nested.String()) || !strings.Contains(err.Error(), "dev.carvel.imgpkg.bundle") {
		t.Fatalf("RepoView: %v; want the relabelled bundle refused", err)
	}
}
