package main

import (
	"fmt"
	"io"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/ferry-dev/ferry/relocate"
)

func importCommand() *cli.Command {
	return &cli.Command{
		Name:      "import",
		Usage:     "upload a ferry archive into one repository, with imgpkg's tags",
		UsageText: "ferry import -f FILE.tar.zst --to-repo REPO [--repo-based-tags] [--lock-output FILE] [--dry-run]\n   zstd -d < FILE.tar.zst | ferry import -f - --to-repo REPO",
		Description: `Reads the archive once, front to back, without extracting it (a file, or -
for standard input; zstd, gzip or plain tar), uploads every blob REPO does not
have yet, each verified against its digest, then writes every manifest and
the tags imgpkg writes: sha256-<hex>.imgpkg for every image and bundle, an
image-locations image per bundle, and last the root bundle's original tag.
A failure before that never moves the original tag, and running the same
import again finishes what an interrupted one started.

Signatures and referrers exported with --cosign-signatures or --referrers
are imported too, always: cosign's under their sha256-<hex>.sig/.att/.sbom
tags (plus sha256-<their hex>.imgpkg), referrers by digest, before the
original tag.

--dry-run reads only the archive's head and reports what would be uploaded
and which tags would be created or moved, changing nothing.`,
		Flags: withRegistryFlags(
			&cli.StringFlag{Name: "file", Aliases: []string{"f"}, Usage: "archive to import (- for standard input)"},
			&cli.StringFlag{Name: "to-repo", Usage: "destination repository (REGISTRY/PATH)"},
			&cli.BoolFlag{Name: "repo-based-tags", Usage: "tag images <source-path>-sha256-<hex>.imgpkg, as imgpkg's flag of the same name"},
			&cli.StringFlag{Name: "lock-output", Usage: "write a BundleLock naming the bundle at its new home"},
			&cli.BoolFlag{Name: "dry-run", Usage: "report what would be uploaded and tagged; change nothing"},
			&cli.StringFlag{Name: "spool-dir", Usage: "when reading from a pipe (or an archive without a seek table), keep each large blob in a temporary file under `DIR` until its upload is done, so that a failed upload is sent again in full (default: stream it, nothing on disk)"},
			&cli.BoolFlag{Name: "cosign-signatures", Usage: importArtifactsUsage},
			&cli.BoolFlag{Name: "referrers", Usage: importArtifactsUsage},
			&cli.IntFlag{Name: "concurrency", Value: relocate.DefaultImportConcurrency, Usage: "registry requests (blob checks and uploads) at once; with a registry 10 ms away uploads ran at 21 MB/s at 1, 69 at 4, 92 at 8, 105 at 16"},
			jsonFlag(),
		),
		Action: runImport,
	}
}

func runImport(c *cli.Context) error {
	out := newPrinter(c)
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
		f, err := os.Open(file)
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
	return out.Result(res, func(w io.Writer) { printImport(w, "Imported into", res) })
}

// printImport prints the result of an import or copy; verb says which
// ("Imported into", "Copied into").
func printImport(w io.Writer, verb string, res *relocate.ImportResult) {
	if res.DryRun {
		verb = "Dry run (nothing changed) for"
	}
	fmt.Fprintf(w, "%s %s\n", verb, res.Repository)
	upload := "uploaded"
	if res.DryRun {
		upload = "to upload"
	}
	fmt.Fprintf(w, "Blobs: %d %s (%s), %d already there (%s)\n", res.BlobsUploaded, upload, humanBytes(res.BytesUploaded), res.BlobsPresent, humanBytes(res.BytesPresent))
	fmt.Fprintf(w, "Manifests: %d pushed, %d already there\n", res.ManifestsPushed, res.ManifestsPresent)
	for _, t := range res.Tags {
		switch {
		case t.Previous != "" && string(t.Action) == "move":
			fmt.Fprintf(w, "  %-8s %s -> %s (was %s)\n", t.Action, t.Tag, t.Digest, t.Previous)
		default:
			fmt.Fprintf(w, "  %-8s %s -> %s\n", t.Action, t.Tag, t.Digest)
		}
	}
	if res.Root != "" {
		fmt.Fprintf(w, "Bundle: %s\n", res.Root)
	}
	if res.Tag != "" {
		fmt.Fprintf(w, "Tag: %s:%s\n", res.Repository, res.Tag)
	}
}
