package main

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"unicode"

	"github.com/urfave/cli/v2"

	"github.com/ferry-dev/ferry/internal/regopts"
)

// errorText is what run prints of err, the failure of the command
// command ("" when not known), ended by a newline. An explained registry
// failure reads as its hint (naming the host and what was being done),
// then "  cause: " and the innermost error that says something; with
// --verbose the whole chain comes on that line instead, and with --json
// the error is the one line Error gives. A run stopped by a signal says
// so first. Everything goes through forTerminal.
func errorText(ctx context.Context, err error, command string, verbose, json bool) string {
	if sig := stoppedBy(ctx); sig != "" {
		if command == "" {
			command = "ferry"
		}
		line := "ferry: interrupted (" + sig + "): " + command + " stopped\n"
		msg := err.Error()
		if cause := context.Cause(ctx); msg == cause.Error() || msg == context.Canceled.Error() {
			return line
		}
		// What was going on when it came (a FIFO nobody writes to).
		return line + "  cause: " + forTerminal(msg) + "\n"
	}
	var ex regopts.Explained
	if json || !errors.As(err, &ex) {
		return "ferry: " + forTerminal(err.Error()) + "\n"
	}
	full, whole := err.Error(), ex.Error()
	first := ex.Hint()
	if i := strings.Index(full, whole); i >= 0 {
		// What the command wrapped around it ("import rel.tar.zst to REPO: ").
		first = full[:i] + ex.Hint() + full[i+len(whole):]
	}
	cause := ex.Cause()
	if verbose {
		cause = errors.Unwrap(ex)
	}
	if cause == nil {
		return "ferry: " + forTerminal(first) + "\n"
	}
	return "ferry: " + forTerminal(first) + "\n  cause: " + forTerminal(cause.Error()) + "\n"
}

// stoppedBy names the signal that cancelled ctx (SIGINT, SIGTERM, SIGHUP),
// "" when none did.
func stoppedBy(ctx context.Context) string {
	if ctx.Err() == nil {
		return ""
	}
	cause := context.Cause(ctx)
	if cause == nil {
		return ""
	}
	switch cause.Error() {
	case "interrupt signal received":
		return "SIGINT"
	case "terminated signal received":
		return "SIGTERM"
	case "hangup signal received":
		return "SIGHUP"
	}
	return ""
}

// noteCommand records, for errorText, the command c runs and how its
// errors are to be shown.
func noteCommand(c *cli.Context, verbose, json bool) {
	if c.App.Metadata == nil {
		return
	}
	c.App.Metadata["command"] = commandPath(c)
	c.App.Metadata["verbose"] = verbose
	c.App.Metadata["json"] = json
}

// accessDetails matches the details of a registry's UNAUTHORIZED or
// DENIED error as go-containerregistry prints them
// ("[map[Action:pull Class: Name:app/bundle Type:repository]]").
var (
	accessDetails = regexp.MustCompile(`; \[((?:map\[Action:[^ \]]+ Class:[^ \]]* Name:[^ \]]+ Type:[^ \]]+\] ?)+)\]`)
	accessDetail  = regexp.MustCompile(`map\[Action:([^ \]]+) Class:[^ \]]* Name:([^ \]]+) Type:([^ \]]+)\]`)
)

// readableAccess rewrites the access details of refused requests as
// "(pull access to repository app/bundle)".
func readableAccess(msg string) string {
	return accessDetails.ReplaceAllStringFunc(msg, func(m string) string {
		var parts []string
		for _, d := range accessDetail.FindAllStringSubmatch(m, -1) {
			parts = append(parts, strings.ReplaceAll(d[1], ",", "/")+" access to "+d[3]+" "+d[2])
		}
		return " (" + strings.Join(parts, ", ") + ")"
	})
}

// trimBodies drops the whitespace a registry's plain-text body ends with
// ("Client sent an HTTP request to an HTTPS server.\n"), at the end of msg
// and before the next error joined to it, so that no "\n" is printed.
func trimBodies(msg string) string {
	msg = strings.TrimRightFunc(msg, unicode.IsSpace)
	return trailingSpace.ReplaceAllString(msg, "$1")
}

var trailingSpace = regexp.MustCompile(`[ \t\r\n]+(; )`)
