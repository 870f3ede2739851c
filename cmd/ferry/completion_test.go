package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// complete runs ferry as the completion scripts do: the words up to the
// cursor, the word being completed last, then --generate-bash-completion.
func complete(t *testing.T, words ...string) []string {
	t.Helper()
	var out, errOut bytes.Buffer
	args := append(append([]string{"ferry"}, words...), "--generate-bash-completion")
	if code := run(context.Background(), args, strings.NewReader(""), &out, &errOut); code != 0 {
		t.Fatalf("%v: exit %d\n%s", args, code, errOut.String())
	}
	return strings.Fields(out.String())
}

// A file argument or a flag's value gets no candidate at all, so that the
// shell falls back to completing file names: urfave/cli's help command
// ("help", "h") and the flag itself ("-f" → "--file") once stood there.
func TestCompletionLeavesFileArgumentsToTheShell(t *testing.T) {
	for _, words := range [][]string{
		{"inspect", ""},
		{"verify", ""},
		{"serve", ""},
		{"import", "-f", ""},
		{"import", "--file", ""},
		{"import", "-f", "rel"},
		{"export", "--since", ""},
		{"export", "-b", "r:1", "-o", ""},
		{"serve", "a.tar.zst", "--tls-cert", ""},
		{"verify", "--since", "v1"},
		{"inspect", "--json", ""},
		// After "--" only arguments follow, and the command must not run.
		{"export", "-b", "r:1", "-o", "x.tar.zst", "--", ""},
	} {
		if got := complete(t, words...); len(got) != 0 {
			t.Errorf("ferry %q<TAB> offers %q, want nothing (the shell's file completion)", words, got)
		}
	}
}

func TestCompletionOffersCommandsAndFlags(t *testing.T) {
	for _, tc := range []struct {
		words       []string
		want, never []string
	}{
		{[]string{""}, []string{"import", "export", "completion"}, []string{"help", "h"}},
		{[]string{"tag", ""}, []string{"list", "ls"}, []string{"help", "h"}},
		{[]string{"import", "--to"}, []string{"--to-repo"}, []string{"--file", "help"}},
		{[]string{"import", "-"}, []string{"--file", "-f", "--to-repo", "-v"}, []string{"help"}},
		{[]string{"import", "--"}, []string{"--file", "--verbose"}, []string{"-f", "-v"}},
		{[]string{"inspect", "--j"}, []string{"--json"}, nil},
		// A flag without a value before the cursor: the flags of the
		// command, not the values of the flag.
		{[]string{"export", "--json", "-"}, []string{"--level", "--since"}, nil},
	} {
		got := complete(t, tc.words...)
		have := map[string]bool{}
		for _, g := range got {
			have[g] = true
		}
		for _, w := range tc.want {
			if !have[w] {
				t.Errorf("ferry %q<TAB> offers %q, want %q among them", tc.words, got, w)
			}
		}
		for _, n := range tc.never {
			if have[n] {
				t.Errorf("ferry %q<TAB> offers %q, never want %q", tc.words, got, n)
			}
		}
	}
}

// Values from a fixed few are offered: completion's shell and --level's
// levels (once nothing at all). Every one offered is one the command
// takes.
func TestCompletionOffersFixedValues(t *testing.T) {
	for _, tc := range []struct {
		words []string
		want  string
	}{
		{[]string{"completion", ""}, "bash zsh fish"},
		{[]string{"completion", "z"}, "zsh"},
		{[]string{"completion", "bash", ""}, ""},
		{[]string{"export", "--level", ""}, "fastest default better best"},
		{[]string{"export", "-b", "r:1", "--level", "b"}, "better best"},
		{[]string{"copy", "--level", ""}, "fastest default better best"},
		{[]string{"push", "--level", "f"}, "fastest"},
	} {
		if got := strings.Join(complete(t, tc.words...), " "); got != tc.want {
			t.Errorf("ferry %q<TAB> offers %q, want %q", tc.words, got, tc.want)
		}
	}
	for _, shell := range complete(t, "completion", "") {
		if code, _, stderr := runFerry("completion", shell); code != 0 {
			t.Errorf("completion offers %q, which it refuses: %s", shell, stderr)
		}
	}
	// -o - with --json is refused (exit 2) only after --level is read:
	// a level refused would be named.
	for _, level := range complete(t, "export", "--level", "") {
		if code, _, stderr := runFerry("export", "-b", "127.0.0.1:1/b:1", "-o", "-", "--level", level, "--json"); code != 2 || strings.Contains(stderr, "--level") {
			t.Errorf("export offers --level %q, which it refuses: %s", level, stderr)
		}
	}
}
