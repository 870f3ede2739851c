package main

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Strings that come from an archive or a registry (an original reference,
// a tag annotation, a platform, a tag name) are printed for people only
// through quoteUnsafe or escapeControls: an archive must not be able to
// move the cursor, rewrite a line or draw a fake "OK" in the very command
// used to vet it. --json output stays exact (JSON escapes what it must).

// printable reports whether a terminal shows s as it is: valid UTF-8 with
// no control, format (bidirectional overrides) or other invisible runes
// besides the plain space.
func printable(s string) bool {
	for i, r := range s {
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(s[i:]); size <= 1 {
				return false
			}
		}
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// quoteUnsafe returns s unchanged when it is printable, and otherwise
// quoted with Go's escapes ("v1\x1b[2K"), so that the odd string is shown
// for what it is.
func quoteUnsafe(s string) string {
	if printable(s) {
		return s
	}
	return strconv.Quote(s)
}

// escapeControls escapes every rune of msg that a terminal would not show
// as it is (\x1b, \r, \n, \u202e, invalid bytes as \xff), leaving the rest
// alone; it is for whole messages (errors, warnings) that embed such
// strings among ferry's own words.
func escapeControls(msg string) string {
	if printable(msg) {
		return msg
	}
	var b strings.Builder
	for i := 0; i < len(msg); {
		r, size := utf8.DecodeRuneInString(msg[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			fmt.Fprintf(&b, `\x%02x`, msg[i])
		case unicode.IsPrint(r):
			b.WriteString(msg[i : i+size])
		default:
			q := strconv.QuoteRune(r) // '\x1b', '\u202e'
			b.WriteString(q[1 : len(q)-1])
		}
		i += size
	}
	return b.String()
}
