package main

import (
	"bytes"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

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
	if code != 1 || strings.Contains(errOut.String(), "\x1b") || !strings.Contains(errOut.String(), `/no/such/\x1b[2Kfile`) {
		t.Errorf("exit %d, stderr %q: want the path escaped", code, errOut.String())
	}
}

func TestDescribeVersion(t *testing.T) {
	goSuffix := runtime.GOOS + "/" + runtime.GOARCH + ")"
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
			"devel", "devel (go1.26.1 " + goSuffix},
		{"no build info", "", nil, "devel", "devel (" + runtime.Version() + " " + goSuffix},
	} {
		got := describeVersion(tc.stamped, tc.info)
		if got.short != tc.short || got.long != tc.long {
			t.Errorf("%s: got %q / %q, want %q / %q", tc.name, got.short, got.long, tc.short, tc.long)
		}
	}
}

func TestReporterWithoutTerminal(t *testing.T) {
	var buf bytes.Buffer
	r := &reporter{w: &buf, every: 20 * time.Millisecond}
	r.Start("import", 4<<20)
	r.Add(1 << 20) // before the interval: no line
	if buf.Len() != 0 {
		t.Fatalf("a line before the heartbeat interval: %q", buf.String())
	}
	time.Sleep(30 * time.Millisecond)
	r.Add(1 << 20)
	r.Logf("pushed manifest %s", "r@sha256:…")
	r.Warnf("careful: %s", "x\x1b[31m")
	r.Done()
	r.Add(1 << 20) // after Done: no phase, no line
	want := regexp.MustCompile(`^import: 2\.0 MiB of 4\.0 MiB \(50%\), [0-9.]+ [KMG]?i?B/s\nwarning: careful: x\\x1b\[31m\n$`)
	if !want.MatchString(buf.String()) {
		t.Errorf("got %q, want one heartbeat line and the escaped warning (no step line without -v)", buf.String())
	}

	buf.Reset()
	v := &reporter{w: &buf, verbose: true}
	v.Start("import", 10)
	v.Add(10)
	v.Logf("tagged %s", "r:v1")
	v.Done()
	if buf.String() != "tagged r:v1\n" {
		t.Errorf("verbose without heartbeat: got %q", buf.String())
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
	})
	want := "\n" +
		"  ACTION  TAG                                                                             DIGEST\n" +
		"  create  sha256-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.imgpkg  sha256:aaaaaaaaaaaa\n" +
		"  move    v1                                                                              sha256:aaaaaaaaaaaa (was sha256:bbbbbbbbbbbb)\n" +
		"  create  sha256-x.image-locations.imgpkg                                                 (not known yet)\n"
	if buf.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", buf.String(), want)
	}
}
