package taglist_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferry-dev/ferry/internal/pagination"
	"github.com/ferry-dev/ferry/internal/taglist"
	"github.com/ferry-dev/ferry/internal/testregistry"
)

// seeded is a repository holding two images under user and internal tags.
type seeded struct {
	reg  *testregistry.Registry
	repo name.Repository
	// digest of each tag, computed here from the manifest bytes pushed.
	digest map[string]string
}

// seed pushes two images and tags them: user tags, imgpkg's and cosign's
// bookkeeping tags, and names that only look like them.
func seed(t *testing.T) *seeded {
	t.Helper()
	reg := testregistry.NewGGCR(t)
	repo, err := name.NewRepository(reg.Repo("team/app"))
	if err != nil {
		t.Fatal(err)
	}
	s := &seeded{reg: reg, repo: repo, digest: map[string]string{}}
	var hexes []string
	var imgs []v1.Image
	for range 2 {
		img, err := random.Image(64, 1)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := img.RawManifest()
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(raw)
		hexes = append(hexes, hex.EncodeToString(sum[:]))
		imgs = append(imgs, img)
	}
	tagsOf := [][]string{
		{"v1", "latest", "sha256-" + hexes[0] + ".imgpkg", "sha256-" + hexes[0] + ".image-locations.imgpkg", "team-app-sha256-" + hexes[0] + ".imgpkg"},
		{"v2", "sha256-" + hexes[0] + ".sig", "sha256-" + hexes[0] + ".att", "sha256-" + hexes[0] + ".sbom", "sha256-abc.sig", "v1.imgpkg.bak"},
	}
	opts := reg.RemoteOptions(t)
	for i, ts := range tagsOf {
		for _, tg := range ts {
			if err := remote.Write(repo.Tag(tg), imgs[i], opts...); err != nil {
				t.Fatal(err)
			}
			s.digest[tg] = "sha256:" + hexes[i]
		}
	}
	return s
}

func names(ts []taglist.Tag) string {
	var out []string
	for _, t := range ts {
		out = append(out, t.Name)
	}
	return strings.Join(out, " ")
}

func TestListHidesInternalTags(t *testing.T) {
	s := seed(t)
	got, err := taglist.List(context.Background(), s.repo, taglist.Options{Remote: s.reg.RemoteOptions(t)})
	if err != nil {
		t.Fatal(err)
	}
	// Sorted by name; cosign lookalikes with a short digest and a name
	// that merely contains ".imgpkg" are a person's tags.
	if want := "latest sha256-abc.sig v1 v1.imgpkg.bak v2"; names(got) != want {
		t.Errorf("tags %q, want %q", names(got), want)
	}
	for _, tg := range got {
		if tg.Digest != "" {
			t.Errorf("tag %s has digest %s without Digests", tg.Name, tg.Digest)
		}
	}

	all, err := taglist.List(context.Background(), s.repo, taglist.Options{Internal: true, Remote: s.reg.RemoteOptions(t)})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != len(s.digest) {
		t.Errorf("with Internal: %d tags (%s), want all %d", len(all), names(all), len(s.digest))
	}
	for i := 1; i < len(all); i++ {
		if all[i-1].Name >= all[i].Name {
			t.Errorf("with Internal: not sorted: %q before %q", all[i-1].Name, all[i].Name)
		}
	}
}

func TestListDigests(t *testing.T) {
	s := seed(t)
	got, err := taglist.List(context.Background(), s.repo, taglist.Options{Digests: true, Internal: true, Concurrency: 3, Remote: s.reg.RemoteOptions(t)})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(s.digest) {
		t.Fatalf("%d tags, want %d", len(got), len(s.digest))
	}
	for _, tg := range got {
		if tg.Digest != s.digest[tg.Name] {
			t.Errorf("tag %s: digest %q, want %s", tg.Name, tg.Digest, s.digest[tg.Name])
		}
	}
}

// A tag that cannot be resolved fails the listing, naming it, and stops
// the look-ups still to come.
func TestListDigestsFirstError(t *testing.T) {
	s := seed(t)
	proxy := testregistry.NewFaultProxy(t, s.reg, testregistry.Rule{
		Method: http.MethodHead,
		Kind:   testregistry.KindManifest,
		Path:   regexp.MustCompile(`/manifests/sha256-abc\.sig$`),
		Fault:  testregistry.FaultStatus,
		Status: http.StatusForbidden,
	})
	repo, err := name.NewRepository(proxy.Repo("team/app"))
	if err != nil {
		t.Fatal(err)
	}
	// One look-up at a time, so "after the failure" is well defined:
	// latest, then sha256-abc.sig, which fails.
	opts := append(proxy.RemoteOptions(t), remote.WithRetryBackoff(remote.Backoff{Duration: time.Millisecond, Steps: 1}))
	got, err := taglist.List(context.Background(), repo, taglist.Options{Digests: true, Concurrency: 1, Remote: opts})
	if err == nil || !strings.Contains(err.Error(), repo.String()+":sha256-abc.sig") {
		t.Fatalf("err = %v, want one naming %s:sha256-abc.sig", err, repo)
	}
	if got != nil {
		t.Errorf("a failed listing returned %v", got)
	}
	var heads []string
	for _, r := range proxy.Requests() {
		if r.Method == http.MethodHead && r.Kind == testregistry.KindManifest {
			heads = append(heads, r.Ref)
		}
	}
	if len(heads) < 2 || heads[0] != "latest" || heads[1] != "sha256-abc.sig" {
		t.Errorf("HEAD requests %v, want latest then sha256-abc.sig", heads)
	}
	for _, h := range heads {
		if h != "latest" && h != "sha256-abc.sig" {
			t.Errorf("HEAD requests %v: tags after the failure were still resolved", heads)
			break
		}
	}
}

func TestListMissingRepository(t *testing.T) {
	reg := testregistry.NewGGCR(t)
	repo, err := name.NewRepository(reg.Repo("no/such/repo"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = taglist.List(context.Background(), repo, taglist.Options{Remote: reg.RemoteOptions(t)})
	if err == nil || !strings.Contains(err.Error(), repo.String()) {
		t.Errorf("err = %v, want one naming %s", err, repo)
	}
}

// loopingProxy serves s's registry with tag-list responses whose Link
// header is link (see testregistry.FaultLink).
func loopingProxy(t *testing.T, s *seeded, link string) (*testregistry.FaultProxy, name.Repository) {
	t.Helper()
	proxy := testregistry.NewFaultProxy(t, s.reg, testregistry.Rule{
		Method: http.MethodGet,
		Kind:   testregistry.KindTags,
		Fault:  testregistry.FaultLink,
		Link:   link,
	})
	repo, err := name.NewRepository(proxy.Repo("team/app"))
	if err != nil {
		t.Fatal(err)
	}
	return proxy, repo
}

// listWithin lists repo, failing the test rather than hanging when the
// listing does not stop.
func listWithin(t *testing.T, repo name.Repository, opts taglist.Options) ([]taglist.Tag, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got, err := taglist.List(ctx, repo, opts)
	if ctx.Err() != nil {
		t.Fatalf("the listing ran until its deadline: %v", err)
	}
	return got, err
}

// TestListStopsOnAPaginationLoop (issue 13, item 5): a registry whose
// Link header leads back to a page already read is named, after a few
// requests, instead of being followed until memory runs out.
func TestListStopsOnAPaginationLoop(t *testing.T) {
	s := seed(t)
	proxy, repo := loopingProxy(t, s, `</v2/team/app/tags/list?n=100&last=v2>; rel="next"`)
	got, err := listWithin(t, repo, taglist.Options{Remote: proxy.RemoteOptions(t)})
	if err == nil {
		t.Fatalf("listing a looping registry succeeded: %v", names(got))
	}
	for _, want := range []string{"registry " + proxy.Host, "loops", "links back to"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if n := proxy.Counts().Get(http.MethodGet, testregistry.KindTags); n != 2 {
		t.Errorf("%d tag list requests; the loop shows at the second page", n)
	}
}

// TestListKnowsAPageByWhatIsSent: links that differ only in a fragment,
// which a client never sends, lead to the same page; kept whole, such
// links (a megabyte of fragment each) once held memory page after page
// until the page bound, tens of GiB. A link too long to be a registry's
// page token is refused, and quoted short.
func TestListKnowsAPageByWhatIsSent(t *testing.T) {
	s := seed(t)
	frag := strings.Repeat("A", 1<<10)
	proxy, repo := loopingProxy(t, s, `</v2/team/app/tags/list?n=100&last=v2#%d`+frag+`>; rel="next"`)
	_, err := listWithin(t, repo, taglist.Options{Remote: proxy.RemoteOptions(t), Limits: taglist.Limits{MaxPages: 50}})
	if err == nil || !strings.Contains(err.Error(), "loops") || !strings.Contains(err.Error(), "bytes)") {
		t.Errorf("err = %.400v; want the loop named, its link quoted short", err)
	}
	if n := proxy.Counts().Get(http.MethodGet, testregistry.KindTags); n != 2 {
		t.Errorf("%d tag list requests; the loop shows at the second page, whose link differs from the first's in its fragment only", n)
	}

	// A page elsewhere than the tag list would escape the transport's
	// bound on a page's size, which goes by the path asked for.
	proxy, repo = loopingProxy(t, s, `</v2/team/app/other?last=v2>; rel="next"`)
	_, err = listWithin(t, repo, taglist.Options{Remote: proxy.RemoteOptions(t)})
	if err == nil || !strings.Contains(err.Error(), "not to the tag list") {
		t.Errorf("err = %.400v; want a link to another path refused", err)
	}
	if n := proxy.Counts().Get(http.MethodGet, testregistry.KindTags); n != 1 {
		t.Errorf("%d tag list requests; the link elsewhere is refused before it is followed", n)
	}

	long := strings.Repeat("b", pagination.MaxLinkBytes)
	proxy, repo = loopingProxy(t, s, `</v2/team/app/tags/list?last=`+long+`%d>; rel="next"`)
	_, err = listWithin(t, repo, taglist.Options{Remote: proxy.RemoteOptions(t)})
	if err == nil || !strings.Contains(err.Error(), "registry "+proxy.Host) || !strings.Contains(err.Error(), "refusing to follow") || len(err.Error()) > 1000 {
		t.Errorf("err = %.400v (%d bytes); want the long link refused, naming %s, quoted short", err, len(fmt.Sprint(err)), proxy.Host)
	}
	if n := proxy.Counts().Get(http.MethodGet, testregistry.KindTags); n != 1 {
		t.Errorf("%d tag list requests; the long link is refused before it is followed", n)
	}
}

// TestListBoundsPagesAndTags: pages that never repeat a URL, and more tags
// than allowed, stop the listing at the bound, naming the registry.
func TestListBoundsPagesAndTags(t *testing.T) {
	s := seed(t)
	proxy, repo := loopingProxy(t, s, `</v2/team/app/tags/list?last=page%d>; rel="next"`)
	opts := taglist.Options{Remote: proxy.RemoteOptions(t), Limits: taglist.Limits{MaxPages: 40}}
	_, err := listWithin(t, repo, opts)
	if err == nil || !strings.Contains(err.Error(), "registry "+proxy.Host) || !strings.Contains(err.Error(), "more than 40 pages") {
		t.Errorf("err = %v, want one naming %s and the bound of 40 pages", err, proxy.Host)
	}
	if n := proxy.Counts().Get(http.MethodGet, testregistry.KindTags); n != 40 {
		t.Errorf("%d tag list requests, want the 40 allowed", n)
	}

	// The bound on tags, at its edge: as many tags as the repository
	// holds are listed (imgpkg's own included, so that all are shown), one
	// fewer is refused.
	n := len(s.digest)
	got, err := listWithin(t, s.repo, taglist.Options{Remote: s.reg.RemoteOptions(t), Internal: true, Limits: taglist.Limits{MaxTags: n}})
	if err != nil || len(got) != n {
		t.Errorf("MaxTags %d, %d tags held: %d listed, %v; want all of them", n, n, len(got), err)
	}
	_, err = listWithin(t, s.repo, taglist.Options{Remote: s.reg.RemoteOptions(t), Internal: true, Limits: taglist.Limits{MaxTags: n - 1}})
	if want := fmt.Sprintf("more than %d tags", n-1); err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "registry "+s.reg.Host) {
		t.Errorf("MaxTags %d, %d tags held: err = %v, want one naming %s and %q", n-1, n, err, s.reg.Host, want)
	}

	// The bound on the names' bytes, at its edge: a registry listing
	// long names on ever-new pages once made ferry hold a GiB of them.
	size := 0
	for _, tg := range got {
		size += len(tg.Name)
	}
	if _, err := listWithin(t, s.repo, taglist.Options{Remote: s.reg.RemoteOptions(t), Internal: true, Limits: taglist.Limits{MaxBytes: size}}); err != nil {
		t.Errorf("MaxBytes %d, names of %d bytes held: %v", size, size, err)
	}
	_, err = listWithin(t, s.repo, taglist.Options{Remote: s.reg.RemoteOptions(t), Internal: true, Limits: taglist.Limits{MaxBytes: size - 1}})
	if want := fmt.Sprintf("more than %d bytes", size-1); err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "registry "+s.reg.Host) {
		t.Errorf("MaxBytes %d, names of %d bytes held: err = %v, want one naming %s and %q", size-1, size, err, s.reg.Host, want)
	}
}

// A name longer than the spec's 128 bytes (ECR allows 300) is listed; one
// past MaxTagBytes (a hostile registry may send megabytes of it) stops
// the listing, naming the registry.
func TestListBoundsTheLengthOfNames(t *testing.T) {
	s := seed(t)
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	mt, _ := img.MediaType()
	// Past go-containerregistry's own check of tags, straight to the
	// registry, which stores any name.
	put := func(tag string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPut, "http://"+s.reg.Host+"/v2/team/app/manifests/"+tag, strings.NewReader(string(raw)))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", string(mt))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("PUT of a manifest under a %d-byte name: %s", len(tag), resp.Status)
		}
	}
	ecr := strings.Repeat("e", 300)
	put(ecr)
	got, err := listWithin(t, s.repo, taglist.Options{Remote: s.reg.RemoteOptions(t)})
	if err != nil || !strings.Contains(names(got), ecr) {
		t.Fatalf("a 300-byte tag: %v, listed %v", err, err == nil)
	}
	long := strings.Repeat("a", taglist.MaxTagBytes+1)
	put(long)
	_, err = listWithin(t, s.repo, taglist.Options{Remote: s.reg.RemoteOptions(t)})
	if err == nil || !strings.Contains(err.Error(), "registry "+s.reg.Host) || !strings.Contains(err.Error(), "refusing") || strings.Contains(err.Error(), long) {
		t.Fatalf("err = %v, want one naming the registry and the name, shortened", err)
	}
}
