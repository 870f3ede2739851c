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
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/ferry-dev/ferry/internal/memlimit"
	"github.com/urfave/cli/v2"
)

// memoryLimit is the Go runtime's soft memory limit unless GOMEMLIMIT is
// set: a bound on garbage, above what ferry holds by design. An export
// holds about 38 MiB whatever the machine (the 24 MiB of blobs fetched
// ahead, configs and small layers kept from planning, buffers), and per
// core it compresses on about 13 MiB (a frame in and out, and an encoder at
// the default levels), all reused: 64 MiB on two cores, measured at a
// 52 MiB peak heap. Below what is held (48 MiB was tried) the collector
// runs back to back: over a hundred cycles in a 0.7 s export, 30% more CPU.
func memoryLimit(procs int) int64 {
	return 38<<20 + int64(procs)*13<<20
}

func init() {
	// -v is --verbose in every command; --version keeps only its long name.
	cli.VersionFlag = &cli.BoolFlag{Name: "version", Usage: "print the version", DisableDefaultText: true}
}

func main() {
	// A closed terminal (SIGHUP) stops ferry as Ctrl-C and SIGTERM do: the
	// work is cancelled and cleans up (temporary files, spools).
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		// Restoring the default handlers after the first signal lets a
		// second one end a run stuck on a stalled pipe or connection at
		// once.
		<-ctx.Done()
		stop()
	}()
	// Without this, Go kills the process on the first write to a closed
	// stdout or stderr (SIGPIPE), before any cleanup. With it the write
	// fails with EPIPE instead: on stdout (export -o - into a pipe whose
	// reader went away) that fails the command, which cleans up; on stderr
	// (a log reader gone) the write is dropped and the work goes on.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	// What ferry holds at once is bounded (frames, blobs read ahead); a
	// soft limit makes the garbage collector keep the process near that,
	// instead of letting the heap double before it collects. It is lifted
	// while more is live (a large archive head), so that the collector
	// never runs back to back. GOMEMLIMIT overrides it.
	if os.Getenv("GOMEMLIMIT") == "" {
		memlimit.Keep(ctx, memoryLimit(runtime.GOMAXPROCS(0)), 50*time.Millisecond)
	}
	endProfiles := startProfiles(os.Stderr)
	code := run(ctx, os.Args, os.Stdin, os.Stdout, os.Stderr)
	endProfiles()
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
	args = setCompletion(app, args)
	if args == nil {
		return 0
	}
	err := app.RunContext(ctx, flagsFirst(args))
	if err == nil {
		return 0
	}
	// Errors quote references and tags from archives and registries:
	// their control characters are escaped, never sent to the terminal.
	fmt.Fprintf(stderr, "ferry: %s\n", forTerminal(err.Error()))
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
		Version: readVersion().long,
		Description: `ferry moves imgpkg-style bundles between registries and across air gaps.

ferry export writes a bundle and every image its .imgpkg/images.yml locks
(nested bundles too) into one zstd-compressed OCI image-layout archive;
ferry import uploads that archive into one repository, recreating the tags
imgpkg writes, so that imgpkg pull and ferry pull find every image there;
ferry serve answers registry pulls straight from an archive.

Credentials come from --registry-* flags, FERRY_USERNAME/FERRY_PASSWORD/
FERRY_TOKEN, or the Docker config and its credential helpers.`,
		Reader:                 stdin,
		Writer:                 stdout,
		ErrWriter:              stderr,
		HideHelpCommand:        true,
		UseShortOptionHandling: false,
		EnableBashCompletion:   true,
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
			inventoryCommand(),
			serveCommand(),
			completionCommand(),
		},
	}
	for _, c := range app.Commands {
		setUsageHandler(c, onUsage)
		defaultOnce(c)
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
	if len(args) >= 4 && args[1] == "serve" && !strings.HasPrefix(args[2], "-") && args[len(args)-1] != "--generate-bash-completion" {
		// `ferry serve FILE --addr …`: the file goes last, after the
		// flags (which take values, so they cannot be moved one by one).
		return append(append(append([]string{}, args[:2]...), args[3:]...), args[2])
	}
	if len(args) < 3 || (args[1] != "inspect" && args[1] != "verify") || args[len(args)-1] == "--generate-bash-completion" {
		return args
	}
	// The flags of these commands that take a value, as a separate argument.
	valued := map[string]bool{"--since": true}
	out := append([]string{}, args[:2]...)
	var rest []string
	for i := 2; i < len(args); i++ {
		a := args[i]
		switch {
		case valued[a] && i+1 < len(args):
			out = append(out, a, args[i+1])
			i++
		case len(a) > 1 && a[0] == '-':
			out = append(out, a)
		default:
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
