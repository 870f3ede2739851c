package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/ferry-dev/ferry/internal/progress"
)

// printer is how a command talks to the user: human text and progress on
// stderr, the --json result on stdout.
type printer struct {
	stdout, stderr io.Writer
	json           bool
	tty            bool
}

func newPrinter(c *cli.Context) *printer {
	p := &printer{stdout: c.App.Writer, stderr: c.App.ErrWriter, json: c.Bool("json")}
	if f, ok := p.stderr.(*os.File); ok {
		p.tty = term.IsTerminal(int(f.Fd()))
	}
	return p
}

// Infof prints a line for a human on stderr.
func (p *printer) Infof(format string, args ...any) {
	fmt.Fprintf(p.stderr, format+"\n", args...)
}

// Result ends a command that does work (push, pull, export, import, copy,
// verify): v as JSON on stdout with --json, otherwise human prints a
// summary for a person on stderr, so that stdout carries only data.
func (p *printer) Result(v any, human func(w io.Writer)) error {
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

// Reporter renders progress: a bar over bytes on a terminal, plain lines
// otherwise.
func (p *printer) Reporter() progress.Reporter {
	return &reporter{w: p.stderr, tty: p.tty}
}

type reporter struct {
	mu    sync.Mutex
	w     io.Writer
	tty   bool
	bar   *progressbar.ProgressBar
	phase string
	total int64
	done  int64
	start time.Time
}

func (r *reporter) Start(phase string, total int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.phase, r.total, r.done, r.start = phase, total, 0, time.Now()
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
		return
	}
	if total > 0 {
		fmt.Fprintf(r.w, "%s: %s in total\n", phase, humanBytes(total))
	}
}

func (r *reporter) Add(n int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.done += n
	if r.bar != nil {
		_ = r.bar.Add64(n)
	}
}

func (r *reporter) line(prefix, format string, args []any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.bar != nil {
		_ = r.bar.Clear()
	}
	fmt.Fprintf(r.w, prefix+format+"\n", args...)
	if r.bar != nil {
		_ = r.bar.RenderBlank()
		_ = r.bar.Set64(r.done)
	}
}

func (r *reporter) Logf(format string, args ...any)  { r.line("", format, args) }
func (r *reporter) Warnf(format string, args ...any) { r.line("warning: ", format, args) }

func (r *reporter) Done() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.bar != nil {
		_ = r.bar.Finish()
		r.bar = nil
	}
	if r.total > 0 || r.done > 0 {
		el := time.Since(r.start)
		rate := float64(r.done) / el.Seconds()
		fmt.Fprintf(r.w, "%s: %s in %s (%s/s)\n", r.phase, humanBytes(r.done), el.Round(time.Millisecond), humanBytes(int64(rate)))
	}
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
