package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/urfave/cli/v2"

	"github.com/ferry-dev/ferry/internal/atomicfile"
	"github.com/ferry-dev/ferry/relocate"
)

func inventoryCommand() *cli.Command {
	return &cli.Command{
		Name:      "inventory",
		Usage:     "list every manifest and blob some repositories hold, for export --since",
		UsageText: "ferry inventory --repo REPO [--repo REPO...] -o have.json",
		Description: `Walks each REPO from every one of its tags (internal tags included), through
manifests, index children and referrers, and writes what they hold — digests
and sizes only, no content — into one JSON document (docs/inventory.md). A
manifest it cannot read (Docker schema 1, say) is listed without what it
references, and one it cannot fetch (gone, too large) is skipped, each with
a warning: the walk goes on.

Run it on the far side of an air gap and carry the file back: then
ferry export --since have.json leaves out of the archive every config and
layer the far side already holds, and ferry import checks, before writing
anything, that they are there. Give every repository the imports go into;
blobs held in another repository of the same registry are mounted from it.`,
		Flags: withRegistryFlags("also print each repository's counts as soon as it is walked",
			&cli.StringSliceFlag{Name: "repo", Usage: "repository `REPO` to walk (REGISTRY/PATH); repeatable"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "inventory `FILE` to write (written atomically), or - for standard output"},
			concurrencyFlag(relocate.DefaultConcurrency, "`N` registry requests at once"),
		),
		Action: runInventory,
	}
}

// inventoryJSON is the --json result of inventory.
type inventoryJSON struct {
	Output       string                `json:"output"`
	Repositories []inventoryRepository `json:"repositories"`
}

type inventoryRepository struct {
	Repository string `json:"repository"`
	Tags       int    `json:"tags"`
	Manifests  int    `json:"manifests"`
	Blobs      int    `json:"blobs"`
	Bytes      int64  `json:"bytes"`
}

func runInventory(c *cli.Context) error {
	out, err := newPrinter(c)
	if err != nil {
		return err
	}
	defer out.Close()
	dest := c.String("output")
	if len(c.StringSlice("repo")) == 0 || dest == "" {
		return usagef("inventory: give the repositories with --repo REPO (repeatable) and the file to write with -o FILE")
	}
	if dest == "-" && c.Bool("json") {
		return usagef("inventory: -o - writes the inventory on stdout, where --json would write its result too: give one of them")
	}
	if dest != "-" {
		// Before the walk: its requests would be wasted.
		if err := checkOutputFile("inventory", dest); err != nil {
			return err
		}
	}
	reg, err := registryOptions(c)
	if err != nil {
		return err
	}
	var repos []name.Repository
	for _, s := range c.StringSlice("repo") {
		repo, err := repoFlag(c, "--repo", s, reg, true)
		if err != nil {
			return err
		}
		repos = append(repos, repo)
	}
	remoteOpts, err := reg.RemoteOptions(c.Context)
	if err != nil {
		return err
	}
	client, err := registryClient(reg)
	if err != nil {
		return err
	}
	out.Begin("walking " + strings.Join(c.StringSlice("repo"), ", "))
	doc, err := relocate.TakeInventory(c.Context, repos, relocate.InventoryOptions{
		Remote:      remoteOpts,
		Client:      client,
		Concurrency: c.Int("concurrency"),
		CreatedBy:   "ferry " + readVersion().short,
		Reporter:    out.Reporter(),
	})
	if err != nil {
		return explain(reg, err, "")
	}
	if dest == "-" {
		// Written where a shell or ssh takes it: ssh far ferry inventory … -o - > have.json
		// The spinner goes first: on a terminal it shares the screen.
		out.Close()
		b, err := doc.Marshal()
		if err != nil {
			return err
		}
		if _, err := c.App.Writer.Write(b); err != nil {
			return fmt.Errorf("inventory: standard output: %w", err)
		}
		dest = "standard output"
	} else {
		atomicfile.WarnIfBusy(dest, out.Reporter().Warnf)
		if err := doc.WriteFile(dest); err != nil {
			return err
		}
	}
	j := inventoryJSON{Output: dest}
	for _, r := range doc.Repositories {
		var bytes int64
		for _, b := range r.Blobs {
			bytes += b.Size
		}
		j.Repositories = append(j.Repositories, inventoryRepository{Repository: r.Name(), Tags: r.Tags, Manifests: len(r.Manifests), Blobs: len(r.Blobs), Bytes: bytes})
	}
	return out.Result(j, func(w io.Writer) {
		for _, r := range j.Repositories {
			fmt.Fprintf(w, "%s: %s, %s, %s (%s)\n", r.Repository, plural(r.Tags, "tag"), plural(r.Manifests, "manifest"), plural(r.Blobs, "blob"), humanBytes(r.Bytes))
		}
		fmt.Fprintf(w, "Inventory written to %s\n", dest)
	})
}
