package main

import (
	"github.com/urfave/cli/v2"

	"github.com/ferry-dev/ferry/relocate"
)

func copyCommand() *cli.Command {
	return &cli.Command{
		Name:  "copy",
		Usage: "copy a bundle and every image it locks into one repository (registry to registry), or to/from an archive",
		UsageText: "ferry copy -b REF --to-repo REPO [--repo-based-tags] [--lock-output FILE] [--dry-run]\n" +
			"ferry copy -i REF --to-repo REPO [--lock-output FILE]\n" +
			"ferry copy --lock images.yml --to-repo REPO [--lock-output FILE]\n" +
			"ferry copy -b REF --to-tar FILE.tar.zst [--level L]     (the same as ferry export)\n" +
			"ferry copy --tar FILE.tar.zst --to-repo REPO            (the same as ferry import)",
		Description: `With --to-repo, copies straight from registry to registry what ferry export
and ferry import would carry through an archive: the bundle, every image its
.imgpkg/images.yml locks, nested bundles to any depth and every child of an
image index, all into the one repository REPO, with the tags imgpkg writes
(sha256-<hex>.imgpkg for every image and bundle, an image-locations image per
bundle) and, last, the tag -b or -i named (REPO:TAG). A failure before that
never moves that tag; a tag that pointed elsewhere is reported as moved (with its
previous digest) only once everything else is in place. Running the same
copy again sends only what is missing.

Blobs REPO already has are skipped. The others stream from their source to
REPO without being stored, verified against their digest; a blob cut part
way is sent again from a fresh download. When source and REPO are on the
same registry, blobs are mounted across repositories instead of copied.

A bundle that was itself relocated (imported or copied into its repository
by ferry or imgpkg) still names the original locations in its images.yml:
its images are looked up in the bundle's own repository first (through its
image-locations image), so a second hop needs no access to the first side;
ferry says when an original location had to be used instead.

--cosign-signatures and --referrers (off by default: they cost requests for
every image, found or not: three HEADs for cosign's three tags, one
referrers request) also carry, for the bundle, nested bundles and every
image a lock names, cosign's sha256-<hex>.sig/.att/.sbom artifacts (same
tags at REPO, plus sha256-<their hex>.imgpkg as imgpkg writes) and the OCI
1.1 referrers (pushed by digest; REPO lists them through its referrers API, or
the sha256-<hex> fallback tag where it has none). With --tar they have no
effect (accepted, as import accepts them): the archive holds what its
export carried, and all of it is copied.

Credentials: --registry-username/--registry-password/--registry-token and
the FERRY_* variables go to the registries of -b/-i and --to-repo (and of
--registry-credential-host), and to the token service each of them names in
its authentication challenge (README: Registry options); when source and
destination need different
credentials, put both in the Docker config (docker login to each) and give
no explicit ones.

imgpkg's spellings work unchanged:
  imgpkg copy -b REF --to-repo REPO      ferry copy -b REF --to-repo REPO
  imgpkg copy -i REF --to-repo REPO      ferry copy -i REF --to-repo REPO
  imgpkg copy -b REF --to-tar FILE       ferry copy -b REF --to-tar FILE
                                         (the same as ferry export -b REF -o FILE)
  imgpkg copy --tar FILE --to-repo REPO  ferry copy --tar FILE --to-repo REPO
                                         (the same as ferry import -f FILE --to-repo REPO)
--tar also reads the tarball imgpkg copy --to-tar writes, giving REPO the
tags and digests imgpkg's own copy --tar would; ferry's .tar.zst (an OCI
image layout) is not one imgpkg can read.

Each flag says which mode it belongs to (with --to-repo, --to-tar or --tar)
when it does not apply to all three; given in another mode it is refused.
With --to-tar, --level, --since and --split-size are ferry export's (see
ferry export --help). With --tar, --no-mount and --spool-dir are ferry
import's (see ferry import --help): --spool-dir DIR keeps each large blob
read from a pipe in a file under DIR until its upload is done, so that a
failed upload is sent again in full rather than resumed from what the
registry holds.`,
		Flags: withRegistryFlags("also print the resolution steps and one line per manifest and tag as it is written at the destination, with full digests", append(sourceFlags(
			concurrencyFlag(relocate.DefaultImportConcurrency, "`N` registry requests at once: manifests, blob checks, uploads and mounts (with --to-tar: downloads)"), "with --to-repo or --to-tar: "),
			toRepoFlag(),
			&cli.StringFlag{Name: "to-tar", Usage: "write an archive instead, as ferry export -o: `FILE` (FILE.tar.zst), or - for standard output"},
			sinceFlag("with --to-tar: "),
			&cli.StringFlag{Name: "tar", Usage: "copy from an archive instead, as ferry import -f: `FILE` (FILE.tar.zst), or - for standard input"},
			&cli.BoolFlag{Name: "repo-based-tags", Usage: "with --to-repo or --tar: tag images <source-path>-sha256-<hex>.imgpkg, as imgpkg's flag of the same name"},
			&cli.StringFlag{Name: "lock-output", Usage: "with --to-repo or --tar: write to `FILE` a lock naming what was copied at its new home, as imgpkg does: a BundleLock for a bundle, an ImagesLock for -i or --lock images.yml (that lock, relocated)"},
			&cli.BoolFlag{Name: "dry-run", Usage: "with --to-repo or --tar: report what would be sent and tagged; change nothing"},
			noMountFlag("with --tar: "),
			spoolDirFlag("with --tar: "),
			levelFlag("with --to-tar: "),
			splitSizeFlag("with --to-tar: "),
			// export's and import's own names for the archive, set from
			// --to-tar and --tar so that those spellings run exactly the
			// export and import commands.
			&cli.StringFlag{Name: "output", Hidden: true},
			&cli.StringFlag{Name: "file", Hidden: true},
		)...),
		Action: runCopy,
	}
}

// copyMode is which of its three commands a copy is.
type copyMode int

const (
	copyToRepo  copyMode = iota // registry to registry
	copyToTar                   // an export
	copyFromTar                 // an import
)

// copyModeOf checks the combination of flags and says what to run.
func copyModeOf(c *cli.Context) (copyMode, error) {
	toRepo, toTar, tar := c.String("to-repo"), c.String("to-tar"), c.String("tar")
	hasSource := c.String("bundle") != "" || c.String("image") != "" || c.String("lock") != ""
	if c.IsSet("output") || c.IsSet("file") {
		return 0, usagef("copy: give the archive with --to-tar or --tar")
	}
	// The flags of one mode that make no sense in another are refused
	// rather than ignored, so a script never silently loses one.
	refuse := func(mode string, names ...string) error {
		for _, n := range names {
			if c.IsSet(n) {
				return usagef("copy: --%s does not apply to %s", n, mode)
			}
		}
		return nil
	}
	switch {
	case tar != "":
		if toTar != "" {
			return 0, usagef("copy: --tar and --to-tar: to move an archive elsewhere, copy the file")
		}
		if hasSource {
			return 0, usagef("copy: --tar FILE is the source; do not give -b, -i or --lock with it")
		}
		if toRepo == "" {
			return 0, usagef("copy: --tar FILE needs --to-repo REPO")
		}
		return copyFromTar, refuse("--tar (an import)", "level", "include-non-distributable-layers", "since", "split-size")
	case toTar != "":
		if toRepo != "" {
			return 0, usagef("copy: give one destination, --to-repo REPO or --to-tar FILE, not both")
		}
		return copyToTar, refuse("--to-tar (an export)", "repo-based-tags", "lock-output", "dry-run", "no-mount", "spool-dir")
	case toRepo != "":
		return copyToRepo, refuse("--to-repo", "level", "since", "split-size", "no-mount", "spool-dir")
	}
	return 0, usagef("copy: give a destination: --to-repo REPO, or --to-tar FILE for an archive")
}

func runCopy(c *cli.Context) error {
	mode, err := copyModeOf(c)
	if err != nil {
		return err
	}
	switch mode {
	case copyToTar:
		if err := c.Set("output", c.String("to-tar")); err != nil {
			return err
		}
		return runExport(c)
	case copyFromTar:
		if err := c.Set("file", c.String("tar")); err != nil {
			return err
		}
		return runImport(c)
	}

	out, err := newPrinter(c)
	if err != nil {
		return err
	}
	defer out.Close()
	to := c.String("to-repo")
	if _, err := planSource(c); err != nil {
		return err
	}
	// Before the source is resolved: its requests would be wasted.
	if err := checkLockOutput(c); err != nil {
		return err
	}
	reg, err := registryOptions(c)
	if err != nil {
		return err
	}
	repo, err := repoFlag(c, "--to-repo", to, reg, true)
	if err != nil {
		return err
	}
	p, ropts, err := resolvePlan(c, out)
	if err != nil {
		return err
	}
	out.Begin("copy: checking what " + repo.Name() + " holds")
	res, err := relocate.Copy(c.Context, p, repo, relocate.CopyOptions{
		DestinationOptions: relocate.DestinationOptions{
			Remote:        ropts.Remote,
			Client:        ropts.Client,
			Name:          ropts.Name,
			Concurrency:   c.Int("concurrency"),
			RepoBasedTags: c.Bool("repo-based-tags"),
			DryRun:        c.Bool("dry-run"),
			LockOutput:    c.String("lock-output"),
			Reporter:      out.Reporter(),
		},
	})
	if err != nil {
		// The failing side (source or destination) is named by the
		// request that failed, not by --to-repo.
		return explain(reg, err, "")
	}
	return printImportResult(out, "copy", res, c.String("lock-output"))
}
