package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/urfave/cli/v2"

	"github.com/ferry-dev/ferry/internal/bundle"
	"github.com/ferry-dev/ferry/internal/push"
)

func pushCommand() *cli.Command {
	return &cli.Command{
		Name:      "push",
		Usage:     "push a directory as a bundle (-b) or a plain image (-i)",
		UsageText: "ferry push -b REPO:TAG -f DIR [-f DIR...] [--lock-output FILE]\n   ferry push -i REPO:TAG -f DIR [-f DIR...]",
		Description: `Builds one layer from the files under each DIR, exactly as imgpkg does (so
the same directory gives the same digest), and pushes it with the given tag
and the tag sha256-<hex>.imgpkg.

A bundle's directories must hold exactly one .imgpkg/ with a valid
images.yml (an ImagesLock naming every image by digest). Only regular files
and directories are allowed; .git is left out unless --file-exclusion says
otherwise.`,
		Flags: withRegistryFlags(
			&cli.StringFlag{Name: "bundle", Aliases: []string{"b"}, Usage: "bundle reference to push to (REPO:TAG)"},
			&cli.StringFlag{Name: "image", Aliases: []string{"i"}, Usage: "plain image reference to push to (REPO:TAG)"},
			&cli.StringSliceFlag{Name: "file", Aliases: []string{"f"}, Usage: "directory (or file) to include; repeatable"},
			&cli.StringFlag{Name: "lock-output", Usage: "write a BundleLock (bundle digest and tag) to this file"},
			&cli.BoolFlag{Name: "preserve-permissions", Usage: "keep files' group and other permission bits (default: mode & 0700, as imgpkg)"},
			&cli.StringSliceFlag{Name: "file-exclusion", Value: cli.NewStringSlice(".git"), Usage: "names to leave out; repeatable"},
			&cli.StringSliceFlag{Name: "labels", Aliases: []string{"l"}, Usage: "config label KEY=VALUE; repeatable"},
		),
		Action: runPush,
	}
}

func runPush(c *cli.Context) error {
	out, err := newPrinter(c)
	if err != nil {
		return err
	}
	target, isBundle, err := bundleOrImage(c)
	if err != nil {
		return err
	}
	dirs := c.StringSlice("file")
	if len(dirs) == 0 {
		return usagef("push: give at least one -f DIR")
	}
	if c.IsSet("lock-output") && !isBundle {
		return usagef("push: --lock-output is for bundles (-b)")
	}
	labels, err := parseLabels(c.StringSlice("labels"))
	if err != nil {
		return err
	}
	reg := registryOptions(c)
	ref, err := name.NewTag(target, reg.NameOptions()...)
	if err != nil {
		return usagef("push: %q is not a tag reference (REPO:TAG): %v", target, err)
	}
	remoteOpts, err := reg.RemoteOptions(c.Context)
	if err != nil {
		return err
	}
	res, err := push.Push(c.Context, ref, dirs, push.Options{
		Build: bundle.BuildOptions{
			Bundle:              isBundle,
			PreservePermissions: c.Bool("preserve-permissions"),
			Exclusions:          c.StringSlice("file-exclusion"),
			Labels:              labels,
		},
		LockOutput: c.String("lock-output"),
		Remote:     remoteOpts,
		Reporter:   out.Reporter(),
	})
	if err != nil {
		return explain(err, target)
	}
	took := out.Elapsed()
	return out.Result(res, func(w io.Writer) {
		repo, _, _ := strings.Cut(res.Image, "@")
		fmt.Fprintf(w, "Pushed to %s in %s\n", repo, roundDuration(took))
		tw := summaryTable(w)
		fmt.Fprintf(tw, "  digest\t%s\n", res.Digest)
		fmt.Fprintf(tw, "  tags\t%s\n", strings.Join(res.Tags, ", "))
		if res.LockOutput != "" {
			fmt.Fprintf(tw, "  lock\twritten to %s\n", res.LockOutput)
		}
		tw.Flush()
	})
}

// bundleOrImage reads the mutually exclusive -b and -i flags.
func bundleOrImage(c *cli.Context) (ref string, isBundle bool, err error) {
	b, i := c.String("bundle"), c.String("image")
	switch {
	case b != "" && i != "":
		return "", false, usagef("%s: give either -b (bundle) or -i (image), not both", c.Command.Name)
	case b != "":
		return b, true, nil
	case i != "":
		return i, false, nil
	}
	return "", false, usagef("%s: give -b REF for a bundle or -i REF for an image", c.Command.Name)
}
