package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/ferry-dev/ferry/internal/progress"
)

// level is how much a command says on stderr.
type level int

const (
	levelQuiet   level = iota // errors only (-q)
	levelNormal               // progress bar on a terminal, warnings, the summary
	levelVerbose              // also one line per step as it happens (-v)
)

// heartbeatEvery is how often, without a terminal, a long phase prints a
// line of bytes done and rate, so that a CI log shows the run is alive.
const heartbeatEvery = 5 * time.Second

// outputFlags are the flags every command takes to choose what it prints.
func outputFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "json", Usage: "print a machine-readable result on stdout (see the README for its fields)"},
		&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "also print one line per manifest and tag as it is written, with full digests"},
		&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print errors only (stdout data and --json are still printed)"},
	}
}

// printer is how a command talks to the user: human text and progress on
// stderr, the --json result and listings on stdout.
type printer struct {
	stdout, stderr io.Writer
	json           bool
	tty            bool
	level          level
	start          time.Time
}

func newPrinter(c *cli.Context) (*printer, error) {
	p := &printer{stdout: c.App.Writer, stderr: c.App.ErrWriter, json: c.Bool("json"), level: levelNormal, start: time.Now()}
	switch {
	case c.Bool("verbose") && c.Bool("quiet"):
		return nil, usagef("%s: give --verbose or --quiet, not both", c.Command.Name)
	case c.Bool("verbose"):
		p.level = levelVerbose
	case c.Bool("quiet"):
		p.level = levelQuiet
	}
	if f, ok := p.stderr.(*os.File); ok {
		p.tty = term.IsTerminal(int(f.Fd()))
	}
	return p, nil
}

// Verbosef prints a line on stderr with --verbose only.
func (p *printer) Verbosef(format string, args ...any) {
	if p.level >= levelVerbose {
		fmt.Fprintln(p.stderr, escapeControls(fmt.Sprintf(format, args...)))
	}
}

// verbose reports whether -v was given.
func (p *printer) verbose() bool { return p.level >= levelVerbose }

// Elapsed is the time since the command started.
func (p *printer) Elapsed() time.Duration { return time.Since(p.start) }

// Result ends a command that does work (push, pull, export, import, copy,
// verify): v as JSON on stdout with --json, otherwise human prints a
// summary for a person on stderr (unless --quiet), so that stdout carries
// only data.
func (p *printer) Result(v any, human func(w io.Writer)) error {
	if !p.json && p.level == levelQuiet {
		return nil
	}
	return p.result(v, human, p.stderr)
}

// Listing ends a command whose output is the data itself (tag list,
// inspect): v as JSON with --json, otherwise human's table, on stdout.
func (p *printer) Listing(v any, human func(w io.Writer)) error {
	return p.result(v, human, p.stdout)
}

func (p *printer) result(v any, human func(w io.Writer), w io.Writer) error {
	if p.json {
		enc := json.NewEncoder(p.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	if human != nil {
		human(w)
	}
	return nil
}

// Reporter renders progress: a bar over bytes on a terminal, a heartbeat
// line every few seconds otherwise; steps with --verbose, warnings unless
// --quiet.
func (p *printer) Reporter() progress.Reporter {
	if p.level == levelQuiet {
		return progress.Nop{}
	}
	return &reporter{w: p.stderr, tty: p.tty, verbose: p.level >= levelVerbose, every: heartbeatEvery}
}

// reporter is the CLI's progress.Reporter. Its writes to stderr ignore
// errors: losing the terminal must not stop the work.
type reporter struct {
	mu      sync.Mutex
	w       io.Writer
	tty     bool
	verbose bool
	// every is the heartbeat interval without a terminal (0: none).
	every time.Duration

	bar   *progressbar.ProgressBar
	phase string
	total int64
	done  int64
	start time.Time
	last  time.Time // of the last heartbeat line
}

func (r *reporter) Start(phase string, total int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.phase, r.total, r.done = phase, total, 0
	r.start = time.Now()
	r.last = r.start
	if r.tty && total > 0 {
		r.bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(r.w),
			progressbar.OptionSetDescription(phase),
			progressbar.OptionShowBytes(true),
			progressbar.OptionShowTotalBytes(true),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
			progressbar.OptionSetWidth(30),
			progressbar.OptionShowCount(),
			progressbar.OptionUseIECUnits(true),
		)
	}
}

func (r *reporter) Add(n int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.done += n
	if r.bar != nil {
		_ = r.bar.Add64(n)
		return
	}
	if r.tty || r.every <= 0 || r.start.IsZero() {
		return
	}
	now := time.Now()
	if now.Sub(r.last) < r.every {
		return
	}
	r.last = now
	rate := humanBytes(int64(float64(r.done)/now.Sub(r.start).Seconds())) + "/s"
	if r.total > 0 {
		fmt.Fprintf(r.w, "%s: %s of %s (%d%%), %s\n", r.phase, humanBytes(r.done), humanBytes(r.total), r.done*100/r.total, rate)
	} else {
		fmt.Fprintf(r.w, "%s: %s, %s\n", r.phase, humanBytes(r.done), rate)
	}
}

func (r *reporter) line(prefix, format string, args []any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.bar != nil {
		_ = r.bar.Clear()
	}
	// What a registry or an archive put into the message (a reference, a
	// media type) must not be able to draw on the terminal.
	fmt.Fprintln(r.w, prefix+escapeControls(fmt.Sprintf(format, args...)))
	if r.bar != nil {
		_ = r.bar.RenderBlank()
		_ = r.bar.Set64(r.done)
	}
}

func (r *reporter) Logf(format string, args ...any) {
	if r.verbose {
		r.line("", format, args)
	}
}

func (r *reporter) Warnf(format string, args ...any) { r.line("warning: ", format, args) }

// Done ends the phase: the bar is cleared, and the command's summary says
// how much was done and how fast.
func (r *reporter) Done() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.bar != nil {
		_ = r.bar.Finish()
		r.bar = nil
	}
	r.start = time.Time{}
}

// humanBytes formats n in IEC units, as progress bars do.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// rate says how fast n bytes moved in d ("31.1 MiB/s").
func rate(n int64, d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return humanBytes(int64(float64(n)/d.Seconds())) + "/s"
}

// roundDuration rounds d for a person: milliseconds under a minute, whole
// seconds above.
func roundDuration(d time.Duration) time.Duration {
	if d < time.Minute {
		return d.Round(time.Millisecond)
	}
	return d.Round(time.Second)
}

// shortDigest abbreviates sha256:<64 hex> to 12 hex digits for people;
// --verbose and --json give the full digest.
func shortDigest(d string) string {
	if len(d) > len("sha256:")+12 {
		return d[:len("sha256:")+12]
	}
	return d
}

// summaryTable aligns the "  label  value" lines of a summary.
func summaryTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
}
