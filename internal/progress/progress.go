// Package progress is how packages below cmd/ tell the user what they are
// doing without printing: they call a Reporter, and cmd/ferry decides whether
// that becomes a progress bar, plain log lines or nothing at all.
//
// A Reporter carries what happens while the work runs; what the work did
// comes back in the result structs (relocate.ImportResult, ExportResult, …),
// from which the CLI prints its summary. So a step that the result already
// records (a tag written, a blob uploaded) is reported with Logf, which the
// CLI shows only with --verbose, and is never worded as a summary.
package progress

// Reporter receives progress from long-running work. Implementations must be
// safe for concurrent use, because downloads and uploads run in parallel.
type Reporter interface {
	// Start begins a phase of work ("export", "import", ...) whose size in
	// bytes is known up front (0 when it is not).
	Start(phase string, totalBytes int64)
	// Add records n more bytes of the current phase as done.
	Add(n int64)
	// Logf reports one finished step as it happens (a manifest pushed, a
	// tag written), for --verbose. A step that wrote something names where
	// it wrote it (the destination reference) and full digests.
	Logf(format string, args ...any)
	// Warnf reports something the user should know about but that does not
	// stop the work (a skipped non-distributable layer, a fallback used);
	// it is shown unless the user asked for errors only.
	Warnf(format string, args ...any)
	// Done ends the current phase.
	Done()
}

// Nop is a Reporter that discards everything; it is what library callers get
// when they pass no Reporter.
type Nop struct{}

// Start implements Reporter.
func (Nop) Start(string, int64) {}

// Add implements Reporter.
func (Nop) Add(int64) {}

// Logf implements Reporter.
func (Nop) Logf(string, ...any) {}

// Warnf implements Reporter.
func (Nop) Warnf(string, ...any) {}

// Done implements Reporter.
func (Nop) Done() {}

// OrNop returns r, or Nop when r is nil, so callers need no nil checks.
func OrNop(r Reporter) Reporter {
	if r == nil {
		return Nop{}
	}
	return r
}

// WarningsOnly returns a Reporter that passes r's warnings on and discards
// everything else: for work whose phases and steps the caller does not show
// (the build before a push) but whose warnings the user must see.
func WarningsOnly(r Reporter) Reporter {
	return warningsOnly{r: OrNop(r)}
}

type warningsOnly struct {
	Nop
	r Reporter
}

// Warnf implements Reporter.
func (w warningsOnly) Warnf(format string, args ...any) { w.r.Warnf(format, args...) }
