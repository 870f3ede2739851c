package relocate_test

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferry-dev/ferry/relocate"
)

// startHook is a recorder that runs hook once, when the upload phase
// starts: after the probe read the destination's tags, before the commit.
type startHook struct {
	impRecorder
	once sync.Once // Reporters may be called from any goroutine
	hook func()
}

func (r *startHook) Start(phase string, total int64) {
	r.impRecorder.Start(phase, total)
	r.once.Do(func() {
		if r.hook != nil {
			r.hook()
		}
	})
}

// Another import writes the original tag while this one uploads: the probe
// saw no tag, but the commit replaces the other's, and the result says so
// (a move, from the other's digest) instead of a create, with a warning.
func TestImportSaysWhatTheRootTagPointedAtWhenItCommits(t *testing.T) {
	src := impNewSource(t, 0)
	archive := src.export(t)
	dst := impNewDest(t, false)
	root := impMust(src.root.Digest())

	other := impMust(random.Image(512, 1))
	otherDigest := impMust(other.Digest())
	res, rec := importWhileAnotherWrites(t, archive, dst, other, nil)
	last := res.Tags[len(res.Tags)-1]
	want := relocate.TagResult{Tag: "v1", Action: relocate.TagMove, Digest: root.String(), Previous: otherDigest.String()}
	if last != want {
		t.Errorf("root tag result %+v, want %+v", last, want)
	}
	if got := dst.tags(t)["v1"]; got != root.String() {
		t.Errorf("v1 points at %s, want the root %s", got, root)
	}
	warned := false
	for _, l := range rec.logs {
		warned = warned || (strings.HasPrefix(l, "warning:") && strings.Contains(l, ":v1 changed") && strings.Contains(l, otherDigest.String()))
	}
	if !warned {
		t.Errorf("no warning says v1 changed during the import: %v", rec.logs)
	}
}

// The other writer imported the same bundle: the tag is already right at
// the commit, which writes nothing and says so.
func TestImportLeavesARootTagAnotherImportAlreadyCommitted(t *testing.T) {
	src := impNewSource(t, 0)
	archive := src.export(t)
	dst := impNewDest(t, false)
	root := impMust(src.root.Digest())

	// Its own PUT of v1 is not the import's.
	res, _ := importWhileAnotherWrites(t, archive, dst, src.root, dst.reg.ResetCounts)
	last := res.Tags[len(res.Tags)-1]
	want := relocate.TagResult{Tag: "v1", Action: relocate.TagUnchanged, Digest: root.String(), Previous: root.String()}
	if last != want {
		t.Errorf("root tag result %+v, want %+v", last, want)
	}
	for _, p := range impManifestPuts(dst.reg.Requests()) {
		if p == "v1" {
			t.Errorf("v1 was PUT again over the same digest")
		}
	}
}

// importWhileAnotherWrites imports archive into dst while another writer
// tags img as v1 there once the import has started (then calls after, if
// given); it returns the import's result and what it reported.
func importWhileAnotherWrites(t *testing.T, archive []byte, dst *impDest, img v1.Image, after func()) (*relocate.ImportResult, *startHook) {
	t.Helper()
	rec := &startHook{hook: func() {
		ref := impMust(name.NewTag(dst.reg.Repo("dst/imported") + ":v1"))
		if err := remote.Write(ref, img, dst.reg.RemoteOptions(t)...); err != nil {
			t.Errorf("the other writer: %v", err)
		}
		if after != nil {
			after()
		}
	}}
	opts := dst.options(t)
	opts.Reporter = rec
	res, err := relocate.Import(context.Background(), bytes.NewReader(archive), dst.repo, opts)
	if err != nil {
		t.Fatal(err)
	}
	return res, rec
}
