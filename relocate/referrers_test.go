package relocate_test

import (
	"bytes"
	"context"
	"fmt"
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

	"github.com/ferry-dev/ferry/internal/testregistry"
	"github.com/ferry-dev/ferry/relocate"
)

// sbomOf is an OCI artifact, the i-th, whose subject is img; nil img makes
// one without a subject.
func sbomOf(t testing.TB, img v1.Image, i int) v1.Image {
	t.Helper()
	art := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	art = mutate.ConfigMediaType(art, "application/vnd.example.sbom.v1+json")
	art = impMust(mutate.Append(art, mutate.Addendum{Layer: static.NewLayer(fmt.Appendf(nil, `{"sbom":%d}`, i), "application/spdx+json")}))
	if img == nil {
		return art
	}
	return mutate.Subject(art, v1.Descriptor{MediaType: impMust(img.MediaType()), Digest: impMust(img.Digest()), Size: int64(len(impMust(img.RawManifest())))}).(v1.Image)
}

// referrersIn returns the digests of the plan's referrers of subject, sorted.
func referrersIn(p *relocate.Plan, subject v1.Hash) []string {
	var out []string
	for _, im := range p.Images {
		if im.Role == "referrer" && im.Subject == subject {
			out = append(out, im.Digest.String())
		}
	}
	slices.Sort(out)
	return out
}

// A registry that cannot list all of an image's referrers in one answer
// pages them, linked by rel="next": every page is read, and every
// referrer reaches the plan and the archive (go-containerregistry's
// remote.Referrers read the first page only).
func TestReferrersOnEveryPageAreCarried(t *testing.T) {
	reg := testregistry.NewPagedReferrers(t, 2)
	opts := reg.RemoteOptions(t)
	repo := impMust(name.NewRepository(reg.Repo("src/app")))
	img := impMust(random.Image(512, 1))
	if err := remote.Write(repo.Tag("v1"), img, opts...); err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range 5 {
		art := sbomOf(t, img, i)
		d := impMust(art.Digest())
		if err := remote.Write(repo.Digest(d.String()), art, opts...); err != nil {
			t.Fatal(err)
		}
		want = append(want, d.String())
	}
	slices.Sort(want)

	rec := &impRecorder{}
	p, err := relocate.Resolve(context.Background(), relocate.Source{Image: repo.Tag("v1").String()}, relocate.Options{Remote: opts, Referrers: true, Reporter: rec})
	if err != nil {
		t.Fatal(err)
	}
	subject := impMust(img.Digest())
	if got := referrersIn(p, subject); !slices.Equal(got, want) {
		t.Errorf("plan's referrers %v, want all %d: %v", got, len(want), want)
	}
	if !slices.ContainsFunc(rec.logs, func(l string) bool { return strings.Contains(l, "and 5 referrers of 1 images") }) {
		t.Errorf("logs %q do not say 5 referrers were found", rec.logs)
	}
	var buf bytes.Buffer
	if _, err := relocate.Export(context.Background(), p, &buf, relocate.ExportOptions{Remote: opts}); err != nil {
		t.Fatal(err)
	}
	inv, err := relocate.Inspect(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	var inArchive []string
	for _, im := range inv.Images {
		if im.Role == "referrer" && im.Subject == subject.String() {
			inArchive = append(inArchive, im.Digest)
		}
	}
	slices.Sort(inArchive)
	if !slices.Equal(inArchive, want) {
		t.Errorf("archive's referrers %v, want %v", inArchive, want)
	}

	// Pages that loop stop the resolution, naming the registry.
	reg.SetLinks(testregistry.LinksLoop)
	_, err = relocate.Resolve(context.Background(), relocate.Source{Image: repo.Tag("v1").String()}, relocate.Options{Remote: opts, Referrers: true})
	checkLoopRefused(t, "resolve", err, reg.Host)
}

// checkLoopRefused fails the test unless err, what a listing of referrers
// whose pages loop gave, names the registry host and the loop.
func checkLoopRefused(t *testing.T, what string, err error, host string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), "loops") || !strings.Contains(err.Error(), host) {
		t.Errorf("%s with looping referrers pages: %v; want an error naming %s and the loop", what, err, host)
	}
}

// A listing may name a manifest that is not about the image: one about
// another image, or one with no subject (the tag-schema fallback index is
// an index anyone can tag, a registry's referrers answer is its word).
// Such a manifest is left out, with a warning naming it and the image,
// instead of travelling as "referrer of" an image it is not about.
func TestAListedReferrerMustNameTheImageAsItsSubject(t *testing.T) {
	reg := testregistry.NewDistribution(t)
	opts := reg.RemoteOptions(t)
	repo := impMust(name.NewRepository(reg.Repo("src/app")))
	a, b := impMust(random.Image(512, 1)), impMust(random.Image(512, 1))
	for tag, img := range map[string]v1.Image{"a": a, "b": b} {
		if err := remote.Write(repo.Tag(tag), img, opts...); err != nil {
			t.Fatal(err)
		}
	}
	ofA, ofB, none := sbomOf(t, a, 1), sbomOf(t, b, 2), sbomOf(t, nil, 3)
	for _, art := range []v1.Image{ofA, ofB, none} {
		if err := remote.Write(repo.Digest(impMust(art.Digest()).String()), art, opts...); err != nil {
			t.Fatal(err)
		}
	}
	// a's fallback index, as a registry without the referrers API keeps
	// it, lists ofB and none beside its one true referrer.
	ad := impMust(a.Digest())
	var idx v1.ImageIndex = empty.Index
	for _, art := range []v1.Image{ofA, ofB, none} {
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: art})
	}
	if err := remote.WriteIndex(repo.Tag("sha256-"+ad.Hex), idx, opts...); err != nil {
		t.Fatal(err)
	}

	rec := &impRecorder{}
	p, err := relocate.Resolve(context.Background(), relocate.Source{Image: repo.Tag("a").String()}, relocate.Options{Remote: opts, Referrers: true, Reporter: rec})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := referrersIn(p, ad), []string{impMust(ofA.Digest()).String()}; !slices.Equal(got, want) {
		t.Errorf("plan's referrers of a %v, want only %v", got, want)
	}
	for d := range p.Manifests {
		if d == impMust(ofB.Digest()) || d == impMust(none.Digest()) {
			t.Errorf("the plan carries manifest %s, which is no referrer of a", d)
		}
	}
	for _, c := range []struct {
		art  v1.Image
		says string
	}{{ofB, impMust(b.Digest()).String()}, {none, "no subject"}} {
		d := impMust(c.art.Digest()).String()
		if !slices.ContainsFunc(rec.logs, func(l string) bool {
			return strings.HasPrefix(l, "warning: ") && strings.Contains(l, d) && strings.Contains(l, ad.String()) && strings.Contains(l, c.says)
		}) {
			t.Errorf("logs %q warn of no %s naming %s and %q", rec.logs, d, ad, c.says)
		}
	}
	if !slices.ContainsFunc(rec.logs, func(l string) bool { return strings.Contains(l, "and 1 referrers of 1 images") }) {
		t.Errorf("logs %q do not say 1 referrer was found", rec.logs)
	}
	var buf bytes.Buffer
	if _, err := relocate.Export(context.Background(), p, &buf, relocate.ExportOptions{Remote: opts}); err != nil {
		t.Fatal(err)
	}
}

// A listing may name a manifest its registry no longer has (a referrer
// deleted since the fallback index was written): the image is carried
// with the referrers that are there, and the missing one is named in a
// warning, rather than the whole export failing.
func TestAListedReferrerThatIsGoneIsLeftOutWithAWarning(t *testing.T) {
	reg := testregistry.NewDistribution(t)
	opts := reg.RemoteOptions(t)
	repo := impMust(name.NewRepository(reg.Repo("src/app")))
	a := impMust(random.Image(512, 1))
	if err := remote.Write(repo.Tag("a"), a, opts...); err != nil {
		t.Fatal(err)
	}
	kept, gone := sbomOf(t, a, 1), sbomOf(t, a, 2)
	var idx v1.ImageIndex = empty.Index
	for _, art := range []v1.Image{kept, gone} {
		if err := remote.Write(repo.Digest(impMust(art.Digest()).String()), art, opts...); err != nil {
			t.Fatal(err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: art})
	}
	ad := impMust(a.Digest())
	if err := remote.WriteIndex(repo.Tag("sha256-"+ad.Hex), idx, opts...); err != nil {
		t.Fatal(err)
	}
	goneDigest := impMust(gone.Digest())
	if err := remote.Delete(repo.Digest(goneDigest.String()), opts...); err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Head(repo.Digest(goneDigest.String()), opts...); err == nil {
		t.Fatal("the deleted referrer is still served")
	}

	rec := &impRecorder{}
	p, err := relocate.Resolve(context.Background(), relocate.Source{Image: repo.Tag("a").String()}, relocate.Options{Remote: opts, Referrers: true, Reporter: rec})
	if err != nil {
		t.Fatalf("resolve with a listed referrer that is gone: %v", err)
	}
	if got, want := referrersIn(p, ad), []string{impMust(kept.Digest()).String()}; !slices.Equal(got, want) {
		t.Errorf("plan's referrers of a %v, want %v", got, want)
	}
	if !slices.ContainsFunc(rec.logs, func(l string) bool {
		return strings.HasPrefix(l, "warning: ") && strings.Contains(l, goneDigest.String()) && strings.Contains(l, "does not have")
	}) {
		t.Errorf("logs %q warn of no missing %s", rec.logs, goneDigest)
	}
	var buf bytes.Buffer
	if _, err := relocate.Export(context.Background(), p, &buf, relocate.ExportOptions{Remote: opts}); err != nil {
		t.Fatal(err)
	}
}
