package relocate_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferry-dev/ferry/internal/bundle"
	"github.com/ferry-dev/ferry/internal/testregistry"
	"github.com/ferry-dev/ferry/relocate"
)

// killAfter lets the first k writes (anything but GET and HEAD) through,
// then fails every request and cancels the run: the registry is left as a
// SIGKILL after the k-th write would leave it. A negative k lets
// everything through and counts the writes.
type killAfter struct {
	rt     http.RoundTripper
	k      int
	cancel context.CancelFunc

	mu     sync.Mutex
	killed bool
	writes []string
}

func (a *killAfter) RoundTrip(r *http.Request) (*http.Response, error) {
	a.mu.Lock()
	if r.Method != http.MethodGet && r.Method != http.MethodHead && !a.killed {
		if a.k >= 0 && len(a.writes) >= a.k {
			a.killed = true
			a.cancel()
		} else {
			a.writes = append(a.writes, r.Method+" "+r.URL.Path)
		}
	}
	killed := a.killed
	a.mu.Unlock()
	if killed {
		closeBody(r)
		return nil, errStopped
	}
	return a.rt.RoundTrip(r)
}

// written returns the writes let through.
func (a *killAfter) written() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.writes...)
}

// checkComplete checks that every tag of repo names complete content: the
// manifest, every child to any depth, every config and layer; and that a
// locations tag's bundle is there with every image its locations name.
func checkComplete(t *testing.T, reg *testregistry.Registry, repo name.Repository, tagged map[string]string) {
	t.Helper()
	opts := reg.RemoteOptions(t)
	var check func(d, what string)
	check = func(d, what string) {
		desc, err := remote.Get(repo.Digest(d), opts...)
		if err != nil {
			t.Errorf("%s: manifest %s missing: %v", what, d, err)
			return
		}
		if desc.MediaType.IsIndex() {
			for _, c := range impMust(impMust(desc.ImageIndex()).IndexManifest()).Manifests {
				check(c.Digest.String(), what+" > child")
			}
			return
		}
		m := impMust(impMust(desc.Image()).Manifest())
		for _, b := range append([]v1.Descriptor{m.Config}, m.Layers...) {
			rc, err := impMust(remote.Layer(repo.Digest(b.Digest.String()), opts...)).Compressed()
			if err != nil {
				t.Errorf("%s: manifest %s: blob %s missing: %v", what, d, b.Digest, err)
				continue
			}
			// Read to its end, the digest is checked.
			_, err = io.Copy(io.Discard, rc)
			rc.Close()
			if err != nil {
				t.Errorf("%s: blob %s: %v", what, b.Digest, err)
			}
		}
	}
	for tg, d := range tagged {
		check(d, "tag "+tg)
		b, ok := strings.CutSuffix(tg, ".image-locations.imgpkg")
		if !ok {
			continue
		}
		check("sha256:"+strings.TrimPrefix(b, "sha256-"), "bundle of "+tg)
		locs, err := bundle.ReadLocations(impMust(remote.Image(repo.Digest(d), opts...)), tg)
		if err != nil {
			t.Fatalf("locations of %s: %v", tg, err)
		}
		for _, l := range locs.Images {
			check(impMust(name.NewDigest(l.Image)).DigestStr(), "image "+l.Image+" named by "+tg)
		}
	}
}

// dryRunDiff compares a dry run's tags with the run's, allowing only what
// docs/destination.md says a dry run from a stream cannot know: a
// locations tag reported with an empty digest, and the locations image's
// own tag, which follows it, left out. It returns "" when they agree.
func dryRunDiff(dry, run []relocate.TagResult) string {
	unknown := map[string]bool{}
	for _, t := range dry {
		if t.Digest == "" {
			unknown[t.Tag] = true
		}
	}
	var r []relocate.TagResult
	for i := 0; i < len(run); i++ {
		t := run[i]
		if unknown[t.Tag] {
			t.Digest = ""
			i++ // its own .imgpkg tag
		}
		r = append(r, t)
	}
	if fmt.Sprint(dry) == fmt.Sprint(r) {
		return ""
	}
	key := func(l []relocate.TagResult) string {
		var s []string
		for _, t := range l {
			s = append(s, fmt.Sprint(t))
		}
		sort.Strings(s)
		return strings.Join(s, " ")
	}
	what := "the tags differ"
	if key(dry) == key(r) {
		what = "the same tags in another order"
	}
	return fmt.Sprintf("%s:\n dry run %v\n run     %v", what, dry, r)
}

// killPoints are the numbers of writes to let through before a kill,
// given a clean run's writes: every one from the first manifest PUT on
// (what is committed, in which order, is what a kill can break), and of
// the blob uploads before it, which run at once and leave nothing but
// blobs wherever they are cut, their first and last few and the middle.
// Under the race detector, which makes each case several times slower,
// one in three of those, and the last.
func killPoints(writes []string) []int {
	first := len(writes)
	for i, w := range writes {
		if strings.Contains(w, "/manifests/") {
			first = i
			break
		}
	}
	var out []int
	for k := 0; k < len(writes); k++ {
		if k >= first || k < 3 || k == first/2 || k >= first-2 {
			out = append(out, k)
		}
	}
	if !raceEnabled {
		return out
	}
	var some []int
	for i, k := range out {
		if i%3 == 0 || i == len(out)-1 {
			some = append(some, k)
		}
	}
	return some
}

// TestImportStoppedAfterEveryWriteThenRerun stops an import after exactly
// k registry writes, as a SIGKILL would, for every k from the first
// manifest PUT on, and a few within the blob uploads before it (killPoints): its
// content (bundles, a nested bundle, images, an index, cosign signatures
// and a referrer, whose subject's fallback index the registries' lack of
// the referrers API makes the import write) and, in front of it, the
// user's tag on another image. Then, each time:
//
//   - every tag in the repository names complete content, and the user's
//     tag has not moved (the run did not reach its last write);
//   - a dry run says exactly what the re-run then does (tags, actions,
//     order), as far as a dry run from a pipe can know;
//   - the re-run ends with the tags of a clean import, the referrer listed
//     by the fallback index, and no warning;
//   - a third run writes nothing.
//
// From a file into go-containerregistry's registry and from a pipe into
// distribution (which refuses a manifest whose blobs or children are
// missing), the two reading paths and the two registries.
func TestImportStoppedAfterEveryWriteThenRerun(t *testing.T) {
	s := newArtSource(t)
	archive := s.exportWith(t, true, true)
	want := s.wantArtTags(t, true, false)
	app2, ref := impMust(s.app2.Digest()), impMust(s.ref.Digest())
	fallback := "sha256-" + app2.Hex
	other := impMust(random.Image(512, 1))
	otherDigest := impMust(other.Digest()).String()
	shared := testregistry.NewDistribution(t)
	// fresh returns an empty repository: in a registry of its own for
	// go-containerregistry's, whose blobs any repository sees; in one
	// distribution, whose repositories see only their own blobs, started
	// once.
	fresh := map[string]func(t *testing.T, k int) (*testregistry.Registry, name.Repository){
		"ggcr": func(t *testing.T, k int) (*testregistry.Registry, name.Repository) {
			reg := testregistry.NewGGCR(t)
			return reg, impMust(name.NewRepository(reg.Repo("dst/imported")))
		},
		"distribution": func(t *testing.T, k int) (*testregistry.Registry, name.Repository) {
			reg := shared
			return reg, impMust(name.NewRepository(reg.Repo(fmt.Sprintf("dst/imported-%d", k))))
		},
	}
	for _, tc := range []struct {
		name, reg string
		via       impVia
	}{
		{"ggcr-file", "ggcr", impVias[0]},
		{"distribution-pipe", "distribution", impVias[1]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// How many writes a clean import makes.
			reg, repo := fresh[tc.reg](t, -1)
			count := &killAfter{rt: reg.Transport(), k: -1}
			if _, err := relocate.Import(context.Background(), tc.via.open(archive), repo, relocate.ImportOptions{DestinationOptions: throughTransport(&reg.Endpoint, count)}); err != nil {
				t.Fatal(err)
			}
			total := len(count.written())
			for _, k := range killPoints(count.written()) {
				t.Run(fmt.Sprint(k), func(t *testing.T) {
					reg, repo := fresh[tc.reg](t, k)
					if err := remote.Write(repo.Tag("v1"), other, reg.RemoteOptions(t)...); err != nil {
						t.Fatal(err)
					}
					ctx, cancel := context.WithCancel(context.Background())
					defer cancel()
					kill := &killAfter{rt: reg.Transport(), k: k, cancel: cancel}
					if _, err := relocate.Import(ctx, tc.via.open(archive), repo, relocate.ImportOptions{DestinationOptions: throughTransport(&reg.Endpoint, kill)}); err == nil {
						t.Fatalf("the import ended after %d of its %d writes", k, total)
					}
					got := regTags(t, fromTestRegistry(reg), repo.RepositoryStr())
					if got["v1"] != otherDigest {
						t.Errorf("after %d of %d writes, v1 names %s, not the user's image: %v", k, total, got["v1"], kill.written())
					}
					checkComplete(t, reg, repo, got)

					// The dry run fails at any write.
					dry := throughTransport(&reg.Endpoint, &killAfter{rt: reg.Transport(), k: 0, cancel: func() {}})
					dry.DryRun = true
					dres, err := relocate.Import(context.Background(), tc.via.open(archive), repo, relocate.ImportOptions{DestinationOptions: dry})
					if err != nil {
						t.Fatalf("dry run: %v", err)
					}
					rec := &impRecorder{}
					opts := throughTransport(&reg.Endpoint, reg.Transport())
					opts.Reporter = rec
					res, err := relocate.Import(context.Background(), tc.via.open(archive), repo, relocate.ImportOptions{DestinationOptions: opts})
					if err != nil {
						t.Fatalf("re-run: %v", err)
					}
					if d := dryRunDiff(dres.Tags, res.Tags); d != "" {
						t.Errorf("the dry run and the re-run: %s", d)
					}
					noWarnings(t, "the re-run", rec)
					got = regTags(t, fromTestRegistry(reg), repo.RepositoryStr())
					idx, err := remote.Index(repo.Tag(fallback), reg.RemoteOptions(t)...)
					if err != nil {
						t.Fatalf("after the re-run, the referrers fallback tag %s: %v", fallback, err)
					}
					if m := impMust(idx.IndexManifest()).Manifests; len(m) != 1 || m[0].Digest != ref {
						t.Errorf("after the re-run, the fallback index lists %v, want the referrer %s alone", m, ref)
					}
					delete(got, fallback)
					if d := impDiffTags(got, want); d != "" {
						t.Errorf("after the re-run:\n%s", d)
					}

					third := &killAfter{rt: reg.Transport(), k: -1}
					res, err = relocate.Import(context.Background(), tc.via.open(archive), repo, relocate.ImportOptions{DestinationOptions: throughTransport(&reg.Endpoint, third)})
					if err != nil {
						t.Fatalf("third run: %v", err)
					}
					if w := third.written(); len(w) != 0 {
						t.Errorf("a third run wrote %v", w)
					}
					for _, tr := range res.Tags {
						if tr.Action != relocate.TagUnchanged {
							t.Errorf("third run: %+v", tr)
						}
					}
				})
			}
		})
	}
}
