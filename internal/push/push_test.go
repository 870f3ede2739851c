package push_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferry-dev/ferry/fixtures/golden"
	"github.com/ferry-dev/ferry/internal/bundle"
	"github.com/ferry-dev/ferry/internal/lockwait"
	"github.com/ferry-dev/ferry/internal/push"
	"github.com/ferry-dev/ferry/internal/testregistry"
	"github.com/ferry-dev/ferry/relocate"
)

// goldenDigest is the manifest digest imgpkg v0.43 gave golden/bundle-basic
// (golden/README.md), and goldenTag the tag imgpkg writes beside it.
const (
	goldenDigest = "sha256:1dd1fe82d28c36e0cd1a72e97295ba91f1c9b705249fecbd9a99a84668c09922"
	goldenTag    = "sha256-1dd1fe82d28c36e0cd1a72e97295ba91f1c9b705249fecbd9a99a84668c09922.imgpkg"
)

// copyGolden writes golden/bundle-basic to a temporary directory with the
// modes imgpkg pushed it with.
func copyGolden(t *testing.T) string {
	t.Helper()
	dir, err := golden.BundleBasic(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// manifestPuts returns the references of the manifest PUTs the registry
// received, in order.
func manifestPuts(reqs []testregistry.Request) []string {
	var out []string
	for _, r := range reqs {
		if r.Method == http.MethodPut && r.Kind == testregistry.KindManifest {
			out = append(out, r.Ref)
		}
	}
	return out
}

func TestPushTagsImgpkgFirstAndWritesLock(t *testing.T) {
	reg := testregistry.NewGGCR(t)
	tag, err := name.NewTag(reg.Repo("team/basic") + ":v1")
	if err != nil {
		t.Fatal(err)
	}
	lockPath := filepath.Join(t.TempDir(), "bundle.lock.yml")
	res, err := push.Push(context.Background(), tag, []string{copyGolden(t)}, push.Options{
		Build:      bundle.BuildOptions{Bundle: true},
		LockOutput: lockPath,
		Remote:     reg.RemoteOptions(t),
	})
	if err != nil {
		t.Fatal(err)
	}

	// The .imgpkg tag is written before the user's, and each once.
	if got := strings.Join(manifestPuts(reg.Requests()), " "); got != goldenTag+" v1" {
		t.Errorf("manifest PUTs in order: %s; want %s then v1", got, goldenTag)
	}
	for _, tg := range []string{goldenTag, "v1"} {
		desc, err := remote.Head(tag.Context().Tag(tg), reg.RemoteOptions(t)...)
		if err != nil {
			t.Fatalf("tag %s: %v", tg, err)
		}
		if desc.Digest.String() != goldenDigest {
			t.Errorf("tag %s points at %s, want imgpkg's %s", tg, desc.Digest, goldenDigest)
		}
	}

	wantImage := reg.Host + "/team/basic@" + goldenDigest
	if res.Image != wantImage || res.Digest != goldenDigest || strings.Join(res.Tags, " ") != goldenTag+" v1" || res.LockOutput != lockPath {
		t.Errorf("result %+v", res)
	}

	// The lock as imgpkg writes it: "---", keys sorted, private.
	got, err := os.ReadFile(lockPath)
	if err != nil {
		t.Fatal(err)
	}
	want := "---\n" +
		"apiVersion: imgpkg.carvel.dev/v1alpha1\n" +
		"bundle:\n" +
		"  image: " + wantImage + "\n" +
		"  tag: v1\n" +
		"kind: BundleLock\n"
	if string(got) != want {
		t.Errorf("lock output:\n%s\nwant:\n%s", got, want)
	}
	if fi, err := os.Stat(lockPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("lock output mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
}

// A registry that refuses the .imgpkg tag never gets the user's tag, and no
// lock is written: the user's tag only ever names content that is there.
func TestPushRefusedImgpkgTagLeavesUserTagAlone(t *testing.T) {
	reg := testregistry.NewGGCR(t)
	proxy := testregistry.NewFaultProxy(t, reg, testregistry.Rule{
		Method: http.MethodPut,
		Kind:   testregistry.KindManifest,
		Path:   regexp.MustCompile(`/manifests/sha256-[0-9a-f]{64}\.imgpkg$`),
		Fault:  testregistry.FaultStatus,
		Status: http.StatusForbidden,
	})
	tag, err := name.NewTag(proxy.Repo("team/basic") + ":v1")
	if err != nil {
		t.Fatal(err)
	}
	lockPath := filepath.Join(t.TempDir(), "bundle.lock.yml")
	_, err = push.Push(context.Background(), tag, []string{copyGolden(t)}, push.Options{
		Build:      bundle.BuildOptions{Bundle: true},
		LockOutput: lockPath,
		// The proxy's error body says UNAVAILABLE, which go-containerregistry
		// retries; one attempt keeps the test quick.
		Remote: append(proxy.RemoteOptions(t), remote.WithRetryBackoff(remote.Backoff{Duration: time.Millisecond, Steps: 1})),
	})
	if err == nil || !strings.Contains(err.Error(), tag.String()) {
		t.Fatalf("err = %v, want an error naming %s", err, tag)
	}
	if puts := manifestPuts(reg.Requests()); len(puts) != 0 {
		t.Errorf("the registry received manifest PUTs %v", puts)
	}
	puts := manifestPuts(proxy.Requests())
	if len(puts) == 0 {
		t.Error("no manifest PUT reached the proxy")
	}
	for _, p := range puts {
		if p != goldenTag {
			t.Errorf("manifest PUTs sent: %v, want only %s", puts, goldenTag)
			break
		}
	}
	if _, err := os.Stat(lockPath); !os.IsNotExist(err) {
		t.Errorf("lock output written after a failed push (%v)", err)
	}
}

// A registry (here, a proxy before it) that stores other bytes than the
// manifest sent leaves the user's tag and the lock unwritten: push once
// reported the digest it sent and wrote a lock naming it, while both tags
// named another manifest and REPO@digest was not there.
func TestPushChecksTheManifestTheRegistryStored(t *testing.T) {
	inner := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/") {
			b, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			b = append(b, '\n') // still JSON, another digest
			r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(b)), int64(len(b))
		}
		inner.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	tag, err := name.NewTag(strings.TrimPrefix(srv.URL, "http://") + "/team/basic:v1")
	if err != nil {
		t.Fatal(err)
	}
	lockPath := filepath.Join(t.TempDir(), "bundle.lock.yml")
	_, err = push.Push(context.Background(), tag, []string{copyGolden(t)}, push.Options{
		Build:      bundle.BuildOptions{Bundle: true},
		LockOutput: lockPath,
	})
	if err == nil || !strings.Contains(err.Error(), "stored other bytes") || !strings.Contains(err.Error(), goldenDigest) {
		t.Fatalf("err = %v; want the push refused, naming the digest sent", err)
	}
	if _, err := remote.Head(tag); err == nil {
		t.Errorf("the user's tag %s was written", tag)
	}
	if _, err := os.Stat(lockPath); !os.IsNotExist(err) {
		t.Errorf("lock output written (%v)", err)
	}
}

// A registry whose manifest HEAD gives no Docker-Content-Digest (which
// go-containerregistry's HEAD refuses) still takes a push: the stored
// manifest is then checked by a GET of its bytes.
func TestPushChecksTheStoredManifestWithoutAHeadDigest(t *testing.T) {
	inner := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead && strings.Contains(r.URL.Path, "/manifests/") {
			rec := httptest.NewRecorder()
			inner.ServeHTTP(rec, r)
			for k, v := range rec.Header() {
				if k != "Docker-Content-Digest" {
					w.Header()[k] = v
				}
			}
			w.WriteHeader(rec.Code)
			return
		}
		inner.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	tag, err := name.NewTag(strings.TrimPrefix(srv.URL, "http://") + "/team/basic:v1")
	if err != nil {
		t.Fatal(err)
	}
	res, err := push.Push(context.Background(), tag, []string{copyGolden(t)}, push.Options{Build: bundle.BuildOptions{Bundle: true}})
	if err != nil || res.Digest != goldenDigest {
		t.Fatalf("push: %+v, %v; want %s pushed", res, err, goldenDigest)
	}
}

func TestPushWithAnUnwritableLockOutputWritesNoTag(t *testing.T) {
	reg := testregistry.NewGGCR(t)
	tag, err := name.NewTag(reg.Repo("team/basic") + ":v1")
	if err != nil {
		t.Fatal(err)
	}
	lockPath := filepath.Join(t.TempDir(), "no-such-dir", "bundle.lock.yml")
	_, err = push.Push(context.Background(), tag, []string{copyGolden(t)}, push.Options{
		Build:      bundle.BuildOptions{Bundle: true},
		LockOutput: lockPath,
		Remote:     reg.RemoteOptions(t),
	})
	if err == nil || !strings.Contains(err.Error(), "no-such-dir") {
		t.Fatalf("want an error naming the lock output's directory, got %v", err)
	}
	if puts := manifestPuts(reg.Requests()); len(puts) != 0 {
		t.Fatalf("tags written before the lock output was found unwritable: %v", puts)
	}
}

// recorder keeps what a push reports.
type recorder struct {
	mu           sync.Mutex
	phases, logs []string
	totals       map[string]int64
	added        int64
	done         int
}

func (r *recorder) Start(phase string, total int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.totals == nil {
		r.totals = map[string]int64{}
	}
	r.phases, r.totals[phase] = append(r.phases, phase), total
}
func (r *recorder) Add(n int64) { r.mu.Lock(); r.added += n; r.mu.Unlock() }
func (r *recorder) Logf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.logs = append(r.logs, fmt.Sprintf(format, args...))
}
func (r *recorder) Warnf(format string, args ...any) { r.Logf(format, args...) }
func (r *recorder) Done()                            { r.mu.Lock(); r.done++; r.mu.Unlock() }

// logged returns what was logged and warned so far.
func (r *recorder) logged() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.logs)
}

// A push reports its upload as a phase with the bytes sent (a bar, or a
// heartbeat in a log), and names the manifest and each tag it wrote with
// the digest.
func TestPushReportsItsUploadAndWhatItWrote(t *testing.T) {
	reg := testregistry.NewGGCR(t)
	tag, err := name.NewTag(reg.Repo("team/basic") + ":v1")
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	dir := copyGolden(t)
	if _, err := push.Push(context.Background(), tag, []string{dir}, push.Options{
		Build: bundle.BuildOptions{Bundle: true}, Remote: reg.RemoteOptions(t), Reporter: rec,
	}); err != nil {
		t.Fatal(err)
	}
	// The blobs' bytes, asked of the registry.
	img, err := remote.Image(tag, reg.RemoteOptions(t)...)
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	blobs := m.Config.Size
	for _, l := range m.Layers {
		blobs += l.Size
	}
	// Every wait is a phase, so that a heartbeat says what it waits for:
	// hashing the directory, sending the blobs (counted), writing the
	// manifest and the user's tag.
	wantPhases := []string{
		"push: building the bundle layer from " + dir,
		"push",
		"push: writing manifest " + tag.Context().String() + ":" + goldenTag,
		"push: writing tag " + tag.String(),
	}
	if strings.Join(rec.phases, "\n") != strings.Join(wantPhases, "\n") || rec.totals["push"] != blobs || rec.added != blobs || rec.done != 1 {
		t.Errorf("phases %q, %d of %d bytes reported (want %d), %d done; want phases %q, the push phase counting every blob byte", rec.phases, rec.added, rec.totals["push"], blobs, rec.done, wantPhases)
	}
	want := []string{
		"pushed manifest " + tag.Context().String() + "@" + goldenDigest,
		"tagged " + tag.Context().String() + ":" + goldenTag + " (" + goldenDigest + ")",
		"tagged " + tag.String() + " (" + goldenDigest + ")",
	}
	if strings.Join(rec.logs, "\n") != strings.Join(want, "\n") {
		t.Errorf("logs:\n%s\nwant:\n%s", strings.Join(rec.logs, "\n"), strings.Join(want, "\n"))
	}
}

// A tag of the shape of another manifest's bookkeeping tag (its .imgpkg
// tag, a bundle's locations tag, a cosign tag) is refused before anything
// is written: pushed over, it would leave that manifest unprotected or
// name this image as its locations or signature. The bundle's own .imgpkg
// tag, and an ordinary tag ending in .imgpkg, are pushed.
func TestPushRefusesAnotherManifestsBookkeepingTag(t *testing.T) {
	reg := testregistry.NewGGCR(t)
	otherHex := strings.Repeat("ab", 32)
	for _, bad := range []string{
		"sha256-" + otherHex + ".imgpkg",
		"sha256-" + otherHex + ".image-locations.imgpkg",
		"sha256-" + otherHex + ".sig",
		"sha256-" + otherHex, // the referrers tag schema's index
	} {
		tag, err := name.NewTag(reg.Repo("team/basic") + ":" + bad)
		if err != nil {
			t.Fatal(err)
		}
		_, err = push.Push(context.Background(), tag, []string{copyGolden(t)}, push.Options{
			Build:  bundle.BuildOptions{Bundle: true},
			Remote: reg.RemoteOptions(t),
		})
		if err == nil || !strings.Contains(err.Error(), "bookkeeping tag") || !strings.Contains(err.Error(), bad) {
			t.Errorf("push to %s: %v; want a refusal naming the tag", bad, err)
		}
		// --to-tar: the archive would carry it as its original tag,
		// which import refuses; refused before any download.
		out := filepath.Join(t.TempDir(), "release.tar.zst")
		_, err = push.ToArchive(context.Background(), tag.String(), []string{copyGolden(t)}, push.ArchiveOptions{
			Build: bundle.BuildOptions{Bundle: true},
			Path:  out,
		})
		if err == nil || !strings.Contains(err.Error(), "bookkeeping tag") {
			t.Errorf("push --to-tar to %s: %v; want a refusal naming the tag", bad, err)
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Errorf("push --to-tar to %s left %s (%v)", bad, out, err)
		}
	}
	if puts := manifestPuts(reg.Requests()); len(puts) != 0 {
		t.Errorf("refused pushes wrote manifests: %v", puts)
	}
	for _, good := range []string{goldenTag, "v1.imgpkg"} {
		tag, _ := name.NewTag(reg.Repo("team/basic") + ":" + good)
		if _, err := push.Push(context.Background(), tag, []string{copyGolden(t)}, push.Options{
			Build:  bundle.BuildOptions{Bundle: true},
			Remote: reg.RemoteOptions(t),
		}); err != nil {
			t.Errorf("push to %s: %v", good, err)
		}
	}
}

// imgpkg's push never reads .imgpkg/bundle.yml, so ferry pushes one it
// cannot read too (here a field it does not know) and says so through the
// reporter, with --to-tar as without; the build's bytes stay out of the
// reporter, whose one phase is the upload or the export.
func TestPushWarnsAboutABundleYMLItCannotRead(t *testing.T) {
	reg := testregistry.NewGGCR(t)
	dir := t.TempDir()
	for rel, content := range map[string]string{
		".imgpkg/images.yml": "apiVersion: imgpkg.carvel.dev/v1alpha1\nkind: ImagesLock\n",
		".imgpkg/bundle.yml": "apiVersion: imgpkg.carvel.dev/v1alpha1\nkind: Bundle\nmetadata:\n  name: app\n  version: \"1.0\"\n",
	} {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// phases is how many the push or export reports itself: Build's own
	// (its hashing) would be more.
	warned := func(t *testing.T, rec *recorder, phases int) {
		t.Helper()
		n := 0
		for _, l := range rec.logs {
			if strings.Contains(l, filepath.Join(dir, ".imgpkg", "bundle.yml")) && strings.Contains(l, `unknown field "version"`) {
				n++
			}
		}
		if n != 1 || len(rec.phases) != phases {
			t.Errorf("phases %v, logs %q; want %d phases and one warning naming bundle.yml and its unknown field", rec.phases, rec.logs, phases)
		}
	}
	tag, err := name.NewTag(reg.Repo("team/app") + ":v1")
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	if _, err := push.Push(context.Background(), tag, []string{dir}, push.Options{
		Build: bundle.BuildOptions{Bundle: true}, Remote: reg.RemoteOptions(t), Reporter: rec,
	}); err != nil {
		t.Fatal(err)
	}
	warned(t, rec, 4) // building, the blobs, the manifest, the tag

	rec = &recorder{}
	if _, err := push.ToArchive(context.Background(), tag.String(), []string{dir}, push.ArchiveOptions{
		Build:  bundle.BuildOptions{Bundle: true},
		Export: relocate.ExportOptions{Reporter: rec},
		Path:   filepath.Join(t.TempDir(), "release.tar.zst"),
	}); err != nil {
		t.Fatal(err)
	}
	warned(t, rec, 1)
}

// An archive written inside a directory it was built from went into the
// layer of the next push of that directory, which grew with each. It is
// refused, unless its directory is left out of the layer.
func TestArchiveInsideAnInputDirectoryIsRefused(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"out", ".git", "sub/dist"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	outside := t.TempDir()
	link := filepath.Join(outside, "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(outside, "file.yml")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The archive is written where a link at its name leads
	// (atomicfile.Target): a link outside leading inside is refused, a
	// link inside leading outside is not.
	intoDir, outOfDir := filepath.Join(outside, "into.tar.zst"), filepath.Join(dir, "out", "away.tar.zst")
	for link, to := range map[string]string{intoDir: filepath.Join(dir, "o.tar.zst"), outOfDir: filepath.Join(outside, "away.tar.zst")} {
		if err := os.WriteFile(to, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(to, link); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name       string
		archive    string
		dirs       []string
		exclusions []string
		refused    bool
	}{
		{name: "at the root", archive: filepath.Join(dir, "o.tar.zst"), dirs: []string{dir}, refused: true},
		{name: "in a subdirectory", archive: filepath.Join(dir, "out", "o.tar.zst"), dirs: []string{outside, dir}, refused: true},
		{name: "through a link", archive: filepath.Join(link, "out", "o.tar.zst"), dirs: []string{dir}, refused: true},
		{name: "input named through a link", archive: filepath.Join(dir, "o.tar.zst"), dirs: []string{link}, refused: true},
		{name: "exclusions given replace .git", archive: filepath.Join(dir, ".git", "o.tar.zst"), dirs: []string{dir}, exclusions: []string{"out"}, refused: true},
		{name: "outside", archive: filepath.Join(outside, "o.tar.zst"), dirs: []string{dir}},
		{name: "a link outside leading inside", archive: intoDir, dirs: []string{dir}, refused: true},
		{name: "a link inside leading outside", archive: outOfDir, dirs: []string{dir}},
		{name: "beside a file given as an input", archive: filepath.Join(outside, "o.tar.zst"), dirs: []string{file}},
		{name: "in .git, left out by default", archive: filepath.Join(dir, ".git", "o.tar.zst"), dirs: []string{dir}},
		{name: "in an excluded directory", archive: filepath.Join(dir, "out", "o.tar.zst"), dirs: []string{dir}, exclusions: []string{"out"}},
		{name: "below an excluded directory", archive: filepath.Join(dir, "sub", "dist", "o.tar.zst"), dirs: []string{dir}, exclusions: []string{"sub"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := push.CheckArchiveOutsideInputs(tc.archive, tc.dirs, tc.exclusions)
			switch {
			case !tc.refused && err != nil:
				t.Errorf("archive %s, inputs %v: %v, want it accepted", tc.archive, tc.dirs, err)
			case tc.refused && (err == nil || !strings.Contains(err.Error(), tc.archive) || !strings.Contains(err.Error(), "inside the input directory")):
				t.Errorf("archive %s, inputs %v: %v, want it refused, naming it and the directory", tc.archive, tc.dirs, err)
			}
		})
	}
	// ToArchive itself refuses it, before anything is written.
	golden := copyGolden(t)
	archive := filepath.Join(golden, "o.tar.zst")
	before, err := os.ReadDir(golden)
	if err != nil {
		t.Fatal(err)
	}
	_, err = push.ToArchive(context.Background(), "127.0.0.1:1/b:1", []string{golden}, push.ArchiveOptions{
		Build: bundle.BuildOptions{Bundle: true},
		Path:  archive,
	})
	if err == nil || !strings.Contains(err.Error(), "inside the input directory") {
		t.Errorf("ToArchive into its input directory: %v, want it refused", err)
	}
	if after, err := os.ReadDir(golden); err != nil || len(after) != len(before) {
		t.Errorf("ToArchive refused left %d entries in its input, want the %d it had (%v)", len(after), len(before), err)
	}
}

// A push whose --lock-output directory another writer keeps locked (a
// ferry stopped with ^Z) says that it waits for that lock, naming the
// directory, rather than hanging without a word; once the lock is
// released it pushes and writes the lock file.
func TestPushSaysItWaitsForALockedLockOutputDirectory(t *testing.T) {
	reg := testregistry.NewGGCR(t)
	tag, err := name.NewTag(reg.Repo("team/basic") + ":v1")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	lockPath := filepath.Join(dir, "bundle.lock.yml")
	rec := &recorder{}
	lockwait.Check(t, dir, rec.logged, func() error {
		_, err := push.Push(context.Background(), tag, []string{copyGolden(t)}, push.Options{
			Build:      bundle.BuildOptions{Bundle: true},
			LockOutput: lockPath,
			Remote:     reg.RemoteOptions(t),
			Reporter:   rec,
		})
		return err
	})
	if _, err := os.Stat(lockPath); err != nil {
		t.Errorf("no lock output: %v", err)
	}
}
