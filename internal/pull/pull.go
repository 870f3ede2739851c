// Package pull writes a bundle (or a plain image) from a registry into a
// local directory, and points the bundle's images.yml at the repository the
// bundle was pulled from when the bundle has been relocated there.
package pull

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/ferry-dev/ferry/internal/atomicfile"
	"github.com/ferry-dev/ferry/internal/bundle"
	"github.com/ferry-dev/ferry/internal/progress"
	"github.com/ferry-dev/ferry/internal/regerr"
	"github.com/ferry-dev/ferry/internal/safetar"
	"github.com/ferry-dev/ferry/lock"
	"github.com/ferry-dev/ferry/tags"
)

// Options control a pull.
type Options struct {
	// Bundle says the reference must be a bundle (-b); otherwise it must be
	// a plain image (-i), as imgpkg insists.
	Bundle bool
	// Recursive pulls nested bundles into .imgpkg/bundles/sha256-<hex>/ of
	// the output directory, as imgpkg pull -r does.
	Recursive bool
	// Overwrite allows a non-empty output directory, whose contents are
	// replaced.
	Overwrite bool
	// Remote and Name configure registry access.
	Remote []remote.Option
	Name   []name.Option
	// Reporter receives the phases of the pull (fetching a manifest,
	// downloading a layer, byte by byte, extracting it, checking where
	// images.yml points), one line per step, and warnings.
	Reporter progress.Reporter
}

// Rewrite says how a bundle's images.yml was treated.
type Rewrite string

const (
	// RewriteNone: there is no locations image and some image is not in
	// the bundle's repository (the bundle has not been relocated there), so
	// images.yml is left as pushed, as imgpkg leaves it.
	RewriteNone Rewrite = "none"
	// RewriteLocations: the bundle's image-locations image was found in its
	// repository and images.yml now points there.
	RewriteLocations Rewrite = "locations-image"
	// RewriteChecked: no locations image, but every image exists as
	// REPO@digest in the bundle's repository, so images.yml points there.
	RewriteChecked Rewrite = "checked-digests"
)

// Result describes what a pull wrote.
type Result struct {
	Ref     string  `json:"ref"`
	Digest  string  `json:"digest"`
	Dir     string  `json:"dir"`
	Bundle  bool    `json:"bundle"`
	Rewrite Rewrite `json:"imagesLockRewrite,omitempty"`
	// Bytes is the size of the layer downloaded for this bundle or image
	// (nested bundles count in their own Result).
	Bytes  int64    `json:"bytes"`
	Nested []Result `json:"nestedBundles,omitempty"`
}

// TotalBytes is the bytes downloaded for r and every nested bundle.
func (r *Result) TotalBytes() int64 {
	n := r.Bytes
	for i := range r.Nested {
		n += r.Nested[i].TotalBytes()
	}
	return n
}

// Pull writes the image or bundle at ref into dir.
func Pull(ctx context.Context, ref name.Reference, dir string, opts Options) (*Result, error) {
	opts.Reporter = progress.OrNop(opts.Reporter)
	opts.Remote = append([]remote.Option{remote.WithContext(ctx)}, opts.Remote...)
	empty, err := safetar.CheckEmptyDir(dir)
	if err != nil {
		return nil, err
	}
	p := &puller{opts: opts, root: dir, seen: map[v1.Hash]bool{}}
	defer opts.Reporter.Done()
	var made []string
	if empty || !opts.Overwrite {
		made = missingDirs(dir)
		// Creates a missing dir; refuses a non-empty one without Overwrite.
		if err := safetar.PrepareDir(dir, false); err != nil {
			return nil, errors.Join(err, removeDirs(made))
		}
	} else {
		// The user's files go only once the new layer is downloaded and
		// verified, so a refused login or a dropped connection keeps them.
		p.clear = func() error { return safetar.PrepareDir(dir, true) }
	}
	res, err := p.pull(ctx, ref, dir, opts.Bundle)
	if err != nil {
		// Before extraction began, the directory is untouched.
		if p.clear != nil {
			return nil, pullError(ref, err)
		}
		// Once it began, only what this pull created is removed, newest
		// first: another pull into the same directory, or a file the user
		// dropped there meanwhile, stays, and so does a directory holding
		// one. No half-pulled bundle of this pull's is left behind.
		cerr := p.removeCreated()
		if cerr == nil {
			cerr = removeDirs(made)
		}
		if cerr != nil {
			err = errors.Join(err, fmt.Errorf("cleaning up %s: %w", dir, cerr))
		} else if holdsSomething(dir) {
			err = errors.Join(err, fmt.Errorf("left in %s what this pull did not write (another pull into it, or files put there meanwhile), and the directories that hold it", dir))
		}
		return nil, pullError(ref, err)
	}
	return res, nil
}

// namedError is an error whose text begins with the reference pulled.
type namedError struct{ error }

func (e namedError) Unwrap() error { return e.error }

// pullError names ref in front of err, unless err names it already.
func pullError(ref name.Reference, err error) error {
	switch err.(type) {
	case namedError, *regerr.NotFoundError:
		return err
	}
	return fmt.Errorf("pull %s: %w", ref, err)
}

// indexError refuses an image index: a bundle is never one, and ferry
// pulls one image, not a platform it would have to pick. It lists the
// index's images, by full reference, for -i.
func indexError(ref name.Reference, desc *remote.Descriptor, wantBundle bool) error {
	if wantBundle {
		return namedError{fmt.Errorf("%s is an image index (%s), not a bundle", ref, desc.MediaType)}
	}
	var pick []string
	if idx, err := desc.ImageIndex(); err == nil {
		if im, err := idx.IndexManifest(); err == nil {
			for _, m := range im.Manifests {
				p := "unknown platform"
				if m.Platform != nil {
					p = m.Platform.String()
				}
				pick = append(pick, fmt.Sprintf("%s@%s (%s)", ref.Context().Name(), m.Digest, p))
			}
		}
	}
	msg := fmt.Sprintf("%s is an image index (%s): ferry pulls one image and does not pick a platform; pull one of its images with -i", ref, desc.MediaType)
	if len(pick) > 0 {
		msg += ": " + strings.Join(pick, ", ")
	}
	return namedError{errors.New(msg)}
}

// missingDirs lists dir and those of its parents that do not exist, deepest
// first: the directories that PrepareDir is about to create, and a failed
// pull removes.
func missingDirs(dir string) []string {
	var out []string
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); !errors.Is(err, fs.ErrNotExist) {
			return out
		}
		out = append(out, d)
		if filepath.Dir(d) == d {
			return out
		}
	}
}

// removeDirs removes the empty directories dirs, in order; one that holds
// something (another pull's files, or a user's, put there meanwhile)
// stays, and so do those above it.
func removeDirs(dirs []string) error {
	for _, d := range dirs {
		if err := os.Remove(d); err != nil && !errors.Is(err, fs.ErrNotExist) {
			if holdsSomething(d) {
				return nil
			}
			return err
		}
	}
	return nil
}

type puller struct {
	opts  Options
	root  string
	seen  map[v1.Hash]bool
	clear func() error // empties the output directory before the first extraction
	// created are the files and directories this pull created below root,
	// relative to it, in the order created: what a failed pull removes.
	created []string
}

// record notes rel, below dir (root or a nested bundle's directory in
// it), as created by this pull.
func (p *puller) record(dir, rel string) {
	base, err := filepath.Rel(p.root, dir)
	if err != nil {
		return
	}
	p.created = append(p.created, filepath.Join(base, filepath.FromSlash(rel)))
}

// removeCreated removes what this pull created, newest first, through an
// os.Root of the output directory (a directory swapped for a link
// meanwhile leads nowhere outside). What is already gone is skipped, and
// a directory that holds something this pull did not write stays.
func (p *puller) removeCreated() error {
	if len(p.created) == 0 {
		return nil
	}
	root, err := os.OpenRoot(p.root)
	if err != nil {
		return err
	}
	defer root.Close()
	var errs []error
	for i := len(p.created) - 1; i >= 0; i-- {
		rel := p.created[i]
		if err := root.Remove(rel); err != nil && !errors.Is(err, fs.ErrNotExist) && !rootHoldsSomething(root, rel) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// rootHoldsSomething reports whether rel, in root, is a directory with
// something in it.
func rootHoldsSomething(root *os.Root, rel string) bool {
	return nonEmpty(root.Open(rel))
}

// holdsSomething reports whether dir is a directory with something in it.
func holdsSomething(dir string) bool { return nonEmpty(os.Open(dir)) }

// nonEmpty reports whether f, just opened (err), is a directory with
// something in it, and closes it.
func nonEmpty(f *os.File, err error) bool {
	if err != nil {
		return false
	}
	defer f.Close()
	names, _ := f.Readdirnames(1)
	return len(names) > 0
}

func (p *puller) pull(ctx context.Context, ref name.Reference, dir string, wantBundle bool) (*Result, error) {
	rep := p.opts.Reporter
	rep.Start("pull: fetching "+ref.String(), 0)
	what := "image"
	if wantBundle {
		what = "bundle"
	}
	desc, err := remote.Get(ref, p.opts.Remote...)
	if err != nil {
		return nil, regerr.NotFound(what, ref, "", err)
	}
	if desc.MediaType.IsIndex() {
		return nil, indexError(ref, desc, wantBundle)
	}
	img, err := desc.Image()
	if err != nil {
		return nil, err
	}
	digest, err := img.Digest()
	if err != nil {
		return nil, err
	}
	p.seen[digest] = true
	cfg, err := bundle.ReadConfig(img, ref.String())
	if err != nil {
		return nil, err
	}
	isBundle := bundle.IsBundle(cfg)
	switch {
	case wantBundle && !isBundle:
		return nil, namedError{fmt.Errorf("%s is not a bundle (its config has no %q label); use -i to pull a plain image", ref, bundle.LabelKey)}
	case !wantBundle && isBundle:
		return nil, namedError{fmt.Errorf("%s is a bundle; use -b to pull a bundle", ref)}
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	if len(layers) != 1 {
		return nil, fmt.Errorf("%s has %d layers; ferry pulls images with exactly one layer, as imgpkg pushes them", ref, len(layers))
	}
	// Read by digest from the registry: go-containerregistry fetches a
	// layer the registry lacks from the URLs its descriptor lists, on any
	// host it takes for public (a name such as localhost included), and so
	// would let a bundle's author make this machine send requests to its
	// own services.
	d, err := layers[0].Digest()
	if err != nil {
		return nil, err
	}
	layer, err := remote.Layer(ref.Context().Digest(d.String()), p.opts.Remote...)
	if err != nil {
		return nil, err
	}
	size, err := layers[0].Size()
	if err != nil {
		return nil, err
	}
	rep.Start("pull", size)
	local, cleanup, err := fetchLayer(layer, rep)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	rep.Start("pull: extracting into "+dir, 0)
	if p.clear != nil {
		if err := p.clear(); err != nil {
			return nil, err
		}
		p.clear = nil
	}
	rc, err := local.Uncompressed()
	if err != nil {
		return nil, fmt.Errorf("reading layer: %w", err)
	}
	err = safetar.Extract(ctx, rc, dir, safetar.Options{Created: func(rel string) { p.record(dir, rel) }})
	rc.Close()
	if err != nil {
		return nil, err
	}
	res := &Result{Ref: ref.String(), Digest: digest.String(), Dir: dir, Bundle: isBundle, Bytes: size}
	p.opts.Reporter.Logf("pulled %s@%s into %s", ref.Context(), digest, dir)
	if !isBundle {
		return res, nil
	}

	lockPath := filepath.Join(dir, ".imgpkg", "images.yml")
	l, err := lock.ReadImagesLock(lockPath)
	if err != nil {
		return nil, err
	}
	repo := ref.Context()
	checking := "pull: checking where the images " + lockPath + " locks are"
	rep.Start(checking, 0)
	locations, err := p.locations(repo, digest)
	if err != nil {
		return nil, err
	}
	rewritten, how, err := p.relocate(repo, l, locations)
	if err != nil {
		return nil, err
	}
	res.Rewrite = how
	if how != RewriteNone {
		if err := rewriteLock(lockPath, rewritten); err != nil {
			return nil, err
		}
		switch how {
		case RewriteLocations:
			p.opts.Reporter.Logf("rewrote %s to %s (from the bundle's image-locations image)", lockPath, repo)
		case RewriteChecked:
			p.opts.Reporter.Logf("rewrote %s to %s (every image was found there by digest)", lockPath, repo)
		}
	}
	if !p.opts.Recursive {
		return res, nil
	}
	for i, img := range rewritten.Images {
		d, err := name.NewDigest(img.Image, p.opts.Name...)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", img.Image, err)
		}
		h, err := v1.NewHash(d.DigestStr())
		if err != nil {
			return nil, err
		}
		if p.seen[h] {
			continue
		}
		nested, err := p.isBundle(d, locations, l.Images[i])
		if err != nil {
			return nil, fmt.Errorf("nested image %s: %w", img.Image, err)
		}
		if !nested {
			continue
		}
		// The root bundle's own files may already hold this directory.
		// imgpkg's pull removes it before extracting (DirImage.AsDirectory),
		// so the directory named after the digest holds that bundle's files
		// and nothing else; ferry does the same, below the output directory.
		rel := filepath.Join(".imgpkg", "bundles", h.Algorithm+"-"+h.Hex)
		sub := under(p.root, rel)
		// The directories ResetDir is about to make are this pull's.
		var missing []string
		for d := rel; d != "."; d = filepath.Dir(d) {
			if _, err := os.Lstat(filepath.Join(p.root, d)); errors.Is(err, fs.ErrNotExist) {
				missing = append([]string{d}, missing...)
			}
		}
		replaced, err := safetar.ResetDir(p.root, rel)
		for _, d := range missing {
			p.record(p.root, filepath.ToSlash(d))
		}
		if err != nil {
			return nil, fmt.Errorf("nested bundle %s: %w", img.Image, err)
		}
		if replaced {
			p.opts.Reporter.Warnf("removed what the root bundle's own files held at %s: nested bundle %s goes there", sub, d)
		}
		nr, err := p.pull(ctx, d, sub, true)
		if err != nil {
			return nil, fmt.Errorf("nested bundle %s: %w", img.Image, err)
		}
		res.Nested = append(res.Nested, *nr)
		rep.Start(checking, 0)
	}
	return res, nil
}

// under is rel below root, root kept as given ("./out/.imgpkg/…" for
// "./out", where filepath.Join would clean it to "out/.imgpkg/…"): a
// nested bundle's directory, in the Result and in messages, begins as the
// root's does.
func under(root, rel string) string {
	if root != "" && os.IsPathSeparator(root[len(root)-1]) {
		return root + rel
	}
	return root + string(filepath.Separator) + rel
}

// rewriteLock replaces the extracted images.yml at path with l, keeping the
// mode it was extracted with: imgpkg rewrites it in place (os.WriteFile on
// the existing file), so its mode is whatever the layer and the umask gave
// it, while lock.WriteFile makes new files private (0600).
//
// The extraction made it a regular file: anything else there now (a
// symbolic link, which lock.WriteFile would follow) was put there by
// another process, and is refused. The directories above it are not
// checked against a swap: lock.WriteFile takes a path, not an os.Root.
func rewriteLock(path string, l *lock.ImagesLock) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is no longer the file the pull extracted (now %s): not rewritten", path, fi.Mode().Type())
	}
	if err := l.WriteFile(path); err != nil {
		return err
	}
	return os.Chmod(path, fi.Mode().Perm())
}

// locations reads the bundle's image-locations image from repo, or returns
// nil when there is none (or the registry refuses it with 401 or 403: see
// absentForPull).
func (p *puller) locations(repo name.Repository, digest v1.Hash) (*lock.ImageLocations, error) {
	ref := repo.Tag(tags.ImageLocations(digest))
	img, err := remote.Image(ref, p.opts.Remote...)
	if absentForPull(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading image-locations image %s: %w", ref, err)
	}
	return bundle.ReadLocations(img, ref.String())
}

// relocate returns the lock rewritten to point at repo, and how it decided.
// As imgpkg's ImageRefs.UpdateRelativeToRepo, it rewrites even a lock whose
// images are already named in repo (imgpkg writes it back canonically,
// without comments or tags): what decides is the locations image or, without
// one, whether every image is found in repo, checked once per distinct
// reference in its fully qualified form ("repo:v1@D" and "repo@D" are one),
// as imgpkg does: it normalises the lock's names as it reads it.
func (p *puller) relocate(repo name.Repository, l *lock.ImagesLock, locations *lock.ImageLocations) (*lock.ImagesLock, Rewrite, error) {
	out := *l
	out.Images = make([]lock.ImageRef, len(l.Images))
	copy(out.Images, l.Images)
	for i, img := range l.Images {
		d, err := name.NewDigest(img.Image, p.opts.Name...)
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", img.Image, err)
		}
		out.Images[i].Image = repo.Digest(d.DigestStr()).String()
	}
	if locations != nil {
		return &out, RewriteLocations, nil
	}
	checked := make(map[string]bool, len(l.Images))
	for i, img := range out.Images {
		canonical, err := l.Images[i].Digest()
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", l.Images[i].Image, err)
		}
		if checked[canonical.Name()] {
			continue
		}
		checked[canonical.Name()] = true
		d, _ := name.NewDigest(img.Image, p.opts.Name...)
		if _, err := remote.Head(d, p.opts.Remote...); err != nil {
			if absentForPull(err) {
				// Not relocated (or only partly): the images are still where
				// the lock says, so leave it alone as imgpkg does.
				return l, RewriteNone, nil
			}
			return nil, "", fmt.Errorf("checking %s: %w", d, err)
		}
	}
	return &out, RewriteChecked, nil
}

// absentForPull reports whether err means, for pull's two fallbacks, that
// what was asked for is not there: the registry said so
// (regerr.IsNotFound), or it refused the request with 401 or 403. imgpkg
// v0.43 takes those two statuses like a 404 where its pull looks for the
// locations image (bundle.LocationsConfigs.Fetch, imageNotFoundStatusCode)
// and where it checks that the lock's images are in the bundle's repository
// (ImageRefs.UpdateRelativeToRepo, imageIsNotFound): a registry that hides
// them from this puller is one the bundle was not relocated to, so pull
// falls back to the checks, or leaves images.yml as pushed. ferry does the
// same there, and only there, so that its pull gives the directory imgpkg's
// gives; everywhere else (regerr.IsNotFound) an authentication failure is
// never "not found", because taking it so would silently skip content.
func absentForPull(err error) bool {
	if regerr.IsNotFound(err) {
		return true
	}
	var te *transport.Error
	return errors.As(err, &te) && (te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden)
}

// isBundle tells whether the lock image original, found at d, is a bundle:
// from the locations image when it has an entry of the same name, else
// from its config. Names are compared in their fully qualified form, as
// imgpkg compares them (it normalises the lock's names as it reads them,
// and writes the locations image's names normalised), so "nginx@D" in the
// lock matches "index.docker.io/library/nginx@D" in the locations image.
// The locations image's names are normalised too, so that one written with
// the lock's strings as they were (by ferry before it wrote them as imgpkg
// does) still matches.
func (p *puller) isBundle(d name.Digest, locations *lock.ImageLocations, original lock.ImageRef) (bool, error) {
	if locations != nil {
		want, err := original.Digest()
		if err != nil {
			return false, err
		}
		for _, loc := range locations.Images {
			if got, err := lock.NormalizeDigestRef(loc.Image); err == nil && got.Name() == want.Name() {
				return loc.IsBundle, nil
			}
		}
	}
	desc, err := remote.Get(d, p.opts.Remote...)
	if err != nil {
		return false, err
	}
	if desc.MediaType.IsIndex() {
		return false, nil
	}
	img, err := desc.Image()
	if err != nil {
		return false, err
	}
	cfg, err := bundle.ReadConfig(img, d.String())
	if err != nil {
		return false, err
	}
	return bundle.IsBundle(cfg), nil
}

// counter reports what is written to it as bytes done.
type counter struct{ rep progress.Reporter }

func (c counter) Write(b []byte) (int, error) {
	c.rep.Add(int64(len(b)))
	return len(b), nil
}

// fetchLayer downloads l's compressed bytes to a scratch file and checks
// them against l's digest before anything is extracted: extraction stops at
// the tar's end marker, which would otherwise leave the digest unchecked.
// The file has no name where the system allows (atomicfile.Anonymous), so
// that a pull killed outright leaves no layer behind.
func fetchLayer(l v1.Layer, rep progress.Reporter) (v1.Layer, func(), error) {
	want, err := l.Digest()
	if err != nil {
		return nil, nil, err
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, nil, fmt.Errorf("layer %s: %w", want, err)
	}
	defer rc.Close()
	f, name, err := atomicfile.Anonymous("", "ferry-pull-layer-*")
	if err != nil {
		return nil, nil, fmt.Errorf("layer %s: %w", want, err)
	}
	cleanup := func() {
		f.Close()
		if name != "" {
			os.Remove(name)
		}
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h, counter{rep}), rc)
	if err != nil {
		cleanup()
		return nil, nil, fmt.Errorf("layer %s: %w", want, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); want.Algorithm != "sha256" || got != want.Hex {
		cleanup()
		return nil, nil, fmt.Errorf("layer %s: downloaded content has digest sha256:%s", want, got)
	}
	local, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(io.NewSectionReader(f, 0, n)), nil
	})
	if err != nil {
		cleanup()
		return nil, nil, fmt.Errorf("layer %s: %w", want, err)
	}
	return local, cleanup, nil
}
