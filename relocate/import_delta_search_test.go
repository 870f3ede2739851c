package relocate

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/archive"
)

// searchDest is a destination, dst.example/mirror, importing a delta of
// these bases.
func searchDest(t testing.TB, bases ...archive.Base) *destination {
	t.Helper()
	repo, err := name.NewRepository("dst.example/mirror")
	if err != nil {
		t.Fatal(err)
	}
	return &destination{repo: repo, head: &importHead{delta: &archive.Delta{Bases: bases}}}
}

// inventoryBase is an inventory base naming repos.
func inventoryBase(repos ...string) archive.Base {
	return archive.Base{Kind: archive.BaseInventory, Name: "have.json", SHA256: strings.Repeat("a", 64), Repositories: repos}
}

// candidates lists every repository the search asks for l, in order.
func candidates(s *mountSearch, l archive.LeftOut) []string {
	var out []string
	c := s.cursor(l)
	for {
		m, ok := s.next(&c)
		if !ok {
			return out
		}
		out = append(out, m.name)
	}
}

// TestMountSearchOrder: a left-out blob is looked for in the repository
// the delta records for it, then in the other repositories of its base,
// then in those of the other bases, each once; repositories of another
// registry, the destination itself and names that do not parse are never
// asked.
func TestMountSearchOrder(t *testing.T) {
	dst := searchDest(t,
		inventoryBase("dst.example/a", "dst.example/b", "other.example/x", "dst.example/a", "dst.example/mirror"),
		archive.Base{Kind: archive.BaseArchive, Name: "v1.tar.zst", SHA256: strings.Repeat("b", 64)},
		inventoryBase("dst.example/c", "dst.example/b", "dst.example/D!", "dst.example/d"),
	)
	s := dst.newMountSearch()
	d := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("c", 64)}
	for _, tc := range []struct {
		l    archive.LeftOut
		want []string
	}{
		{archive.LeftOut{Digest: d, Base: 0, Repository: "dst.example/b"}, []string{"dst.example/b", "dst.example/a", "dst.example/c", "dst.example/d"}},
		{archive.LeftOut{Digest: d, Base: 2, Repository: "dst.example/d"}, []string{"dst.example/d", "dst.example/c", "dst.example/b", "dst.example/a"}},
		{archive.LeftOut{Digest: d, Base: 1}, []string{"dst.example/a", "dst.example/b", "dst.example/c", "dst.example/d"}},
		{archive.LeftOut{Digest: d, Base: 0, Repository: "other.example/x"}, []string{"dst.example/a", "dst.example/b", "dst.example/c", "dst.example/d"}},
		{archive.LeftOut{Digest: d, Base: 2, Repository: "dst.example/mirror"}, []string{"dst.example/c", "dst.example/b", "dst.example/d", "dst.example/a"}},
	} {
		if got := candidates(s, tc.l); !slices.Equal(got, tc.want) {
			t.Errorf("base %d, recorded %q: asked %v, want %v", tc.l.Base, tc.l.Repository, got, tc.want)
		}
	}
}

// TestMountSearchIsLinear: the candidates are read off the delta once per
// import, each repository parsed and deduplicated with a map: listing them
// for 16 times the repositories (16 bases of MaxBaseRepositories instead
// of one) costs about 16 times the allocations, not some 256 times (a
// search that compares each repository's name with every one before it).
// Bounded by comparison of allocation counts, which, unlike times, do not
// depend on how busy the machine is.
func TestMountSearchIsLinear(t *testing.T) {
	bases := func(n int) []archive.Base {
		var out []archive.Base
		for b := range n {
			repos := make([]string, archive.MaxBaseRepositories)
			for i := range repos {
				repos[i] = fmt.Sprintf("dst.example/b%02d/r%04d", b, i)
			}
			out = append(out, inventoryBase(repos...))
		}
		return out
	}
	l := archive.LeftOut{Digest: v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("c", 64)}, Repository: "dst.example/b00/r0000"}
	cost := func(n int) float64 {
		dst := searchDest(t, bases(n)...)
		if got := len(candidates(dst.newMountSearch(), l)); got != n*archive.MaxBaseRepositories {
			t.Fatalf("%d bases: %d candidates, want %d", n, got, n*archive.MaxBaseRepositories)
		}
		return testing.AllocsPerRun(2, func() { candidates(dst.newMountSearch(), l) })
	}
	one, sixteen := cost(1), cost(16)
	t.Logf("1 base: %.0f allocations; 16 bases: %.0f (%.1f×)", one, sixteen, sixteen/one)
	if sixteen > 32*one {
		t.Errorf("16 times the repositories cost %.0f times the allocations: the search is not linear", sixteen/one)
	}
}
