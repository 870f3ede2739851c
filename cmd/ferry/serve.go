package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"strconv"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/urfave/cli/v2"

	"github.com/ferry-dev/ferry/archive"
	"github.com/ferry-dev/ferry/relocate"
	"github.com/ferry-dev/ferry/serve"
)

func serveCommand() *cli.Command {
	return &cli.Command{
		Name:      "serve",
		Args:      true, // one: refuseStrayArgs refuses more
		Usage:     "serve an archive as a read-only registry, without importing it",
		UsageText: "ferry serve FILE.tar.zst|FILE.imgpkg.tar [--addr 127.0.0.1:5000] [--repo NAME] [--tls-cert F --tls-key F] [--htpasswd F]",
		Description: `Answers the pull side of the OCI distribution API straight from the
archive: docker, crane, imgpkg, ferry pull, or a registry that replicates
(Harbor, Zot) pull from it as from any registry. Nothing is extracted: each
config and layer is read from where it lies, decompressing only what a
request needs, and checked against its digest in full before its first
byte is sent; a blob that fails is refused, never sent. Every blob is
checked from start-up, one at a time in the background, so that clients
that come later wait for no check and damage is reported at once (--lazy:
only when first asked for; that request waits for the check). Pushes and
deletes are refused.

Without --repo each image is served under its original repository path,
so HOST/team/app@sha256:... works as a mirror of the registry it came
from, and the bundle answers to its original tag. With --repo NAME the
whole archive is one repository with exactly the tags 'ferry import
--to-repo HOST/NAME' would write (sha256-<hex>.imgpkg, the image-locations
images, the original tag), so 'imgpkg pull -b HOST/NAME:TAG' and
'ferry pull' find every image there. Referrers are answered through the
referrers API; the 'sha256-<hex>' fallback tag an import writes into a
registry without that API is not listed.

A delta archive (export --since) serves every manifest and the blobs it
carries; those it left out, and non-distributable layers, answer 404
BLOB_UNKNOWN (it warns at start-up): pull them from where the delta's
base was imported.

It listens on 127.0.0.1:5000 unless --addr says otherwise. Beyond loopback
it needs TLS (--tls-cert, --tls-key) and users (--htpasswd, bcrypt
entries as 'htpasswd -B' writes them), or --insecure to do without (it
then warns). Ctrl-C or SIGTERM stops it, letting requests in flight finish
for a few seconds; it then exits 1 if a config or layer was found damaged
(each is an error on stderr, even with -q, when found). -v logs one line
per request.

A config or layer is read from the archive by one of --streams streams,
each holding a few MiB while it decompresses; a request that finds them all
busy waits up to --stream-wait, then is answered 429 with Retry-After. A
small config already verified needs no stream.

It serves a ferry archive with the seek table ferry export writes, the
volumes of a split export (FILE when only FILE.001, ... exist, or
FILE.001), and an imgpkg tarball ('imgpkg copy --to-tar'), each read in
place. An archive from an older ferry, or recompressed (gzip, plain tar),
is refused: import it with ferry import, or export it again.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "addr", Value: "127.0.0.1:5000", Usage: "address to listen on, `HOST:PORT`; port 0 picks a free one; beyond loopback it needs TLS and --htpasswd, or --insecure"},
			&cli.StringFlag{Name: "repo", Usage: "serve everything as one repository `NAME` (a path, e.g. team/app-bundle) with the tags an import into it writes (default: each image under its original repository path, a mirror)"},
			&cli.BoolFlag{Name: "repo-based-tags", Usage: "with --repo: the tags of an import with --repo-based-tags"},
			&cli.StringFlag{Name: "tls-cert", Usage: "serve HTTPS with the PEM certificate `FILE`, and --tls-key (default: plain HTTP)"},
			&cli.StringFlag{Name: "tls-key", Usage: "the PEM private key `FILE` of --tls-cert (default: plain HTTP)"},
			&cli.StringFlag{Name: "htpasswd", Action: existingFile("htpasswd"), Usage: "require HTTP basic auth from the users of the htpasswd `FILE`, bcrypt entries (default: no authentication)"},
			&cli.BoolFlag{Name: "insecure", Usage: "allow serving beyond loopback without TLS or without --htpasswd"},
			&cli.IntFlag{Name: "streams", Value: serve.DefaultStreams, Action: atLeastOne("streams"), Usage: "`N` configs and layers read from the archive at once; more requests wait their turn (--stream-wait)"},
			&cli.DurationFlag{Name: "stream-wait", Value: serve.DefaultStreamWait, DefaultText: durationText(serve.DefaultStreamWait), Usage: "how long a blob request waits for a stream before it is answered 429 TOOMANYREQUESTS with Retry-After (clients retry it): a `DURATION` with its unit"},
			&cli.BoolFlag{Name: "lazy", Usage: "check each config and layer only when a client first asks for it (default: false: all of them from start-up, one at a time, in the background)"},
			&cli.BoolFlag{Name: "json", Usage: "once listening, print one line of JSON on stdout: url, host, repositories (see the README)"},
			&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "log one line per request, and each blob verified"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print errors only"},
		},
		Action: runServe,
	}
}

// serveStart is the --json line printed once the server listens.
type serveStart struct {
	URL          string   `json:"url"`
	Host         string   `json:"host"`
	Repositories []string `json:"repositories"`
}

func runServe(c *cli.Context) error {
	out, err := newPrinter(c)
	if err != nil {
		return err
	}
	if c.NArg() != 1 || c.Args().First() == "-" {
		return usagef("serve: give one archive file (serve reads it at random, not from standard input)")
	}
	path := c.Args().First()
	repo := c.String("repo")
	if repo != "" {
		if err := serve.CheckRepository(repo); err != nil {
			return usagef("serve: --repo: %v", err)
		}
	}
	if c.Bool("repo-based-tags") && repo == "" {
		return usagef("serve: --repo-based-tags needs --repo")
	}
	if d := c.Duration("stream-wait"); d <= 0 {
		return usagef("serve: --stream-wait %s: give a positive duration", d)
	}
	if (c.String("tls-cert") == "") != (c.String("tls-key") == "") {
		return usagef("serve: give --tls-cert and --tls-key together")
	}
	if err := checkAddr(c.String("addr")); err != nil {
		return err
	}
	var users *serve.Htpasswd
	if p := c.String("htpasswd"); p != "" {
		if users, err = serve.LoadHtpasswd(p); err != nil {
			return err
		}
	}
	rep := out.Reporter()
	// The address, its exposure policy, TLS files and the port are
	// checked, and the port held, before the archive is opened: opening
	// reads its head (and, with --repo, each bundle's images.yml), which
	// a mistyped flag should not wait for.
	srv, err := serve.Listen(serve.ListenOptions{
		Addr:     c.String("addr"),
		TLSCert:  c.String("tls-cert"),
		TLSKey:   c.String("tls-key"),
		Auth:     users != nil,
		Insecure: c.Bool("insecure"),
		Reporter: rep,
		Stopping: func(n int, grace time.Duration) {
			if !out.json && out.level > levelQuiet {
				fmt.Fprintf(out.stderr, "Stopping: waiting up to %s for %s in flight.\n", grace, plural(n, "request"))
			}
		},
	})
	if errors.Is(err, serve.ErrExposed) {
		// Like a missing flag: how ferry was called, not the work.
		return usageError{fmt.Errorf("serve: %w", err)}
	}
	if err != nil {
		// A --tls-cert or --tls-key that does not exist is a usage error.
		return namedFile(fmt.Errorf("serve: %w", err))
	}
	// Serve closes it too; this is for the failures before.
	defer srv.Close()
	af, closer, err := relocate.OpenSeekable(c.Context, path)
	if err == nil {
		defer closer.Close()
	}
	if errors.Is(err, archive.ErrNotSeekable) {
		return fmt.Errorf("serve %s: %w: it was written by an older ferry, or recompressed (gzip, plain tar, zstd), and serve reads each blob where it lies; import it with 'ferry import -f %s --to-repo REPO', or export it again", path, err, path)
	}
	var pe *fs.PathError
	if errors.As(err, &pe) && err == error(pe) {
		// "serve: open FILE: …", as inspect and verify say it: the
		// error names the file already.
		return namedArchive(c, path, fmt.Errorf("serve: %w", err))
	}
	if err != nil {
		return namedArchive(c, path, fmt.Errorf("serve %s: %w", path, err))
	}
	reg, err := serve.New(c.Context, af, serve.Options{
		Repository:    repo,
		RepoBasedTags: c.Bool("repo-based-tags"),
		Users:         users,
		Streams:       c.Int("streams"),
		StreamWait:    c.Duration("stream-wait"),
		Reporter:      rep,
		// An error, not a warning: said even with -q, and the exit status
		// at stop says it too, as verify's and import's do.
		Damaged: func(d v1.Hash, err error) {
			fmt.Fprintf(out.stderr, "ferry: serve %s: blob %s is damaged and refused to every client: %s\n", forTerminal(path), d, forTerminal(err.Error()))
		},
	})
	if err != nil {
		return fmt.Errorf("serve %s: %w", path, err)
	}
	for _, w := range reg.View().Warnings {
		rep.Warnf("%s", w)
	}
	if !c.Bool("lazy") {
		reg.VerifyAhead()
	}
	if out.json {
		// One line, written as soon as the server listens: a script
		// reads it to learn the address (with --addr HOST:0).
		if err := json.NewEncoder(out.stdout).Encode(serveStart{URL: srv.URL(), Host: srv.Host(), Repositories: reg.Repositories()}); err != nil {
			return err
		}
	} else if out.level > levelQuiet {
		printServing(out.stderr, path, srv, reg)
	}
	if err := srv.Serve(c.Context, reg); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	if n := reg.DamagedBlobs(); n > 0 {
		return fmt.Errorf("serve %s: stopped; %s damaged, refused to every client (see above)", path, plural(n, "blob"))
	}
	if !out.json && out.level > levelQuiet {
		if n := srv.CutShort(); n > 0 {
			fmt.Fprintf(out.stderr, "Stopped; cut short %s still in flight after %s.\n", plural(n, "request"), srv.Grace())
		} else {
			fmt.Fprintln(out.stderr, "Stopped.")
		}
	}
	return nil
}

// printServing says where the archive is served and how to pull from it.
func printServing(w io.Writer, path string, srv *serve.Server, reg *serve.Registry) {
	view := reg.View()
	fmt.Fprintf(w, "Serving %s read only at %s\n", path, srv.URL())
	tw := summaryTable(w)
	const listed = 8
	for i, name := range reg.Repositories() {
		if i == listed {
			fmt.Fprintf(tw, "  …\t%d more repositories (GET /v2/_catalog lists them)\n", len(reg.Repositories())-listed)
			break
		}
		r := view.Repositories[name]
		fmt.Fprintf(tw, "  %s/%s\t%s, %s\n", srv.Host(), quoteUnsafe(name), plural(len(r.Manifests), "manifest"), plural(len(r.Tags), "tag"))
	}
	tw.Flush()
	if view.Root != "" {
		fmt.Fprintf(w, "The root is %s/%s\n", srv.Host(), quoteUnsafe(view.Root))
	}
	fmt.Fprintln(w, "Ctrl-C stops it.")
}

// checkAddr refuses an --addr that is not HOST:PORT with a port number
// (0 to 65535) as a usage error, as the exposure policy's refusal is: it is
// how ferry was called, and net.Listen would say it only as a failure to
// listen.
func checkAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return usagef("serve: --addr %q: give HOST:PORT (127.0.0.1:5000): %v", addr, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return usagef("serve: --addr %q: the port %q is not a number from 0 to 65535", addr, port)
	}
	return nil
}
