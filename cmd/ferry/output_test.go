package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/urfave/cli/v2"

	"github.com/ferry-dev/ferry/relocate"
)

func TestEscapeKeepsPrintableTextAndEscapesTheRest(t *testing.T) {
	for _, tc := range []struct{ in, quoted, escaped string }{
		{"registry.example.com/app:v1", "registry.example.com/app:v1", "registry.example.com/app:v1"},
		{"café ☕", "café ☕", "café ☕"},
		{"v1\x1b[2K\rOK", `"v1\x1b[2K\rOK"`, `v1\x1b[2K\rOK`},
		{"a\nb\tc", `"a\nb\tc"`, `a\nb\tc`},
		{"abc\u202edef", `"abc\u202edef"`, `abc\u202edef`},
		{"bad\xffbyte", `"bad\xffbyte"`, `bad\xffbyte`},
		{"\u009b31m", `"\u009b31m"`, `\u009b31m`}, // the C1 CSI
	} {
		if got := quoteUnsafe(tc.in); got != tc.quoted {
			t.Errorf("quoteUnsafe(%q) = %s, want %s", tc.in, got, tc.quoted)
		}
		if got := escapeControls(tc.in); got != tc.escaped {
			t.Errorf("escapeControls(%q) = %s, want %s", tc.in, got, tc.escaped)
		}
	}
}

func TestErrorsAreEscaped(t *testing.T) {
	var out, errOut bytes.Buffer
	code := run(t.Context(), []string{"ferry", "verify", "/no/such/\x1b[2Kfile"}, strings.NewReader(""), &out, &errOut)
	if code != 2 || strings.Contains(errOut.String(), "\x1b") || !strings.Contains(errOut.String(), `/no/such/\x1b[2Kfile`) {
		t.Errorf("exit %d, stderr %q: want the path escaped", code, errOut.String())
	}
}

func TestDescribeVersion(t *testing.T) {
	goSuffix := runtime.GOOS + "/" + runtime.GOARCH + ")"
	// A build without VCS information says how to get one: go install of
	// this package, named by the module go.mod declares, at a version (go
	// install ./cmd/ferry records no more than go build did).
	gomod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	module := regexp.MustCompile(`(?m)^module (\S+)$`).FindSubmatch(gomod)
	if module == nil {
		t.Fatalf("go.mod declares no module:\n%s", gomod)
	}
	mainPackage := string(module[1]) + "/cmd/ferry"
	for _, tc := range []struct {
		name        string
		stamped     string
		info        *debug.BuildInfo
		short, long string
	}{
		{"make build", "v1.2.0-3-gabc1234", &debug.BuildInfo{GoVersion: "go1.26.1", Main: debug.Module{Version: "(devel)"}},
			"v1.2.0-3-gabc1234", "v1.2.0-3-gabc1234 (go1.26.1 " + goSuffix},
		{"go install", "", &debug.BuildInfo{GoVersion: "go1.26.1", Main: debug.Module{Version: "v1.2.0"}},
			"v1.2.0", "v1.2.0 (go1.26.1 " + goSuffix},
		{"go build in a checkout", "", &debug.BuildInfo{GoVersion: "go1.26.1", Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
			{Key: "vcs.time", Value: "2026-01-02T03:04:05Z"},
			{Key: "vcs.modified", Value: "true"},
		}}, "0123456789ab-dirty", "0123456789ab-dirty (commit 0123456789abcdef0123456789abcdef01234567 (modified), 2026-01-02T03:04:05Z, go1.26.1 " + goSuffix},
		{"go build without VCS", "", &debug.BuildInfo{GoVersion: "go1.26.1", Main: debug.Module{Version: "(devel)"}},
			"devel", "devel (no VCS information recorded; build with make build, or go install " + mainPackage + "@VERSION, go1.26.1 " + goSuffix},
		{"no build info", "", nil, "devel", "devel (no VCS information recorded; build with make build, or go install " + mainPackage + "@VERSION, " + runtime.Version() + " " + goSuffix},
	} {
		got := describeVersion(tc.stamped, tc.info)
		if got.short != tc.short || got.long != tc.long {
			t.Errorf("%s: got %q / %q, want %q / %q", tc.name, got.short, got.long, tc.short, tc.long)
		}
	}
}

// fakeClock drives a reporter's heartbeat: the test sets the time and
// sends each tick, which the heartbeat receives before the send returns.
type fakeClock struct {
	mu    sync.Mutex
	t     time.Time
	ticks chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), ticks: make(chan time.Time)}
}

func (f *fakeClock) clock() clock {
	return clock{
		now:    func() time.Time { f.mu.Lock(); defer f.mu.Unlock(); return f.t },
		ticker: func(time.Duration) (<-chan time.Time, func()) { return f.ticks, func() {} },
	}
}

// tick moves the time on by d and delivers one tick.
func (f *fakeClock) tick(d time.Duration) {
	f.mu.Lock()
	f.t = f.t.Add(d)
	now := f.t
	f.mu.Unlock()
	f.ticks <- now
}

// lineWriter hands each write to the test as it happens.
type lineWriter chan string

func (w lineWriter) Write(b []byte) (int, error) {
	w <- string(b)
	return len(b), nil
}

// next is the next write, which the test knows is coming.
func (w lineWriter) next(t *testing.T) string {
	t.Helper()
	select {
	case l := <-w:
		return l
	case <-time.After(time.Minute):
		t.Fatal("no line written")
		return ""
	}
}

func TestHeartbeatEveryPeriodWhileWorkIsUnderWay(t *testing.T) {
	fc := newFakeClock()
	w := make(lineWriter, 16)
	r := &reporter{w: w, every: 5 * time.Second, clock: fc.clock()}

	// Before any phase: what is under way, and for how long.
	r.Begin("resolving bundle reg.example/app:v1\x1b[2K")
	fc.tick(5 * time.Second)
	if got, want := w.next(t), "resolving bundle reg.example/app:v1\\x1b[2K (5s)\n"; got != want {
		t.Errorf("before the phase: %q, want %q", got, want)
	}

	// In the phase: bytes done, of how many, and the rate.
	r.Start("import", 4<<20)
	r.Add(1 << 20)
	fc.tick(5 * time.Second)
	if got, want := w.next(t), "import: 1.0 MiB of 4.0 MiB (25%), 204.8 KiB/s\n"; got != want {
		t.Errorf("in the phase: %q, want %q", got, want)
	}
	// A stall: no byte moves, and the heartbeat still says where it is.
	fc.tick(5 * time.Second)
	if got, want := w.next(t), "import: 1.0 MiB of 4.0 MiB (25%), 102.4 KiB/s\n"; got != want {
		t.Errorf("during a stall: %q, want %q", got, want)
	}
	r.Logf("pushed manifest %s", "r@sha256:…") // not verbose: nothing
	r.Warnf("careful: %s", "x\x1b[31m")
	if got, want := w.next(t), "warning: careful: x\\x1b[31m\n"; got != want {
		t.Errorf("warning: %q, want %q", got, want)
	}

	// Done stops it: nothing receives a tick any more, nothing is written.
	r.Done()
	select {
	case fc.ticks <- time.Time{}:
		t.Error("the heartbeat still runs after Done")
	default:
	}
	// A phase of unknown size counts bytes without a total.
	r.Start("export", 0)
	r.Add(3 << 20)
	fc.tick(5 * time.Second)
	if got := w.next(t); !strings.HasPrefix(got, "export: 3.0 MiB, ") {
		t.Errorf("a phase of unknown size: %q", got)
	}
	r.Done()
	if len(w) != 0 {
		t.Errorf("written after Done: %q", <-w)
	}
}

// A warning or a -v line quoting an error shows the URL it failed on but
// not its query: a signed storage URL a download was redirected to, or the
// state of an upload session.
func TestWarningsHideURLQueries(t *testing.T) {
	var buf bytes.Buffer
	r := &reporter{w: &buf, verbose: true, clock: systemClock()}
	r.Warnf("blob %s failed on its way from %s (%v)", "sha256:abc", "reg/app",
		errors.New(`fetch blob: Get "http://127.0.0.1:1/storage/blob?X-Amz-Signature=SECRET&X-Amz-Credential=KEY": unexpected EOF`))
	r.Logf("retrying %s", "PUT http://127.0.0.1:1/v2/r/blobs/uploads/1a2b?_state=STATE&digest=sha256:def")
	p := &printer{stderr: &buf, level: levelVerbose}
	p.Verbosef("retrying %s", "https://s3.example.com/b?sig=SIG")
	got := buf.String()
	for _, secret := range []string{"SECRET", "KEY", "_state", "STATE", "digest=", "SIG"} {
		if strings.Contains(got, secret) {
			t.Errorf("%q printed: %s", secret, got)
		}
	}
	for _, want := range []string{
		`warning: blob sha256:abc failed on its way from reg/app (fetch blob: Get "http://127.0.0.1:1/storage/blob?REDACTED": unexpected EOF)`,
		"retrying PUT http://127.0.0.1:1/v2/r/blobs/uploads/1a2b?REDACTED\n",
		"retrying https://s3.example.com/b?REDACTED\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
}

func TestNoHeartbeatForARunShorterThanThePeriod(t *testing.T) {
	var buf bytes.Buffer
	r := &reporter{w: &buf, every: time.Hour, clock: systemClock()}
	r.Begin("resolving bundle r:v1")
	r.Start("import", 4<<20)
	r.Add(4 << 20)
	r.Done()
	if buf.Len() != 0 {
		t.Errorf("a run shorter than the period printed %q", buf.String())
	}

	// On a terminal the bar shows progress: no heartbeat at all.
	fc := newFakeClock()
	tty := &reporter{w: io.Discard, tty: true, every: 5 * time.Second, clock: fc.clock()}
	tty.Begin("resolving bundle r:v1")
	select {
	case fc.ticks <- time.Time{}:
		t.Error("a heartbeat on a terminal")
	default:
	}
	tty.Done()

	// With -v, steps are printed as they come.
	buf.Reset()
	v := &reporter{w: &buf, verbose: true, clock: systemClock()}
	v.Start("import", 10)
	v.Add(10)
	v.Logf("tagged %s", "r:v1")
	v.Done()
	if buf.String() != "tagged r:v1\n" {
		t.Errorf("verbose: got %q", buf.String())
	}
}

func TestPrinterCloseStopsTheHeartbeatBeforeTheSummary(t *testing.T) {
	fc := newFakeClock()
	w := make(lineWriter, 16)
	p := &printer{stderr: w, level: levelNormal, clock: fc.clock()}
	p.Begin("checking what r holds")
	fc.tick(5 * time.Second)
	w.next(t)
	// A failure before any phase ends: no Done, but the command closes.
	p.Close()
	select {
	case fc.ticks <- time.Time{}:
		t.Error("the heartbeat runs after Close")
	default:
	}
	// --quiet: no heartbeat at all.
	q := &printer{stderr: w, level: levelQuiet, clock: fc.clock()}
	q.Begin("checking what r holds")
	select {
	case fc.ticks <- time.Time{}:
		t.Error("a heartbeat with --quiet")
	default:
	}
}

func TestFormatDuration(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"},
		{125 * time.Millisecond, "125ms"},
		{1234567 * time.Microsecond, "1.23s"},
		{9996 * time.Millisecond, "10s"},
		{13677 * time.Millisecond, "13.7s"},
		{59960 * time.Millisecond, "1m00s"},
		{125 * time.Second, "2m05s"},
		{3725 * time.Second, "1h02m05s"},
	} {
		if got := formatDuration(tc.d); got != tc.want {
			t.Errorf("formatDuration(%s) = %q, want %q", tc.d, got, tc.want)
		}
	}
}

func TestVerboseAndQuietAreExclusive(t *testing.T) {
	var out, errOut bytes.Buffer
	code := run(t.Context(), []string{"ferry", "inspect", "-v", "-q", "x.tar.zst"}, strings.NewReader(""), &out, &errOut)
	if code != 2 || !strings.Contains(errOut.String(), "--verbose or --quiet") {
		t.Errorf("exit %d, stderr %q", code, errOut.String())
	}
}

func TestTagTableShowsMovesWithThePreviousDigest(t *testing.T) {
	var buf bytes.Buffer
	d1 := "sha256:" + strings.Repeat("a", 64)
	d2 := "sha256:" + strings.Repeat("b", 64)
	printTags(&buf, []relocate.TagResult{
		{Tag: "sha256-" + strings.Repeat("a", 64) + ".imgpkg", Digest: d1, Action: relocate.TagCreate},
		{Tag: "v1", Digest: d1, Previous: d2, Action: relocate.TagMove},
		{Tag: "sha256-x.image-locations.imgpkg", Action: relocate.TagCreate},
	}, false)
	want := "\n" +
		"  ACTION  TAG                                                                             DIGEST\n" +
		"  create  sha256-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.imgpkg  sha256:aaaaaaaaaaaa\n" +
		"  move    v1                                                                              sha256:aaaaaaaaaaaa (was sha256:bbbbbbbbbbbb)\n" +
		"  create  sha256-x.image-locations.imgpkg                                                 (not known yet)\n"
	if buf.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", buf.String(), want)
	}
}

// With -v the tag table gives full digests, the moved tag's previous one
// too: what the README promises import's dry run under -v.
func TestTagTableVerboseGivesFullDigests(t *testing.T) {
	var buf bytes.Buffer
	d1 := "sha256:" + strings.Repeat("c", 64)
	d2 := "sha256:" + strings.Repeat("d", 64)
	printTags(&buf, []relocate.TagResult{{Tag: "v1", Digest: d1, Previous: d2, Action: relocate.TagMove}}, true)
	if want := d1 + " (was " + d2 + ")"; !strings.Contains(buf.String(), want) {
		t.Errorf("got:\n%s\nwant a line with %q", buf.String(), want)
	}
}

// helpOf runs ferry with args and --help, and returns what it printed.
func helpOf(t *testing.T, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	if code := run(t.Context(), append(append([]string{"ferry"}, args...), "--help"), strings.NewReader(""), &out, &errOut); code != 0 {
		t.Fatalf("%v --help: exit %d: %s", args, code, errOut.String())
	}
	return out.String()
}

// commands lists every command, as the arguments that name it.
func commands() [][]string {
	var out [][]string
	var walk func(prefix []string, cs []*cli.Command)
	walk = func(prefix []string, cs []*cli.Command) {
		for _, c := range cs {
			args := append(append([]string{}, prefix...), c.Name)
			if len(c.Subcommands) > 0 {
				walk(args, c.Subcommands)
				continue
			}
			out = append(out, args)
		}
	}
	walk(nil, newApp(nil, io.Discard, io.Discard).Commands)
	return out
}

func TestHelpStatesEachDefaultOnce(t *testing.T) {
	cmds := commands()
	if len(cmds) < 11 {
		t.Fatalf("found only %d commands: %v", len(cmds), cmds)
	}
	for _, args := range append(cmds, nil) {
		for _, line := range strings.Split(helpOf(t, args...), "\n") {
			if strings.Count(line, "(default:") > 1 {
				t.Errorf("ferry %s --help states two defaults: %s", strings.Join(args, " "), strings.TrimSpace(line))
			}
		}
	}
}

func TestVerboseHelpSaysWhatItAddsToEachCommand(t *testing.T) {
	verbose := regexp.MustCompile(`(?m)^\s+--verbose, -v\s+(.*?)( \(default: false\))?$`)
	usage := map[string]string{}
	for _, args := range commands() {
		m := verbose.FindStringSubmatch(helpOf(t, args...))
		if m == nil {
			continue
		}
		usage[strings.Join(args, " ")] = m[1]
	}
	for cmd, want := range map[string]string{
		"import":    "manifest and tag as it is written at the destination",
		"copy":      "manifest and tag as it is written at the destination",
		"export":    "image as it is written into the archive",
		"inspect":   "every blob a delta archive left out",
		"verify":    "full digests",
		"tag list":  "no effect",
		"inventory": "each repository's counts",
		"pull":      "full digests",
		"push":      "each tag",
		"serve":     "one line per request",
	} {
		if !strings.Contains(usage[cmd], want) {
			t.Errorf("ferry %s -v: %q, want it to say %q", cmd, usage[cmd], want)
		}
	}
	for cmd, u := range usage {
		if cmd != "import" && cmd != "copy" && strings.Contains(u, "manifest and tag") {
			t.Errorf("ferry %s -v claims import's lines: %q", cmd, u)
		}
	}
}

func TestRelocationSummary(t *testing.T) {
	d := "sha256:" + strings.Repeat("a", 64)
	res := &relocate.ImportResult{Repository: "reg/far/app", Root: "reg/far/app@" + d, Tag: "v1",
		Tags:   []relocate.TagResult{{Tag: "v1", Digest: d, Action: relocate.TagCreate}},
		Images: 3, BlobsMounted: 8, BytesMounted: 9 << 20, ManifestsPushed: 5}
	var buf bytes.Buffer
	printImport(&buf, "copy", importJSON{ImportResult: res, LockOutput: "pl.yml"}, 13677*time.Millisecond, false)
	want := "Copied into reg/far/app in 13.7s\n" +
		"  images     3\n" +
		"  blobs      8 mounted (9.0 MiB, not sent), 0 already there\n" +
		"  manifests  5 pushed, 0 already there\n" +
		"  lock       written to pl.yml\n" +
		"\n" +
		"  ACTION  TAG  DIGEST\n" +
		"  create  v1   sha256:aaaaaaaaaaaa\n"
	if buf.String() != want {
		t.Errorf("every blob mounted:\n%s\nwant:\n%s", buf.String(), want)
	}

	res.BlobsUploaded, res.BytesUploaded = 2, 1<<20
	buf.Reset()
	printImport(&buf, "copy", importJSON{ImportResult: res}, 2*time.Second, false)
	if !strings.HasPrefix(buf.String(), "Copied into reg/far/app in 2s (512.0 KiB/s)\n  images     3\n  blobs      2 uploaded (1.0 MiB), 8 mounted (9.0 MiB, not sent), 0 already there\n") ||
		strings.Contains(buf.String(), "lock") {
		t.Errorf("some blobs sent, no lock file:\n%s", buf.String())
	}

	// A delta whose left-out blobs were mounted from another repository:
	// the result counts them among those mounted, and so does the summary.
	delta := &relocate.ImportResult{Repository: "reg/far/app", Root: "reg/far/app@" + d, Tag: "v1",
		Tags:          []relocate.TagResult{{Tag: "v1", Digest: d, Action: relocate.TagCreate}},
		BlobsUploaded: 7, BytesUploaded: 7 << 20, BlobsPresent: 1, BytesPresent: 2 << 20,
		BlobsMounted: 3, BytesMounted: 3 << 20,
		BlobsLeftOut: 3, BytesLeftOut: 3 << 20, LeftOutMounted: 3, BytesLeftOutMounted: 3 << 20,
		LeftOutFrom: []relocate.LeftOutSource{{Repository: "reg/far/base", Mounted: 3, MountedBytes: 3 << 20}}}
	buf.Reset()
	printImport(&buf, "import", importJSON{ImportResult: delta}, time.Second, false)
	if !strings.Contains(buf.String(), "  blobs      7 uploaded (7.0 MiB), 3 mounted (3.0 MiB, not sent), 1 already there (2.0 MiB)\n") ||
		!strings.Contains(buf.String(), "  delta      3 left out (3.0 MiB), all held by the destination (3 mounted)\n  mounted    3 from reg/far/base\n") {
		t.Errorf("a delta's left-out blobs mounted:\n%s", buf.String())
	}
	// Some the registry would not mount: uploaded from there, and said so.
	delta.LeftOutMounted, delta.BytesLeftOutMounted = 2, 2<<20
	delta.BlobsMounted, delta.BytesMounted = 2, 2<<20
	delta.LeftOutFrom = []relocate.LeftOutSource{{Repository: "reg/far/base", Mounted: 2, MountedBytes: 2 << 20}, {Repository: "reg/far/old", Uploaded: 1, UploadedBytes: 1 << 20}}
	buf.Reset()
	printImport(&buf, "import", importJSON{ImportResult: delta}, time.Second, false)
	if !strings.Contains(buf.String(), "  delta      3 left out (3.0 MiB), all held by the destination (2 mounted)\n  mounted    2 from reg/far/base\n  copied     1 from reg/far/old (the registry would not mount them)\n") {
		t.Errorf("a delta's left-out blobs mounted and uploaded:\n%s", buf.String())
	}

	// --json: the lock file beside relocate's fields, unless a dry run.
	var out bytes.Buffer
	p := &printer{stdout: &out, json: true}
	res.DryRun = true
	if err := printImportResult(p, "copy", res, "pl.yml"); err != nil {
		t.Fatal(err)
	}
	res.DryRun = false
	if err := printImportResult(p, "copy", res, "pl.yml"); err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(&out)
	for _, want := range []string{"", "pl.yml"} {
		var got map[string]any
		if err := dec.Decode(&got); err != nil {
			t.Fatal(err)
		}
		if lo, _ := got["lockOutput"].(string); lo != want || got["repository"] != "reg/far/app" {
			t.Errorf("--json (dry run %v): lockOutput %q, repository %v", want == "", lo, got["repository"])
		}
	}
}

// A dry run says what it could not check, each archive string escaped.
func TestDryRunSummarySaysWhatWasNotChecked(t *testing.T) {
	res := &relocate.ImportResult{Repository: "reg/far/app", DryRun: true,
		Unchecked: []string{"the images.yml of bundle r.example/b\x1b[2K:v1"}}
	var buf bytes.Buffer
	printImport(&buf, "import", importJSON{ImportResult: res}, time.Second, false)
	if !strings.Contains(buf.String(), `  not checked  the images.yml of bundle r.example/b\x1b[2K:v1`) {
		t.Errorf("dry run summary:\n%s", buf.String())
	}
}

// A dry run's not-checked lines named a bundle by reference and digest,
// two full digests on one line: abbreviated unless -v. A nested bundle's
// tag (sha256-<hex>.imgpkg) is a name, kept whole.
func TestDryRunNotCheckedAbbreviatesDigests(t *testing.T) {
	d := "sha256:" + strings.Repeat("0123456789abcdef", 4)
	line := "the images.yml of bundle r.example/b:v1 (" + d + ") tagged sha256-" + d[7:] + ".imgpkg"
	res := &relocate.ImportResult{Repository: "reg/far/app", DryRun: true, Unchecked: []string{line}}
	var buf bytes.Buffer
	printImport(&buf, "import", importJSON{ImportResult: res}, time.Second, false)
	if want := "the images.yml of bundle r.example/b:v1 (sha256:0123456789ab) tagged sha256-" + d[7:] + ".imgpkg\n"; !strings.Contains(buf.String(), want) {
		t.Errorf("dry run summary does not say %q:\n%s", want, buf.String())
	}
	buf.Reset()
	printImport(&buf, "import", importJSON{ImportResult: res}, time.Second, true)
	if !strings.Contains(buf.String(), line) {
		t.Errorf("dry run summary with -v does not keep the full digest:\n%s", buf.String())
	}
}

// TestRegistryErrorDetailsWithoutGoMapSyntax: the detail of a registry's
// error document, which go-containerregistry prints with %v, reaches the
// terminal without Go's "map[…]" syntax, however deep in a wrapped error.
func TestRegistryErrorDetailsWithoutGoMapSyntax(t *testing.T) {
	body := `{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry","detail":{"name":"sp/d"}}]}`
	req := httptest.NewRequest(http.MethodGet, "http://127.0.0.1:5000/v2/sp/d/manifests/v1", nil)
	resp := &http.Response{StatusCode: http.StatusNotFound, Body: io.NopCloser(strings.NewReader(body)), Request: req}
	err := fmt.Errorf("export 127.0.0.1:5000/sp/d:v1: %w", transport.CheckError(resp, http.StatusOK))
	if !strings.Contains(err.Error(), "map[name:sp/d]") {
		t.Fatalf("go-containerregistry no longer prints details with %%v: %s", err)
	}
	got := forTerminal(err.Error())
	want := "export 127.0.0.1:5000/sp/d:v1: GET http://127.0.0.1:5000/v2/sp/d/manifests/v1: NAME_UNKNOWN: repository name not known to registry; {name: sp/d}"
	if got != want {
		t.Errorf("forTerminal:\n got %s\nwant %s", got, want)
	}

	for _, tc := range []struct{ in, want string }{
		{"x; map[Revision:sha256:abc Tag:v1]", "x; {Revision: sha256:abc, Tag: v1}"},
		{"x; map[a:map[b:c d:e] f:[1 2]]", "x; {a: {b: c, d: e}, f: [1 2]}"},
		{"x; map[message:the tag is gone]", "x; {message: the tag is gone}"},
		{"x; [map[name:a] map[name:b]]", "x; [{name: a} {name: b}]"},
		{"x; map[]", "x; {}"},
		{"a bitmap[1] stays", "a bitmap[1] stays"},
		{"unbalanced map[a:b", "unbalanced map[a:b"},
		{"no maps here", "no maps here"},
	} {
		if got := readableDetails(tc.in); got != tc.want {
			t.Errorf("readableDetails(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// lockedBuffer is a bytes.Buffer written through a lockedWriter (as the
// CLI's stderr is), safe for a spinner's own goroutine.
type lockedBuffer struct {
	lockedWriter
	buf bytes.Buffer
}

func newLockedBuffer() *lockedBuffer {
	b := &lockedBuffer{}
	b.w = &b.buf
	return b
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// On a terminal, work of unknown size (resolving, asking a registry what
// it holds, writing manifests and tags) shows a spinner naming it, rather
// than nothing for as long as it takes; the spinner is cleared when a
// phase with a bar starts, and nothing is drawn after the command's
// summary.
func TestTerminalShowsWorkOfUnknownSize(t *testing.T) {
	buf := newLockedBuffer()
	p := &printer{stderr: buf, tty: true, level: levelNormal, clock: systemClock()}
	p.level = levelVerbose
	p.Begin("resolving bundle r:v1")
	// Warnings and -v lines while the spinner turns: each clears it first
	// and starts a line of its own (and, under -race, none races with the
	// spinner's drawing).
	for i := range 5 {
		time.Sleep(70 * time.Millisecond)
		p.Reporter().Warnf("retry %d", i)
	}
	p.Verbosef("resolved %d images", 2)
	if !strings.Contains(buf.String(), "resolving bundle r:v1") {
		t.Fatalf("Begin on a terminal drew %q, want the work named", buf.String())
	}
	for _, l := range []string{"warning: retry 4", "resolved 2 images"} {
		if !strings.Contains(buf.String(), "\r"+l+"\n") {
			t.Errorf("%q is not on a line of its own, after the spinner cleared: %q", l, buf.String())
		}
	}
	rep := p.Reporter()
	rep.Start("import", 1<<20)
	rep.Add(1 << 20)
	rep.Done()
	rep.Start("import: writing manifests and tags", 0)
	time.Sleep(250 * time.Millisecond)
	if !strings.Contains(buf.String(), "import: writing manifests and tags") {
		t.Fatalf("a phase of unknown size drew nothing on a terminal: %q", buf.String())
	}
	p.Close()
	n := len(buf.String())
	time.Sleep(300 * time.Millisecond)
	if len(buf.String()) != n {
		t.Errorf("the spinner drew after Close: %q", buf.String()[n:])
	}
}

// failingWriter refuses every write with err, as a full disk or a pipe
// whose reader went away does.
type failingWriter struct{ err error }

func (f failingWriter) Write([]byte) (int, error) { return 0, f.err }

// A listing is the command's data: `ferry inspect X > listing.txt` on a
// full disk fails instead of exiting 0 with nothing written.
func TestListingThatCannotBeWrittenFails(t *testing.T) {
	var stderr bytes.Buffer
	code := run(context.Background(), []string{"ferry", "inspect", "../../fixtures/golden/basic.imgpkg.tar"}, strings.NewReader(""), failingWriter{errors.New("no space left on device")}, &stderr)
	if code != 1 {
		t.Fatalf("inspect into a failing stdout: exit %d, want 1\nstderr: %s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "no space left on device") {
		t.Errorf("stderr %q does not name the write error", stderr.String())
	}
	// The same listing into a working stdout succeeds: the failure above
	// is the write's, not the archive's.
	var out bytes.Buffer
	if code := run(context.Background(), []string{"ferry", "inspect", "../../fixtures/golden/basic.imgpkg.tar"}, strings.NewReader(""), &out, &stderr); code != 0 || out.Len() == 0 {
		t.Fatalf("inspect into a buffer: exit %d, %d bytes\nstderr: %s", code, out.Len(), stderr.String())
	}
}

// A reader that stops early (`ferry inspect X | head -1`) ends the listing
// quietly with exit 0, as the reader asked for no more.
func TestListingIntoAClosedPipeEndsQuietly(t *testing.T) {
	for _, json := range []bool{false, true} {
		args := []string{"ferry", "inspect", "../../fixtures/golden/basic.imgpkg.tar"}
		if json {
			args = append(args, "--json")
		}
		var stderr bytes.Buffer
		code := run(context.Background(), args, strings.NewReader(""), failingWriter{fmt.Errorf("write /dev/stdout: %w", syscall.EPIPE)}, &stderr)
		if code != 0 || stderr.Len() != 0 {
			t.Errorf("%s into a closed pipe: exit %d, stderr %q; want exit 0 and nothing said", strings.Join(args[1:], " "), code, stderr.String())
		}
	}
}

// drawnLines splits what a bar or spinner wrote into the lines it drew
// (each "\r…" frame, each cleared row), without the returns and newlines.
func drawnLines(out string) []string {
	return strings.FieldsFunc(out, func(r rune) bool { return r == '\r' || r == '\n' })
}

// Every line a spinner or a bar draws fits the terminal's width, less one
// column: a longer one wrapped, and each redraw ("\r", spaces, "\r") left a
// stale row behind. A long description is shortened in its middle, keeping
// the command that names it and the end of the destination; a bar's
// figures are dropped on a terminal too narrow for them, not its percent.
func TestBarAndSpinnerLinesFitTheTerminal(t *testing.T) {
	const ref = "127.0.0.1:47123/a-rather-long-team-name/mirror/app-bundle"
	begin := "import: reading the archive's head and checking what " + ref + " holds"
	for _, cols := range []int{150, 80, 60, 40} {
		buf := newLockedBuffer()
		p := &printer{stderr: buf, tty: true, level: levelNormal, clock: systemClock(), width: func() int { return cols }}
		p.Begin(begin)
		time.Sleep(2 * spinEvery)
		rep := p.Reporter()
		rep.Start("import", 3<<30)
		rep.Add(1 << 30)
		time.Sleep(150 * time.Millisecond) // past the bar's throttle
		rep.Add(1 << 20)
		rep.Done()
		rep.Start("import: writing manifests and tags into "+ref, 0)
		time.Sleep(2 * spinEvery)
		p.Close()
		out := buf.String()
		for _, l := range drawnLines(out) {
			if n := utf8.RuneCountInString(l); n >= cols {
				t.Errorf("%d columns: a line of %d: %q", cols, n, l)
			}
		}
		spinner, bar := false, false
		for _, l := range drawnLines(out) {
			spinner = spinner || strings.HasPrefix(l, "⠋ import: ") && strings.Contains(l, "holds  [")
			bar = bar || strings.HasPrefix(l, "import  33% |")
		}
		if !spinner || !bar {
			t.Errorf("%d columns: the spinner naming the import (%v) or the bar at 33%% (%v) was not drawn: %q", cols, spinner, bar, out)
		}
		switch whole := strings.Contains(out, begin); {
		case cols == 150 && !whole:
			t.Errorf("150 columns: the description was shortened: %q", out)
		case cols < 150 && (whole || !strings.Contains(out, "…")):
			t.Errorf("%d columns: the description was not shortened with an ellipsis: %q", cols, out)
		}
		if figures := strings.Contains(out, "/3.0 GiB"); figures != (cols >= 80) {
			t.Errorf("%d columns: the bar's byte counts shown: %v, want %v: %q", cols, figures, cols >= 80, out)
		}
	}

	// Without a known width (a printer made so by a test, a library
	// caller), lines are drawn whole.
	buf := newLockedBuffer()
	p := &printer{stderr: buf, tty: true, level: levelNormal, clock: systemClock()}
	p.Begin(begin)
	p.Close()
	if !strings.Contains(buf.String(), begin) {
		t.Errorf("no width known: the spinner's line was changed: %q", buf.String())
	}
}

// elide shortens a bar's or spinner's description to a number of
// terminal columns, "…" in the middle of its longest word or of the whole.
func TestElide(t *testing.T) {
	for _, tc := range []struct {
		s    string
		n    int
		want string
	}{
		{"import", 10, "import"},
		{"import", 6, "import"},
		{"import", 5, "im…rt"},
		{"abcdef", 1, "…"},
		{"abcdef", 0, ""},
		// The longest word, when it keeps 16 columns or more.
		{"copy: checking what 127.0.0.1:5000/a-rather-long-team-name/app holds", 50, "copy: checking what 127.0.0.1:5…eam-name/app holds"},
		// Else the middle of the whole.
		{"copy: checking what 127.0.0.1:5000/a-rather-long-team-name/app holds", 30, "copy: checking…-name/app holds"},
		// Columns, not bytes: a wide character takes two, and is never cut.
		{"pull: extracting into /tmp/日本語のディレクトリ", 47, "pull: extracting into /tmp/日本語のディレクトリ"},
		{"pull: extracting into /tmp/日本語のディレクトリ", 45, "pull: extracting into /tmp/日本語…ィレクトリ"},
		{"pull: extracting into /tmp/日本語のディレクトリ", 30, "pull: extracti…のディレクトリ"},
		{"pull: extracting into /tmp/日本語のディレクトリ", 20, "pull: ext…ィレクトリ"},
	} {
		if got := elide(tc.s, tc.n); got != tc.want {
			t.Errorf("elide(%q, %d) = %q, want %q", tc.s, tc.n, got, tc.want)
		}
	}
}
