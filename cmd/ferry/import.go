package main

import (
	"fmt"
	"io"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ferry-dev/ferry/internal/volumes"
	"github.com/ferry-dev/ferry/relocate"
)

func importCommand() *cli.Command {
	return &cli.Command{
		Name:      "import",
		Usage:     "upload a ferry archive into one repository, with imgpkg's tags",
		UsageText: "ferry import -f FILE.tar.zst --to-repo REPO [--repo-based-tags] [--lock-output FILE] [--dry-run]\n   ferry import -f FILE.tar.zst.001 --to-repo REPO          (volumes of a split export)\n   ferry import -f bundle.imgpkg.tar --to-repo REPO         (imgpkg copy --to-tar's tarball)\n   zstd -d < FILE.tar.zst | ferry import -f - --to-repo REPO",
		Description: `Reads the archive without extracting it (a file, or - for standard input;
zstd, gzip or plain tar), uploads every blob REPO does not have yet, each
verified against its digest, then writes every manifest and
the tags imgpkg writes: sha256-<hex>.imgpkg for every image and bundle, an
image-locations image per bundle, and last the root bundle's original tag.
A failure before that never moves the original tag, and running the same
import again finishes what an interrupted one started.

Signatures and referrers exported with --cosign-signatures or --referrers
are imported too, always: cosign's under their sha256-<hex>.sig/.att/.sbom
tags (plus sha256-<their hex>.imgpkg), referrers by digest, before the
original tag.

--dry-run reads only the archive's head and reports what would be uploaded
and which tags would be created or moved, changing nothing.

From a file, only the blobs REPO lacks are read, each where it lies. The
volumes of a split export (export --split-size) are read in place: -f FILE
(when only its volumes exist) or -f FILE.001; a missing, extra, out-of-order
or truncated volume is named and nothing is tagged. cat FILE.0* | ferry
import -f - reads them too. A tarball written by imgpkg copy --to-tar is
read in place as well, and gives REPO exactly the tags and digests imgpkg
copy --tar would.`,
		Flags: withRegistryFlags(
			&cli.StringFlag{Name: "file", Aliases: []string{"f"}, Usage: "archive to import (- for standard input)"},
			&cli.StringFlag{Name: "to-repo", Usage: "destination repository (REGISTRY/PATH)"},
			&cli.BoolFlag{Name: "repo-based-tags", Usage: "tag images <source-path>-sha256-<hex>.imgpkg, as imgpkg's flag of the same name"},
			&cli.StringFlag{Name: "lock-output", Usage: "write a BundleLock naming the bundle at its new home"},
			&cli.BoolFlag{Name: "dry-run", Usage: "report what would be uploaded and tagged; change nothing"},
			&cli.StringFlag{Name: "spool-dir", Usage: "when reading from a pipe (or an archive without a seek table), keep each large blob in a temporary file under `DIR` until its upload is done, so that a failed upload is sent again in full (default: stream it, nothing on disk)"},
			&cli.BoolFlag{Name: "cosign-signatures", Usage: importArtifactsUsage},
			&cli.BoolFlag{Name: "referrers", Usage: importArtifactsUsage},
			&cli.IntFlag{Name: "concurrency", Value: relocate.DefaultImportConcurrency, Usage: "registry requests (blob checks and uploads) at once"},
		),
		Action: runImport,
	}
}

func runImport(c *cli.Context) error {
	out, err := newPrinter(c)
	if err != nil {
		return err
	}
	file, to := c.String("file"), c.String("to-repo")
	if file == "" || to == "" {
		return usagef("import: give the archive with -f FILE (or -f -) and the destination with --to-repo REPO")
	}
	reg := registryOptions(c)
	repo, err := parseRepo(to, reg)
	if err != nil {
		return err
	}
	var in io.Reader = c.App.Reader
	if file != "-" {
		f, err := volumes.OpenArchive(file)
		if err != nil {
			return fmt.Errorf("import: %w", err)
		}
		defer f.Close()
		in = f
	}
	remoteOpts, err := reg.RemoteOptions(c.Context)
	if err != nil {
		return err
	}
	client, err := registryClient(reg)
	if err != nil {
		return err
	}
	res, err := relocate.Import(c.Context, in, repo, relocate.ImportOptions{
		DestinationOptions: relocate.DestinationOptions{
			Remote:        remoteOpts,
			Client:        client,
			Name:          reg.NameOptions(),
			Concurrency:   c.Int("concurrency"),
			RepoBasedTags: c.Bool("repo-based-tags"),
			DryRun:        c.Bool("dry-run"),
			LockOutput:    c.String("lock-output"),
			Reporter:      out.Reporter(),
		},
		SpoolDir: c.String("spool-dir"),
	})
	if err != nil {
		source := file
		if file == "-" {
			source = "standard input"
		}
		return fmt.Errorf("%s: %w", source, explain(err, to))
	}
	took := out.Elapsed()
	return out.Result(res, func(w io.Writer) { printImport(w, "import", res, took) })
}

// printImport prints the summary of an import or a copy: where, what
// moved and what was already there, how long, then every tag as one table
// (action, tag, short digest) in the order they were written, the original
// tag last. command is "import" or "copy".
func printImport(w io.Writer, command string, res *relocate.ImportResult, took time.Duration) {
	sent := res.BytesUploaded - res.BytesMounted
	verb := map[string]string{"import": "Imported", "copy": "Copied"}[command]
	upload := "uploaded"
	switch {
	case res.DryRun:
		fmt.Fprintf(w, "Dry run, nothing changed: what %s into %s would do\n", map[string]string{"import": "an import", "copy": "a copy"}[command], res.Repository)
		upload = "to upload"
	case res.BlobsUploaded > 0:
		fmt.Fprintf(w, "%s into %s in %s (%s)\n", verb, res.Repository, roundDuration(took), rate(sent, took))
	default:
		fmt.Fprintf(w, "%s into %s in %s\n", verb, res.Repository, roundDuration(took))
	}
	tw := summaryTable(w)
	blobs := fmt.Sprintf("%d %s (%s)", res.BlobsUploaded, upload, humanBytes(res.BytesUploaded))
	if res.BlobsMounted > 0 {
		blobs += fmt.Sprintf(", %d of them mounted (%s not sent)", res.BlobsMounted, humanBytes(res.BytesMounted))
	}
	blobs += fmt.Sprintf(", %d already there", res.BlobsPresent)
	if res.BlobsPresent > 0 {
		blobs += " (" + humanBytes(res.BytesPresent) + ")"
	}
	fmt.Fprintf(tw, "  blobs\t%s\n", blobs)
	pushed := "pushed"
	if res.DryRun {
		pushed = "to push"
	}
	fmt.Fprintf(tw, "  manifests\t%d %s, %d already there\n", res.ManifestsPushed, pushed, res.ManifestsPresent)
	if res.BlobsLeftOut > 0 {
		line := fmt.Sprintf("%d left out of the archive (%s), all held by the destination", res.BlobsLeftOut, humanBytes(res.BytesLeftOut))
		if res.LeftOutMounted > 0 {
			line += fmt.Sprintf(", %d of them mounted from another repository", res.LeftOutMounted)
		}
		fmt.Fprintf(tw, "  delta\t%s\n", line)
	}
	tw.Flush()
	printTags(w, res.Tags)
}

// printTags prints the tags of an import or a copy as one table, in the
// order they were written (the original tag, the commit point, last).
func printTags(w io.Writer, tags []relocate.TagResult) {
	if len(tags) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw := summaryTable(w)
	fmt.Fprintln(tw, "  ACTION\tTAG\tDIGEST")
	for _, t := range tags {
		d := shortDigest(t.Digest)
		if d == "" {
			d = "(not known yet)"
		}
		if t.Previous != "" && t.Action == relocate.TagMove {
			d += " (was " + shortDigest(t.Previous) + ")"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", t.Action, quoteUnsafe(t.Tag), d)
	}
	tw.Flush()
}
