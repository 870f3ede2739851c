// Package push builds a bundle or plain image from local directories and
// writes it to a registry with imgpkg's tags.
package push

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
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
	// Reporter receives one line per step.
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
		f, err := atomicfile.Create(opts.LockOutput)
		if err != nil {
			return nil, fmt.Errorf("push %s: lock output: %w", tag, err)
		}
		f.Abort()
	}
	img, err := bundle.Build(ctx, dirs, opts.Build)
	if err != nil {
		return nil, err
	}
	defer img.Close()
	digest, err := img.Digest()
	if err != nil {
		return nil, err
	}
	ropts := append([]remote.Option{remote.WithContext(ctx)}, opts.Remote...)
	internal := tag.Context().Tag(tags.Imgpkg(digest))
	if err := remote.Write(internal, img, ropts...); err != nil {
		return nil, fmt.Errorf("push %s: %w", tag, err)
	}
	rep.Logf("pushed %s", internal)
	if err := remote.Tag(tag, img, ropts...); err != nil {
		return nil, fmt.Errorf("push %s: %w", tag, err)
	}
	rep.Logf("tagged %s", tag)
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
		if err := bl.WriteFile(opts.LockOutput); err != nil {
			return nil, err
		}
		res.LockOutput = opts.LockOutput
	}
	return res, nil
}
