package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/urfave/cli/v2"

	"github.com/ferry-dev/ferry/internal/regerr"
	"github.com/ferry-dev/ferry/internal/taglist"
)

func tagCommand() *cli.Command {
	return &cli.Command{
		Name:      "tag",
		Usage:     "work with a repository's tags",
		UsageText: "ferry tag list -i REPO [--digests] [--imgpkg-internal-tags]",
		Subcommands: []*cli.Command{{
			Name:      "list",
			Aliases:   []string{"ls"},
			Usage:     "list the tags of a repository",
			UsageText: "ferry tag list -i REPO [--digests] [--imgpkg-internal-tags]",
			Description: `Lists the tags of REPO. The tags imgpkg and ferry write for their own
bookkeeping (sha256-<hex>.imgpkg, ….image-locations.imgpkg, cosign's
.sig/.att/.sbom) are hidden unless --imgpkg-internal-tags is given.`,
			Flags: withRegistryFlags("no effect: tag list prints the listing and nothing more",
				&cli.StringFlag{Name: "image", Aliases: []string{"i"}, Usage: "repository to list, `REPO` (REGISTRY/PATH)"},
				&cli.BoolFlag{Name: "digests", Usage: "also show the digest each tag points at"},
				&cli.BoolFlag{Name: "imgpkg-internal-tags", Usage: "include imgpkg's and cosign's internal tags"},
			),
			Action: runTagList,
		}},
	}
}

func runTagList(c *cli.Context) error {
	out, err := newPrinter(c)
	if err != nil {
		return err
	}
	src := c.String("image")
	if src == "" {
		return usagef("tag list: give the repository with -i REPO")
	}
	reg, err := registryOptions(c)
	if err != nil {
		return err
	}
	if err := refuseArchiveAsReference(c, "-i", src); err != nil {
		return err
	}
	repo, err := repoFlag(c, "-i", src, reg, false)
	if err != nil {
		return err
	}
	remoteOpts, err := reg.RemoteOptions(c.Context)
	if err != nil {
		return err
	}
	list, err := taglist.List(c.Context, repo, taglist.Options{
		Digests:  c.Bool("digests"),
		Internal: c.Bool("imgpkg-internal-tags"),
		Remote:   remoteOpts,
	})
	if err != nil {
		return explain(reg, tagListError(err, repo), src)
	}
	if list == nil {
		// A repository with only internal tags lists none: [], not null.
		list = []taglist.Tag{}
	}
	return out.Listing(list, func(w io.Writer) {
		for _, t := range list {
			// A registry's tag names are printed as they are only when a
			// terminal shows them as they are.
			if t.Digest != "" {
				fmt.Fprintf(w, "%s\t%s\n", quoteUnsafe(t.Name), t.Digest)
			} else {
				fmt.Fprintln(w, quoteUnsafe(t.Name))
			}
		}
	})
}

// tagListError says that repo does not exist when the registry answers its
// tag listing so (NAME_UNKNOWN, or a 404), instead of the request's URL
// and the registry's error document. Other failures, and a tag that
// vanished while --digests resolved it, are left as they are.
func tagListError(err error, repo name.Repository) error {
	var te *transport.Error
	if !errors.As(err, &te) || te.Request == nil || te.Request.URL == nil ||
		!strings.HasSuffix(te.Request.URL.Path, "/tags/list") || !regerr.IsNotFound(err) {
		return err
	}
	return fmt.Errorf("repository %s not found on %s", repo.RepositoryStr(), repo.RegistryStr())
}
