package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// optionLine is a flag's line in a command's help: its names (with their
// placeholders, single spaces apart) and, two spaces or more after them,
// its help.
var optionLine = regexp.MustCompile(`^   (--?[a-z][a-z-]*)([^ ]*(?: [^ ]+)*?)  +(.*)$`)

// options returns the flags of a command's help, in the order shown, by
// group (the registry flags are a group of their own), as name → help;
// names is the first name of each, per group.
func options(t *testing.T, help string) (groups [][]string, usage map[string]string, names map[string]string) {
	t.Helper()
	usage, names = map[string]string{}, map[string]string{}
	_, opts, ok := strings.Cut(help, "\nOPTIONS:\n")
	if !ok {
		t.Fatalf("no OPTIONS in:\n%s", help)
	}
	var group []string
	for _, line := range strings.Split(opts, "\n") {
		m := optionLine.FindStringSubmatch(line)
		if m == nil {
			if len(group) > 0 {
				groups = append(groups, group)
				group = nil
			}
			continue
		}
		name := strings.TrimLeft(m[1], "-")
		group = append(group, name)
		usage[name], names[name] = m[3], m[1]+m[2]
	}
	if len(group) > 0 {
		groups = append(groups, group)
	}
	return groups, usage, names
}

// Every command's help has one layout: USAGE lines all at the help's
// indent of 3, --help among the options, the options sorted by name in
// each group, and every value a flag takes named by a placeholder that
// says what it is, never urfave/cli's "value".
func TestHelpLayoutIsTheSameForEveryCommand(t *testing.T) {
	for _, args := range append(commands(), []string{"tag"}) {
		cmd := strings.Join(args, " ")
		help := helpOf(t, args...)
		_, usageText, _ := strings.Cut(help, "\nUSAGE:\n")
		usageText, _, _ = strings.Cut(usageText, "\n\n")
		for _, line := range strings.Split(usageText, "\n") {
			if !strings.HasPrefix(line, "   ") || strings.HasPrefix(line, "    ") {
				t.Errorf("ferry %s --help: USAGE line %q is not indented 3", cmd, line)
			}
		}
		groups, usage, names := options(t, help)
		if _, ok := usage["help"]; !ok {
			t.Errorf("ferry %s --help does not list --help among its options:\n%s", cmd, help)
		}
		for _, g := range groups {
			if !slices.IsSorted(g) {
				t.Errorf("ferry %s --help: options not sorted by name: %v", cmd, g)
			}
		}
		for name, shown := range names {
			if strings.Contains(shown, " value") {
				t.Errorf("ferry %s --help: --%s's value is named \"value\": %s", cmd, name, shown)
			}
		}
	}
	// tag alone: its commands, in ferry's words, and how to run them.
	help := helpOf(t, "tag")
	if strings.Contains(help, "Shows a list of commands") || strings.Contains(help, "help, h") || strings.Contains(help, "[command options]") || !strings.Contains(help, "ferry tag list -i REPO") {
		t.Errorf("ferry tag --help:\n%s\nwant its commands and usage in ferry's words, without urfave/cli's help command", help)
	}
	if code, stdout, _ := runFerry("tag"); code != 0 || stdout != help {
		t.Errorf("ferry tag: exit %d,\n%s\nwant its help", code, stdout)
	}
}

// copy's help says which of its modes each flag belongs to ("with
// --to-tar:", "with --to-repo or --tar:"; none: all three), and copy
// refuses the flag in exactly the other modes: each flag is given in each
// mode and the refusal compared with what its help says.
func TestCopyHelpSaysEachFlagsMode(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "a.tar.zst")
	lockFile := filepath.Join(dir, "images.yml")
	for _, f := range []string{garbage, lockFile} {
		if err := os.WriteFile(f, []byte("neither an archive nor a lock\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// Nothing listens on 127.0.0.1:1: a flag that is taken fails the copy
	// there, after the flags are checked.
	modes := map[string][]string{
		"--to-repo": {"--to-repo", "127.0.0.1:1/b"},
		"--to-tar":  {"--to-tar", filepath.Join(dir, "x.tar.zst")},
		"--tar":     {"--tar", garbage, "--to-repo", "127.0.0.1:1/b"},
	}
	values := map[string]string{
		"bundle": "127.0.0.1:1/c:v1", "image": "127.0.0.1:1/c:v1", "lock": lockFile,
		"level": "fastest", "since": garbage, "split-size": "1G", "spool-dir": dir,
		"lock-output": filepath.Join(dir, "lock.yml"), "concurrency": "2",
	}
	source := map[string]bool{"bundle": true, "image": true, "lock": true}
	mode := regexp.MustCompile(`^with (--[a-z-]+)(?: or (--[a-z-]+))?: `)
	_, usage, _ := options(t, helpOf(t, "copy"))
	checked := 0
	for name, u := range usage {
		if strings.HasPrefix(name, "registry-") || slices.Contains([]string{"help", "json", "verbose", "quiet", "to-repo", "to-tar", "tar"}, name) {
			continue
		}
		applies := map[string]bool{"--to-repo": true, "--to-tar": true, "--tar": true}
		if m := mode.FindStringSubmatch(u); m != nil {
			applies = map[string]bool{m[1]: true, m[2]: true}
		}
		for m, margs := range modes {
			args := append([]string{"copy", "--registry-retry-count", "1"}, margs...)
			if !source[name] && m != "--tar" {
				args = append(args, "-b", "127.0.0.1:1/a:v1")
			}
			args = append(args, "--"+name)
			if v, ok := values[name]; ok {
				args = append(args, v)
			}
			code, _, stderr := runFerry(args...)
			refused := code == 2 && (strings.Contains(stderr, "--"+name+" does not apply to") || strings.Contains(stderr, "is the source; do not give -b, -i or --lock"))
			if refused == applies[m] {
				t.Errorf("copy %s --%s: help %q, but exit %d: %s", m, name, u, code, stderr)
			}
			checked++
		}
	}
	if checked < 3*15 {
		t.Errorf("checked %d flag and mode pairs, want every copy flag in 3 modes", checked)
	}
}

// Every flag's help states its default where leaving it out does
// something worth knowing, in the README's words (a duration as 2m, not
// 2m0s); a flag's help names only flags its command has.
func TestHelpStatesDefaults(t *testing.T) {
	for _, tc := range []struct {
		args       []string
		flag, want string
	}{
		{[]string{"serve"}, "repo", "(default: each image under its original repository path, a mirror)"},
		{[]string{"serve"}, "tls-cert", "(default: plain HTTP)"},
		{[]string{"serve"}, "tls-key", "(default: plain HTTP)"},
		{[]string{"serve"}, "htpasswd", "(default: no authentication)"},
		{[]string{"serve"}, "stream-wait", "(default: 30s)"},
		{[]string{"pull"}, "registry-password", "(default: the Docker config and its credential helpers)"},
		{[]string{"pull"}, "registry-token", "(default: the Docker config and its credential helpers)"},
		{[]string{"pull"}, "registry-ca-cert-path", "(default: the system's only)"},
		{[]string{"export"}, "registry-response-header-timeout", "(default: 2m)"},
		{[]string{"push"}, "preserve-permissions", "(default: false)"},
		{[]string{"import"}, "spool-dir", "(default: stream it, nothing on disk)"},
		{[]string{"pull"}, "registry-credential-host", "(default: only the registries of -b and -i,"},
		{[]string{"push"}, "registry-credential-host", "(default: only the registries of -b and -i,"},
		{[]string{"tag", "list"}, "registry-credential-host", "(default: only the registries of -i,"},
		{[]string{"import"}, "registry-credential-host", "(default: only the registries of --to-repo,"},
		{[]string{"copy"}, "registry-credential-host", "(default: only the registries of -b, -i and --to-repo,"},
		{[]string{"inventory"}, "registry-credential-host", "(default: only the registries of --repo,"},
		{[]string{"tag", "list"}, "verbose", "no effect"},
	} {
		_, usage, _ := options(t, helpOf(t, tc.args...))
		if !strings.Contains(usage[tc.flag], tc.want) {
			t.Errorf("ferry %s --help: --%s %q, want %q", strings.Join(tc.args, " "), tc.flag, usage[tc.flag], tc.want)
		}
	}
	if _, usage, _ := options(t, helpOf(t, "push")); strings.Contains(usage["preserve-permissions"], "(default: mode") {
		t.Errorf("push --preserve-permissions: %q; its default is false, the mode it keeps then said in words", usage["preserve-permissions"])
	}
	if !strings.Contains(helpOf(t, "import"), "into one repository") || !strings.Contains(helpOf(t, "import"), "imgpkg tarball") {
		t.Error("import's summary does not say it imports imgpkg tarballs too")
	}
}

// A flag's help says what it does and its default, in a line or two; the
// figures and the reasons go to the command's description.
func TestFlagHelpLeavesFiguresToTheDescription(t *testing.T) {
	for _, tc := range []struct {
		args         []string
		flag, figure string
		description  string // what the description says of it ("": nothing checked)
	}{
		{[]string{"export"}, "cosign-signatures", "request", "three HEADs"},
		{[]string{"export"}, "referrers", "request", "one\n   referrers request"},
		{[]string{"export"}, "concurrency", "never changes the archive", "whatever --concurrency"},
		{[]string{"export"}, "split-size", "4294967295", "FAT32"},
		{[]string{"export"}, "split-size", "99", "At most 99 volumes"},
		{[]string{"export"}, "registry-response-header-timeout", "64 KiB/s", ""},
		{[]string{"serve"}, "streams", "a few MiB", "a few MiB"},
		{[]string{"push"}, "file-exclusion", "exact match", "exact match"},
		{[]string{"import"}, "spool-dir", "sent again in full", "sent again in full"},
		{[]string{"import"}, "no-mount", "before any", "before\n   anything is written"},
		{[]string{"copy"}, "spool-dir", "sent again in full", "sent again in full"},
	} {
		help := helpOf(t, tc.args...)
		_, usage, _ := options(t, help)
		if strings.Contains(usage[tc.flag], tc.figure) {
			t.Errorf("ferry %s --help: --%s says %q: %s", strings.Join(tc.args, " "), tc.flag, tc.figure, usage[tc.flag])
		}
		description, _, _ := strings.Cut(help, "\nOPTIONS:\n")
		if !strings.Contains(description, tc.description) {
			t.Errorf("ferry %s --help: the description does not say %q (of --%s)", strings.Join(tc.args, " "), tc.description, tc.flag)
		}
	}
	if root := helpOf(t); !strings.Contains(root, "64 KiB/s") {
		t.Error("ferry --help does not say what else --registry-response-header-timeout bounds")
	}
}
