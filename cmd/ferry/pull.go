package main

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/ferry-dev/ferry/internal/progress"
	"github.com/ferry-dev/ferry/internal/pull"
)

func pullCommand() *cli.Command {
	return &cli.Command{
		Name:      "pull",
		Usage:     "pull a bundle (-b) or plain image (-i) into a directory",
		UsageText: "ferry pull -b REF -o DIR [-r] [--overwrite]\nferry pull -i REF -o DIR",
		Description: `Extracts the bundle's files into DIR. Entries that would land outside DIR
(.., absolute paths, links) are refused.

When the bundle has been relocated (copied or imported into another
repository), .imgpkg/images.yml is rewritten to name every image in the
bundle's repository: from its image-locations image when there is one,
otherwise only if every image is found there by digest.

-r also pulls nested bundles into DIR/.imgpkg/bundles/sha256-<hex>/.`,
		Flags: withRegistryFlags("print full digests in the summary, which names every bundle pulled and where",
			&cli.StringFlag{Name: "bundle", Aliases: []string{"b"}, Usage: "bundle `REF` to pull, by tag or digest"},
			&cli.StringFlag{Name: "image", Aliases: []string{"i"}, Usage: "plain image `REF` to pull, by tag or digest"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "directory `DIR` to write into, created if missing; it must be empty unless --overwrite"},
			&cli.BoolFlag{Name: "recursive", Aliases: []string{"r"}, Usage: "also pull nested bundles, into DIR/.imgpkg/bundles/sha256-<hex>/"},
			&cli.BoolFlag{Name: "overwrite", Usage: "replace the contents of a non-empty output directory"},
		),
		Action: runPull,
	}
}

func runPull(c *cli.Context) error {
	out, err := newPrinter(c)
	if err != nil {
		return err
	}
	defer out.Close()
	src, isBundle, err := bundleOrImage(c)
	if err != nil {
		return err
	}
	dir := c.String("output")
	if dir == "" {
		return usagef("pull: give the output directory with -o DIR")
	}
	if c.Bool("recursive") && !isBundle {
		return usagef("pull: -r is for bundles (-b)")
	}
	reg, err := registryOptions(c)
	if err != nil {
		return err
	}
	ref, err := referenceFlag(c, bundleOrImageFlag(isBundle), src, reg)
	if err != nil {
		return err
	}
	remoteOpts, err := reg.RemoteOptions(c.Context)
	if err != nil {
		return err
	}
	res, err := pull.Pull(c.Context, ref, dir, pull.Options{
		Bundle:    isBundle,
		Recursive: c.Bool("recursive"),
		Overwrite: c.Bool("overwrite"),
		Remote:    remoteOpts,
		Name:      reg.NameOptions(),
		// Progress (a bar, or a heartbeat without a terminal) and warnings
		// (a nested bundle's directory cleared of what the root bundle put
		// there), but no step lines: the summary below says what was
		// pulled and how images.yml was treated, for the root and every
		// nested bundle.
		Reporter: noSteps{out.Reporter()},
	})
	if err != nil {
		return explain(reg, err, src)
	}
	took := out.Elapsed()
	return out.Result(res, func(w io.Writer) {
		fmt.Fprintf(w, "Pulled %s into %s in %s (%s)\n", withDigest(res.Ref, res.Digest, out.verbose()), res.Dir, formatDuration(took), rate(res.TotalBytes(), took))
		printRewrite(w, res, out.verbose())
	})
}

// printRewrite says how res's images.yml was treated, then the same of
// every nested bundle pulled, each named by its digest (abbreviated unless
// verbose), or by its directory alone when that is named after it.
func printRewrite(w io.Writer, res *pull.Result, verbose bool) {
	switch res.Rewrite {
	case pull.RewriteLocations:
		fmt.Fprintf(w, "%s: images.yml rewritten to the bundle's repository (image-locations image found)\n", res.Dir)
	case pull.RewriteChecked:
		fmt.Fprintf(w, "%s: images.yml rewritten to the bundle's repository (every image found there by digest)\n", res.Dir)
	case pull.RewriteNone:
		if res.Bundle {
			fmt.Fprintf(w, "%s: images.yml left as pushed (images are at their original locations)\n", res.Dir)
		}
	}
	for i := range res.Nested {
		n := &res.Nested[i]
		switch d := n.Digest; {
		case filepath.Base(n.Dir) == strings.Replace(d, ":", "-", 1):
			fmt.Fprintf(w, "Pulled nested bundle into %s\n", n.Dir)
		case verbose:
			fmt.Fprintf(w, "Pulled nested bundle %s into %s\n", d, n.Dir)
		default:
			fmt.Fprintf(w, "Pulled nested bundle %s into %s\n", shortDigest(d), n.Dir)
		}
		printRewrite(w, n, verbose)
	}
}

// noSteps passes everything but step lines on to its Reporter: the steps
// are those that a command's summary repeats.
type noSteps struct {
	progress.Reporter
}

// Logf implements progress.Reporter.
func (noSteps) Logf(string, ...any) {}
