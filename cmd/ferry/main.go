// Command ferry carries imgpkg-style bundles across air gaps: it pushes and
// pulls bundles, exports a bundle and every image it locks into one
// .tar.zst archive, and imports that archive into one repository.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"syscall"

	"github.com/urfave/cli/v2"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// The first Ctrl-C cancels the work, which then cleans up (temp
		// files, spools); restoring the default handler lets a second one
		// end a run stuck on a stalled pipe or connection at once.
		<-ctx.Done()
		stop()
	}()
	code := run(ctx, os.Args, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// usageError marks errors that come from how ferry was called rather than
// from the work itself; they exit with status 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// usagef builds a usageError.
func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// run executes ferry with the given arguments and returns the exit code.
// It is separate from main so that tests can run the CLI in-process.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	app := newApp(stdin, stdout, stderr)
	err := app.RunContext(ctx, flagsFirst(args))
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "ferry: %s\n", redactQueries(err.Error()))
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

func newApp(stdin io.Reader, stdout, stderr io.Writer) *cli.App {
	onUsage := func(_ *cli.Context, err error, _ bool) error { return usageError{err} }
	app := &cli.App{
		Name:    "ferry",
		Usage:   "carry imgpkg bundles and their images across air gaps",
		Version: version,
		Description: `ferry moves imgpkg-style bundles between registries and across air gaps.

ferry export writes a bundle and every image its .imgpkg/images.yml locks
(nested bundles too) into one zstd-compressed OCI image-layout archive;
ferry import uploads that archive into one repository, recreating the tags
imgpkg writes, so that imgpkg pull and ferry pull find every image there.

Credentials come from --registry-* flags, FERRY_USERNAME/FERRY_PASSWORD/
FERRY_TOKEN, or the Docker config and its credential helpers.`,
		Reader:                 stdin,
		Writer:                 stdout,
		ErrWriter:              stderr,
		HideHelpCommand:        true,
		UseShortOptionHandling: false,
		OnUsageError:           onUsage,
		ExitErrHandler:         func(*cli.Context, error) {},
		Commands: []*cli.Command{
			pushCommand(),
			pullCommand(),
			exportCommand(),
			importCommand(),
			copyCommand(),
			inspectCommand(),
			verifyCommand(),
			tagCommand(),
		},
	}
	for _, c := range app.Commands {
		setUsageHandler(c, onUsage)
	}
	return app
}

func setUsageHandler(c *cli.Command, h cli.OnUsageErrorFunc) {
	c.OnUsageError = h
	for _, sub := range c.Subcommands {
		setUsageHandler(sub, h)
	}
}

// flagsFirst lets `ferry inspect FILE --json` work: urfave/cli stops parsing
// flags at the first argument, so for the commands that take a file
// argument and only boolean flags, flags are moved before it.
func flagsFirst(args []string) []string {
	if len(args) < 3 || (args[1] != "inspect" && args[1] != "verify") {
		return args
	}
	out := append([]string{}, args[:2]...)
	var rest []string
	for _, a := range args[2:] {
		if len(a) > 1 && a[0] == '-' {
			out = append(out, a)
		} else {
			rest = append(rest, a)
		}
	}
	return append(out, rest...)
}

// redactQueries hides the query strings of URLs in an error: a registry may
// redirect blob downloads to storage URLs whose query holds a signature,
// which must not end up in logs.
func redactQueries(msg string) string {
	queryInURL := regexp.MustCompile(`(https?://[^\s?"']+)\?[^\s"']*`)
	return queryInURL.ReplaceAllString(msg, "$1?REDACTED")
}
