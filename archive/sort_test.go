package archive

import (
	"slices"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// SortEntries puts the root first whatever the input order, then orders by
// original reference, digest and role, stably.
func TestSortEntries(t *testing.T) {
	h := func(c byte) v1.Hash { return digestOf([]byte{c}) }
	root := Entry{Descriptor: v1.Descriptor{Digest: h('r')}, Role: RoleBundle, OriginalRef: "z.example/bundle:v1", Tag: "v1"}
	a1 := Entry{Descriptor: v1.Descriptor{Digest: h('1')}, Role: RoleImage, OriginalRef: "a.example/app"}
	a2 := Entry{Descriptor: v1.Descriptor{Digest: h('2')}, Role: RoleImage, OriginalRef: "a.example/app"}
	if a1.Descriptor.Digest.String() > a2.Descriptor.Digest.String() {
		a1, a2 = a2, a1
	}
	nested := Entry{Descriptor: v1.Descriptor{Digest: a1.Descriptor.Digest}, Role: RoleNestedBundle, OriginalRef: "a.example/app"}
	b := Entry{Descriptor: v1.Descriptor{Digest: h('b')}, Role: RoleImage, OriginalRef: "b.example/app"}
	want := []Entry{root, a1, a2, b}
	// a1 and nested share reference and digest: role decides ("image" < "nested-bundle").
	want = slices.Insert(want, 2, nested)
	for _, in := range [][]Entry{
		{b, a2, nested, a1, root},
		{root, b, a1, a2, nested},
		{nested, b, root, a2, a1},
	} {
		got := slices.Clone(in)
		SortEntries(got)
		for i := range want {
			if got[i].Descriptor.Digest != want[i].Descriptor.Digest || got[i].Role != want[i].Role || got[i].OriginalRef != want[i].OriginalRef {
				t.Errorf("from %v: position %d is %s %s, want %s %s", refs(in), i, got[i].Role, got[i].OriginalRef, want[i].Role, want[i].OriginalRef)
			}
		}
	}
}

func refs(es []Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = string(e.Role) + " " + e.OriginalRef
	}
	return out
}
