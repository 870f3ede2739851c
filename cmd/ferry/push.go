package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/ferry-dev/ferry/internal/atomicfile"
	"github.com/ferry-dev/ferry/internal/bundle"
	"github.com/ferry-dev/ferry/internal/push"
	"github.com/ferry-dev/ferry/relocate"
	"github.com/ferry-dev/ferry/tags"
)

func pushCommand() *cli.Command {
	return &cli.Command{
		Name:      "push",
		Usage:     "push a directory as a bundle (-b) or a plain image (-i)",
		UsageText: "ferry push -b REPO:TAG -f DIR [-f DIR...] [--lock-output FILE]\nferry push -i REPO:TAG -f DIR [-f DIR...]\nferry push -b REPO:TAG -f DIR --to-tar FILE.tar.zst [--level L] [--split-size SIZE] [--since BASE]",
		Description: `Builds one layer from the files under each DIR, exactly as imgpkg does (so
the same directory gives the same digest), and pushes it with the given tag
and the tag sha256-<hex>.imgpkg.

A bundle's directories must hold exactly one .imgpkg/ with a valid
images.yml (an ImagesLock naming every image by digest). Only regular files
and directories are allowed. Files keep the owner's permission bits only
(mode & 0700), as imgpkg does, unless --preserve-permissions is given.

--file-exclusion PATH leaves out the file or directory at PATH below each
DIR: an exact match, as in imgpkg (.git is DIR/.git, not DIR/sub/.git).
.git is left out unless --file-exclusion is given, which replaces that
default (as imgpkg's does): add --file-exclusion .git to keep it out.

--to-tar FILE (- for standard output) pushes nothing: it builds the bundle
exactly as above (the same digest), fetches every image its images.yml locks
from their registries, and writes the archive ferry export -b REPO:TAG would
write had the bundle been pushed first. Importing it gives the bundle the
tag TAG, with every tag an import writes. It takes export's --level,
--split-size, --concurrency, --include-non-distributable-layers,
--cosign-signatures and --referrers (for the locked images: a bundle never
pushed has no signatures yet; see ferry export --help for what each costs
and does), and --since BASE
(repeatable: a previous archive, or an inventory of the far side) to write a
delta archive that leaves out the configs and layers BASE holds. FILE may not
be inside a DIR (it would go into the next push's layer) unless its directory
is left out with --file-exclusion.`,
		Flags: withRegistryFlags("also print each tag as it is written at the destination",
			&cli.StringFlag{Name: "bundle", Aliases: []string{"b"}, Usage: "bundle to push, to the tag `REF` (REPO:TAG)"},
			&cli.StringFlag{Name: "image", Aliases: []string{"i"}, Usage: "plain image to push, to the tag `REF` (REPO:TAG)"},
			&cli.StringSliceFlag{Name: "file", Aliases: []string{"f"}, Action: existingFiles("file"), Usage: "directory `DIR` (or a file) to include; repeatable"},
			&cli.StringFlag{Name: "lock-output", Usage: "write a BundleLock (bundle digest and tag) to `FILE`"},
			&cli.BoolFlag{Name: "preserve-permissions", Usage: "keep files' group and other permission bits; without it only the owner's are kept (mode & 0700), as imgpkg does"},
			&cli.StringSliceFlag{Name: "file-exclusion", Value: cli.NewStringSlice(".git"), Usage: "`PATH` to leave out, relative to each -f directory; repeatable; giving it replaces the default"},
			&cli.StringSliceFlag{Name: "labels", Aliases: []string{"l"}, Usage: "config label `KEY=VALUE`; repeatable"},
			&cli.StringFlag{Name: "to-tar", Usage: "push nothing: write the archive ferry export would write of the pushed bundle, `FILE` (FILE.tar.zst), or - for standard output"},
			levelFlag("with --to-tar: "),
			splitSizeFlag("with --to-tar: "),
			concurrencyFlag(relocate.DefaultConcurrency, "with --to-tar: `N` registry requests (manifests, blob downloads) at once"),
			&cli.BoolFlag{Name: "include-non-distributable-layers", Usage: "with --to-tar: also carry foreign (non-distributable) layers"},
			cosignSignaturesFlag("with --to-tar: "),
			referrersFlag("with --to-tar: "),
			sinceFlag("with --to-tar: "),
		),
		Action: runPush,
	}
}

func runPush(c *cli.Context) error {
	out, err := newPrinter(c)
	if err != nil {
		return err
	}
	defer out.Close()
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
	if err := checkLockOutput(c); err != nil {
		return err
	}
	if err := bundle.CheckExclusions(c.StringSlice("file-exclusion")); err != nil {
		return usagef("push: --file-exclusion: %w", err)
	}
	labels, err := parseLabels(c.StringSlice("labels"))
	if err != nil {
		return err
	}
	reg, err := registryOptions(c)
	if err != nil {
		return err
	}
	ref, err := tagFlag(c, bundleOrImageFlag(isBundle), target, reg)
	if err != nil {
		return err
	}
	build := bundle.BuildOptions{
		Bundle:              isBundle,
		PreservePermissions: c.Bool("preserve-permissions"),
		Exclusions:          c.StringSlice("file-exclusion"),
		Labels:              labels,
	}
	if dest := c.String("to-tar"); dest != "" {
		return pushToArchive(c, out, target, dirs, build, dest)
	}
	for _, n := range []string{"level", "split-size", "concurrency", "include-non-distributable-layers", "cosign-signatures", "referrers", "since"} {
		if c.IsSet(n) {
			return usagef("push: --%s applies to --to-tar only", n)
		}
	}
	remoteOpts, err := reg.RemoteOptions(c.Context)
	if err != nil {
		return err
	}
	res, err := push.Push(c.Context, ref, dirs, push.Options{
		Build:      build,
		LockOutput: c.String("lock-output"),
		Remote:     remoteOpts,
		Reporter:   out.Reporter(),
	})
	if errors.Is(err, tags.ErrBookkeeping) {
		// A tag the user chose, refused before anything is written: a
		// bad reference (README: exit status).
		return usageError{err}
	}
	if err != nil {
		return explain(reg, err, target)
	}
	took := out.Elapsed()
	return out.Result(res, func(w io.Writer) {
		repo, _, _ := strings.Cut(res.Image, "@")
		fmt.Fprintf(w, "Pushed to %s in %s\n", repo, formatDuration(took))
		tw := summaryTable(w)
		fmt.Fprintf(tw, "  digest\t%s\n", res.Digest)
		fmt.Fprintf(tw, "  tags\t%s\n", strings.Join(res.Tags, ", "))
		if res.LockOutput != "" {
			fmt.Fprintf(tw, "  lock\twritten to %s\n", res.LockOutput)
		}
		tw.Flush()
	})
}

// bundleOrImage reads the mutually exclusive -b and -i flags, refusing a
// value that names an archive file (refuseArchiveAsReference).
func bundleOrImage(c *cli.Context) (ref string, isBundle bool, err error) {
	b, i := c.String("bundle"), c.String("image")
	switch {
	case b != "" && i != "":
		return "", false, usagef("%s: give either -b (bundle) or -i (image), not both", c.Command.Name)
	case b != "":
		return b, true, refuseArchiveAsReference(c, "-b", b)
	case i != "":
		return i, false, refuseArchiveAsReference(c, "-i", i)
	}
	return "", false, usagef("%s: give -b REF for a bundle or -i REF for an image", c.Command.Name)
}

// bundleOrImageFlag names the flag bundleOrImage read: -b or -i.
func bundleOrImageFlag(isBundle bool) string {
	if isBundle {
		return "-b"
	}
	return "-i"
}

// pushToArchive is push --to-tar: the bundle built as push builds it,
// written with what it locks into the archive export would write.
func pushToArchive(c *cli.Context, out *printer, target string, dirs []string, build bundle.BuildOptions, dest string) error {
	if c.IsSet("lock-output") {
		return usagef("push: --lock-output names the bundle in a registry, and --to-tar pushes nothing; import --lock-output writes the lock at the destination")
	}
	eopts, err := exportOptions(c, out, dest)
	if err != nil {
		return err
	}
	if dest != "-" {
		if err := push.CheckArchiveOutsideInputs(dest, dirs, build.Exclusions); err != nil {
			return usagef("push: --to-tar: %w", err)
		}
	}
	if eopts.Since, err = readSince(c, eopts.Reporter); err != nil {
		return err
	}
	out.Begin("building " + target + " and resolving what it locks")
	ropts, err := resolveOptions(c, out)
	if err != nil {
		return err
	}
	eopts.Remote, eopts.Client = ropts.Remote, ropts.Client
	res, err := push.ToArchive(c.Context, target, dirs, push.ArchiveOptions{
		Build: build, Resolve: ropts, Export: eopts, Path: dest, Stdout: c.App.Writer,
	})
	if errors.Is(err, atomicfile.ErrNotRegular) || errors.Is(err, relocate.ErrOutputIsABase) {
		return outputError(c, dest, err)
	}
	if errors.Is(err, tags.ErrBookkeeping) {
		return usageError{err}
	}
	if err != nil {
		return explainFor(c, err, "")
	}
	return printExportResult(out, dest, res)
}
