package relocate_test

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferry-dev/ferry/relocate"
)

// countingArchive is an archive file as an import sees one (random access
// with a size) that counts every byte read from it, front to back or at
// an offset (uploads read at random, several at once).
type countingArchive struct {
	r *bytes.Reader
	n atomic.Int64
}

func (c *countingArchive) Read(p []byte) (int, error) {
	k, err := c.r.Read(p)
	c.n.Add(int64(k))
	return k, err
}

func (c *countingArchive) ReadAt(p []byte, off int64) (int, error) {
	k, err := c.r.ReadAt(p, off)
	c.n.Add(int64(k))
	return k, err
}

func (c *countingArchive) Size() int64 { return c.r.Size() }

var _ io.ReaderAt = (*countingArchive)(nil)

// TestImportFromAFileReadsOnlyWhatTheDestinationLacks: an import from a
// file reads the head, the end and the blobs the destination lacks, not
// those it holds. The archive is mostly one random (incompressible) layer
// of app2's: read into an empty repository, it is read; with app2 already
// at the destination (a resumed import, in effect), the rest is imported
// without reading it; imported again, the archive is barely read at all.
func TestImportFromAFileReadsOnlyWhatTheDestinationLacks(t *testing.T) {
	const big = 2 << 20
	src := impNewSource(t, big)
	arch := src.export(t)
	ctx := context.Background()
	importReading := func(dst *impDest) int64 {
		t.Helper()
		in := &countingArchive{r: bytes.NewReader(arch)}
		if _, err := relocate.Import(ctx, in, dst.repo, dst.options(t)); err != nil {
			t.Fatal(err)
		}
		return in.n.Load()
	}

	if n := importReading(impNewDest(t, false)); n < big {
		t.Fatalf("an import into an empty repository read %d bytes of the %d-byte archive, less than its big layer (%d): the test proves nothing", n, len(arch), big)
	}

	dst := impNewDest(t, false)
	d := impMust(src.app2.Digest())
	if err := remote.Write(dst.repo.Digest(d.String()), src.app2, dst.ep.RemoteOptions(t)...); err != nil {
		t.Fatal(err)
	}
	if n := importReading(dst); n >= big {
		t.Errorf("with app2 at the destination, the import read %d bytes of the %d-byte archive: its big layer (%d) among them", n, len(arch), big)
	}
	if d := impDiffTags(dst.tags(t), src.wantTags(t)); d != "" {
		t.Errorf("destination tags differ:\n%s", d)
	}
	if n, most := importReading(dst), int64(len(arch)/20); n > most {
		t.Errorf("imported again, the import read %d bytes of the %d-byte archive, want at most %d (the head and the end)", n, len(arch), most)
	}
}

// TestImportPhasesAreNamedForItsOperation: an import run by copy --tar
// (Operation "copy") names its progress phases after the copy, from a
// file and from a stream, as its errors do.
func TestImportPhasesAreNamedForItsOperation(t *testing.T) {
	src := impNewSource(t, 0)
	arch := src.export(t)
	for _, via := range impVias {
		t.Run(via.name, func(t *testing.T) {
			dst := impNewDest(t, false)
			rec := &impRecorder{}
			opts := dst.options(t)
			opts.Reporter, opts.Operation = rec, "copy"
			if _, err := relocate.Import(context.Background(), via.open(arch), dst.repo, opts); err != nil {
				t.Fatal(err)
			}
			if len(rec.started) == 0 {
				t.Fatal("no phase started")
			}
			for _, p := range rec.started {
				if !strings.HasPrefix(p, "copy") {
					t.Errorf("phases %q; want each named for the copy", rec.started)
					break
				}
			}
		})
	}
}
