package relocate

import (
	"bytes"
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
