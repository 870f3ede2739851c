package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/rivo/uniseg"
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

// heartbeatEvery is how often, without a terminal, work under way prints
// a line (bytes done and rate, or what it is doing), so that a CI log shows
// the run is alive.
const heartbeatEvery = 5 * time.Second

// outputFlags are the flags every command takes to choose what it prints;
// verbose says what -v adds to that command's output.
func outputFlags(verbose string) []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "json", Usage: "print a machine-readable result on stdout (see the README for its fields)"},
		&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: verbose},
		&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print errors only (stdout data and --json are still printed)"},
	}
}

// printer is how a command talks to the user: human text and progress on
// stderr, the --json result and listings on stdout.
type printer struct {
	stdout io.Writer
	// stderr serializes its writes: the heartbeat writes from a goroutine
	// of its own.
	stderr io.Writer
	json   bool
	tty    bool
	// width returns the terminal's columns, which every bar and spinner
	// line is fitted to (see fitBar, fitSpinner); nil: not known, lines
	// are drawn whole.
	width func() int
	level level
	start time.Time
	clock clock
	rep   *reporter // made by the first Reporter or Begin
}

func newPrinter(c *cli.Context) (*printer, error) {
	p := &printer{stdout: c.App.Writer, stderr: &lockedWriter{w: c.App.ErrWriter}, json: c.Bool("json"), level: levelNormal, start: time.Now(), clock: systemClock()}
	switch {
	case c.Bool("verbose") && c.Bool("quiet"):
		return nil, usagef("%s: give --verbose or --quiet, not both", c.Command.Name)
	case c.Bool("verbose"):
		p.level = levelVerbose
	case c.Bool("quiet"):
		p.level = levelQuiet
	}
	noteCommand(c, p.level == levelVerbose, p.json)
	if f, ok := c.App.ErrWriter.(*os.File); ok {
		p.tty = term.IsTerminal(int(f.Fd()))
		if p.tty {
			p.width = terminalWidth(f)
		}
	}
	return p, nil
}

// terminalWidth returns a function that reads the columns of terminal f,
// each time it is called (a bar or spinner reads them as it starts, so a
// terminal resized between phases is followed). The progress bar library
// reads the width only from an *os.File it writes to, and it writes to the
// printer's stderr, which is not one: the width is taken here, from f's
// descriptor. A terminal that does not say (a pseudo-terminal never sized)
// is taken to be 80 columns wide.
func terminalWidth(f *os.File) func() int {
	return func() int {
		w, _, err := term.GetSize(int(f.Fd()))
		if err != nil || w <= 0 {
			return 80
		}
		return w
	}
}

// lockedWriter makes each Write to w whole, whoever calls it.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// Verbosef prints a line on stderr with --verbose only: through the
// reporter when there is one, which clears its bar or spinner first.
func (p *printer) Verbosef(format string, args ...any) {
	if p.rep != nil {
		p.rep.Logf(format, args...)
		return
	}
	if p.level >= levelVerbose {
		fmt.Fprintln(p.stderr, forTerminal(fmt.Sprintf(format, args...)))
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
	p.Close()
	if !p.json && p.level == levelQuiet {
		return nil
	}
	return p.result(v, human, p.stderr)
}

// Listing ends a command whose output is the data itself (tag list,
// inspect): v as JSON with --json, otherwise human's table, on stdout. A
// failed write (a full disk, a closed pipe) is the command's error: a
// script redirecting the listing to a file must not get exit 0 and a
// truncated file. A reader that stops early (`ferry tag list | head -1`)
// is not a failure: it chose to read no more, and its own exit status
// tells its story. Result does not fail on stderr, where a lost summary
// must not turn a finished import into a failure.
func (p *printer) Listing(v any, human func(w io.Writer)) error {
	var err error
	if p.json || human == nil {
		err = p.result(v, human, p.stdout)
	} else {
		ew := &errWriter{w: p.stdout}
		human(ew)
		err = ew.err
	}
	if errors.Is(err, syscall.EPIPE) {
		return nil
	}
	return err
}

// errWriter keeps the first error of its writer and writes nothing after
// it, so that a listing printed with many Fprintf calls fails once.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(b []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(b)
	if err != nil {
		e.err = err
	}
	return n, err
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
// --quiet. Every call returns the same one.
func (p *printer) Reporter() progress.Reporter {
	if p.level == levelQuiet {
		return progress.Nop{}
	}
	if p.rep == nil {
		p.rep = &reporter{w: p.stderr, tty: p.tty, width: p.width, verbose: p.level >= levelVerbose, every: heartbeatEvery, clock: p.clock}
	}
	return p.rep
}

// Begin says what the command does before any phase starts (resolving a
// source, asking a destination what it holds), for the heartbeat.
func (p *printer) Begin(what string) {
	if r, ok := p.Reporter().(*reporter); ok {
		r.Begin(what)
	}
}

// Close stops the heartbeat, if any: a command calls it (through Result,
// or deferred) so that no line comes after its summary or its error.
func (p *printer) Close() {
	if p.rep != nil {
		p.rep.stopHeartbeat()
		p.rep.mu.Lock()
		p.rep.endBar()
		p.rep.mu.Unlock()
	}
}

// clock is where the heartbeat reads the time and gets its ticks; tests
// give a fake one.
type clock struct {
	now func() time.Time
	// ticker returns a channel that ticks every d, and its stop.
	ticker func(d time.Duration) (<-chan time.Time, func())
}

func systemClock() clock {
	return clock{now: time.Now, ticker: func(d time.Duration) (<-chan time.Time, func()) {
		t := time.NewTicker(d)
		return t.C, t.Stop
	}}
}

// reporter is the CLI's progress.Reporter. Its writes to stderr ignore
// errors: losing the terminal must not stop the work.
type reporter struct {
	mu  sync.Mutex
	w   io.Writer
	tty bool
	// width is the printer's: the terminal's columns, read as each bar or
	// spinner starts; nil when not known.
	width   func() int
	verbose bool
	// every is the heartbeat interval without a terminal (0: none).
	every time.Duration
	clock clock

	bar *progressbar.ProgressBar
	// phase is Start's phase, or what Begin said before it; counting is
	// set by Start, whose bytes are total and done.
	phase    string
	counting bool
	total    int64
	done     int64
	start    time.Time // of the phase, or of Begin
	beat     *heartbeat
}

// heartbeat is the goroutine that prints a line every r.every while work
// is under way, without a terminal.
type heartbeat struct {
	stop, stopped chan struct{}
}

// Begin names the work under way before a phase starts, so that the
// heartbeat can say what is being waited for.
func (r *reporter) Begin(what string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.phase, r.counting, r.total, r.done = what, false, 0, 0
	r.start = r.clock.now()
	r.startHeartbeat()
	r.spin(what)
}

// spin shows, on a terminal, a spinner with what and the time it has
// taken, for work whose size is not known (resolving, asking a registry
// what it holds, writing manifests and tags): without it the terminal
// would stay silent for as long as that takes. r.mu is held.
func (r *reporter) spin(what string) {
	r.endBar()
	if !r.tty {
		return
	}
	// The library's own refresh goroutine draws holding only the bar's
	// lock, racing with line's Clear: the spinner is turned by a goroutine
	// of ours instead, under r.mu like every other write to the bar.
	bar := progressbar.NewOptions64(-1,
		progressbar.OptionSetWriter(r.w),
		progressbar.OptionSetDescription(fitSpinner(forTerminal(what), r.columns())),
		progressbar.OptionSpinnerType(14),
		progressbar.OptionSetSpinnerChangeInterval(0),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionSetRenderBlankState(true),
		progressbar.OptionClearOnFinish(),
	)
	r.bar = bar
	go func() {
		t := time.NewTicker(spinEvery)
		defer t.Stop()
		for range t.C {
			r.mu.Lock()
			if r.bar != bar {
				// Ended (endBar): nothing more is drawn.
				r.mu.Unlock()
				return
			}
			_ = bar.RenderBlank()
			r.mu.Unlock()
		}
	}()
}

// spinEvery is how often a spinner turns.
const spinEvery = 150 * time.Millisecond

// endBar clears the bar or spinner, if any; a spinner's goroutine sees it
// gone and stops. r.mu is held.
func (r *reporter) endBar() {
	if r.bar != nil {
		_ = r.bar.Finish()
		r.bar = nil
	}
}

func (r *reporter) Start(phase string, total int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.phase, r.counting, r.total, r.done = phase, true, total, 0
	r.start = r.clock.now()
	r.startHeartbeat()
	if total <= 0 {
		r.spin(phase)
		return
	}
	r.endBar()
	if r.tty {
		desc, width, full := fitBar(forTerminal(phase), r.columns())
		opts := []progressbar.Option{
			progressbar.OptionSetWriter(r.w),
			progressbar.OptionSetDescription(desc),
			progressbar.OptionThrottle(100 * time.Millisecond),
			progressbar.OptionClearOnFinish(),
			progressbar.OptionSetWidth(width),
		}
		if full {
			opts = append(opts,
				progressbar.OptionShowBytes(true),
				progressbar.OptionShowTotalBytes(true),
				progressbar.OptionSetPredictTime(true),
				progressbar.OptionShowCount(),
				progressbar.OptionUseIECUnits(true),
			)
		} else {
			opts = append(opts, progressbar.OptionSetPredictTime(false))
		}
		r.bar = progressbar.NewOptions64(total, opts...)
	}
}

// columns is the terminal's width, 0 when not known. r.mu is held.
func (r *reporter) columns() int {
	if r.width == nil {
		return 0
	}
	return r.width()
}

// The widths of what the progress bar library draws around a description
// (see its renderProgressBar), at most, plus one: a line is kept one column
// short of the terminal's width, since one that fills it leaves some
// terminals' cursor on the next row.
//
// A spinner: "⠋ " DESC "  [" ELAPSED "] ", the elapsed time up to
// "99h59m59s". A bar: DESC "  45% |" BAR "| " STATS " [" ELAPSED ":" LEFT
// "]", STATS up to "(1023 KiB/1023 MiB, 1023 MiB/s)" and the time left up
// to "999h59m59s" (the library prints its estimate whole: at a few bytes
// a second it can reach "2562047h47m16s", which would not leave a usable
// bar at 80 columns, so a line that far from done may wrap); without them
// (a narrow terminal) DESC "  45% |" BAR "|  ".
const (
	spinnerChrome  = 2 + 3 + len("99h59m59s") + 2 + 1
	barChrome      = 5 + 1 + 2 + 1 + len("(1023 KiB/1023 MiB, 1023 MiB/s)") + 2 + len("99h59m59s") + 1 + len("999h59m59s") + 1 + 1
	shortBarChrome = 5 + 1 + 2 + 1 + 1 + 1
	// barWidth is the bar's width where there is room, minBarWidth the
	// least it is shrunk to before the description is shortened.
	barWidth    = 30
	minBarWidth = 8
	// minBarDescription is how much of a description a bar with its
	// figures must leave room for: else they are dropped.
	minBarDescription = len("import")
)

// fitSpinner shortens what, a spinner's description, so that its line
// fits cols columns (0: not known, what is kept whole).
func fitSpinner(what string, cols int) string {
	if cols <= 0 {
		return what
	}
	return elide(what, cols-spinnerChrome)
}

// fitBar fits a bar's line to cols columns (0: not known): the bar is
// shrunk from barWidth down to minBarWidth, then the description elided;
// full says whether the bytes, rate and times fit beside them, which a
// terminal narrower than about 80 columns does not have room for.
func fitBar(desc string, cols int) (fitted string, width int, full bool) {
	if cols <= 0 {
		return desc, barWidth, true
	}
	dw := uniseg.StringWidth(desc)
	room := cols - barChrome
	full = room >= minBarWidth+min(dw, minBarDescription)
	if !full {
		room = cols - shortBarChrome
	}
	width = max(0, min(barWidth, room-dw, room-minBarDescription))
	width = max(width, min(minBarWidth, room))
	return elide(desc, room-width), width, full
}

// elide shortens s to at most n columns (as a terminal shows them) by
// putting "…" in place of its middle: of its longest word when that is
// enough and leaves the word 16 columns or more (a long reference keeps the
// start of its registry and its repository's end: "127.0.0…/app-bundle"),
// else of the whole of s (its start, which names the command, and its end).
func elide(s string, n int) string {
	w := uniseg.StringWidth(s)
	if w <= n {
		return s
	}
	if n <= 0 {
		return ""
	}
	over := w - n
	words := strings.Split(s, " ")
	longest, lw := 0, -1
	for i, word := range words {
		if ww := uniseg.StringWidth(word); ww > lw {
			longest, lw = i, ww
		}
	}
	if lw-over >= 16 {
		words[longest] = elideMiddle(words[longest], lw-over)
		return strings.Join(words, " ")
	}
	return elideMiddle(s, n)
}

// elideMiddle shortens s, wider than n columns (n >= 1), to n columns: its
// start and its end, "…" between, the end getting the odd column.
func elideMiddle(s string, n int) string {
	var clusters []string
	var widths []int
	g := uniseg.NewGraphemes(s)
	for g.Next() {
		clusters = append(clusters, g.Str())
		widths = append(widths, g.Width())
	}
	keep := n - 1
	head, tail := keep/2, keep-keep/2
	var b strings.Builder
	i, used := 0, 0
	for ; i < len(clusters) && used+widths[i] <= head; i++ {
		b.WriteString(clusters[i])
		used += widths[i]
	}
	j, used := len(clusters), 0
	for j > i && used+widths[j-1] <= tail {
		j--
		used += widths[j]
	}
	b.WriteString("…")
	for _, c := range clusters[j:] {
		b.WriteString(c)
	}
	return b.String()
}

// startHeartbeat starts the heartbeat unless it runs, there is a terminal
// (the bar shows progress) or none is wanted. r.mu is held.
func (r *reporter) startHeartbeat() {
	if r.beat != nil || r.tty || r.every <= 0 {
		return
	}
	hb := &heartbeat{stop: make(chan struct{}), stopped: make(chan struct{})}
	r.beat = hb
	ticks, stop := r.clock.ticker(r.every)
	go func() {
		defer close(hb.stopped)
		defer stop()
		for {
			select {
			case <-hb.stop:
				return
			case <-ticks:
				r.heartbeatLine()
			}
		}
	}()
}

// stopHeartbeat stops the heartbeat and waits for it, so that it prints
// nothing afterwards.
func (r *reporter) stopHeartbeat() {
	r.mu.Lock()
	hb := r.beat
	r.beat = nil
	r.mu.Unlock()
	if hb != nil {
		close(hb.stop)
		<-hb.stopped
	}
}

// heartbeatLine prints where the work is: bytes done, of how many, and the
// rate since the phase started; before any byte is counted, what is under
// way and for how long.
func (r *reporter) heartbeatLine() {
	r.mu.Lock()
	defer r.mu.Unlock()
	took := r.clock.now().Sub(r.start)
	var line string
	switch {
	case r.counting && r.total > 0:
		line = fmt.Sprintf("%s: %s of %s (%d%%), %s", r.phase, humanBytes(r.done), humanBytes(r.total), r.done*100/r.total, rate(r.done, took))
	case r.counting && r.done > 0:
		line = fmt.Sprintf("%s: %s, %s", r.phase, humanBytes(r.done), rate(r.done, took))
	default:
		line = fmt.Sprintf("%s (%s)", r.phase, formatDuration(took))
	}
	// A phase may name a reference from the archive or the command line.
	fmt.Fprintln(r.w, forTerminal(line))
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
	// What a registry or an archive put into the message (a reference, a
	// media type) must not be able to draw on the terminal, and a warning
	// quoting an error must not show the signed URL it failed on.
	fmt.Fprintln(r.w, prefix+forTerminal(fmt.Sprintf(format, args...)))
	if r.bar != nil {
		_ = r.bar.RenderBlank()
		_ = r.bar.Set64(r.done)
	}
}

// forTerminal is what every message from an error, a registry or an
// archive goes through on its way to stderr: control characters escaped,
// the query strings of URLs hidden (see redactQueries), and the details of
// registry errors shown without Go's map syntax (see readableDetails).
func forTerminal(msg string) string {
	return escapeControls(redactQueries(readableDetails(readableAccess(trimBodies(msg)))))
}

// readableDetails rewrites the Go maps in msg ("map[name:team/app]") as
// "{name: team/app}". go-containerregistry formats a registry error's
// detail, JSON it decoded into a map, with %v ("NAME_UNKNOWN: repository
// name not known to registry; map[name:team/app]"), and that error reaches
// people through many wrappings, as a string. A "map[" is rewritten only
// where it starts a word and its brackets balance; keys are the words
// before a colon at the map's top level (Go sorts them), and a value runs
// to the next key, so a value with spaces in it stays whole.
func readableDetails(msg string) string {
	if !strings.Contains(msg, "map[") {
		return msg
	}
	var b strings.Builder
	for i := 0; i < len(msg); {
		j := strings.Index(msg[i:], "map[")
		if j < 0 {
			b.WriteString(msg[i:])
			break
		}
		j += i
		end := -1
		if j == 0 || !isWordByte(msg[j-1]) {
			end = closingBracket(msg, j+len("map"))
		}
		if end < 0 {
			b.WriteString(msg[i : j+len("map[")])
			i = j + len("map[")
			continue
		}
		b.WriteString(msg[i:j])
		b.WriteString(goMapText(msg[j+len("map[") : end]))
		i = end + 1
	}
	return b.String()
}

// goMapText renders the inside of a Go map's %v ("a:1 b:map[c:d]") as
// "{a: 1, b: {c: d}}".
func goMapText(inner string) string {
	var pairs []string
	for _, word := range topLevelWords(inner) {
		k, v, ok := strings.Cut(word, ":")
		if ok && mapKey(k) {
			pairs = append(pairs, k+": "+readableDetails(v))
			continue
		}
		if len(pairs) == 0 {
			pairs = append(pairs, readableDetails(word))
			continue
		}
		pairs[len(pairs)-1] += " " + readableDetails(word)
	}
	return "{" + strings.Join(pairs, ", ") + "}"
}

// topLevelWords splits s at the spaces outside brackets.
func topLevelWords(s string) []string {
	var words []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '[':
			depth++
		case ']':
			depth--
		case ' ':
			if depth == 0 {
				words = append(words, s[start:i])
				start = i + 1
			}
		}
	}
	return append(words, s[start:])
}

// closingBracket returns the index of the "]" that closes the "[" at
// msg[open], or -1.
func closingBracket(msg string, open int) int {
	depth := 0
	for i := open; i < len(msg); i++ {
		switch msg[i] {
		case '[':
			depth++
		case ']':
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}

// mapKey reports whether k looks like a key of a registry's error detail
// (a JSON field name: "name", "Tag", "digest", "Revision").
func mapKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if !isWordByte(k[i]) && k[i] != '-' && k[i] != '.' {
			return false
		}
	}
	return true
}

func isWordByte(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func (r *reporter) Logf(format string, args ...any) {
	if r.verbose {
		r.line("", format, args)
	}
}

func (r *reporter) Warnf(format string, args ...any) { r.line("warning: ", format, args) }

// Done ends the phase: the bar is cleared and the heartbeat stops; the
// command's summary says how much was done and how fast.
func (r *reporter) Done() {
	// The heartbeat first: a tick between the two would print a phase
	// already cleared.
	r.stopHeartbeat()
	r.mu.Lock()
	r.endBar()
	r.phase, r.counting = "", false
	r.mu.Unlock()
}

// humanBytes formats n in IEC units, as progress bars do.
func humanBytes(n int64) string { return progress.Bytes(n) }

// rate says how fast n bytes moved in d ("31.1 MiB/s").
func rate(n int64, d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return humanBytes(int64(float64(n)/d.Seconds())) + "/s"
}

// formatDuration rounds d for a person: milliseconds under a second, two
// digits under ten seconds ("1.25s"), tenths under a minute ("13.7s"),
// then whole seconds ("2m05s", "1h02m05s").
func formatDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < 10*time.Second-5*time.Millisecond:
		return d.Round(10 * time.Millisecond).String()
	case d < time.Minute-50*time.Millisecond:
		return d.Round(100 * time.Millisecond).String()
	}
	d = d.Round(time.Second)
	h, m, s := int(d/time.Hour), int(d/time.Minute)%60, int(d/time.Second)%60
	if h > 0 {
		return fmt.Sprintf("%dh%02dm%02ds", h, m, s)
	}
	return fmt.Sprintf("%dm%02ds", m, s)
}

// shortDigest abbreviates sha256:<64 hex> to 12 hex digits for people;
// --verbose and --json give the full digest.
func shortDigest(d string) string {
	if len(d) > len("sha256:")+12 {
		return d[:len("sha256:")+12]
	}
	return d
}

// fullDigest is a sha256 digest as references and messages write it; a
// path's sha256-<hex> (a tag, a nested bundle's directory) does not match.
var fullDigest = regexp.MustCompile(`sha256:([0-9a-f]{12})[0-9a-f]{52}`)

// shortDigests abbreviates, as shortDigest does, every digest in s: a
// reference by digest, or a message naming one, in a human line.
func shortDigests(s string) string {
	return fullDigest.ReplaceAllString(s, "sha256:$1")
}

// withDigest is ref, a reference as a command quotes it, and its digest
// d in parentheses, unless ref is by that digest already. verbose keeps
// the full digest, as in --json.
func withDigest(ref, d string, verbose bool) string {
	if !strings.HasSuffix(ref, "@"+d) {
		ref += " (" + d + ")"
	}
	if verbose {
		return ref
	}
	return shortDigests(ref)
}

// summaryTable aligns the "  label  value" lines of a summary.
func summaryTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
}
