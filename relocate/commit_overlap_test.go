package relocate_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/internal/testregistry"
	"github.com/ferry-dev/ferry/relocate"
)

// A mover of the commit phase: an import from a file or a pipe, or a copy,
// of src into dst with at most conc requests at once.
type ovMover struct {
	name string
	run  func(t *testing.T, src *impSource, dst *impDest, conc int) (*relocate.ImportResult, error)
}

func ovImport(via impVia) ovMover {
	return ovMover{via.name, func(t *testing.T, src *impSource, dst *impDest, conc int) (*relocate.ImportResult, error) {
		opts := dst.options(t)
		opts.Concurrency = conc
		return relocate.Import(context.Background(), via.open(src.export(t)), dst.repo, opts)
	}}
}

var ovCopy = ovMover{"copy", func(t *testing.T, src *impSource, dst *impDest, conc int) (*relocate.ImportResult, error) {
	opts := cpOptions(t, dst)
	opts.Concurrency = conc
	return relocate.Copy(context.Background(), cpPlan(t, src), dst.repo, opts)
}}

var ovMovers = []ovMover{ovImport(impVias[0]), ovImport(impVias[1]), ovCopy}

// Uploads do not wait for the destination to answer about every blob: each
// blob no manifest vouches for is asked about once, ahead of its upload
// (headAhead), and an upload starts as soon as its own blob's answer is in.
// With every blob's answer slowed down and one request at a time, the
// first blob is uploaded before the last is answered; an import that
// asked about every blob before sending any would fail this.
func TestImportAndCopyUploadWithoutWaitingForEveryBlobsAnswer(t *testing.T) {
	for _, m := range ovMovers {
		t.Run(m.name, func(t *testing.T) {
			src := impNewSource(t, 0)
			dst := impNewDest(t, true)
			dst.proxy.SetRules(testregistry.Rule{Method: http.MethodHead, Kind: testregistry.KindBlob, Fault: testregistry.FaultStall, Delay: 150 * time.Millisecond})
			if _, err := m.run(t, src, dst, 1); err != nil {
				t.Fatal(err)
			}
			blobs := src.blobs(t)
			asked := map[string]int{}
			firstUpload, lastAsked := -1, -1
			for i, r := range dst.reg.Requests() {
				switch {
				case r.Method == http.MethodHead && r.Kind == testregistry.KindBlob:
					d, err := v1.NewHash(r.Ref)
					if _, ours := blobs[d]; err != nil || !ours {
						continue // a locations image's blob
					}
					asked[r.Ref]++
					lastAsked = i
				case r.Method == http.MethodPost && r.Kind == testregistry.KindUpload && firstUpload < 0:
					firstUpload = i
				}
			}
			for d := range blobs {
				if n := asked[d.String()]; n != 1 {
					t.Errorf("blob %s asked about %d times, want once", d, n)
				}
			}
			if firstUpload < 0 || firstUpload > lastAsked {
				t.Errorf("first upload at request %d, after the last blob was asked about (request %d): the uploads waited for every answer", firstUpload, lastAsked)
			}
		})
	}
}

// From a file or in a copy the bundles' locks are at hand from the start:
// the locations images' configs and layers go up with the other blobs, so
// nothing but manifests and tags is left once the last blob is in.
func TestImportAndCopyUploadLocationsBlobsBeforeAnyManifest(t *testing.T) {
	for _, m := range []ovMover{ovImport(impVias[0]), ovCopy} {
		t.Run(m.name, func(t *testing.T) {
			src := impNewSource(t, 0)
			dst := impNewDest(t, false)
			if _, err := m.run(t, src, dst, 0); err != nil {
				t.Fatal(err)
			}
			committed := 0
			for _, r := range dst.reg.Requests() {
				if r.Method == http.MethodPut && r.Kind == testregistry.KindManifest {
					break
				}
				if r.Method == http.MethodPut && r.Kind == testregistry.KindUpload && r.Status == http.StatusCreated {
					committed++
				}
			}
			if want := len(src.blobs(t)) + len(src.locationsBlobs(t)); committed != want {
				t.Errorf("%d blobs committed before the first manifest PUT, want %d (the archive's and the locations images')", committed, want)
			}
		})
	}
}

// A run that failed at the locations tags left their images' blobs in the
// destination: the re-run finds them and counts them as present, so that
// what it reports adds up to everything the repository holds.
func TestRerunCountsLocationsBlobsAlreadyThereAsPresent(t *testing.T) {
	for _, m := range ovMovers {
		t.Run(m.name, func(t *testing.T) {
			src := impNewSource(t, 0)
			dst := impNewDest(t, true)
			dst.proxy.SetRules(impRefuseLocationsTags)
			if _, err := m.run(t, src, dst, 0); err == nil {
				t.Fatal("the first run succeeded through a registry refusing locations tags")
			}
			locs := src.locationsBlobs(t)
			for d := range locs {
				if !dst.hasBlob(t, d) {
					t.Fatalf("locations blob %s not in the destination after the first run; the test does not exercise the re-run's count", d)
				}
			}
			dst.proxy.SetRules()
			res, err := m.run(t, src, dst, 0)
			if err != nil {
				t.Fatalf("re-run: %v", err)
			}
			want := len(src.blobs(t)) + len(locs)
			if res.BlobsUploaded != 0 || res.BlobsPresent != want {
				t.Errorf("re-run: %d blobs uploaded, %d present; want 0 and %d (the archive's and the locations images')", res.BlobsUploaded, res.BlobsPresent, want)
			}
		})
	}
}
