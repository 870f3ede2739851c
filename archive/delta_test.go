package archive

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// deltaFixture is the fixture's archive with its first two blobs left out,
// as `export --since` writes it.
func deltaFixture(t *testing.T) (*fixture, *Delta, []byte) {
	t.Helper()
	fx := newFixture(t, fixtureOptions{})
	d := &Delta{Bases: []Base{{Kind: BaseArchive, Name: "v1.tar.zst", SHA256: strings.Repeat("ab", 32)}}}
	for _, b := range fx.blobs[:2] {
		d.LeftOut = append(d.LeftOut, LeftOut{Digest: b.d, Size: int64(len(b.b))})
	}
	idx, err := BuildIndex(fx.entries, IndexOptions{CreatedBy: "ferry test", SkippedLayers: fx.skipped, Delta: d})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, err := NewWriter(&buf, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteHeader(idx, fx.manifests); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteBlob(fx.blobs[0].d, int64(len(fx.blobs[0].b)), bytes.NewReader(fx.blobs[0].b)); err == nil {
		t.Error("the Writer accepted a blob the delta leaves out")
	}
	for _, b := range fx.blobs[2:] {
		if err := w.WriteBlob(b.d, int64(len(b.b)), bytes.NewReader(b.b)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatalf("a delta without its left-out blobs: %v", err)
	}
	fx.index = idx
	return fx, d, buf.Bytes()
}

func TestDeltaRoundTrip(t *testing.T) {
	fx, d, data := deltaFixture(t)
	head, blobs, err := readArchive(data, ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if head.Version != DeltaFormatVersion || head.Delta == nil || len(head.Delta.LeftOut) != 2 || head.Delta.Bases[0].SHA256 != d.Bases[0].SHA256 {
		t.Errorf("head: version %d, delta %+v; want version 2 and the delta written", head.Version, head.Delta)
	}
	if len(blobs) != len(fx.blobs)-2 {
		t.Errorf("read %d blobs, want %d", len(blobs), len(fx.blobs)-2)
	}
	rep, err := Verify(context.Background(), bytes.NewReader(data))
	if err != nil || rep.SeekTable != SeekTableChecked {
		t.Errorf("verify: %v, %s", err, rep.SeekTable)
	}
	f, err := OpenFile(bytes.NewReader(data), int64(len(data)), ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if f.Has(fx.blobs[0].d) || !f.Has(fx.blobs[2].d) {
		t.Error("File.Has is wrong about left-out blobs")
	}
	rc, err := f.Blob(fx.blobs[2].d)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, fx.blobs[2].b) {
		t.Error("a blob of the delta reads wrong")
	}
	// A full archive stays version 1.
	if h, _, err := readArchive(newFixture(t, fixtureOptions{}).write(t, WriterOptions{}, nil), ReaderOptions{}); err != nil || h.Version != 1 || h.Delta != nil {
		t.Errorf("full archive: %v, version %d, delta %v", err, h.Version, h.Delta)
	}
}

func TestDeltaRefusals(t *testing.T) {
	fx, d, _ := deltaFixture(t)
	index := func(mutate func(string) string) []byte {
		t.Helper()
		return []byte(mutate(string(fx.index)))
	}
	write := func(idx []byte, blobs []testBlob) error {
		var buf bytes.Buffer
		es := fx.entries0()
		es[1].body = idx
		var kept []tarEntry
		for _, e := range es {
			keep := true
			for _, b := range fx.blobs {
				if e.name == "blobs/sha256/"+b.d.Hex && !containsBlob(blobs, b.d) {
					keep = false
				}
			}
			if keep {
				kept = append(kept, e)
			}
		}
		buf.Write(zstdBytes(t, buildTar(t, kept)))
		_, _, err := readArchive(buf.Bytes(), ReaderOptions{})
		return err
	}
	present := fx.blobs[2:]
	if err := write(fx.index, present); err != nil {
		t.Fatalf("the delta as written: %v", err)
	}
	// A left-out blob that is in the archive all the same.
	wantErr(t, write(fx.index, fx.blobs), "left out of this delta")
	// The delta annotation on a version 1 index: an older writer's mistake
	// or an attempt to slip it past older readers.
	wantErr(t, write(index(func(s string) string {
		return strings.Replace(s, `"dev.ferry.archive.version":"2"`, `"dev.ferry.archive.version":"1"`, 1)
	}), present), "version 1 index")
	// Version 2 without the annotation.
	wantErr(t, write(index(func(s string) string {
		i := strings.Index(s, `"dev.ferry.delta":`)
		j := strings.Index(s[i:], `}]}"`) + len(`}]}"`) + 1
		return s[:i] + s[i+j:]
	}), present), "version 2 without")
	// A left-out digest no manifest references: it could excuse anything.
	other := digestOf([]byte("not in any manifest"))
	wantErr(t, write(index(func(s string) string {
		return strings.Replace(s, d.LeftOut[0].Digest.Hex, other.Hex, 1)
	}), present), "no manifest references")
	// A left-out blob that is also a skipped layer: the two excuses
	// exclude each other.
	skippedAlso := &Delta{Bases: d.Bases, LeftOut: append(slices.Clone(d.LeftOut), LeftOut{Digest: fx.skipped[0].Digest, Size: fx.skipped[0].Size})}
	idx, err := BuildIndex(fx.entries, IndexOptions{CreatedBy: "ferry test", SkippedLayers: fx.skipped, Delta: skippedAlso})
	if err != nil {
		t.Fatal(err)
	}
	wantErr(t, write(idx, present), fx.skipped[0].Digest.String(), "also lists")
	// No base.
	wantErr(t, write(index(func(s string) string {
		i := strings.Index(s, `\"bases\":[`) + len(`\"bases\":[`)
		j := strings.Index(s[i:], `]`)
		return s[:i] + s[i+j:]
	}), present), "names no base")
	var nf *newerFormatError
	if errors.As(write(fx.index, present), &nf) {
		t.Error("a delta is refused as a newer format by this reader")
	}
}

func containsBlob(bs []testBlob, d v1.Hash) bool {
	for _, b := range bs {
		if b.d == d {
			return true
		}
	}
	return false
}

// TestDeltaOfManyBlobs: a delta of a real release leaves out thousands of
// blobs; its record is far longer than the cap on one string of index.json
// (which still holds for every other string).
func TestDeltaOfManyBlobs(t *testing.T) {
	fx := newFixture(t, fixtureOptions{})
	d := &Delta{Bases: []Base{{Kind: BaseInventory, Name: "have.json", SHA256: strings.Repeat("cd", 32), Repositories: []string{"registry.example.com/mirror/app"}}}}
	// The fixture's own blobs, plus thousands more referenced by an extra
	// image: build that image's manifest with 5000 layers.
	var layers []any
	for i := range 5000 {
		b := newBlob(types.DockerLayer, []byte(fmt.Sprintf("layer %d", i)))
		layers = append(layers, b)
		d.LeftOut = append(d.LeftOut, LeftOut{Digest: b.d, Size: int64(len(b.b)), Repository: "registry.example.com/mirror/base"})
	}
	cfg := newBlob(types.DockerConfigJSON, []byte(`{"os":"linux"}`))
	m := manifestJSON(types.DockerManifestSchema2, cfg, layers...)
	entries := append(slices.Clone(fx.entries), Entry{Descriptor: v1.Descriptor{MediaType: types.DockerManifestSchema2, Size: int64(len(m.b)), Digest: m.d}, Role: RoleImage, OriginalRef: "registry.example.com/big@" + m.d.String()})
	manifests := maps.Clone(fx.manifests)
	manifests[m.d] = m.b
	idx, err := BuildIndex(entries, IndexOptions{CreatedBy: "ferry test", SkippedLayers: fx.skipped, Delta: d})
	if err != nil {
		t.Fatal(err)
	}
	if len(idx) < 2*MaxIndexString {
		t.Fatalf("index.json of %d bytes: the delta is not long enough to prove anything", len(idx))
	}
	var buf bytes.Buffer
	w, err := NewWriter(&buf, WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteHeader(idx, manifests); err != nil {
		t.Fatal(err)
	}
	for _, b := range append(slices.Clone(fx.blobs), cfg) {
		if err := w.WriteBlob(b.d, int64(len(b.b)), bytes.NewReader(b.b)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	head, _, err := readArchive(buf.Bytes(), ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(head.Delta.LeftOut) != 5000 {
		t.Errorf("read back %d left-out blobs, want 5000", len(head.Delta.LeftOut))
	}
	// Another string as long is still refused.
	long := strings.Replace(string(idx), `"ferry test"`, `"`+strings.Repeat("x", MaxIndexString+1)+`"`, 1)
	if _, err := parseIndex([]byte(long)); err == nil || !strings.Contains(err.Error(), "more than the") {
		t.Errorf("a created-by of %d bytes: %v, want it refused", MaxIndexString+1, err)
	}
}

// TestDeltaRefusesABaseOfTooManyRepositories: an import asks every
// repository a base names for the blobs its destination lacks, so the
// list is bounded: MaxBaseRepositories are accepted, one more is refused
// by the Writer and by the Reader, naming the base.
func TestDeltaRefusesABaseOfTooManyRepositories(t *testing.T) {
	fx := newFixture(t, fixtureOptions{})
	delta := func(n int) *Delta {
		repos := make([]string, n)
		for i := range repos {
			repos[i] = fmt.Sprintf("far.example/r%04d", i)
		}
		d := &Delta{Bases: []Base{
			{Kind: BaseArchive, Name: "v1.tar.zst", SHA256: strings.Repeat("ab", 32)},
			{Kind: BaseInventory, Name: "have.json", SHA256: strings.Repeat("cd", 32), Repositories: repos},
		}}
		for _, b := range fx.blobs[:2] {
			d.LeftOut = append(d.LeftOut, LeftOut{Digest: b.d, Size: int64(len(b.b)), Base: 1, Repository: repos[0]})
		}
		return d
	}
	if _, err := BuildIndex(fx.entries, IndexOptions{CreatedBy: "ferry test", SkippedLayers: fx.skipped, Delta: delta(MaxBaseRepositories)}); err != nil {
		t.Fatalf("%d repositories: %v", MaxBaseRepositories, err)
	}
	ok, err := json.Marshal(delta(MaxBaseRepositories))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parseDelta(string(ok)); err != nil {
		t.Fatalf("read, %d repositories: %v", MaxBaseRepositories, err)
	}
	tooMany := delta(MaxBaseRepositories + 1)
	_, err = BuildIndex(fx.entries, IndexOptions{CreatedBy: "ferry test", SkippedLayers: fx.skipped, Delta: tooMany})
	if err == nil || !strings.Contains(err.Error(), `"have.json"`) || !strings.Contains(err.Error(), fmt.Sprint(MaxBaseRepositories+1)) {
		t.Errorf("write, %d repositories: %v; want a refusal naming the base and the count", MaxBaseRepositories+1, err)
	}
	// Written as another writer could: the Reader refuses it too.
	raw, err := json.Marshal(tooMany)
	if err != nil {
		t.Fatal(err)
	}
	_, err = parseDelta(string(raw))
	if err == nil || !strings.Contains(err.Error(), `"have.json"`) || !strings.Contains(err.Error(), fmt.Sprint(MaxBaseRepositories+1)) {
		t.Errorf("read, %d repositories: %v; want a refusal naming the base and the count", MaxBaseRepositories+1, err)
	}
}
