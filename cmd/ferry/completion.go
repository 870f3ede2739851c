package main

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/ferry-dev/ferry/archive"
)

// The bash and zsh scripts ask ferry itself for the candidates: they run the
// command line up to the cursor, the word being completed last (empty when
// nothing is typed yet), followed by --generate-bash-completion, and ferry
// prints the commands or flags that may come there (see setCompletion).
// When it prints nothing, the shell completes file names. The fish script
// works the same way: urfave/cli's static fish script offers its help
// command and "help h" everywhere, and lists --help twice.
const (
	bashCompletion = `# bash completion for ferry: source <(ferry completion bash)
_ferry_complete() {
	local cur=${COMP_WORDS[COMP_CWORD]}
	local IFS=$'\n'
	COMPREPLY=($(compgen -W "$("${COMP_WORDS[@]:0:COMP_CWORD}" "$cur" --generate-bash-completion 2>/dev/null)" -- "$cur"))
}
complete -o default -F _ferry_complete ferry
`
	zshCompletion = `#compdef ferry
# zsh completion for ferry: source <(ferry completion zsh)
_ferry() {
	local -a line=("${(@)words[1,CURRENT]}")
	local -a candidates=("${(@f)$("${line[@]}" --generate-bash-completion 2>/dev/null)}")
	if [[ -n ${candidates[1]} ]]; then
		_describe 'ferry' candidates
	else
		_files
	fi
}
compdef _ferry ferry
`
	fishCompletion = `# fish completion for ferry: ferry completion fish > ~/.config/fish/completions/ferry.fish
function __ferry_complete
	set -l words (commandline -opc)
	set -l cur (commandline -ct)
	set -l candidates (command $words[1] $words[2..-1] "$cur" --generate-bash-completion 2>/dev/null)
	if test (count $candidates) -gt 0
		printf '%s\n' $candidates
	else
		__fish_complete_path "$cur"
	end
end
complete -c ferry -f -a '(__ferry_complete)'
`
)

// completionScripts are the scripts of completion, by shell; shells lists
// them in the order completion offers them.
var (
	completionScripts = map[string]string{"bash": bashCompletion, "zsh": zshCompletion, "fish": fishCompletion}
	shells            = []string{"bash", "zsh", "fish"}
)

// choices are the values a flag takes when they are a few fixed words, or
// the argument of a command (keyed by its name) when it is: the completion
// offers them. Any other value is a file, a reference or a size, left to
// the shell.
func choices(name string) []string {
	switch name {
	case "level":
		var levels []string
		for _, l := range []archive.Level{archive.Fastest, archive.Default, archive.Better, archive.Best} {
			levels = append(levels, l.String())
		}
		return levels
	case "completion":
		return shells
	}
	return nil
}

func completionCommand() *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Args:      true, // one: refuseStrayArgs refuses more
		Usage:     "print a shell completion script (bash, zsh or fish)",
		UsageText: "ferry completion bash|zsh|fish",
		Description: `Prints a script that completes ferry's commands, flags, and the values that
are a few fixed words (the shell, --level's levels). To load it:
  bash: source <(ferry completion bash)       (in ~/.bashrc)
  zsh:  source <(ferry completion zsh)        (in ~/.zshrc, after compinit)
  fish: ferry completion fish > ~/.config/fish/completions/ferry.fish`,
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("completion: give the shell: bash, zsh or fish")
			}
			shell := c.Args().First()
			script, ok := completionScripts[shell]
			if !ok {
				return usagef("completion: %q is not a shell ferry completes (bash, zsh or fish)", shell)
			}
			_, err := fmt.Fprint(c.App.Writer, script)
			return err
		},
	}
}

// setCompletion makes every command of app answer --generate-bash-completion
// from args, the command line ferry was given, and returns the arguments to
// run app with; none when there is nothing to complete. urfave/cli's own
// answer reads os.Args, cannot tell the value of a flag ("-f <TAB>") from
// the flag itself ("-f<TAB>"), offers its help command where a file name is
// wanted (any candidate at all keeps the shell from completing file names),
// and runs the command instead when a word is "--".
func setCompletion(app *cli.App, args []string) []string {
	if len(args) < 2 || args[len(args)-1] != "--generate-bash-completion" {
		return args
	}
	// The scripts send the word being completed last; the command's own
	// name stands there when a caller sends none.
	words := args[:len(args)-1]
	cur, prev := words[len(words)-1], ""
	if len(words) > 1 {
		prev = words[len(words)-2]
	}
	for _, w := range words[:len(words)-1] {
		if w == "--" {
			// Only arguments come after it: the shell's own completion.
			return nil
		}
	}
	if cur == "--" {
		// The flags are suggested from cur below; urfave/cli need not see it.
		args = append(append([]string{}, words[:len(words)-1]...), "-", "--generate-bash-completion")
	}
	complete := func(c *cli.Context) {
		if c.Command == nil {
			return
		}
		switch {
		case strings.HasPrefix(cur, "-"):
			suggestFlags(c.App.Writer, cur, c.Command.Flags)
		case takesValue(prev, c.Command.Flags):
			// A few fixed words (--level), or else a file, a reference or a
			// size: nothing to offer.
			offer(c.App.Writer, cur, choices(strings.TrimLeft(prev, "-")))
		case c.Command.Args && len(c.Command.Subcommands) == 0:
			// The command's one argument (completion's shell), while none is
			// given before the cursor.
			if !argumentBefore(words, c.Command) {
				offer(c.App.Writer, cur, choices(c.Command.Name))
			}
		default:
			for _, sub := range c.Command.Subcommands {
				if sub.Hidden || sub.Name == "help" {
					continue
				}
				for _, name := range sub.Names() {
					fmt.Fprintln(c.App.Writer, name)
				}
			}
		}
	}
	app.BashComplete = complete
	var walk func([]*cli.Command)
	walk = func(cmds []*cli.Command) {
		for _, c := range cmds {
			c.BashComplete = complete
			walk(c.Subcommands)
		}
	}
	walk(app.Commands)
	return args
}

// offer prints the values that start as cur does.
func offer(w io.Writer, cur string, values []string) {
	for _, v := range values {
		if strings.HasPrefix(v, cur) {
			fmt.Fprintln(w, v)
		}
	}
}

// argumentBefore reports whether words (the command line, the word being
// completed last) give cmd an argument before that word: a word after
// cmd's name that is neither a flag nor a flag's value.
func argumentBefore(words []string, cmd *cli.Command) bool {
	i := slices.IndexFunc(words, cmd.HasName)
	if i < 0 {
		return false
	}
	for k := i + 1; k < len(words)-1; k++ {
		switch {
		case takesValue(words[k], cmd.Flags):
			k++
		case !isFlag(words[k]):
			return true
		}
	}
	return false
}

// suggestFlags prints the visible flags whose names start as cur does
// (its dashes aside; one-letter names only for a single dash).
func suggestFlags(w io.Writer, cur string, flags []cli.Flag) {
	prefix := strings.TrimLeft(cur, "-")
	for _, f := range flags {
		if v, ok := f.(cli.VisibleFlag); ok && !v.IsVisible() {
			continue
		}
		for _, name := range f.Names() {
			dashes := "--"
			if len(name) == 1 {
				if strings.HasPrefix(cur, "--") {
					continue
				}
				dashes = "-"
			}
			if strings.HasPrefix(name, prefix) {
				fmt.Fprintln(w, dashes+name)
			}
		}
	}
}

// takesValue reports whether word is one of flags (as -x or --name, without
// "=value") that takes a value, so that the next word is that value.
func takesValue(word string, flags []cli.Flag) bool {
	if !strings.HasPrefix(word, "-") || strings.Contains(word, "=") {
		return false
	}
	name := strings.TrimLeft(word, "-")
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				d, ok := f.(cli.DocGenerationFlag)
				return ok && d.TakesValue()
			}
		}
	}
	return false
}
