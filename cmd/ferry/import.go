package main

import (
	"fmt"
	"io"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ferry-dev/ferry/relocate"
)

func importCommand() *cli.Command {
	return &cli.Command{
		Name:      "import",
		Usage:     "upload a ferry archive or an imgpkg tarball into one repository, with imgpkg's tags",
		UsageText: "ferry import -f FILE.tar.zst --to-repo REPO [--repo-based-tags] [--lock-output FILE] [--dry-run]\nferry import -f FILE.tar.zst.001 --to-repo REPO          (volumes of a split export)\nferry import -f bundle.imgpkg.tar --to-repo REPO         (imgpkg copy --to-tar's tarball)\nzstd -d < FILE.tar.zst | ferry import -f - --to-repo REPO",
		Description: `Reads the archive without extracting it (a file, or - for standard input;
zstd, gzip or plain tar), uploads every blob REPO does not have yet, each
verified against its digest, then writes every manifest and
the tags imgpkg writes: sha256-<hex>.imgpkg for every image and bundle, an
image-locations image per bundle, and last the root's original tag (the
tag of -b REPO:TAG, or of -i REPO:TAG, at export).
A failure before that never moves the original tag, and running the same
import again finishes what an interrupted one started.

Signatures and referrers exported with --cosign-signatures or --referrers
are imported too, always: cosign's under their sha256-<hex>.sig/.att/.sbom
tags (plus sha256-<their hex>.imgpkg), referrers by digest, before the
original tag.

--dry-run reads only the archive's head and reports what would be uploaded
and which tags would be created or moved, changing nothing.

Read front to back (from a pipe, or an archive without a seek table), a
large blob streams from the archive into its upload, and an upload cut part
way resumes from what the registry holds. With --spool-dir DIR it waits in
a temporary file under DIR until its upload is done instead, so that a
failed upload is sent again in full (at the cost of writing the blob to
disk); each file has no name (Linux) and goes when its upload is done.

--no-mount is for a delta archive (export --since), which leaves out blobs
the destination is expected to hold. By default an import takes a left-out
blob that REPO lacks from another repository of REPO's registry that the
archive names (mounted, or copied where the registry will not mount it),
and says from where. With --no-mount it takes none: the import fails, before
anything is written, unless REPO holds them all.

From a file, only the blobs REPO lacks are read, each where it lies. The
volumes of a split export (export --split-size) are read in place: -f FILE
(when only its volumes exist) or -f FILE.001; a missing, extra, out-of-order
or truncated volume is named and nothing is tagged. cat FILE.0* | ferry
import -f - reads them too (export writes at most 99, all that FILE.0*
matches). A tarball written by imgpkg copy --to-tar is
read in place as well, and gives REPO exactly the tags and digests imgpkg
copy --tar would.`,
		Flags: withRegistryFlags("also print one line per manifest and tag as it is written at the destination, with full digests",
			&cli.StringFlag{Name: "file", Aliases: []string{"f"}, Usage: "archive `FILE` to import, or - for standard input"},
			toRepoFlag(),
			&cli.BoolFlag{Name: "repo-based-tags", Usage: "tag images <source-path>-sha256-<hex>.imgpkg, as imgpkg's flag of the same name"},
			&cli.StringFlag{Name: "lock-output", Usage: "write to `FILE` a lock naming what was imported at its new home, as imgpkg copy --tar does: a BundleLock for a bundle, an ImagesLock for images"},
			&cli.BoolFlag{Name: "dry-run", Usage: "report what would be uploaded and tagged; change nothing"},
			noMountFlag(""),
			spoolDirFlag(""),
			&cli.BoolFlag{Name: "cosign-signatures", Usage: importArtifactsUsage},
			&cli.BoolFlag{Name: "referrers", Usage: importArtifactsUsage},
			concurrencyFlag(relocate.DefaultImportConcurrency, "`N` registry requests (blob checks and uploads) at once"),
		),
		Action: runImport,
	}
}

// runImport runs import, and copy --tar, which is an import: messages and
// the summary name the command the user ran.
func runImport(c *cli.Context) error {
	command := "import"
	if c.Command != nil && c.Command.Name == "copy" {
		command = "copy"
	}
	out, err := newPrinter(c)
	if err != nil {
		return err
	}
	defer out.Close()
	file, to := c.String("file"), c.String("to-repo")
	if file == "" || to == "" {
		if command == "copy" {
			return usagef("copy: give the archive with --tar FILE (or --tar -) and the destination with --to-repo REPO")
		}
		return usagef("import: give the archive with -f FILE (or -f -) and the destination with --to-repo REPO")
	}
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
	in, done, err := archiveInput(c, file, command)
	if err != nil {
		return err
	}
	defer done()
	if err := lockOutputNotInput(c.String("lock-output"), file, in); err != nil {
		return err
	}
	remoteOpts, err := reg.RemoteOptions(c.Context)
	if err != nil {
		return err
	}
	client, err := registryClient(reg)
	if err != nil {
		return err
	}
	out.Begin(command + ": reading the archive's head and checking what " + repo.Name() + " holds")
	res, err := relocate.Import(c.Context, in, repo, relocate.ImportOptions{
		DestinationOptions: relocate.DestinationOptions{
			Remote:        remoteOpts,
			Client:        client,
			Name:          reg.NameOptions(),
			Concurrency:   c.Int("concurrency"),
			RepoBasedTags: c.Bool("repo-based-tags"),
			DryRun:        c.Bool("dry-run"),
			NoMount:       c.Bool("no-mount"),
			LockOutput:    c.String("lock-output"),
			Reporter:      out.Reporter(),
		},
		SpoolDir:  c.String("spool-dir"),
		Operation: command,
		Archive:   archiveNoun(file),
	})
	if err != nil {
		return explain(reg, err, to)
	}
	return printImportResult(out, command, res, c.String("lock-output"))
}

// archiveNoun is how messages name the archive a command reads from path:
// the path, or "standard input" for "-".
func archiveNoun(path string) string {
	if path == "-" {
		return "standard input"
	}
	return path
}

// spoolDirFlag is --spool-dir, of import and copy --tar; mode prefixes
// its help ("with --tar: "). Why one would: the command's description.
func spoolDirFlag(mode string) cli.Flag {
	return &cli.StringFlag{Name: "spool-dir", Action: existingFile("spool-dir"), Usage: mode + "keep each large blob read from a pipe in a temporary file under `DIR` until its upload is done (default: stream it, nothing on disk)"}
}

// noMountFlag is --no-mount, of import and copy --tar; mode as
// spoolDirFlag's. What it is for: the command's description.
func noMountFlag(mode string) cli.Flag {
	return &cli.BoolFlag{Name: "no-mount", Usage: mode + "take no blob a delta archive left out from another repository of the destination's registry (default: false: mount or copy it from there)"}
}

// importJSON is the --json result of import and copy.
type importJSON struct {
	*relocate.ImportResult
	// LockOutput is the lock file written (--lock-output).
	LockOutput string `json:"lockOutput,omitempty"`
}

// printImportResult ends an import or a copy: --json, or the summary.
// lockOutput is the --lock-output file, written unless in a dry run.
func printImportResult(out *printer, command string, res *relocate.ImportResult, lockOutput string) error {
	j := importJSON{ImportResult: res}
	if !res.DryRun {
		j.LockOutput = lockOutput
	}
	took := out.Elapsed()
	return out.Result(j, func(w io.Writer) { printImport(w, command, j, took, out.verbose()) })
}

// printImport prints the summary of an import or a copy: where, how many
// images, what moved and what was already there, how long, the lock file
// written, then every tag as one table (action, tag, short digest) in the
// order they were written, the original tag last. command is "import" or "copy".
// Digests are abbreviated unless verbose.
func printImport(w io.Writer, command string, j importJSON, took time.Duration, verbose bool) {
	res := j.ImportResult
	sent, sentBytes := res.BlobsUploaded, res.BytesUploaded
	verb := map[string]string{"import": "Imported", "copy": "Copied"}[command]
	upload := "uploaded"
	switch {
	case res.DryRun:
		fmt.Fprintf(w, "Dry run, nothing changed: what %s into %s would do\n", map[string]string{"import": "an import", "copy": "a copy"}[command], res.Repository)
		upload = "to upload"
	case sentBytes > 0:
		fmt.Fprintf(w, "%s into %s in %s (%s)\n", verb, res.Repository, formatDuration(took), rate(sentBytes, took))
	default:
		// Nothing sent (all there, or mounted): a rate would say 0 B/s.
		fmt.Fprintf(w, "%s into %s in %s\n", verb, res.Repository, formatDuration(took))
	}
	tw := summaryTable(w)
	// What export's summary calls images: every entry of the archive's
	// index (bundles, images, indexes, artifacts).
	fmt.Fprintf(tw, "  images\t%d\n", res.Images)
	var blobs string
	mountedN, mountedBytes := res.BlobsMounted, res.BytesMounted
	presentN, presentBytes := res.BlobsPresent, res.BytesPresent
	if sent > 0 || mountedN == 0 {
		blobs = fmt.Sprintf("%d %s (%s), ", sent, upload, humanBytes(sentBytes))
	}
	if mountedN > 0 {
		mounted := "mounted"
		if res.DryRun {
			mounted = "to mount"
		}
		blobs += fmt.Sprintf("%d %s (%s, not sent), ", mountedN, mounted, humanBytes(mountedBytes))
	}
	blobs += fmt.Sprintf("%d already there", presentN)
	if presentN > 0 {
		blobs += " (" + humanBytes(presentBytes) + ")"
	}
	fmt.Fprintf(tw, "  blobs\t%s\n", blobs)
	pushed := "pushed"
	if res.DryRun {
		pushed = "to push"
	}
	fmt.Fprintf(tw, "  manifests\t%d %s, %d already there\n", res.ManifestsPushed, pushed, res.ManifestsPresent)
	if res.BlobsLeftOut > 0 {
		line := fmt.Sprintf("%d left out (%s), all held by the destination", res.BlobsLeftOut, humanBytes(res.BytesLeftOut))
		switch {
		case res.LeftOutMounted > 0 && res.DryRun:
			line += fmt.Sprintf(" (%d to mount)", res.LeftOutMounted)
		case res.LeftOutMounted > 0:
			line += fmt.Sprintf(" (%d mounted)", res.LeftOutMounted)
		}
		fmt.Fprintf(tw, "  delta\t%s\n", line)
		// Where from, always: another repository, which the archive
		// named (README: delta archives, trust).
		mounted := "mounted"
		if res.DryRun {
			mounted = "to mount"
		}
		for _, s := range res.LeftOutFrom {
			if s.Mounted > 0 {
				fmt.Fprintf(tw, "  %s\t%d from %s\n", mounted, s.Mounted, s.Repository)
			}
			if s.Uploaded > 0 {
				fmt.Fprintf(tw, "  copied\t%d from %s (the registry would not mount them)\n", s.Uploaded, s.Repository)
			}
		}
	}
	if j.LockOutput != "" {
		fmt.Fprintf(tw, "  lock\twritten to %s\n", j.LockOutput)
	}
	for _, u := range res.Unchecked {
		if !verbose {
			u = shortDigests(u)
		}
		fmt.Fprintf(tw, "  not checked\t%s\n", escapeControls(u))
	}
	tw.Flush()
	printTags(w, res.Tags, verbose)
}

// printTags prints the tags of an import or a copy as one table, in commit
// order, each group sorted (its tags are written at once; the original
// tag, the commit point, last), digests abbreviated unless verbose.
func printTags(w io.Writer, tags []relocate.TagResult, verbose bool) {
	if len(tags) == 0 {
		return
	}
	digest := shortDigest
	if verbose {
		digest = func(d string) string { return d }
	}
	fmt.Fprintln(w)
	tw := summaryTable(w)
	fmt.Fprintln(tw, "  ACTION\tTAG\tDIGEST")
	for _, t := range tags {
		d := digest(t.Digest)
		if d == "" {
			d = "(not known yet)"
		}
		if t.Previous != "" && t.Action == relocate.TagMove {
			d += " (was " + digest(t.Previous) + ")"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", t.Action, quoteUnsafe(t.Tag), d)
	}
	tw.Flush()
}
