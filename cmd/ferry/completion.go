package main

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

// The bash and zsh scripts ask ferry itself for the candidates: urfave/cli
// answers a command line ending in --generate-bash-completion with the
// commands or flags that may come next. Fish gets a static script generated
// from the command tree.
const (
	bashCompletion = `# bash completion for ferry: source <(ferry completion bash)
_ferry_complete() {
	local cur=${COMP_WORDS[COMP_CWORD]}
	local -a line=("${COMP_WORDS[@]:0:COMP_CWORD}")
	if [[ $cur == -* ]]; then
		line+=("$cur")
	fi
	local IFS=$'\n'
	COMPREPLY=($(compgen -W "$("${line[@]}" --generate-bash-completion 2>/dev/null)" -- "$cur"))
}
complete -o default -F _ferry_complete ferry
`
	zshCompletion = `#compdef ferry
# zsh completion for ferry: source <(ferry completion zsh)
_ferry() {
	local cur=${words[CURRENT]}
	local -a line=(${words[1,CURRENT-1]})
	if [[ $cur == -* ]]; then
		line+=($cur)
	fi
	local -a candidates=("${(@f)$(${line[@]} --generate-bash-completion 2>/dev/null)}")
	if [[ -n ${candidates[1]} ]]; then
		_describe 'ferry' candidates
	else
		_files
	fi
}
compdef _ferry ferry
`
)

func completionCommand() *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print a shell completion script (bash, zsh or fish)",
		UsageText: "ferry completion bash|zsh|fish",
		Description: `Prints a script that completes ferry's commands and flags. To load it:
  bash: source <(ferry completion bash)       (in ~/.bashrc)
  zsh:  source <(ferry completion zsh)        (in ~/.zshrc, after compinit)
  fish: ferry completion fish > ~/.config/fish/completions/ferry.fish`,
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("completion: give the shell: bash, zsh or fish")
			}
			var script string
			switch shell := c.Args().First(); shell {
			case "bash":
				script = bashCompletion
			case "zsh":
				script = zshCompletion
			case "fish":
				s, err := c.App.ToFishCompletion()
				if err != nil {
					return fmt.Errorf("completion: %w", err)
				}
				script = s
			default:
				return usagef("completion: %q is not a shell ferry completes (bash, zsh or fish)", shell)
			}
			_, err := fmt.Fprint(c.App.Writer, script)
			return err
		},
	}
}
