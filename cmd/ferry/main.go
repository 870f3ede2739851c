// Command ferry carries imgpkg-style bundles across air gaps: it pushes and
// pulls bundles, exports a bundle and every image it locks into one
// .tar.zst archive, and imports that archive into one repository.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"regexp"
	"runtime"
	"slices"
	"strconv"
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
	// For flagError: a flag before the command is refused before the
	// command is known, and urfave/cli keeps no arguments then.
	app.Metadata = map[string]any{"args": args}
	args = setCompletion(app, args)
	if args == nil {
		return 0
	}
	err := app.RunContext(ctx, flagsFirst(app.Commands, args))
	if err == nil {
		return 0
	}
	// Errors quote references and tags from archives and registries:
	// their control characters are escaped, never sent to the terminal.
	command, _ := app.Metadata["command"].(string)
	verbose, _ := app.Metadata["verbose"].(bool)
	json, _ := app.Metadata["json"].(bool)
	fmt.Fprint(stderr, errorText(ctx, err, command, verbose, json))
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

func newApp(stdin io.Reader, stdout, stderr io.Writer) *cli.App {
	onUsage := func(c *cli.Context, err error, _ bool) error { return usageError{flagError(c, err)} }
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
FERRY_TOKEN, or the Docker config and its credential helpers.

--registry-response-header-timeout also bounds a TLS handshake (or Go's
limit, 10s, whichever is shorter); once it has passed, anything but a
blob's bytes (a manifest, a tag list or referrers page, a token, an error)
must come at 64 KiB/s at least, so that a registry trickling a byte at a
time fails the request, named. README: Registry options.`,
		Reader:                 stdin,
		Writer:                 stdout,
		ErrWriter:              stderr,
		HideHelpCommand:        true,
		UseShortOptionHandling: false,
		EnableBashCompletion:   true,
		OnUsageError:           onUsage,
		ExitErrHandler:         func(*cli.Context, error) {},
		Action:                 noSuchCommand,
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
		helpLayout(c)
		refuseStrayArgs(c, c.Name)
	}
	return app
}

// helpLayout gives c and its subcommands one help layout: options sorted
// by name, --help among them. urfave/cli lists the options of a command
// with a flag category (the registry flags) sorted, from the flags it has
// at start-up, before it adds --help; those of any other command in the
// order they are defined, --help last.
func helpLayout(c *cli.Command) {
	if cli.HelpFlag != nil && !c.HideHelp && !slices.Contains(c.Flags, cli.HelpFlag) {
		c.Flags = append(c.Flags, cli.HelpFlag)
	}
	slices.SortStableFunc(c.Flags, func(a, b cli.Flag) int { return strings.Compare(a.Names()[0], b.Names()[0]) })
	for _, sub := range c.Subcommands {
		helpLayout(sub)
	}
}

func setUsageHandler(c *cli.Command, h cli.OnUsageErrorFunc) {
	c.OnUsageError = h
	for _, sub := range c.Subcommands {
		setUsageHandler(sub, h)
	}
}

// flagsFirst lets flags come after arguments (`ferry inspect FILE --json`,
// `ferry copy … oops --dry-run`): urfave/cli stops reading flags at the
// first argument, and would leave the flags after it unread. The command's
// flags are moved before its arguments, each with its value when its
// definition says it takes one; after "--" everything is an argument. A
// stray argument is then refused by the command (refuseStrayArgs) with
// every flag read, before any work.
func flagsFirst(cmds []*cli.Command, args []string) []string {
	if len(args) < 2 || args[len(args)-1] == "--generate-bash-completion" {
		return args
	}
	// The command path (ferry tag list): the flags before each name are
	// the app's or the parent command's, which take no values.
	var cmd *cli.Command
	i := 1
	for cmds != nil {
		j := i
		for j < len(args) && isFlag(args[j]) {
			j++
		}
		if j == len(args) {
			return args
		}
		next := findCommand(cmds, args[j])
		if next == nil {
			break
		}
		cmd, cmds, i = next, next.Subcommands, j+1
	}
	if cmd == nil || len(cmd.Subcommands) > 0 {
		// An unknown command or subcommand: refused as it is.
		return args
	}
	var flags, positional, dangling []string
	dashes, help := false, false
	for k := i; k < len(args); k++ {
		a := args[k]
		switch {
		case isFlag(a) && cli.HelpFlag != nil && slices.Contains(cli.HelpFlag.Names(), strings.TrimLeft(a, "-")):
			// `ferry inspect FILE --help`: the help, whatever the
			// arguments (urfave/cli would look for a help topic named
			// after the first one).
			help = true
			flags = append(flags, a)
		case a == "--":
			dashes = true
			positional = append(positional, args[k+1:]...)
			k = len(args)
		case isFlag(a) && takesValue(a, cmd.Flags) && k+1 == len(args):
			// A flag that needs a value, given none: moved before the
			// arguments it would take the first of them as its value.
			// Left last, it is named as lacking one.
			dangling = append(dangling, a)
		case isFlag(a):
			flags = append(flags, a)
			if takesValue(a, cmd.Flags) && k+1 < len(args) {
				flags = append(flags, args[k+1])
				k++
			}
		default:
			positional = append(positional, a)
		}
	}
	out := append(append([]string{}, args[:i]...), flags...)
	if help {
		return out
	}
	if dashes {
		out = append(out, "--")
	}
	return append(append(out, positional...), dangling...)
}

// isFlag reports whether a command-line word is a flag ("-" alone is
// standard input, an argument).
func isFlag(a string) bool { return len(a) > 1 && a[0] == '-' }

// findCommand returns the command of cmds named (or aliased) name.
func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}

// refuseStrayArgs makes c (named path after ferry: "tag list") and its
// subcommands refuse, before any work, the arguments they do not take: a
// command with subcommands an unknown one (urfave/cli would say "No help
// topic", exit 1), any other command more arguments than it takes (one
// when c.Args is set, none otherwise), naming them.
func refuseStrayArgs(c *cli.Command, path string) {
	if len(c.Subcommands) > 0 {
		for _, sub := range c.Subcommands {
			refuseStrayArgs(sub, path+" "+sub.Name)
		}
		if c.Action == nil {
			// Its help lists its commands, without urfave/cli's own help
			// command ("Shows a list of commands or help for one
			// command"); `ferry tag help` still shows it.
			c.HideHelpCommand = true
			c.Action = func(ctx *cli.Context) error {
				if ctx.NArg() == 0 || ctx.NArg() == 1 && ctx.Args().First() == "help" {
					return cli.ShowSubcommandHelp(ctx)
				}
				var names []string
				for _, sub := range c.Subcommands {
					if !sub.Hidden && sub.Name != "help" {
						names = append(names, sub.Name)
					}
				}
				return usagef("%s: %q is not a %s command (%s)", path, ctx.Args().First(), path, strings.Join(names, ", "))
			}
		}
		return
	}
	// urfave/cli gives every command a "help" (and "h") subcommand, so a
	// file or stray word of that name would print the help and exit 0
	// having done nothing (`ferry verify h`, a script's `&& deploy`
	// following): a command's help is --help alone.
	c.HideHelpCommand = true
	action, takes := c.Action, 0
	if c.Args {
		takes = 1
	}
	c.Action = func(ctx *cli.Context) error {
		if args := ctx.Args().Slice(); len(args) > takes {
			return strayArgs(path, takes, args[takes:])
		}
		return action(ctx)
	}
}

// strayArgs is the usage error for the arguments extra given to command,
// which takes that many.
func strayArgs(command string, takes int, extra []string) error {
	if last := extra[len(extra)-1]; isFlag(last) {
		// flagsFirst leaves a flag that lacks its value after the
		// arguments (see there).
		return usagef("%s: %s needs a value (see ferry %s --help)", command, last, command)
	}
	quoted := make([]string, len(extra))
	for i, a := range extra {
		quoted[i] = strconv.Quote(a)
	}
	noun := "argument"
	if len(extra) > 1 {
		noun = "arguments"
	}
	what := "no arguments, only flags"
	if takes == 1 {
		what = "one argument"
	}
	return usagef("%s: unexpected %s %s: %s takes %s (see ferry %s --help)", command, noun, strings.Join(quoted, " "), command, what, command)
}

// noSuchCommand is the app's action, run when the first argument names no
// command: `ferry help [COMMAND]` shows the help, anything else is a usage
// error (urfave/cli would say "No help topic", exit 1).
func noSuchCommand(c *cli.Context) error {
	args := c.Args().Slice()
	switch {
	case len(args) == 0 || len(args) == 1 && args[0] == "help":
		return cli.ShowAppHelp(c)
	case args[0] != "help":
		return usagef("%q is not a ferry command (ferry --help lists them)", args[0])
	case findCommand(c.App.Commands, args[1]) == nil:
		return usagef("help: %q is not a ferry command (ferry --help lists them)", args[1])
	case len(args) > 2:
		return strayArgs("help", 1, args[2:])
	}
	return cli.ShowCommandHelp(c, args[1])
}

// redactQueries hides the query strings of URLs in an error: a registry may
// redirect blob downloads to storage URLs whose query holds a signature,
// which must not end up in logs.
//
// Only what cannot hold a secret survives: the paging parameters of the
// distribution API (n, last), and the punctuation that ends the URL in the
// sentence (go-containerregistry writes "GET URL: CODE").
func redactQueries(msg string) string {
	queryInURL := regexp.MustCompile(`(https?://[^\s?"']+)\?([^\s"']*)`)
	return queryInURL.ReplaceAllStringFunc(msg, func(m string) string {
		sub := queryInURL.FindStringSubmatch(m)
		query := strings.TrimRight(sub[2], ":;,.)")
		tail := sub[2][len(query):]
		if vals, err := url.ParseQuery(query); err == nil && len(vals) > 0 {
			paging := true
			for k := range vals {
				paging = paging && (k == "n" || k == "last")
			}
			if paging {
				return sub[1] + "?" + query + tail
			}
		}
		return sub[1] + "?REDACTED" + tail
	})
}

// The errors of Go's flag package, which urfave/cli passes on as they are.
var (
	flagNotDefined = regexp.MustCompile(`^flag provided but not defined: -(.+)$`)
	flagBadValue   = regexp.MustCompile(`^invalid (?:boolean )?value "(.*)" for (?:flag )?-([^:]+): (.*)$`)
	flagNoValue    = regexp.MustCompile(`^flag needs an argument: -(.+)$`)
)

// flagError rewrites a flag error of Go's flag package ("flag provided but
// not defined: -bundel": one dash, no command) to name the command, the
// flag with its dashes, what was wrong (a duration without its unit), the
// command's closest flag, and ferry COMMAND --help. A flag before the
// command ("ferry -q tag list") is said to go after it. Other errors are
// returned as they are.
func flagError(c *cli.Context, err error) error {
	cmd, path := c.Command, ""
	if cmd != nil && cmd.Name != c.App.Name {
		path = commandPath(c)
	}
	msg := err.Error()
	if m := flagNotDefined.FindStringSubmatch(msg); m != nil {
		flag := dashed(m[1])
		if path == "" {
			// Before the command: the app itself takes only --help and
			// --version.
			cmd, path = commandIn(c, c.App.Commands)
			switch {
			case cmd == nil:
				return fmt.Errorf("unknown flag %s (ferry --help lists the commands; each command's flags go after it)", flag)
			case hasFlag(cmd, m[1]):
				return fmt.Errorf("%s goes after the command: ferry %s %s … (flags belong to the command they follow)", flag, path, flag)
			}
			return fmt.Errorf("unknown flag %s before the command (ferry %s --help lists its flags, which go after it)", flag, path)
		}
		hint := ""
		if near := closestFlag(cmd, m[1]); near != "" {
			hint = "did you mean " + dashed(near) + "? "
		}
		return fmt.Errorf("%s: unknown flag %s (%sferry %s --help lists its flags)", path, flag, hint, path)
	}
	// main prefixes "ferry: "; a command's errors name the command too.
	prefix, help := "", "ferry --help"
	if path != "" {
		prefix, help = path+": ", "ferry "+path+" --help"
	}
	if m := flagNoValue.FindStringSubmatch(msg); m != nil {
		return fmt.Errorf("%s%s needs a value (see %s)", prefix, dashed(m[1]), help)
	}
	if m := flagBadValue.FindStringSubmatch(msg); m != nil {
		value, name := m[1], m[2]
		var want string
		switch findFlag(cmd, name).(type) {
		case *cli.DurationFlag:
			want = "a duration with its unit (30s, 2m, 1h)"
			if _, err := strconv.ParseFloat(value, 64); err == nil {
				want = fmt.Sprintf("a duration with its unit: %ss, or 2m, 1h", value)
			}
		case *cli.IntFlag:
			want = "a whole number"
		case *cli.BoolFlag:
			want = "true or false"
		default:
			return fmt.Errorf("%s%s %s: %s", prefix, dashed(name), value, m[3])
		}
		return fmt.Errorf("%s%s %q: give %s", prefix, dashed(name), value, want)
	}
	return err
}

// dashed is a flag's name as typed: -x for a letter, --name otherwise.
func dashed(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// commandIn finds, in the arguments run was given, the command (and
// subcommand) named after the flags before it: nil when none is.
func commandIn(c *cli.Context, cmds []*cli.Command) (*cli.Command, string) {
	args, _ := c.App.Metadata["args"].([]string)
	var cmd *cli.Command
	var path []string
	for i := 1; i < len(args) && cmds != nil; i++ {
		if isFlag(args[i]) {
			continue
		}
		next := findCommand(cmds, args[i])
		if next == nil {
			break
		}
		cmd, cmds, path = next, next.Subcommands, append(path, next.Name)
	}
	return cmd, strings.Join(path, " ")
}

// findFlag returns cmd's flag named (or aliased) name, nil when none is.
func findFlag(cmd *cli.Command, name string) cli.Flag {
	if cmd == nil {
		return nil
	}
	for _, f := range cmd.Flags {
		if slices.Contains(f.Names(), name) {
			return f
		}
	}
	return nil
}

// hasFlag reports whether cmd takes the flag name.
func hasFlag(cmd *cli.Command, name string) bool {
	return findFlag(cmd, name) != nil || cli.HelpFlag != nil && slices.Contains(cli.HelpFlag.Names(), name)
}

// closestFlag is the visible flag of cmd nearest to name, a mistyped one
// (--bundel, --digest): at most two edits away, and fewer than its length;
// "" when none is.
func closestFlag(cmd *cli.Command, name string) string {
	best, bestDist := "", 3
	for _, f := range cmd.Flags {
		if v, ok := f.(cli.VisibleFlag); ok && !v.IsVisible() {
			continue
		}
		for _, n := range f.Names() {
			if d := editDistance(name, n); d < bestDist && d < len(name) {
				best, bestDist = n, d
			}
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
