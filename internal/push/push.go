// Package push builds a bundle or plain image from local directories and
// writes it to a registry with imgpkg's tags.
package push

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferry-dev/ferry/internal/atomicfile"
	"github.com/ferry-dev/ferry/internal/bundle"
	"github.com/ferry-dev/ferry/internal/progress"
	"github.com/ferry-dev/ferry/lock"
	"github.com/ferry-dev/ferry/tags"
)

// Options control a push.
type Options struct {
	// Build says how the layer and config are made.
	Build bundle.BuildOptions
	// LockOutput, when set, is where a BundleLock naming the pushed bundle
	// by digest is written.
	LockOutput string
	// Remote configures registry access.
	Remote []remote.Option
	// Reporter receives the phases of the push (building the layer,
	// sending the blobs, byte by byte, writing the manifest and the tags),
	// one line per step, and warnings.
	Reporter progress.Reporter
}

// Result describes what was pushed.
type Result struct {
	// Image is the pushed image as REPO@sha256:….
	Image string `json:"image"`
	// Digest is its manifest digest.
	Digest string `json:"digest"`
	// Tags are the tags written, the user's last.
	Tags []string `json:"tags"`
	// LockOutput is the BundleLock file written, if any.
	LockOutput string `json:"lockOutput,omitempty"`
}

// Push builds an image from dirs and pushes it to tag. The image is first
// written under its sha256-<hex>.imgpkg tag and only then under the user's
// tag, so that the user's tag never names content that is not all there.
func Push(ctx context.Context, tag name.Tag, dirs []string, opts Options) (*Result, error) {
	rep := progress.OrNop(opts.Reporter)
	if opts.LockOutput != "" {
		// A lock file that cannot be written must fail the push before any
		// tag moves, not after.
		atomicfile.WarnIfBusy(opts.LockOutput, rep.Warnf)
		f, err := atomicfile.Create(opts.LockOutput)
		if err != nil {
			return nil, fmt.Errorf("push %s: lock output: %w", tag, err)
		}
		f.Abort()
	}
	what := "image"
	if opts.Build.Bundle {
		what = "bundle"
	}
	rep.Start("push: building the "+what+" layer from "+strings.Join(dirs, ", "), 0)
	defer rep.Done()
	img, err := bundle.Build(ctx, dirs, buildOptions(opts.Build, rep))
	if err != nil {
		return nil, err
	}
	defer img.Close()
	digest, err := img.Digest()
	if err != nil {
		return nil, err
	}
	if err := checkTag(tag, digest); err != nil {
		return nil, err
	}
	ropts := append([]remote.Option{remote.WithContext(ctx)}, opts.Remote...)
	internal := tag.Context().Tag(tags.Imgpkg(digest))
	if err := write(internal, img, ropts, rep); err != nil {
		return nil, fmt.Errorf("push %s: %w", tag, err)
	}
	// A registry, or a proxy before it, that stored other bytes than
	// those sent (converted, re-indented) would leave both tags on
	// another manifest and the lock naming a digest it does not hold:
	// what the .imgpkg tag names is checked before the user's tag moves.
	if err := checkStored(internal, digest, ropts); err != nil {
		return nil, fmt.Errorf("push %s: %w", tag, err)
	}
	rep.Logf("pushed manifest %s@%s", tag.Context(), digest)
	rep.Logf("tagged %s (%s)", internal, digest)
	rep.Start("push: writing tag "+tag.String(), 0)
	if err := remote.Tag(tag, img, ropts...); err != nil {
		return nil, fmt.Errorf("push %s: %w", tag, err)
	}
	rep.Logf("tagged %s (%s)", tag, digest)
	res := &Result{
		Image:  tag.Context().Digest(digest.String()).String(),
		Digest: digest.String(),
		Tags:   []string{internal.TagStr(), tag.TagStr()},
	}
	if opts.LockOutput != "" {
		bl := lock.BundleLock{
			APIVersion: lock.APIVersion,
			Kind:       lock.KindBundleLock,
			Bundle:     lock.BundleRef{Image: res.Image, Tag: tag.TagStr()},
		}
		atomicfile.WarnIfBusy(opts.LockOutput, rep.Warnf)
		if err := bl.WriteFile(opts.LockOutput); err != nil {
			return nil, err
		}
		res.LockOutput = opts.LockOutput
	}
	return res, nil
}

// checkStored checks that the registry's tag ref names the manifest of
// digest d, which was just written under it: by a HEAD, or, where that
// fails (a registry whose HEAD gives no Docker-Content-Digest, or not yet
// the new manifest), by a GET, whose bytes say it.
func checkStored(ref name.Tag, d v1.Hash, ropts []remote.Option) error {
	desc, err := remote.Head(ref, ropts...)
	if err != nil {
		g, gerr := remote.Get(ref, ropts...)
		if gerr != nil {
			return fmt.Errorf("check what %s names: %w", ref, err)
		}
		desc = &g.Descriptor
	}
	if desc.Digest != d {
		return fmt.Errorf("the registry stored other bytes than were sent: %s names %s, the manifest pushed has %s (a proxy or registry that rewrites manifests?); the tag and the lock output were not written", ref, desc.Digest, d)
	}
	return nil
}

// write pushes img under ref, reporting the blobs' bytes sent as the
// "push" phase (a bar on a terminal, a heartbeat in a log), then the
// manifest's PUT as a phase of its own, so that a registry slow to take
// the manifest is not shown as a byte transfer stuck near its end.
func write(ref name.Tag, img v1.Image, ropts []remote.Option, rep progress.Reporter) error {
	// What go-containerregistry counts, the blobs then the manifest: the
	// blobs are the phase's bytes.
	var blobs int64
	if m, err := img.Manifest(); err == nil {
		blobs = m.Config.Size
		for _, l := range m.Layers {
			blobs += l.Size
		}
	}
	rep.Start("push", blobs)
	updates := make(chan v1.Update, 16)
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		var sent int64
		manifest := false
		for {
			var u v1.Update
			select {
			case <-quit:
				return
			case v, ok := <-updates:
				if !ok {
					return
				}
				u = v
			}
			if c := min(u.Complete, blobs); c > sent {
				rep.Add(c - sent)
				sent = c
			}
			// After a failure the write is over: no phase to start, which
			// nothing would end once Push has returned.
			if u.Error == nil && sent >= blobs && !manifest {
				manifest = true
				rep.Start("push: writing manifest "+ref.String(), 0)
			}
		}
	}()
	err := remote.Write(ref, img, append(ropts, remote.WithProgress(updates))...)
	if err != nil {
		// go-containerregistry leaves the channel open when it refuses
		// the options before writing; either way nothing may report
		// once Push has returned (its caller ends the phase then).
		close(quit)
	}
	<-done
	return err
}

// checkTag refuses a tag of the shape of one that names a manifest by its
// digest (sha256-<hex>.imgpkg, a locations tag, cosign's, the referrers tag schema's sha256-<hex>) for the image of
// digest d, unless it is d's own .imgpkg tag: such a tag belongs to the
// manifest its digest names. Pushed over, another image's .imgpkg tag
// would leave it unprotected, and its locations or cosign tag would name
// this image instead. Import refuses such an original tag too. The error
// wraps tags.ErrBookkeeping.
func checkTag(tag name.Tag, d v1.Hash) error {
	t := tag.TagStr()
	if !tags.NamesADigest(t) || t == tags.Imgpkg(d) || t == tags.RepoBased(tag.RepositoryStr(), d) {
		return nil
	}
	return fmt.Errorf("push %s: the tag %q has the shape of %w (sha256-<hex>.imgpkg, a locations tag, cosign's, the referrers tag schema's sha256-<hex>), which belongs to the manifest its digest names, not to this one (%s); choose another tag", tag, t, tags.ErrBookkeeping, d)
}

// buildOptions is build with, unless it has one, a Reporter that passes
// on rep's warnings only: Build's warnings (a bundle.yml it cannot read),
// not its bytes, for the upload or export is the phase shown.
func buildOptions(build bundle.BuildOptions, rep progress.Reporter) bundle.BuildOptions {
	if build.Reporter == nil {
		build.Reporter = progress.WarningsOnly(rep)
	}
	return build
}
