package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/ferry-dev/ferry/archive"
	"github.com/ferry-dev/ferry/relocate"
)

func inspectCommand() *cli.Command {
	return &cli.Command{
		Name:      "inspect",
		Args:      true, // one: refuseStrayArgs refuses more
		Usage:     "show what an archive holds and the tags an import will write",
		UsageText: "ferry inspect FILE.tar.zst [--json]\nferry inspect - < FILE.tar.zst",
		Description: `Reads only the head of the archive (index.json and the manifests come
first), so it answers at once whatever the archive's size. It verifies what
it reads; ferry verify checks the configs and layers too. FILE may be the
volumes of a split export (FILE, or FILE.001) or a tarball imgpkg copy
--to-tar wrote.`,
		Flags:  outputFlags("print full digests (in references and the DIGEST column), and list every blob a delta archive left out, not only the first 10"),
		Action: runInspect,
	}
}

// openArchive opens the archive named by the command's one argument ("-"
// is standard input).
func openArchive(c *cli.Context) (io.Reader, func(), error) {
	if c.NArg() != 1 {
		return nil, nil, usagef("%s: give one archive (FILE.tar.zst, or - for standard input)", c.Command.Name)
	}
	return archiveInput(c, c.Args().First(), c.Command.Name)
}

func runInspect(c *cli.Context) error {
	out, err := newPrinter(c)
	if err != nil {
		return err
	}
	in, done, err := openArchive(c)
	if err != nil {
		return err
	}
	defer done()
	inv, err := relocate.Inspect(in)
	if err != nil {
		return fmt.Errorf("inspect %s: %w", c.Args().First(), err)
	}
	// Everything below but the sizes and digests comes from the archive,
	// which may be hostile: its strings are quoted when unprintable.
	name := c.Args().First()
	if name == "-" {
		// As verify says it.
		name = "standard input"
	}
	return out.Listing(inv, func(w io.Writer) {
		if inv.Format == relocate.FormatImgpkg {
			fmt.Fprintf(w, "Archive: %s (an imgpkg tarball, written by %s)\n", name, inv.CreatedBy)
		} else {
			fmt.Fprintf(w, "Archive: %s (format %d, %s", name, inv.Version, quoteUnsafe(inv.Compression))
			if inv.CreatedBy != "" {
				fmt.Fprintf(w, ", written by %s", quoteUnsafe(inv.CreatedBy))
			}
			fmt.Fprintln(w, ")")
		}
		if n := len(inv.Volumes); n > 0 {
			fmt.Fprintf(w, "Volumes: %d, %s\n", n, volumeRange(inv.Volumes))
		}
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ROLE\tREFERENCE\tDIGEST\tPLATFORMS\tSIZE")
		for _, im := range inv.Images {
			// A reference by digest would make its column 71 wide beside
			// the DIGEST column: abbreviated as that is, unless -v.
			ref := im.OriginalRef
			if !out.verbose() {
				ref = shortDigests(ref)
			}
			ref = quoteUnsafe(ref)
			if im.Tag != "" && !strings.Contains(im.OriginalRef, ":"+im.Tag) {
				ref += " (tag " + quoteUnsafe(im.Tag) + ")"
			}
			plats := make([]string, len(im.Platforms))
			for i, p := range im.Platforms {
				plats[i] = quoteUnsafe(p)
			}
			platforms := strings.Join(plats, ",")
			if platforms == "" {
				platforms = "-"
			}
			digest := im.Digest
			if !out.verbose() {
				digest = shortDigest(digest)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", quoteUnsafe(im.Role), ref, digest, platforms, humanBytes(im.Size))
		}
		tw.Flush()
		fmt.Fprintf(w, "Total: %s, %s (%s), %s (%s)\n", plural(len(inv.Images), "image"), plural(inv.Blobs, "blob"), humanBytes(inv.Bytes), plural(inv.Manifests, "manifest"), humanBytes(inv.ManifestBytes))
		for _, s := range inv.Skipped {
			fmt.Fprintf(w, "Left out (non-distributable): %s\n", quoteUnsafe(s))
		}
		if d := inv.Delta; d != nil {
			fmt.Fprintf(w, "Delta: %s (%s) left out, expected at the destination from:\n", plural(len(d.LeftOut), "blob"), humanBytes(inv.LeftOutBytes))
			for _, b := range d.Bases {
				fmt.Fprintf(w, "  %s\n", quoteUnsafe(b.String()))
			}
			for i, l := range d.LeftOut {
				if i == 10 && !out.verbose() {
					fmt.Fprintf(w, "  … and %d more (-v lists them all)\n", len(d.LeftOut)-i)
					break
				}
				fmt.Fprintf(w, "  left out %s  %s\n", l.Digest, humanBytes(l.Size))
			}
		}
		if inv.ImportRefused != "" {
			// Listed all the same: inspect is how one sees what such an
			// archive holds.
			fmt.Fprintf(w, "An import refuses this archive, writing nothing: %s\n", quoteUnsafe(inv.ImportRefused))
			return
		}
		fmt.Fprintln(w, "An import writes these tags, the last one last:")
		printImportTags(w, inv)
	})
}

// printImportTags lists the tags an import writes, in order. Each bundle's
// locations image also gets the tag of its own digest, known only at
// import: one line says so, before the original tag (written last).
func printImportTags(w io.Writer, inv *relocate.Inventory) {
	// One locations image per bundle digest, however many entries
	// list it.
	bundles, original := map[string]bool{}, ""
	for _, im := range inv.Images {
		if im.Role == string(archive.RoleBundle) || im.Role == string(archive.RoleNestedBundle) {
			bundles[im.Digest] = true
		}
		if im.Tag != "" {
			original = im.Tag
		}
	}
	tags := inv.Tags
	if original != "" && len(tags) > 0 && tags[len(tags)-1] == original {
		tags = tags[:len(tags)-1]
	} else {
		original = ""
	}
	for _, t := range tags {
		fmt.Fprintf(w, "  %s\n", quoteUnsafe(t))
	}
	if len(bundles) > 0 {
		fmt.Fprintf(w, "  sha256-<locations image digest>.imgpkg (%s, known at import)\n", plural(len(bundles), "tag"))
	}
	if original != "" {
		fmt.Fprintf(w, "  %s\n", quoteUnsafe(original))
	}
}

func verifyCommand() *cli.Command {
	return &cli.Command{
		Name:      "verify",
		Args:      true, // one: refuseStrayArgs refuses more
		Usage:     "check an archive offline: every digest, size and reference",
		UsageText: "ferry verify FILE.tar.zst [--since BASE.tar.zst...] [--json]\nferry verify FILE.tar.zst.001          (the volumes of a split export)\ncat FILE.tar.zst | ferry verify -      (standard input: no FILE.sha256 to compare)",
		Description: `Reads the whole archive once, without a network, and checks the layout,
index.json, every manifest, every config and layer against its digest and
size, that every image a bundle's images.yml locks is in the archive, and,
when FILE.sha256 exists beside it, the archive's checksum. Exits 1 naming
the first problem.

A delta archive (export --since) leaves out blobs the destination holds:
verify reports them as expected elsewhere. With --since BASE, it also
checks that the base archive's table of contents lists every one of them
(the left-out blobs' bytes are not read: a base without a table of contents is
read and verified whole), and reads from it the images.yml of a bundle
whose layer was left out.

The volumes of a split export are each checked against their line of
FILE.sha256, so a damaged, missing, extra or out-of-order volume is named.
A tarball imgpkg copy --to-tar wrote is checked the same way.`,
		Flags: append(outputFlags("print full digests in what could not be checked (as --json does)"),
			&cli.StringSliceFlag{Name: "since", Usage: "a base `ARCHIVE` the delta was made against: check that it holds every blob left out; repeatable (default: none: they are reported as expected at the destination)"}),
		Action: runVerify,
	}
}

// verifyPath is the file verify reads: its argument, or for "-" standard
// input by the name the system gives it. A pipe is read as a stream, front
// to back, as /dev/stdin always was; a file redirected to standard input is
// read at random, as a path would be.
func verifyPath(c *cli.Context) (string, error) {
	path := c.Args().First()
	if path != "-" {
		return path, nil
	}
	f, ok := c.App.Reader.(*os.File)
	if !ok || runtime.GOOS == "windows" {
		return "", usagef("verify: standard input cannot be opened as a file here: give the archive's path")
	}
	if f == os.Stdin {
		return "/dev/stdin", nil
	}
	return fmt.Sprintf("/dev/fd/%d", f.Fd()), nil
}

func runVerify(c *cli.Context) error {
	out, err := newPrinter(c)
	if err != nil {
		return err
	}
	defer out.Close()
	if c.NArg() != 1 {
		return usagef("verify: give one archive (FILE.tar.zst, or - for standard input)")
	}
	path, err := verifyPath(c)
	if err != nil {
		return err
	}
	out.Begin("verify: opening " + path)
	res, err := relocate.VerifyFile(c.Context, path, relocate.VerifyOptions{Reporter: out.Reporter(), Since: c.StringSlice("since")})
	if errors.Is(err, relocate.ErrNotABaseArchive) {
		return usageError{err}
	}
	if err != nil {
		return namedArchive(c, path, err)
	}
	if c.Args().First() == "-" {
		res.Archive, path = "-", "standard input"
	}
	took := out.Elapsed()
	return out.Result(res, func(w io.Writer) {
		fmt.Fprintf(w, "OK: %s verified in %s (%s)\n", path, formatDuration(took), rate(res.Bytes, took))
		tw := summaryTable(w)
		// Bundles counts the bundles whose images.yml was read and
		// checked against the archive.
		fmt.Fprintf(tw, "  content\t%s, %s (%s), the images.yml of %s checked\n", plural(res.Images, "image"), plural(res.Blobs, "blob"), humanBytes(res.Bytes), plural(res.Bundles, "bundle"))
		if n := len(res.Volumes); n > 0 {
			fmt.Fprintf(tw, "  volumes\t%d, %s\n", n, volumeRange(res.Volumes))
			fmt.Fprintf(tw, "  sha256\t%s (the volumes joined)\n", res.SHA256)
		} else {
			fmt.Fprintf(tw, "  sha256\t%s\n", res.SHA256)
		}
		if res.Sidecar != "" {
			fmt.Fprintf(tw, "  checksum\tmatches %s\n", res.Sidecar)
		}
		if res.LeftOut > 0 {
			where := "expected at the destination"
			if len(res.Bases) > 0 {
				where = "held by " + strings.Join(res.Bases, ", ")
			}
			fmt.Fprintf(tw, "  delta\t%s (%s) left out, %s\n", plural(res.LeftOut, "blob"), humanBytes(res.LeftOutBytes), where)
		}
		for _, u := range res.Unchecked {
			if !out.verbose() {
				u = shortDigests(u)
			}
			fmt.Fprintf(tw, "  not checked\t%s\n", escapeControls(u))
		}
		tw.Flush()
	})
}
