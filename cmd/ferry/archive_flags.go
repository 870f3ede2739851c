package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/ferry-dev/ferry/internal/volumes"
)

// splitSizeFlag is --split-size, which every command that writes an
// archive takes (export, copy --to-tar, push --to-tar); mode prefixes its
// help ("with --to-tar: "). The sizes FAT32 and a DVD take, and the limit
// of 99 volumes, are in export's description.
func splitSizeFlag(mode string) cli.Flag {
	return &cli.StringFlag{Name: "split-size",
		Usage: mode + "write the archive as volumes FILE.001, FILE.002, … of at most `SIZE` bytes each: 4G, 700M (powers of 1000), 4Gi, 700Mi (powers of 1024) (default: one file)"}
}

// levelFlag is --level, the zstd level of an archive written; mode as
// splitSizeFlag's.
func levelFlag(mode string) cli.Flag {
	return &cli.StringFlag{Name: "level", Value: "default", Usage: mode + "zstd `LEVEL` of the archive: fastest, default, better or best"}
}

// splitSize reads --split-size: 0 when it is not given.
func splitSize(c *cli.Context, dest string) (int64, error) {
	s := c.String("split-size")
	if s == "" {
		if c.IsSet("split-size") {
			// --split-size "" (an unset variable in a script) must not
			// write the unsplit archive the user did not ask for.
			return 0, usagef("%s: --split-size: empty; give a size (4G, 700Mi, …), or leave the flag out for one file", c.Command.Name)
		}
		return 0, nil
	}
	if dest == "-" {
		return 0, usagef("%s: --split-size writes files; standard output cannot be split", c.Command.Name)
	}
	n, err := volumes.ParseSize(s)
	if err != nil {
		return 0, usageError{fmt.Errorf("%s: --split-size: %w", c.Command.Name, err)}
	}
	return n, nil
}
