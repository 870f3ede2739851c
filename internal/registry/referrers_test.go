package registry_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/internal/pagination"
	"github.com/ferry-dev/ferry/internal/registry"
	"github.com/ferry-dev/ferry/internal/testregistry"
)

// pushReferrers pushes an image to repo of ep and n artifacts whose
// subject it is, and returns the image's digest and the artifacts'
// digests, sorted.
func pushReferrers(t *testing.T, ep *testregistry.Endpoint, repo string, n int) (v1.Hash, []string) {
	t.Helper()
	r, err := name.NewRepository(ep.Repo(repo))
	if err != nil {
		t.Fatal(err)
	}
	opts := ep.RemoteOptions(t)
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r.Tag("v1"), img, opts...); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	raw, _ := img.RawManifest()
	mt, _ := img.MediaType()
	var want []string
	for i := range n {
		art := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
		art = mutate.ConfigMediaType(art, "application/vnd.example.sbom.v1+json")
		art, err = mutate.Append(art, mutate.Addendum{Layer: static.NewLayer(fmt.Appendf(nil, `{"n":%d}`, i), "application/spdx+json")})
		if err != nil {
			t.Fatal(err)
		}
		art = mutate.Subject(art, v1.Descriptor{MediaType: mt, Digest: d, Size: int64(len(raw))}).(v1.Image)
		ad, _ := art.Digest()
		if err := remote.Write(r.Digest(ad.String()), art, opts...); err != nil {
			t.Fatal(err)
		}
		want = append(want, ad.String())
	}
	slices.Sort(want)
	return d, want
}

func digests(descs []v1.Descriptor) []string {
	var out []string
	for _, d := range descs {
		out = append(out, d.Digest.String())
	}
	slices.Sort(out)
	return out
}

// A registry may split a referrers list into pages linked by rel="next";
// every page is read. A list whose pages loop, or go on for ever, or
// name too many referrers, stops with an error naming the registry.
func TestReferrersFollowsEveryPage(t *testing.T) {
	reg := testregistry.NewPagedReferrers(t, 2)
	d, want := pushReferrers(t, &reg.Endpoint, "team/app", 5)
	r := repoOf(t, &reg.Endpoint, "team/app", registry.Access{})
	ctx := context.Background()

	reg.ResetCounts()
	got, err := r.Referrers(ctx, d, registry.ReferrersLimits{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(digests(got), want) {
		t.Errorf("referrers %v, want %v", digests(got), want)
	}
	if n := reg.Counts().Get("GET", testregistry.KindReferrers); n != 3 {
		t.Errorf("%d referrers requests, want 3 pages", n)
	}

	for _, tc := range []struct {
		name  string
		links testregistry.PagedLinks
		l     registry.ReferrersLimits
		want  string
	}{
		{"loop", testregistry.LinksLoop, registry.ReferrersLimits{}, "loops"},
		{"endless", testregistry.LinksEndless, registry.ReferrersLimits{MaxPages: 7}, "more than 7 pages"},
		{"too many", testregistry.LinksEnd, registry.ReferrersLimits{MaxReferrers: 3}, "more than 3 referrers"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg.SetLinks(tc.links)
			defer reg.SetLinks(testregistry.LinksEnd)
			reg.ResetCounts()
			got, err := r.Referrers(ctx, d, tc.l)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), reg.Host) {
				t.Fatalf("Referrers: %v (%d), want an error naming %s and saying %q", err, len(got), reg.Host, tc.want)
			}
			if n := reg.Counts().Get("GET", testregistry.KindReferrers); n > 10 {
				t.Errorf("%d referrers requests before giving up", n)
			}
		})
	}
}

// A page is known by what is sent for it: links that differ only in their
// fragment lead to the same page, and a link too long to be a page token
// is refused, before it is followed, quoted short. Kept whole, links with
// a megabyte of fragment each held memory page after page.
func TestReferrersKnowsAPageByWhatIsSent(t *testing.T) {
	reg := testregistry.NewPagedReferrers(t, 2)
	d, _ := pushReferrers(t, &reg.Endpoint, "team/app", 5)
	page := `</v2/team/app/referrers/` + d.String() + `?page=1`
	for _, tc := range []struct {
		name, link string
		requests   int
		want       string
	}{
		{"fragments", page + `#%d` + strings.Repeat("A", 1<<10) + `>; rel="next"`, 2, "loops"},
		{"long", page + `&x=` + strings.Repeat("b", pagination.MaxLinkBytes) + `%d>; rel="next"`, 1, "refusing to follow"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proxy := testregistry.NewFaultProxy(t, reg.Registry, testregistry.Rule{
				Method: http.MethodGet, Kind: testregistry.KindReferrers, Fault: testregistry.FaultLink, Link: tc.link,
			})
			r := repoOf(t, &proxy.Endpoint, "team/app", registry.Access{})
			_, err := r.Referrers(context.Background(), d, registry.ReferrersLimits{MaxPages: 50})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), proxy.Host) || len(err.Error()) > 1000 {
				t.Errorf("err = %.300v (%d bytes); want one naming %s, saying %q, short", err, len(fmt.Sprint(err)), proxy.Host, tc.want)
			}
			if n := proxy.Counts().Get(http.MethodGet, testregistry.KindReferrers); n != tc.requests {
				t.Errorf("%d referrers requests, want %d", n, tc.requests)
			}
		})
	}
}

// A registry without the referrers API (distribution v3) lists them under
// the "sha256-<hex>" fallback tag, which go-containerregistry maintains as
// it pushes; with no such tag, nothing refers to the image.
func TestReferrersFallsBackToTheTagSchema(t *testing.T) {
	reg := testregistry.NewDistribution(t)
	d, want := pushReferrers(t, &reg.Endpoint, "team/app", 3)
	r := repoOf(t, &reg.Endpoint, "team/app", registry.Access{})
	got, err := r.Referrers(context.Background(), d, registry.ReferrersLimits{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(digests(got), want) {
		t.Errorf("referrers %v, want %v", digests(got), want)
	}
	other, _ := pushReferrers(t, &reg.Endpoint, "team/other", 0)
	o := repoOf(t, &reg.Endpoint, "team/other", registry.Access{})
	if got, err := o.Referrers(context.Background(), other, registry.ReferrersLimits{}); err != nil || len(got) != 0 {
		t.Errorf("referrers of an image without any: %v, %v", digests(got), err)
	}
}
