package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/ferry-dev/ferry/archive"
	"github.com/ferry-dev/ferry/internal/atomicfile"
	"github.com/ferry-dev/ferry/internal/progress"
	"github.com/ferry-dev/ferry/internal/volumes"
	"github.com/ferry-dev/ferry/relocate"
)

// sourceFlags select what a move carries: a bundle, an image or a lock file;
// concurrency is the --concurrency flag, whose meaning differs by command;
// mode prefixes the help of the others where they apply to some of the
// command's modes only ("with --to-repo or --to-tar: "), except the
// artifact flags, which every mode of copy takes (--tar ignores them, as
// import does).
func sourceFlags(concurrency cli.Flag, mode string) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "bundle", Aliases: []string{"b"}, Usage: mode + "bundle `REF` to carry, with every image its images.yml locks (nested bundles too)"},
		&cli.StringFlag{Name: "image", Aliases: []string{"i"}, Usage: mode + "image or image index `REF` to carry as it is"},
		&cli.StringFlag{Name: "lock", Usage: mode + "ImagesLock or BundleLock `FILE` naming what to carry", Action: existingFile("lock")},
		concurrency,
		&cli.BoolFlag{Name: "include-non-distributable-layers", Usage: mode + "also carry foreign (non-distributable) layers"},
		cosignSignaturesFlag(""),
		referrersFlag(""),
	}
}

// The artifact flags cost requests for every image, found or not, so they
// are off by default (as imgpkg's --cosign-signatures is); how many is in
// the commands' descriptions.
const (
	cosignSignaturesUsage = "also carry cosign's signatures, attestations and SBOMs (tags sha256-<hex>.sig, .att, .sbom) of the bundle and every image it locks"
	referrersUsage        = "also carry the OCI 1.1 referrers (artifacts whose subject is the bundle or an image it locks)"
	importArtifactsUsage  = "no effect: an import carries the signatures and referrers the archive holds (export decides); accepted for scripts"
)

func cosignSignaturesFlag(mode string) cli.Flag {
	return &cli.BoolFlag{Name: "cosign-signatures", Usage: mode + cosignSignaturesUsage}
}

func referrersFlag(mode string) cli.Flag {
	return &cli.BoolFlag{Name: "referrers", Usage: mode + referrersUsage}
}

// planSource reads -b, -i and --lock, exactly one of which must be given.
func planSource(c *cli.Context) (relocate.Source, error) {
	src := relocate.Source{Bundle: c.String("bundle"), Image: c.String("image"), LockFile: c.String("lock")}
	n := 0
	for _, s := range []string{src.Bundle, src.Image, src.LockFile} {
		if s != "" {
			n++
		}
	}
	if n != 1 {
		return src, usagef("%s: give exactly one of -b BUNDLE, -i IMAGE or --lock FILE", c.Command.Name)
	}
	for _, f := range []struct{ flag, value string }{{"-b", src.Bundle}, {"-i", src.Image}, {"--lock", src.LockFile}} {
		if err := refuseArchiveAsReference(c, f.flag, f.value); err != nil {
			return src, err
		}
	}
	// A reference that cannot be parsed is refused as a mistyped flag is,
	// before any registry is asked.
	reg, err := registryOptions(c)
	if err != nil {
		return src, err
	}
	for _, f := range []struct{ flag, ref string }{{"-b", src.Bundle}, {"-i", src.Image}} {
		if f.ref == "" {
			continue
		}
		if _, err := referenceFlag(c, f.flag, f.ref, reg); err != nil {
			return src, err
		}
	}
	return src, nil
}

// resolveOptions reads the flags of c that say how to resolve a plan.
func resolveOptions(c *cli.Context, out *printer) (relocate.Options, error) {
	reg, err := registryOptions(c)
	if err != nil {
		return relocate.Options{}, err
	}
	remoteOpts, err := reg.RemoteOptions(c.Context)
	if err != nil {
		return relocate.Options{}, err
	}
	client, err := registryClient(reg)
	if err != nil {
		return relocate.Options{}, err
	}
	return relocate.Options{
		Remote:                  remoteOpts,
		Client:                  client,
		Name:                    reg.NameOptions(),
		Concurrency:             c.Int("concurrency"),
		IncludeNonDistributable: c.Bool("include-non-distributable-layers"),
		CosignSignatures:        c.Bool("cosign-signatures"),
		Referrers:               c.Bool("referrers"),
		Reporter:                out.Reporter(),
	}, nil
}

// resolvePlan resolves the source flags of c into a plan.
func resolvePlan(c *cli.Context, out *printer) (*relocate.Plan, relocate.Options, error) {
	src, err := planSource(c)
	if err != nil {
		return nil, relocate.Options{}, err
	}
	opts, err := resolveOptions(c, out)
	if err != nil {
		return nil, opts, err
	}
	out.Verbosef("resolving %s", src)
	out.Begin("resolving " + src.String())
	p, err := relocate.Resolve(c.Context, src, opts)
	if err != nil {
		return nil, opts, explainFor(c, err, src.String())
	}
	out.Verbosef("resolved %s and %s (%s with their manifests)", plural(len(p.Images), "image"), plural(len(p.Blobs), "blob"), humanBytes(p.TotalBytes))
	return p, opts, nil
}

func exportCommand() *cli.Command {
	return &cli.Command{
		Name:      "export",
		Usage:     "write a bundle and every image it locks into one .tar.zst archive",
		UsageText: "ferry export -b REF -o FILE.tar.zst [--level fastest|default|better|best] [--concurrency N] [--split-size SIZE]\nferry export -i REF -o FILE.tar.zst\nferry export --lock images.yml -o FILE.tar.zst\nferry export -b REF -o - > FILE.tar.zst\nferry export --from-tar bundle.imgpkg.tar -o FILE.tar.zst",
		Description: `Resolves the bundle, every image its .imgpkg/images.yml locks, nested
bundles to any depth and every child of an image index, and writes them,
each blob once, into one zstd-compressed OCI image layout that crane, oras
and regctl read after zstd -d.

The archive is deterministic (the same content gives the same bytes,
whatever --concurrency), written to a temporary file beside FILE and renamed
only when complete, and verified blob by blob as it is written. ferry prints
its sha256 and writes FILE.sha256 (sha256sum format). With -o - the archive
goes to standard output and the result to standard error.

--level sets the zstd level. Layers are mostly gzip already, so a higher
level mostly costs time: default is the measured best trade-off.

--cosign-signatures and --referrers (off by default: they cost requests for
every image, found or not: three HEADs for cosign's three tags, one
referrers request) also carry, for the bundle, nested bundles and every
image a lock names, cosign's sha256-<hex>.sig/.att/.sbom artifacts and the
OCI 1.1 referrers (from the referrers API, or its sha256-<hex> fallback
tag). The children of an image index and the artifacts of artifacts are not
looked up.

--since FILE makes a delta archive: every config and layer that FILE says
the far side holds is left out (manifests always travel). FILE is a
previous archive (what it carried) or an inventory of the far side's
repositories (ferry inventory). The archive records its bases and what it
left out; ferry import checks that the destination holds all of it before
writing anything, and a ferry that predates deltas refuses the archive.

--split-size SIZE writes the archive as volumes FILE.001, FILE.002, … of at
most SIZE bytes each, and nothing under FILE itself: joined in order
(cat FILE.0* > FILE) they are exactly the archive. At most 99 volumes, all
that FILE.0* matches: an archive that needs more is refused, no volume
left, naming the smallest SIZE that fits. FILE.sha256 then has one
line per volume (sha256sum -c checks each). import, inspect and verify read
the volumes in place (-f FILE or -f FILE.001), naming a missing, extra,
out-of-order or truncated volume. SIZE is bytes, or with a suffix: k, M, G,
T are powers of 1000 (4G = 4,000,000,000 fits FAT32, 4.7G a DVD), Ki, Mi,
Gi, Ti powers of 1024 (4Gi is one byte too many for FAT32).

--from-tar FILE re-packs an archive instead of resolving a source: a
tarball imgpkg copy --to-tar wrote (gzip'd too), or a ferry archive (a
file, its volumes, or - for standard input). The images, manifests and
blobs are the same, verified as they are read and written; the new archive
is compressed at --level and split as asked. A gzip'd file or standard
input is read once, front to back. A delta archive (--since) cannot be
re-packed: it lacks the blobs it left out.`,
		Flags: withRegistryFlags("also print the resolution steps and one line per image as it is written into the archive, with its full digest", append(sourceFlags(
			concurrencyFlag(relocate.DefaultConcurrency, "`N` registry requests (manifests, blob downloads) at once"), ""),
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "archive `FILE` to write (FILE.tar.zst), or - for standard output"},
			levelFlag(""),
			sinceFlag(""),
			splitSizeFlag(""),
			&cli.StringFlag{Name: "from-tar", Usage: "re-pack the archive `FILE` (an imgpkg tarball, gzip'd or not, or a ferry archive; - for standard input) instead of resolving -b, -i or --lock"},
		)...),
		Action: runExport,
	}
}

// exportJSON is the --json result of export.
type exportJSON struct {
	Archive      string         `json:"archive"`
	SHA256       string         `json:"sha256"`
	Images       int            `json:"images"`
	Blobs        int            `json:"blobs"`
	Bytes        int64          `json:"bytes"`
	ArchiveBytes int64          `json:"archiveBytes"`
	Skipped      []string       `json:"skippedLayers,omitempty"`
	Bases        []archive.Base `json:"bases,omitempty"`
	LeftOut      int            `json:"leftOut,omitempty"`
	LeftOutBytes int64          `json:"leftOutBytes,omitempty"`
	// Volumes are the volumes written with --split-size, each with its
	// sha256; SHA256 is then that of the volumes joined.
	Volumes []volumes.Volume `json:"volumes,omitempty"`
}

// sinceFlag is --since, of export, copy --to-tar and push --to-tar; mode
// as splitSizeFlag's.
func sinceFlag(mode string) cli.Flag {
	return &cli.StringSliceFlag{Name: "since", Usage: mode + "make a delta: leave out every config and layer that `FILE` says the destination holds (a previous ferry archive or its volumes, or a ferry inventory); repeatable (default: none, a full archive)"}
}

// readSince reads the --since files, before anything is fetched.
func readSince(c *cli.Context, rep progress.Reporter) ([]*relocate.Since, error) {
	var out []*relocate.Since
	for _, path := range c.StringSlice("since") {
		s, err := relocate.ReadSince(c.Context, path, rep)
		if err != nil {
			// "export: --since FILE: …", as the other flags' errors.
			err = fmt.Errorf("%s: %w", commandPath(c), err)
		}
		if errors.Is(err, relocate.ErrNotABase) {
			return nil, usageError{err}
		}
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func runExport(c *cli.Context) error {
	out, err := newPrinter(c)
	if err != nil {
		return err
	}
	defer out.Close()
	dest := c.String("output")
	if dest == "" {
		return usagef("export: give the archive to write with -o FILE.tar.zst (or -o - for standard output)")
	}
	eopts, err := exportOptions(c, out, dest)
	if err != nil {
		return err
	}
	fromTar := c.String("from-tar")
	if fromTar != "" {
		if c.String("bundle") != "" || c.String("image") != "" || c.String("lock") != "" {
			return usagef("export: --from-tar FILE is the source; do not give -b, -i or --lock with it")
		}
		for _, n := range []string{"since", "cosign-signatures", "referrers", "include-non-distributable-layers"} {
			if c.IsSet(n) {
				return usagef("export: --%s does not apply to --from-tar, which re-packs an archive as it is", n)
			}
		}
	} else if _, err := planSource(c); err != nil {
		return err
	}
	if dest != "-" {
		// A missing or read-only directory fails before any download.
		if err := relocate.CheckExportPath(dest, eopts); err != nil {
			return outputError(c, dest, err)
		}
		if err := lockNotOutput(c.String("lock"), dest); err != nil {
			return err
		}
	}
	if eopts.Since, err = readSince(c, eopts.Reporter); err != nil {
		return err
	}
	if dest != "-" && len(eopts.Since) > 0 {
		// A delta written over one of its bases.
		if err := relocate.CheckExportPath(dest, eopts); err != nil {
			return outputError(c, dest, err)
		}
	}
	var p *relocate.Plan
	if fromTar != "" {
		out.Begin("reading " + fromTar)
		in, done, err := archiveInput(c, fromTar, "export --from-tar")
		if err != nil {
			return err
		}
		defer done()
		if p, err = relocate.PlanArchive(in); err != nil {
			return fmt.Errorf("export --from-tar %s: %w", fromTar, err)
		}
	} else {
		var ropts relocate.Options
		if p, ropts, err = resolvePlan(c, out); err != nil {
			return err
		}
		eopts.Remote, eopts.Client = ropts.Remote, ropts.Client
	}
	var res *relocate.ExportResult
	if dest == "-" {
		res, err = relocate.Export(c.Context, p, c.App.Writer, eopts)
	} else {
		res, err = relocate.ExportFile(c.Context, p, dest, eopts)
	}
	if err != nil {
		return explainFor(c, err, "")
	}
	return printExportResult(out, dest, res)
}

// outputError is err, about the archive file dest a command was to write,
// as a usage error when dest would replace a --since base
// (relocate.ErrOutputIsABase), is a symbolic link to nothing
// (atomicfile.ErrDangling) or is a device, a named pipe or a socket
// (atomicfile.ErrNotRegular), telling how to write to one: standard
// output, redirected.
func outputError(c *cli.Context, dest string, err error) error {
	if errors.Is(err, relocate.ErrOutputIsABase) || errors.Is(err, atomicfile.ErrDangling) {
		return usageError{err}
	}
	if !errors.Is(err, atomicfile.ErrNotRegular) {
		return err
	}
	flag := "-o"
	if c.Command.Name != "export" {
		flag = "--to-tar"
	}
	return usageError{fmt.Errorf("%w; to write the archive there, give %s - and redirect standard output: %s - >%s", err, flag, flag, dest)}
}

// lockNotOutput refuses, as a usage error, an archive written at dest
// (or its checksum file, or a volume) that would replace lock, the --lock
// file the run reads: renamed into place at the end, the archive would
// take the place of the only input of the run, silently.
func lockNotOutput(lock, dest string) error {
	if lock == "" {
		return nil
	}
	li, err := os.Stat(lock)
	if err != nil {
		return nil // reading it says why
	}
	target, err := atomicfile.Target(dest)
	if err != nil {
		return nil // CheckExportPath said why
	}
	names := []string{target, target + ".sha256"}
	for i := 1; i <= volumes.MaxVolumes; i++ {
		names = append(names, volumes.Name(target, i))
	}
	for _, n := range names {
		if fi, err := os.Stat(n); err == nil && os.SameFile(li, fi) {
			return usagef("the archive would replace --lock %s (as %s), which this run reads: write the archive under another name", lock, n)
		}
	}
	return nil
}

// checkLockOutput checks the --lock-output file of c, if given, as
// checkOutputFile does.
func checkLockOutput(c *cli.Context) error {
	if lo := c.String("lock-output"); lo != "" {
		return checkOutputFile("lock output", lo)
	}
	return nil
}

// checkOutputFile checks, before any request, that a file (what) can be
// written at path: its directory exists, and path is no device, named
// pipe, socket or symbolic link to one of them or to nothing, which are
// usage errors, as for an archive's -o.
func checkOutputFile(what, path string) error {
	err := atomicfile.CheckDir(path)
	if err == nil {
		_, err = atomicfile.Target(path)
	}
	if err == nil {
		return nil
	}
	err = fmt.Errorf("%s %s: %w", what, path, err)
	if errors.Is(err, atomicfile.ErrNotRegular) || errors.Is(err, atomicfile.ErrDangling) {
		return usageError{err}
	}
	return err
}

// exportOptions reads the flags of c that say how an archive is written
// to dest (--level, --split-size, --concurrency), refusing what does not
// fit dest.
func exportOptions(c *cli.Context, out *printer, dest string) (relocate.ExportOptions, error) {
	level, err := archive.ParseLevel(c.String("level"))
	if err != nil {
		return relocate.ExportOptions{}, usagef("%s: --level: %w", commandPath(c), err)
	}
	split, err := splitSize(c, dest)
	if err != nil {
		return relocate.ExportOptions{}, err
	}
	if dest == "-" && out.json {
		flag := "--to-tar -" // copy and push
		if c.Command.Name == "export" {
			flag = "-o -"
		}
		return relocate.ExportOptions{}, usagef("%s: --json prints on standard output, which %s uses for the archive", c.Command.Name, flag)
	}
	if f, ok := c.App.Writer.(*os.File); ok && dest == "-" && term.IsTerminal(int(f.Fd())) {
		return relocate.ExportOptions{}, usagef("%s: the archive would go to standard output, which is a terminal: redirect it to a file (> FILE.tar.zst) or pipe it to a command", c.Command.Name)
	}
	return relocate.ExportOptions{
		Level:       level,
		Concurrency: c.Int("concurrency"),
		CreatedBy:   "ferry " + readVersion().short,
		Reporter:    out.Reporter(),
		Into:        archiveInto(dest, split),
		SplitSize:   split,
	}, nil
}

// archiveInto names, in the -v line of each image exported, the archive
// written to dest (split into volumes when split is positive): the file,
// standard output, or the volumes as FILE.0* (which of them an image ends
// up in is known only once the compressor has flushed it).
func archiveInto(dest string, split int64) string {
	switch {
	case dest == "-":
		return "standard output"
	case split > 0:
		return "the volumes " + dest + ".0*"
	}
	return dest
}

// printExportResult ends a command that wrote an archive: --json, or the
// summary.
func printExportResult(out *printer, dest string, res *relocate.ExportResult) error {
	j := exportJSON{Archive: dest, SHA256: res.SHA256, Images: res.Images, Blobs: res.Blobs, Bytes: res.Bytes, ArchiveBytes: res.ArchiveBytes, Volumes: res.Volumes}
	for _, s := range res.Skipped {
		j.Skipped = append(j.Skipped, s.Digest.String())
	}
	if res.Delta != nil {
		j.Bases, j.LeftOut, j.LeftOutBytes = res.Delta.Bases, len(res.Delta.LeftOut), res.LeftOutBytes
	}
	took := out.Elapsed()
	return out.Result(j, func(w io.Writer) { printExport(w, dest, res, took, out.verbose()) })
}

// printExport is export's summary: where the archive went, what it holds,
// how long it took, and its full sha256 (what people compare). With verbose,
// the --since bases' full sha256 too.
func printExport(w io.Writer, dest string, res *relocate.ExportResult, took time.Duration, verbose bool) {
	where := dest
	switch n := len(res.Volumes); {
	case dest == "-":
		where = "standard output"
	case n > 0:
		where = volumeRange(res.Volumes)
	}
	fmt.Fprintf(w, "Exported into %s in %s (%s)\n", where, formatDuration(took), rate(res.Bytes, took))
	tw := summaryTable(w)
	fmt.Fprintf(tw, "  content\t%s, %s (%s), %s (%s)\n", plural(res.Images, "image"),
		plural(res.Blobs, "blob"), humanBytes(res.Bytes-res.ManifestBytes), plural(res.Manifests, "manifest"), humanBytes(res.ManifestBytes))
	if n := len(res.Volumes); n > 0 {
		fmt.Fprintf(tw, "  archive\t%s in %s\n", humanBytes(res.ArchiveBytes), plural(n, "volume"))
		fmt.Fprintf(tw, "  sha256\t%s (the volumes joined)\n", res.SHA256)
		fmt.Fprintf(tw, "  checksum\twritten to %s.sha256, one line per volume\n", dest)
	} else {
		fmt.Fprintf(tw, "  archive\t%s\n", humanBytes(res.ArchiveBytes))
		fmt.Fprintf(tw, "  sha256\t%s\n", res.SHA256)
		if dest != "-" {
			fmt.Fprintf(tw, "  checksum\twritten to %s.sha256\n", dest)
		}
	}
	if n := len(res.Skipped); n > 0 {
		fmt.Fprintf(tw, "  left out\t%s (non-distributable)\n", plural(n, "layer"))
	}
	if d := res.Delta; d != nil {
		fmt.Fprintf(tw, "  delta\t%s (%s) left out, expected at the destination\n", plural(len(d.LeftOut), "blob"), humanBytes(res.LeftOutBytes))
		for _, b := range d.Bases {
			printBase(tw, b, verbose)
		}
	}
	tw.Flush()
}

// printBase is a --since base in export's summary, within 80 columns for
// ordinary names: its name and short sha256 (verbose: the full one), then an
// inventory's date and repositories on a line of their own, the repositories
// last since they are the part that can be long.
func printBase(tw io.Writer, b archive.Base, verbose bool) {
	sum := "sha256:" + b.SHA256
	if !verbose {
		sum = shortDigest(sum)
	}
	if b.Kind != archive.BaseInventory {
		fmt.Fprintf(tw, "  since\tarchive %s (%s)\n", quoteUnsafe(b.Name), sum)
		return
	}
	fmt.Fprintf(tw, "  since\tinventory %s (%s)\n", quoteUnsafe(b.Name), sum)
	fmt.Fprintf(tw, "  \ttaken %s of %s\n", quoteUnsafe(b.Created), quoteUnsafe(strings.Join(b.Repositories, ", ")))
}

// volumeRange names the volumes vols (at least one): "X.001 to .004", or
// "X.001" when there is one.
func volumeRange(vols []volumes.Volume) string {
	if len(vols) == 1 {
		return vols[0].Path
	}
	return fmt.Sprintf("%s to %s", vols[0].Path, volumes.Suffix(len(vols)))
}
