package e2e

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

func TestInspectListsImagesAndImportTags(t *testing.T) {
	f, archive := exported(t)
	r := mustFerry(t, "inspect", archive, "--json")
	var inv struct {
		Images []struct {
			Digest, Role, OriginalRef, Tag string
			Platforms                      []string
		}
		Blobs      int
		ImportTags []string
	}
	if err := json.Unmarshal([]byte(r.Stdout), &inv); err != nil {
		t.Fatalf("--json: %v\n%s", err, r)
	}
	if len(inv.Images) != 6 || inv.Images[0].Digest != f.rootDigest || inv.Images[0].Role != "bundle" || inv.Images[0].Tag != "v1" {
		t.Fatalf("want the root bundle first among 6 images: %+v", inv.Images)
	}
	if inv.Blobs != len(f.allBlobs) {
		t.Fatalf("inspect counts %d blobs, the source has %d", inv.Blobs, len(f.allBlobs))
	}
	for _, im := range inv.Images {
		if im.Digest == f.index.DigestStr() && strings.Join(im.Platforms, ",") != "linux/amd64,linux/arm64" {
			t.Errorf("index platforms %v", im.Platforms)
		}
	}
	want := f.wantTags(t)
	for _, tag := range inv.ImportTags {
		if strings.HasPrefix(tag, "sha256-<") {
			continue
		}
		if _, ok := want[tag]; !ok {
			t.Errorf("inspect lists tag %s, which an import does not write", tag)
		}
	}
	if inv.ImportTags[len(inv.ImportTags)-1] != "v1" {
		t.Errorf("the original tag must be listed last: %v", inv.ImportTags)
	}

	// Human output names the roles and the original references, a
	// reference by digest with its digest abbreviated as the DIGEST
	// column's (-v: whole).
	r = mustFerry(t, "inspect", archive)
	innerShort := f.inner.Context().String() + "@" + f.inner.DigestStr()[:len("sha256:")+12] + " "
	for _, s := range []string{"nested-bundle", innerShort, "linux/arm64", "v1"} {
		if !strings.Contains(r.Stdout, s) {
			t.Errorf("inspect output lacks %q:\n%s", s, r.Stdout)
		}
	}
	if r = mustFerry(t, "inspect", archive, "-v"); !strings.Contains(r.Stdout, f.inner.String()) {
		t.Errorf("inspect -v output lacks %q:\n%s", f.inner.String(), r.Stdout)
	}
}

func TestInspectReadsOnlyTheHead(t *testing.T) {
	f, archive := exported(t)
	raw, _ := os.ReadFile(archive)
	zr, _ := zstd.NewReader(bytes.NewReader(raw))
	plain, _ := io.ReadAll(zr)
	zr.Close()
	// Find where the last manifest entry ends: everything after is configs
	// and layers, which inspect must never need.
	cr := &countingReader{r: bytes.NewReader(plain)}
	tr := tar.NewReader(cr)
	headEnd := int64(0)
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		io.Copy(io.Discard, tr)
		if f.allManifests["sha256:"+strings.TrimPrefix(h.Name, "blobs/sha256/")] {
			headEnd = (cr.n + 511) / 512 * 512
		}
	}
	if headEnd == 0 || headEnd >= int64(len(plain))-1024 {
		t.Fatalf("could not find the head's end (%d of %d)", headEnd, len(plain))
	}
	cut := plain[:headEnd]
	r := ferryIn(t, nil, bytes.NewReader(cut), "inspect", "-")
	if r.Code != 0 {
		t.Fatalf("inspect of an archive cut right after its head: %s", r)
	}
	p := filepath.Join(t.TempDir(), "cut.tar")
	os.WriteFile(p, cut, 0o644)
	if r := ferry(t, nil, "verify", p); r.Code != 1 || !strings.Contains(r.Stderr, "truncated") {
		t.Fatalf("verify of a truncated archive: %s", r)
	}
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func TestVerifyGoodAndDamagedArchives(t *testing.T) {
	_, archive := exported(t)
	r := mustFerry(t, "verify", archive)
	if !strings.Contains(r.Stderr, "matches") {
		t.Fatalf("verify does not report the .sha256 match: %s", r)
	}

	dir := t.TempDir()
	// A flipped byte in a blob (behind the zstd layer: re-compress the damaged tar).
	bad := filepath.Join(dir, "flipped.tar.zst")
	plain := corruptPlainTar(t, archive)
	var buf bytes.Buffer
	zw, _ := zstd.NewWriter(&buf)
	zw.Write(plain)
	zw.Close()
	os.WriteFile(bad, buf.Bytes(), 0o644)
	if r := ferry(t, nil, "verify", bad); r.Code != 1 || !strings.Contains(r.Stderr, "blobs/sha256/") {
		t.Fatalf("verify of a flipped blob must name the entry: %s", r)
	}

	// A sidecar that does not match.
	raw, _ := os.ReadFile(archive)
	copyPath := filepath.Join(dir, "copy.tar.zst")
	os.WriteFile(copyPath, raw, 0o644)
	os.WriteFile(copyPath+".sha256", []byte(strings.Repeat("0", 64)+"  copy.tar.zst\n"), 0o644)
	if r := ferry(t, nil, "verify", copyPath); r.Code != 1 || !strings.Contains(r.Stderr, "copy.tar.zst.sha256 says") {
		t.Fatalf("verify with a wrong .sha256 must name the sidecar: %s", r)
	}
	// A flipped byte in the compressed stream: zstd's checksum or the tar catches it.
	raw[len(raw)/2] ^= 0x55
	os.WriteFile(copyPath, raw, 0o644)
	os.Remove(copyPath + ".sha256")
	if r := ferry(t, nil, "verify", copyPath); r.Code != 1 || !strings.Contains(r.Stderr, "verify "+copyPath+":") {
		t.Fatalf("verify of a damaged stream must fail naming the archive: %s", r)
	}
}
