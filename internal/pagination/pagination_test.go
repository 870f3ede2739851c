package pagination

import (
	"strings"
	"testing"
)

func TestVisitKnowsAPageAgainWhateverItsFragment(t *testing.T) {
	var p Pages
	steps := []struct {
		link  string
		again bool
	}{
		{"https://r.example/v2/app/tags/list?last=a", false},
		{"https://r.example/v2/app/tags/list?last=b", false},
		{"https://r.example/v2/app/tags/list?last=a#" + strings.Repeat("x", 1000), true},
		{"https://r.example/v2/app/tags/list?last=b", true},
		{"https://r.example/v2/app/tags/list?last=c#1", false},
		{"https://r.example/v2/app/tags/list?last=c#2", true},
	}
	for i, s := range steps {
		again, err := p.Visit(s.link)
		if err != nil || again != s.again {
			t.Errorf("step %d, %.60s: again %v, %v; want %v", i, s.link, again, err, s.again)
		}
	}
	if len(p.seen) != 3 {
		t.Errorf("%d pages recorded, want 3", len(p.seen))
	}
}

func TestVisitRefusesALinkTooLongAndQuotesItShort(t *testing.T) {
	var p Pages
	long := "https://r.example/v2/app/tags/list?last=" + strings.Repeat("a", MaxLinkBytes)
	_, err := p.Visit(long)
	if err == nil || !strings.Contains(err.Error(), "more than the 65536") || len(err.Error()) > 400 {
		t.Fatalf("err = %.500v; want the link refused, quoted short", err)
	}
	if len(p.seen) != 0 {
		t.Errorf("a refused link was recorded")
	}
	if again, err := p.Visit(long[:MaxLinkBytes]); err != nil || again {
		t.Errorf("a link of exactly MaxLinkBytes: again %v, %v; want it followed", again, err)
	}
}

func TestShorten(t *testing.T) {
	if got := Shorten("short"); got != "short" {
		t.Errorf("Shorten(short) = %q", got)
	}
	got := Shorten(strings.Repeat("b", 1000))
	if !strings.HasPrefix(got, strings.Repeat("b", shortLink)+"…") || !strings.HasSuffix(got, "(1000 bytes)") {
		t.Errorf("Shorten of 1000 bytes = %q", got)
	}
}
