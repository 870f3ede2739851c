package relocate

import (
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/archive"
)

// An entry whose original reference is by digest was named with that
// digest twice ("R/app@sha256:<64> (sha256:<64>)"): once is enough. A
// reference by tag keeps its digest in parentheses, and an entry without
// a reference is named by its digest.
func TestEntryNamesSayTheDigestOnce(t *testing.T) {
	d := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}
	other := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("cd", 32)}
	for _, tc := range []struct {
		ref        string
		digest     v1.Hash
		name, bref string
	}{
		{"127.0.0.1:5000/rel/app@" + d.String(), d, "127.0.0.1:5000/rel/app@" + d.String(), "bundle 127.0.0.1:5000/rel/app@" + d.String()},
		{"127.0.0.1:5000/rel/app:v1", d, "127.0.0.1:5000/rel/app:v1 (" + d.String() + ")", "bundle 127.0.0.1:5000/rel/app:v1 (" + d.String() + ")"},
		// A digest reference to another manifest (an index's child) keeps
		// the entry's own digest.
		{"127.0.0.1:5000/rel/app@" + other.String(), d, "127.0.0.1:5000/rel/app@" + other.String() + " (" + d.String() + ")", "bundle 127.0.0.1:5000/rel/app@" + other.String() + " (" + d.String() + ")"},
		{"", d, d.String(), "bundle " + d.String()},
	} {
		entry := archive.Entry{Descriptor: v1.Descriptor{Digest: tc.digest}, OriginalRef: tc.ref}
		if got := (importEntry{Entry: entry, digest: tc.digest}).name(); got != tc.name {
			t.Errorf("importEntry{%q}.name() = %q, want %q", tc.ref, got, tc.name)
		}
		if got := (bundleRef{entry: entry}).source(); got != tc.bref {
			t.Errorf("bundleRef{%q}.source() = %q, want %q", tc.ref, got, tc.bref)
		}
	}
}
