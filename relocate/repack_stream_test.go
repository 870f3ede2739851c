package relocate

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/fixtures"
	"github.com/ferry-dev/ferry/fixtures/golden"
)

// A plan of a stream reads each blob once, in the plan's order; the end of
// the stream is checked as the last blob's last bytes are read, so that a
// stream cut after its last blob fails there rather than going unseen.
func TestPlanArchiveOfAStream(t *testing.T) {
	path, err := golden.WriteFile(t.TempDir(), "basic.imgpkg.tar")
	if err != nil {
		t.Fatal(err)
	}
	plain, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	gz := fixtures.Gzip(plain)
	readAll := func(in []byte) error {
		// A pipe: no random access.
		p, err := PlanArchive(io.MultiReader(bytes.NewReader(in)))
		if err != nil {
			return err
		}
		if !p.sequential || len(p.Blobs) != 4 {
			t.Fatalf("plan of a stream: sequential %v, %d blobs, want 4", p.sequential, len(p.Blobs))
		}
		for _, b := range p.Blobs {
			rc, err := p.local[b.Digest]()
			if err != nil {
				return err
			}
			_, err = io.CopyN(io.Discard, rc, b.Size)
			rc.Close()
			if err != nil {
				return err
			}
		}
		if _, err := p.local[p.Blobs[0].Digest](); err == nil || !strings.Contains(err.Error(), "cannot be read again") {
			t.Errorf("a blob read twice from a stream: %v", err)
		}
		return nil
	}
	if err := readAll(gz); err != nil {
		t.Fatalf("the gzip'd tarball: %v", err)
	}
	err = readAll(gz[:len(gz)-20])
	if err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("the gzip'd tarball cut short: %v, want it named truncated", err)
	}
}

// A bundle layer that does not match its digest is named as such by a
// re-pack, from a file and from a stream, as verify names it: the lock
// check must not answer first with what the damaged bytes say (a gzip
// error, or an image "missing" because a digest in images.yml changed).
func TestRepackNamesADamagedBundleLayerByItsDigest(t *testing.T) {
	gold, err := golden.ReadFile("basic.imgpkg.tar")
	if err != nil {
		t.Fatal(err)
	}
	const layer = "9b0ff7cbb64fc95778032e3957067084a64c3bed42efcf0519f202e2a102392b" // the bundle's
	tr := tar.NewReader(bytes.NewReader(gold))
	var body []byte
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("no entry for the bundle's layer: %v", err)
		}
		if h.Name == "sha256-"+layer+".tar.gz" {
			body, _ = io.ReadAll(tr)
			break
		}
	}
	at := bytes.Index(gold, body)
	if at < 0 || len(body) < 100 {
		t.Fatal("the bundle's layer is not in the tarball as it is")
	}
	bad := bytes.Clone(gold)
	bad[at+len(body)/2] ^= 0x01
	want := "want sha256:" + layer
	if _, err := PlanArchive(bytes.NewReader(bad)); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("PlanArchive of a file: %v, want an error saying %q", err, want)
	}
	p, err := PlanArchive(io.MultiReader(bytes.NewReader(bad)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Export(context.Background(), p, io.Discard, ExportOptions{}); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Export of a stream: %v, want an error saying %q", err, want)
	}
}
