package relocate_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferry-dev/ferry/internal/registry"
	"github.com/ferry-dev/ferry/internal/testregistry"
	"github.com/ferry-dev/ferry/relocate"
)

// errStopped is what a run stopped by a test's transport gets.
var errStopped = errors.New("test: the run was stopped here")

// closeBody closes a request's body, as a RoundTripper must, even when it
// fails the request.
func closeBody(r *http.Request) {
	if r.Body != nil {
		r.Body.Close()
	}
}

// stopAfterPut lets requests through until a PUT whose path ends with
// suffix has been answered 2xx, then fails every later request and
// cancels the run: the registry is left as a SIGKILL right after that PUT
// would leave it.
type stopAfterPut struct {
	rt      http.RoundTripper
	suffix  string
	cancel  context.CancelFunc
	mu      sync.Mutex
	armed   bool
	stopped bool
}

// wasArmed reports whether the PUT went through.
func (s *stopAfterPut) wasArmed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.armed
}

func (s *stopAfterPut) RoundTrip(r *http.Request) (*http.Response, error) {
	s.mu.Lock()
	if s.armed {
		if !s.stopped {
			s.stopped = true
			s.cancel()
		}
		s.mu.Unlock()
		closeBody(r)
		return nil, errStopped
	}
	s.mu.Unlock()
	resp, err := s.rt.RoundTrip(r)
	if err == nil && r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, s.suffix) && resp.StatusCode/100 == 2 {
		s.mu.Lock()
		s.armed = true
		s.mu.Unlock()
	}
	return resp, err
}

// throughTransport are destination options whose every request, through
// go-containerregistry or the Client, goes through rt, with one attempt
// per upload and a quick retry.
func throughTransport(ep *testregistry.Endpoint, rt http.RoundTripper) relocate.DestinationOptions {
	opts := []remote.Option{
		remote.WithAuth(ep.Authenticator()),
		remote.WithTransport(rt),
		remote.WithRetryBackoff(remote.Backoff{Duration: 10 * time.Millisecond, Factor: 1, Steps: 1}),
	}
	co := ep.ClientOptions()
	co.Transport = rt
	co.UploadAttempts = 1
	return relocate.DestinationOptions{Remote: opts, Client: registry.New(co)}
}

// TestReferrerStoredByAStoppedRunIsListedByTheRerun: into a registry
// without the referrers API (distribution), a referrer's PUT stores the
// manifest, then go-containerregistry adds it to the subject's fallback
// index "sha256-<subject hex>". A run stopped between the two leaves the
// referrer stored by digest but listed nowhere; the re-run must not take
// it for done: its dry run counts it among the manifests to push, and the
// re-run PUTs it again, which lists it. For an import and a copy.
func TestReferrerStoredByAStoppedRunIsListedByTheRerun(t *testing.T) {
	src := testregistry.NewGGCR(t)
	srcOpts := src.RemoteOptions(t)
	repo := impMust(name.NewRepository(src.Repo("src/app")))
	img := impMust(random.Image(512, 1))
	if err := remote.Write(repo.Tag("v1"), img, srcOpts...); err != nil {
		t.Fatal(err)
	}
	art := sbomOf(t, img, 0)
	artDigest := impMust(art.Digest())
	if err := remote.Write(repo.Digest(artDigest.String()), art, srcOpts...); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	p, err := relocate.Resolve(ctx, relocate.Source{Image: repo.Tag("v1").String()}, relocate.Options{Remote: srcOpts, Referrers: true})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := relocate.Export(ctx, p, &buf, relocate.ExportOptions{Remote: srcOpts}); err != nil {
		t.Fatal(err)
	}
	archive := buf.Bytes()
	fallback := "sha256-" + impMust(img.Digest()).Hex

	moves := []struct {
		name string
		run  func(ctx context.Context, dst name.Repository, opts relocate.DestinationOptions) (*relocate.ImportResult, error)
	}{
		{"import", func(ctx context.Context, dst name.Repository, opts relocate.DestinationOptions) (*relocate.ImportResult, error) {
			return relocate.Import(ctx, bytes.NewReader(archive), dst, relocate.ImportOptions{DestinationOptions: opts})
		}},
		{"copy", func(ctx context.Context, dst name.Repository, opts relocate.DestinationOptions) (*relocate.ImportResult, error) {
			return relocate.Copy(ctx, p, dst, relocate.CopyOptions{DestinationOptions: opts})
		}},
	}
	for _, m := range moves {
		t.Run(m.name, func(t *testing.T) {
			reg := testregistry.NewDistribution(t)
			dst := impMust(name.NewRepository(reg.Repo("dst/app")))
			listed := func() bool {
				idx, err := remote.Index(dst.Tag(fallback), reg.RemoteOptions(t)...)
				if err != nil {
					return false
				}
				for _, d := range impMust(idx.IndexManifest()).Manifests {
					if d.Digest == artDigest {
						return true
					}
				}
				return false
			}

			runCtx, cancel := context.WithCancel(ctx)
			defer cancel()
			stop := &stopAfterPut{rt: reg.Transport(), suffix: "/manifests/" + artDigest.String(), cancel: cancel}
			if _, err := m.run(runCtx, dst, throughTransport(&reg.Endpoint, stop)); err == nil {
				t.Fatal("the run was not stopped")
			}
			// What the test is about: stored, not listed.
			if !stop.wasArmed() {
				t.Fatal("the referrer was never PUT")
			}
			if _, err := remote.Head(dst.Digest(artDigest.String()), reg.RemoteOptions(t)...); err != nil {
				t.Fatalf("the referrer is not stored after its PUT: %v", err)
			}
			if listed() {
				t.Fatalf("the fallback index %s lists the referrer already: the run was stopped too late", fallback)
			}

			dry := throughTransport(&reg.Endpoint, reg.Transport())
			dry.DryRun = true
			res, err := m.run(ctx, dst, dry)
			if err != nil {
				t.Fatalf("dry run: %v", err)
			}
			if res.ManifestsPushed != 1 {
				t.Errorf("the dry run counts %d manifests to push (%d present); want 1, the referrer no index lists", res.ManifestsPushed, res.ManifestsPresent)
			}

			res, err = m.run(ctx, dst, throughTransport(&reg.Endpoint, reg.Transport()))
			if err != nil {
				t.Fatalf("re-run: %v", err)
			}
			if !listed() {
				t.Errorf("after the re-run, the fallback index %s does not list the referrer %s: stored, but found by nobody", fallback, artDigest)
			}
			if res.ManifestsPushed != 1 {
				t.Errorf("the re-run pushed %d manifests, want 1 (the referrer)", res.ManifestsPushed)
			}

			// Once listed, it is done: a third run writes nothing.
			w := &writeCounter{rt: reg.Transport()}
			res, err = m.run(ctx, dst, throughTransport(&reg.Endpoint, w))
			if err != nil {
				t.Fatalf("third run: %v", err)
			}
			if len(w.writes) != 0 || res.ManifestsPushed != 0 {
				t.Errorf("a third run wrote %v (%d manifests pushed)", w.writes, res.ManifestsPushed)
			}
		})
	}
}

// writeCounter records the writes (anything but GET and HEAD) it passes on.
type writeCounter struct {
	rt     http.RoundTripper
	mu     sync.Mutex
	writes []string
}

func (w *writeCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.mu.Lock()
		w.writes = append(w.writes, r.Method+" "+r.URL.Path)
		w.mu.Unlock()
	}
	return w.rt.RoundTrip(r)
}
