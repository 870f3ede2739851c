package relocate_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/archive"
	"github.com/ferry-dev/ferry/internal/inventory"
	"github.com/ferry-dev/ferry/internal/progress"
	"github.com/ferry-dev/ferry/internal/registry"
	"github.com/ferry-dev/ferry/internal/testregistry"
	"github.com/ferry-dev/ferry/relocate"
)

// TestSinceABaseCutShortOrDamaged: export --since believes a base archive
// holds a blob only when the base shows it, as verify --since does. Cut
// short past its head (which still lists every blob), it has no seek table
// though its index.json declares one: refused, named, whatever checksum
// file lies beside it. Recompressed with gzip (no seek table of its own),
// it is read whole: whole, it holds every blob; cut short, it is refused.
// The sum recorded is the file's as it is, computed: a checksum file that
// gives another (the file damaged after it was written, four bytes
// overwritten inside a blob) stops the export; without one, such damage,
// which leaves the structure whole, is recorded under the damaged file's
// own sum (docs/inventory.md: the import's check at the destination is
// what vouches for the bytes).
func TestSinceABaseCutShortOrDamaged(t *testing.T) {
	w := newDeltaWorld(t, testregistry.NewGGCR)
	full := impMust(os.ReadFile(w.full))
	gz := impGzip(t, impZstdToTar(t, full))
	damaged := bytes.Clone(full)
	copy(damaged[len(damaged)/2:], []byte{0xde, 0xad, 0xbe, 0xef})
	stale := fileSum(full) + "  %s\n"
	for _, tc := range []struct {
		name    string
		base    []byte
		sidecar string // a format taking the file's name; "" for none
		want    string // "" when the base holds every blob
	}{
		{"whole", full, "", ""},
		{"whole, its checksum file", full, stale, ""},
		{"cut short", full[:len(full)/2], "", "seek table"},
		{"head only", full[:headEnd(t, full)], "", "seek table"},
		{"cut short, a stale checksum file", full[:len(full)/2], stale, "seek table"},
		{"damaged, its checksum file", damaged, stale, "changed since it was written"},
		{"damaged, no checksum file", damaged, "", ""},
		{"gzip, whole", gz, "", ""},
		{"gzip, cut short", gz[:len(gz)/2], "", "truncated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := filepath.Join(t.TempDir(), "v1.tar.zst")
			if err := os.WriteFile(base, tc.base, 0o644); err != nil {
				t.Fatal(err)
			}
			if tc.sidecar != "" {
				if err := os.WriteFile(base+".sha256", fmt.Appendf(nil, tc.sidecar, "v1.tar.zst"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			// The head is whole: what it lists is all the old reading went by.
			if _, err := archive.Inspect(bytes.NewReader(tc.base)); err != nil {
				t.Fatalf("the base's head cannot be read (%v): the test proves nothing", err)
			}
			s, err := relocate.ReadSince(t.Context(), base, nil)
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), base) || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("ReadSince: %v; want an error naming %s, %q", err, base, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(s.Blobs) != len(w.src.blobs(t)) {
				t.Errorf("the base holds %d blobs, want every one of the %d", len(s.Blobs), len(w.src.blobs(t)))
			}
			for d := range w.src.blobs(t) {
				if _, ok := s.Blobs[d]; !ok {
					t.Errorf("blob %s not held", d)
				}
			}
			if s.Base.SHA256 != fileSum(tc.base) {
				t.Errorf("sum recorded %s, the file's is %s", s.Base.SHA256, fileSum(tc.base))
			}
		})
	}
}

// headEnd returns how many bytes of the archive a reader of its head
// needs: the shortest prefix archive.Inspect reads, found by halving.
func headEnd(t *testing.T, full []byte) int {
	t.Helper()
	lo, hi := 0, len(full)
	for lo < hi {
		mid := (lo + hi) / 2
		if _, err := archive.Inspect(bytes.NewReader(full[:mid])); err == nil {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

// TestSinceAnInventoryOfTwoRegistries: both registries hold the release
// (R1 in dst/a, R2 in dst/app). An inventory of both records, for each
// left-out blob, R1's repository, the first that holds it; an import into
// a new repository of R2 must mount them from R2's, which the inventory
// also walked. So too with one inventory of each registry given in turn.
func TestSinceAnInventoryOfTwoRegistries(t *testing.T) {
	w := newDeltaWorld(t, testregistry.NewDistribution)
	a := impMust(name.NewRepository(w.reg.Repo("dst/a")))
	for _, inTurn := range []bool{false, true} {
		t.Run(fmt.Sprintf("in turn %v", inTurn), func(t *testing.T) {
			r2 := testregistry.NewDistribution(t)
			dst := &impDest{reg: r2, ep: &r2.Endpoint, repo: impMust(name.NewRepository(r2.Repo("dst/imported")))}
			app := impMust(name.NewRepository(r2.Repo("dst/app")))
			f := impMust(os.Open(w.full))
			defer f.Close()
			if _, err := relocate.Import(context.Background(), f, app, dst.options(t)); err != nil {
				t.Fatal(err)
			}
			since := []string{w.inventory(t, "have2.json", a, app)}
			if inTurn {
				since = []string{w.have, w.inventory(t, "r2.json", app)}
			}
			delta, ex := w.delta(t, since...)
			if len(ex.Delta.LeftOut) != len(w.src.blobs(t)) {
				t.Fatalf("%d blobs left out, want every one of the %d", len(ex.Delta.LeftOut), len(w.src.blobs(t)))
			}
			for _, l := range ex.Delta.LeftOut {
				if l.Repository != a.Name() {
					t.Fatalf("%s recorded in %q, want %s (the first holder): the test proves nothing", l.Digest, l.Repository, a)
				}
			}
			res, err := relocate.Import(context.Background(), bytes.NewReader(delta), dst.repo, dst.options(t))
			if err != nil {
				t.Fatalf("import into %s: %v", dst.repo, err)
			}
			if res.LeftOutMounted != len(ex.Delta.LeftOut) {
				t.Errorf("%d of %d left-out blobs mounted", res.LeftOutMounted, len(ex.Delta.LeftOut))
			}
			if d := impDiffTags(dst.tags(t), w.src.wantTags(t)); d != "" {
				t.Errorf("destination tags differ:\n%s", d)
			}
			for d := range w.src.blobs(t) {
				if !dst.hasBlob(t, d) {
					t.Errorf("blob %s not in %s", d, dst.repo)
				}
			}
		})
	}
}

// TestDeltaImportRefusalSinceAnInventory: the import refuses a delta whose
// left-out blobs the destination lacks; expected from an inventory, the
// error does not tell to import the inventory first, and gives the size
// as every other message does.
func TestDeltaImportRefusalSinceAnInventory(t *testing.T) {
	w := newDeltaWorld(t, testregistry.NewGGCR)
	delta, ex := w.delta(t, w.have)
	size := leftOutSize(ex.Delta)
	other := impNewDest(t, false)
	_, err := relocate.Import(context.Background(), bytes.NewReader(delta), other.repo, other.options(t))
	if err == nil {
		t.Fatal("the import of a delta into a registry that holds none of its left-out blobs succeeded")
	}
	msg := err.Error()
	if !strings.Contains(msg, "does not hold") || !strings.Contains(msg, "have.json") || !strings.Contains(msg, progress.Bytes(size)) {
		t.Errorf("import: %v; want the missing blobs, %s, and the inventory named", err, progress.Bytes(size))
	}
	if strings.Contains(msg, "import that first") || strings.Contains(msg, fmt.Sprintf("%d bytes", size)) {
		t.Errorf("import: %v; an inventory is not imported, and a size is humanised", err)
	}
	if tags := other.tags(t); len(tags) != 0 {
		t.Errorf("tags written: %v", tags)
	}
}

// TestSinceAnInventoryWithItsMediaTypeLast: the members of an inventory
// may come in any order; one whose mediaType comes after a long list of
// repositories is an inventory all the same. JSON of another kind is not a
// base, as a file neither archive nor inventory is not.
func TestSinceAnInventoryWithItsMediaTypeLast(t *testing.T) {
	dir := t.TempDir()
	var items []string
	want := map[v1.Hash]bool{}
	for i := range 100 {
		h := v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%064x", i+1)}
		want[h] = true
		items = append(items, fmt.Sprintf(`{"digest": %q, "size": %d}`, h, i))
	}
	doc := `{"repositories": [{"registry": "reg.example:5000", "repository": "mirror/app", "tags": 1, "manifests": [], "blobs": [` +
		strings.Join(items, ", ") + `]}], "created": "2026-11-29T16:00:46Z", "createdBy": "hand", "formatVersion": 1, "mediaType": "` + inventory.MediaType + `"}`
	if i := strings.Index(doc, inventory.MediaType); i < 4096 {
		t.Fatalf("the media type is at byte %d: the test proves nothing", i)
	}
	path := filepath.Join(dir, "have.json")
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := relocate.ReadSince(t.Context(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Base.Kind != archive.BaseInventory || len(s.Blobs) != len(want) || s.Base.SHA256 != fileSum([]byte(doc)) {
		t.Errorf("base %+v with %d blobs; want an inventory of %d, its file's sum", s.Base, len(s.Blobs), len(want))
	}
	for h := range want {
		if s.Blobs[h] != "reg.example:5000/mirror/app" {
			t.Errorf("blob %s held by %q", h, s.Blobs[h])
		}
	}
	other := filepath.Join(dir, "package.json")
	if err := os.WriteFile(other, []byte(`{"name": "left-pad", "version": "1.3.0"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := relocate.ReadSince(t.Context(), other, nil); !errors.Is(err, relocate.ErrNotABase) || !strings.Contains(err.Error(), other) {
		t.Errorf("ReadSince of other JSON: %v; want ErrNotABase naming it", err)
	}
}

// TestSinceAnInventoryWithABadName: a registry or repository name no
// image reference has (megabytes of '<') is refused as the inventory is
// read, naming the file and the entry, without echoing the megabytes.
func TestSinceAnInventoryWithABadName(t *testing.T) {
	doc := inventory.Document{MediaType: inventory.MediaType, FormatVersion: 1, Repositories: []inventory.Repository{
		{Registry: "reg.example", Repository: "mirror/app"},
		{Registry: strings.Repeat("<", 6<<20), Repository: "mirror/app"},
	}}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "have.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = relocate.ReadSince(t.Context(), path, nil)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "repository 1") || len(err.Error()) > 1000 {
		t.Errorf("ReadSince: %.2000v; want a short error naming %s and repository 1", err, path)
	}
}

// fileSum is the sha256 of b, in hex, as sha256sum prints it.
func fileSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestDeltaMountSearchGoesPastARepositoryThatRefuses: the repository a
// delta records for its left-out blobs answers 403 (these credentials may
// not read it); another repository the inventory walked holds them too,
// and the import mounts from there instead of failing on the first.
func TestDeltaMountSearchGoesPastARepositoryThatRefuses(t *testing.T) {
	ctx := context.Background()
	w := newDeltaWorld(t, testregistry.NewDistribution)
	p := testregistry.NewFaultProxy(t, w.reg)
	dst := &impDest{reg: w.reg, ep: &p.Endpoint, repo: impMust(name.NewRepository(p.Repo("dst/imported")))}
	a := impMust(name.NewRepository(p.Repo("dst/a")))
	b := impMust(name.NewRepository(p.Repo("dst/b")))
	f := impMust(os.Open(w.full))
	defer f.Close()
	if _, err := relocate.Import(ctx, f, b, dst.options(t)); err != nil {
		t.Fatal(err)
	}
	doc, err := relocate.TakeInventory(ctx, []name.Repository{a, b}, relocate.InventoryOptions{Remote: p.RemoteOptions(t), Client: registry.New(p.ClientOptions())})
	if err != nil {
		t.Fatal(err)
	}
	have := filepath.Join(w.dir, "ab.json")
	if err := doc.WriteFile(have); err != nil {
		t.Fatal(err)
	}
	delta, ex := w.delta(t, have)
	for _, l := range ex.Delta.LeftOut {
		if l.Repository != a.Name() {
			t.Fatalf("%s recorded in %q, want %s: the test proves nothing", l.Digest, l.Repository, a)
		}
	}
	p.SetRules(testregistry.Rule{Method: http.MethodHead, Path: regexp.MustCompile(`^/v2/dst/a/blobs/`), Fault: testregistry.FaultStatus, Status: http.StatusForbidden})
	res, err := relocate.Import(ctx, bytes.NewReader(delta), dst.repo, dst.options(t))
	if err != nil {
		t.Fatalf("import with %s refusing its blobs: %v", a, err)
	}
	if res.LeftOutMounted != len(ex.Delta.LeftOut) {
		t.Errorf("%d of %d left-out blobs mounted", res.LeftOutMounted, len(ex.Delta.LeftOut))
	}
	if d := impDiffTags(dst.tags(t), w.src.wantTags(t)); d != "" {
		t.Errorf("destination tags differ:\n%s", d)
	}
}
