package relocate_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferry-dev/ferry/relocate"
)

// imagesLockYAML is an ImagesLock as imgpkg writes one
// (sigs.k8s.io/yaml after a "---" line: keys sorted, sequences not
// indented), written out by hand: images in the given order, each with
// its annotations, sorted by key.
func imagesLockYAML(images []string, annotations []map[string]string) string {
	var b strings.Builder
	b.WriteString("---\napiVersion: imgpkg.carvel.dev/v1alpha1\nimages:\n")
	for i, im := range images {
		if i < len(annotations) && len(annotations[i]) > 0 {
			b.WriteString("- annotations:\n")
			var keys []string
			for k := range annotations[i] {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				b.WriteString("    " + k + ": " + annotations[i][k] + "\n")
			}
			b.WriteString("  image: " + im + "\n")
			continue
		}
		b.WriteString("- image: " + im + "\n")
	}
	b.WriteString("kind: ImagesLock\n")
	return b.String()
}

// TestLockOutputOfImagesIsImgpkgs: without a root bundle, --lock-output
// writes what imgpkg's copy writes (pkg/imgpkg/cmd/copy.go,
// writeImagesLockOutput), where ferry refused it:
//
//   - copy -i (with cosign signatures): an ImagesLock naming every image
//     copied, the image and its signature, at DEST@digest, in the order
//     of the references they were copied from (imgpkg sorts its
//     processed images by them);
//   - an import of that copy's archive, as imgpkg's copy --tar of an -i
//     tarball: the same;
//   - copy --lock images.yml: that file's images, in its order, each
//     rewritten to DEST@digest, their annotations kept;
//
// and a dry run writes none.
func TestLockOutputOfImagesIsImgpkgs(t *testing.T) {
	s := newArtSource(t)
	ctx := context.Background()
	app1, sig := impMust(s.app1.Digest()), impMust(s.sig.Digest())
	// The sources as imgpkg names them: repository@digest; the
	// signature is found beside its image.
	type copied struct{ source, digest string }
	sources := []copied{
		{s.ep.Repo("src/app1") + "@" + app1.String(), app1.String()},
		{s.ep.Repo("src/app1") + "@" + sig.String(), sig.String()},
	}
	sort.Slice(sources, func(i, j int) bool { return sources[i].source < sources[j].source })

	// -i by tag, so that the image is also the root (the entry with the
	// original tag).
	app1Repo := impMust(name.NewRepository(s.ep.Repo("src/app1")))
	if err := remote.Write(app1Repo.Tag("v1"), s.app1, s.opts...); err != nil {
		t.Fatal(err)
	}
	p, err := relocate.Resolve(ctx, relocate.Source{Image: app1Repo.Tag("v1").String()}, relocate.Options{Remote: s.opts, CosignSignatures: true})
	if err != nil {
		t.Fatal(err)
	}
	read := func(t *testing.T, path string) string {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	wantImages := func(dst *impDest) string {
		var images []string
		for _, c := range sources {
			images = append(images, dst.repo.Name()+"@"+c.digest)
		}
		return imagesLockYAML(images, nil)
	}

	t.Run("copy -i", func(t *testing.T) {
		dst := impNewDest(t, false)
		out := filepath.Join(t.TempDir(), "lock.yml")
		opts := cpOptions(t, dst)
		opts.LockOutput = out
		opts.DryRun = true
		if _, err := relocate.Copy(ctx, p, dst.repo, opts); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Errorf("a dry run wrote the lock output (%v)", err)
		}
		opts.DryRun = false
		if _, err := relocate.Copy(ctx, p, dst.repo, opts); err != nil {
			t.Fatal(err)
		}
		if got, want := read(t, out), wantImages(dst); got != want {
			t.Errorf("lock output\n%s\nwant\n%s", got, want)
		}
	})

	t.Run("import of -i", func(t *testing.T) {
		var buf bytes.Buffer
		if _, err := relocate.Export(ctx, p, &buf, relocate.ExportOptions{Remote: s.opts}); err != nil {
			t.Fatal(err)
		}
		dst := impNewDest(t, false)
		out := filepath.Join(t.TempDir(), "lock.yml")
		opts := dst.options(t)
		opts.LockOutput = out
		if _, err := relocate.Import(ctx, bytes.NewReader(buf.Bytes()), dst.repo, opts); err != nil {
			t.Fatal(err)
		}
		if got, want := read(t, out), wantImages(dst); got != want {
			t.Errorf("lock output\n%s\nwant\n%s", got, want)
		}
	})

	t.Run("copy --lock images.yml", func(t *testing.T) {
		// app2 first: the file's order is kept, whatever the digests'.
		in := filepath.Join(t.TempDir(), "images.yml")
		annotations := []map[string]string{{"kbld.carvel.dev/id": "example.com/app2", "note": "second"}, nil, {"kbld.carvel.dev/id": "example.com/multi"}}
		refs := []string{s.app2Ref, s.app1Ref, s.idxRef}
		if err := os.WriteFile(in, []byte(imagesLockYAML(refs, annotations)), 0o644); err != nil {
			t.Fatal(err)
		}
		p, err := relocate.Resolve(ctx, relocate.Source{LockFile: in}, relocate.Options{Remote: s.opts})
		if err != nil {
			t.Fatal(err)
		}
		dst := impNewDest(t, false)
		out := filepath.Join(t.TempDir(), "lock.yml")
		opts := cpOptions(t, dst)
		opts.LockOutput = out
		if _, err := relocate.Copy(ctx, p, dst.repo, opts); err != nil {
			t.Fatal(err)
		}
		var images []string
		for _, d := range []v1.Hash{impMust(s.app2.Digest()), app1, impMust(s.idx.Digest())} {
			images = append(images, dst.repo.Name()+"@"+d.String())
		}
		if got, want := read(t, out), imagesLockYAML(images, annotations); got != want {
			t.Errorf("lock output\n%s\nwant\n%s", got, want)
		}

		// The archive of that lock, imported as imgpkg's copy --tar of
		// a tarball of images: the lock's order is gone, and the images
		// come sorted by the references they were copied from, across
		// three repositories (app1 before app2 before multi, whatever
		// their digests), as imgpkg sorts its processed images.
		var buf bytes.Buffer
		if _, err := relocate.Export(ctx, p, &buf, relocate.ExportOptions{Remote: s.opts}); err != nil {
			t.Fatal(err)
		}
		idst := impNewDest(t, false)
		iout := filepath.Join(t.TempDir(), "lock.yml")
		iopts := idst.options(t)
		iopts.LockOutput = iout
		if _, err := relocate.Import(ctx, bytes.NewReader(buf.Bytes()), idst.repo, iopts); err != nil {
			t.Fatal(err)
		}
		bySource := []copied{
			{s.ep.Repo("src/app2") + "@" + impMust(s.app2.Digest()).String(), impMust(s.app2.Digest()).String()},
			{s.ep.Repo("src/app1") + "@" + app1.String(), app1.String()},
			{s.ep.Repo("src/multi") + "@" + impMust(s.idx.Digest()).String(), impMust(s.idx.Digest()).String()},
		}
		sort.Slice(bySource, func(i, j int) bool { return bySource[i].source < bySource[j].source })
		images = nil
		for _, c := range bySource {
			images = append(images, idst.repo.Name()+"@"+c.digest)
		}
		if got, want := read(t, iout), imagesLockYAML(images, nil); got != want {
			t.Errorf("import of the lock's archive: lock output\n%s\nwant\n%s", got, want)
		}
	})
}
