// Package pagination keeps what a listing that follows a registry's Link
// headers (tags, referrers) needs in order to stop: the pages it has read,
// each by a key of fixed size, and a bound on the length of a link.
//
// A registry chooses its links. Kept whole, the URL of every page read
// let one whose links carry megabytes (in a fragment, which is never sent
// back, so costs it nothing) fill memory page after page, long before the
// page count bounded the listing.
package pagination

import (
	"crypto/sha256"
	"fmt"
	"net/url"
)

// MaxLinkBytes bounds the URL of a next page. Registries' page tokens
// (ECR's nextToken among the longest) take a few KiB at most.
const MaxLinkBytes = 64 << 10

// Pages records the pages of one listing. The zero value is ready to use.
type Pages struct {
	seen map[[sha256.Size]byte]struct{}
}

// Visit records page link (an absolute URL) and reports whether the
// listing read it before. Links that differ only in their fragment name
// the same page: a client never sends the fragment. A link longer than
// MaxLinkBytes is refused, before it is recorded.
func (p *Pages) Visit(link string) (again bool, err error) {
	if len(link) > MaxLinkBytes {
		return false, fmt.Errorf("a link of %d bytes to its next page (%s), more than the %d a link may have here", len(link), Shorten(link), MaxLinkBytes)
	}
	key := link
	if u, err := url.Parse(link); err == nil {
		u.Fragment, u.RawFragment = "", ""
		key = u.String()
	}
	k := sha256.Sum256([]byte(key))
	if _, ok := p.seen[k]; ok {
		return true, nil
	}
	if p.seen == nil {
		p.seen = map[[sha256.Size]byte]struct{}{}
	}
	p.seen[k] = struct{}{}
	return false, nil
}

// shortLink is how much of a link a message quotes.
const shortLink = 200

// Shorten returns link as a message quotes it: whole if short, else its
// first bytes and how long it is.
func Shorten(link string) string {
	if len(link) <= shortLink {
		return link
	}
	return fmt.Sprintf("%s… (%d bytes)", link[:shortLink], len(link))
}
