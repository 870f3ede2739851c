package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/iotest"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
)

func TestRoundTrip(t *testing.T) {
	fx := newFixture(t, fixtureOptions{})
	data := fx.write(t, WriterOptions{}, nil)

	head, blobs, err := readArchive(data, ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if head.Compression != CompressionZstd || head.Version != 1 || head.CreatedBy != "ferry test" {
		t.Errorf("head: compression %s, version %d, created by %q", head.Compression, head.Version, head.CreatedBy)
	}
	// Manifests: exactly the fixture's, byte for byte.
	if len(head.Manifests) != len(fx.manifests) {
		t.Errorf("%d manifests read, want %d", len(head.Manifests), len(fx.manifests))
	}
	for d, b := range fx.manifests {
		if got, ok := head.Manifests[d]; !ok || !bytes.Equal(got, b) || digestOf(got) != d {
			t.Errorf("manifest %s: read %d bytes (present %v)", d, len(got), ok)
		}
	}
	// Blobs: in the order written, content and digest equal.
	if len(blobs) != len(fx.blobs) {
		t.Fatalf("%d blobs read, want %d", len(blobs), len(fx.blobs))
	}
	for i, b := range fx.blobs {
		if blobs[i].d != b.d || !bytes.Equal(blobs[i].b, b.b) || digestOf(blobs[i].b) != b.d {
			t.Errorf("blob %d: got %s, want %s", i, blobs[i].d, b.d)
		}
	}
	if !slices.Equal(head.SkippedLayers, []v1.Hash{fx.foreign.d}) {
		t.Errorf("skipped layers %v, want %v", head.SkippedLayers, fx.foreign.d)
	}
	// Head.Blobs: every config and layer referenced, skipped one included.
	want := map[v1.Hash]int64{fx.foreign.d: int64(len(fx.foreign.b))}
	for _, b := range fx.blobs {
		want[b.d] = int64(len(b.b))
	}
	if len(head.Blobs) != len(want) {
		t.Errorf("head lists %d blobs, want %d", len(head.Blobs), len(want))
	}
	for _, b := range head.Blobs {
		if want[b.Digest] != b.Size {
			t.Errorf("head blob %s size %d, want %d", b.Digest, b.Size, want[b.Digest])
		}
	}
	// Entries: root first, then by original reference.
	wantOrder := []struct {
		d    v1.Hash
		role Role
		tag  string
	}{
		{fx.root.d, RoleBundle, "v1"},
		{fx.image.d, RoleImage, ""},
		{fx.idx.d, RoleImage, ""},
		{fx.nested.d, RoleNestedBundle, ""},
	}
	if len(head.Entries) != len(wantOrder) {
		t.Fatalf("%d entries, want %d", len(head.Entries), len(wantOrder))
	}
	for i, w := range wantOrder {
		e := head.Entries[i]
		if e.Descriptor.Digest != w.d || e.Role != w.role || e.Tag != w.tag || e.OriginalRef == "" {
			t.Errorf("entry %d: %+v, want %s %s tag %q", i, e, w.d, w.role, w.tag)
		}
	}
}

func TestStandardTools(t *testing.T) {
	fx := newFixture(t, fixtureOptions{})
	data := fx.write(t, WriterOptions{Level: Better, Concurrency: 2}, nil)
	plain := unzstd(t, data)

	// The first two entries, read with archive/tar alone.
	tr := tar.NewReader(bytes.NewReader(plain))
	for i, want := range []string{"oci-layout", "index.json"} {
		h, err := tr.Next()
		if err != nil {
			t.Fatal(err)
		}
		if h.Name != want {
			t.Fatalf("entry %d is %q, want %q", i, h.Name, want)
		}
		b, _ := io.ReadAll(tr)
		if i == 0 && string(b) != `{"imageLayoutVersion":"1.0.0"}` {
			t.Errorf("oci-layout is %q", b)
		}
		if i == 1 && !bytes.Equal(b, fx.index) {
			t.Errorf("index.json differs from BuildIndex's")
		}
	}

	// Deterministic headers, USTAR, regular files only.
	dir := t.TempDir()
	tr = tar.NewReader(bytes.NewReader(plain))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag != tar.TypeReg || h.Mode != 0o644 || h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" ||
			h.ModTime.Unix() != 0 || h.Format != tar.FormatUSTAR {
			t.Errorf("entry %s: type %c mode %o uid %d gid %d user %q group %q mtime %v format %v",
				h.Name, h.Typeflag, h.Mode, h.Uid, h.Gid, h.Uname, h.Gname, h.ModTime, h.Format)
		}
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	checkLayout(t, dir, fx)

	// GNU tar and the zstd CLI, when present, read the archive as it is.
	// CI installs both (.ci/run), so there a missing one is a failure.
	for _, tool := range []string{"tar", "zstd"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is not installed; .ci/run installs it", tool)
			}
			t.Skipf("no %s on this machine", tool)
		}
	}
	file := filepath.Join(t.TempDir(), "a.tar.zst")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("zstd", "-t", "-q", file).CombinedOutput(); err != nil {
		t.Fatalf("zstd -t: %v\n%s", err, out)
	}
	gnu := t.TempDir()
	if out, err := exec.Command("tar", "--zstd", "-xf", file, "-C", gnu).CombinedOutput(); err != nil {
		t.Fatalf("tar --zstd -x: %v\n%s", err, out)
	}
	checkLayout(t, gnu, fx)
}

// checkLayout opens an extracted archive with go-containerregistry's
// layout package and checks every image against the fixture's bytes.
func checkLayout(t *testing.T, dir string, fx *fixture) {
	t.Helper()
	p, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	ii, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := ii.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != len(fx.entries) {
		t.Fatalf("layout index has %d descriptors, want %d", len(im.Manifests), len(fx.entries))
	}
	present := map[v1.Hash][]byte{}
	for _, b := range fx.blobs {
		present[b.d] = b.b
	}
	checkImage := func(m testBlob, from interface {
		Image(v1.Hash) (v1.Image, error)
	}) {
		img, err := from.Image(m.d)
		if err != nil {
			t.Fatalf("image %s: %v", m.d, err)
		}
		if d, err := img.Digest(); err != nil || d != m.d {
			t.Errorf("image %s: digest %s, %v", m.d, d, err)
		}
		raw, err := img.RawManifest()
		if err != nil || !bytes.Equal(raw, m.b) {
			t.Errorf("image %s: manifest differs (%v)", m.d, err)
		}
		mf, err := img.Manifest()
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := img.RawConfigFile()
		if err != nil || digestOf(cfg) != mf.Config.Digest || !bytes.Equal(cfg, present[mf.Config.Digest]) {
			t.Errorf("image %s: config %s differs (%v)", m.d, mf.Config.Digest, err)
		}
		for _, l := range mf.Layers {
			if l.Digest == fx.foreign.d {
				continue
			}
			layer, err := img.LayerByDigest(l.Digest)
			if err != nil {
				t.Fatalf("image %s layer %s: %v", m.d, l.Digest, err)
			}
			rc, err := layer.Compressed()
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(rc)
			rc.Close()
			if digestOf(b) != l.Digest || !bytes.Equal(b, present[l.Digest]) {
				t.Errorf("image %s layer %s: content differs", m.d, l.Digest)
			}
		}
	}
	for _, m := range []testBlob{fx.root, fx.nested, fx.image} {
		checkImage(m, p)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	child, err := idx.ImageIndex(fx.idx.d)
	if err != nil {
		t.Fatal(err)
	}
	cm, err := child.IndexManifest()
	if err != nil || len(cm.Manifests) != len(fx.idxChildren) {
		t.Fatalf("index %s: %v, %d children", fx.idx.d, err, len(cm.Manifests))
	}
	for _, c := range fx.idxChildren {
		checkImage(c, child)
	}
}

func TestDeterministic(t *testing.T) {
	// Small frames, so that several are in flight with a small fixture;
	// the code path is the one of real 8 MiB frames.
	const small = 64 << 10
	fx := newFixture(t, fixtureOptions{bigLayer: 5*small + small/3})
	ref := fx.writeFrames(t, WriterOptions{Concurrency: 1}, small, nil)
	for _, c := range []int{2, 3, 8, 0} {
		if got := fx.writeFrames(t, WriterOptions{Concurrency: c}, small, nil); !bytes.Equal(got, ref) {
			t.Errorf("concurrency %d: %d bytes differ from concurrency 1's %d", c, len(got), len(ref))
		}
	}
	// How the blobs' bytes arrive does not matter either.
	if got := fx.writeFrames(t, WriterOptions{Concurrency: 2}, small, iotest.HalfReader); !bytes.Equal(got, ref) {
		t.Error("half reads change the archive")
	}
	// The levels differ from each other, and each one is stable too.
	fast := fx.writeFrames(t, WriterOptions{Level: Fastest, Concurrency: 1}, small, nil)
	if bytes.Equal(fast, ref) {
		t.Error("fastest and default give the same bytes")
	}
	if got := fx.writeFrames(t, WriterOptions{Level: Fastest, Concurrency: 3}, small, nil); !bytes.Equal(got, fast) {
		t.Error("fastest: concurrency 3 differs from 1")
	}
	// It is many frames, and one valid stream.
	if frames := countFrames(t, ref); frames < 8 {
		t.Errorf("%d frames, want at least 8", frames)
	}
	if _, _, err := readArchive(ref, ReaderOptions{}); err != nil {
		t.Fatal(err)
	}
	// Real frames: the same bytes whatever the concurrency too.
	if a, b := fx.write(t, WriterOptions{Concurrency: 1}, nil), fx.write(t, WriterOptions{Concurrency: 2}, nil); !bytes.Equal(a, b) {
		t.Error("8 MiB frames: concurrency 2 differs from 1")
	}
}

// countFrames counts the data frames of b (walkFrames), which must end
// with exactly two skippable frames: the table of contents and the seek
// table.
func countFrames(t *testing.T, b []byte) int {
	t.Helper()
	n, skippable := 0, 0
	for _, f := range walkFrames(t, b) {
		switch {
		case f.skippable:
			skippable++
		case skippable > 0:
			t.Fatalf("data frame at offset %d after a skippable frame", f.offset)
		default:
			n++
		}
	}
	if skippable != 2 {
		t.Fatalf("%d skippable frames at the end, want 2 (table of contents, seek table)", skippable)
	}
	return n
}

func TestGzipAndPlainTar(t *testing.T) {
	fx := newFixture(t, fixtureOptions{})
	plain := unzstd(t, fx.write(t, WriterOptions{}, nil))
	for _, tc := range []struct {
		name string
		data []byte
		want Compression
	}{
		{"plain", plain, CompressionNone},
		{"gzip", gzipBytes(t, plain), CompressionGzip},
		{"zstd one frame", zstdBytes(t, plain), CompressionZstd},
	} {
		t.Run(tc.name, func(t *testing.T) {
			head, blobs, err := readArchive(tc.data, ReaderOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if head.Compression != tc.want {
				t.Errorf("compression %s, want %s", head.Compression, tc.want)
			}
			if len(blobs) != len(fx.blobs) {
				t.Errorf("%d blobs, want %d", len(blobs), len(fx.blobs))
			}
		})
	}
}

func TestReaderOptionalDirectoriesAndPadding(t *testing.T) {
	fx := newFixture(t, fixtureOptions{})
	es := fx.entries0()
	dirs := append([]tarEntry{es[0], es[1], {name: "blobs/", typ: tar.TypeDir}, {name: "blobs/sha256/", typ: tar.TypeDir}}, es[2:]...)
	data := buildTar(t, dirs)
	// GNU tar pads to 10 KiB records.
	data = append(data, make([]byte, 10240-len(data)%10240)...)
	if _, _, err := readArchive(data, ReaderOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestNextDrainsAndVerifiesUnreadBlobs(t *testing.T) {
	fx := newFixture(t, fixtureOptions{})
	data := fx.write(t, WriterOptions{}, nil)
	r, err := NewReader(bytes.NewReader(data), ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var got []v1.Hash
	for i := 0; ; i++ {
		d, _, rd, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, d)
		if i%2 == 0 {
			io.CopyN(io.Discard, rd, 1) // read a little, leave the rest
		}
	}
	if len(got) != len(fx.blobs) {
		t.Errorf("%d blobs, want %d", len(got), len(fx.blobs))
	}
	// The end is sticky.
	if _, _, _, err := r.Next(); err != io.EOF {
		t.Errorf("Next after the end: %v", err)
	}
}

func TestNextDrainCatchesCorruptUnreadBlob(t *testing.T) {
	fx := newFixture(t, fixtureOptions{})
	es := fx.entries0()
	last := &es[len(es)-3]
	last.body = bytes.Clone(last.body)
	last.body[len(last.body)/2] ^= 1
	r, err := NewReader(bytes.NewReader(buildTar(t, es)), ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var err2 error
	for err2 == nil {
		_, _, _, err2 = r.Next() // never reading the blobs
	}
	if err2 == io.EOF || !strings.Contains(err2.Error(), last.name) || !strings.Contains(err2.Error(), "digest") {
		t.Errorf("got %v, want a digest error naming %s", err2, last.name)
	}
	if _, _, _, err := r.Next(); err != err2 {
		t.Errorf("error is not sticky: %v", err)
	}
}

func TestInspectReadsOnlyTheHead(t *testing.T) {
	fx := newFixture(t, fixtureOptions{bigLayer: 4 << 20, random: true})
	data := fx.write(t, WriterOptions{Level: Fastest}, nil)

	cr := &countingReader{r: bytes.NewReader(data)}
	head, err := Inspect(cr)
	if err != nil {
		t.Fatal(err)
	}
	if len(head.Manifests) != len(fx.manifests) || len(head.Entries) != len(fx.entries) {
		t.Errorf("head: %d manifests, %d entries", len(head.Manifests), len(head.Entries))
	}
	if cr.n > 1<<20 {
		t.Errorf("Inspect read %d of %d bytes", cr.n, len(data))
	}

	// A plain tar cut right after the last manifest still inspects, and
	// does not verify.
	es := fx.entries0()
	headLen := 2 + len(fx.manifests)
	cut := buildTar(t, es[:headLen])
	cut = cut[:len(cut)-1024] // no end marker either
	if _, err := Inspect(bytes.NewReader(cut)); err != nil {
		t.Errorf("Inspect of the head alone: %v", err)
	}
	if _, err := Verify(context.Background(), bytes.NewReader(cut)); err == nil {
		t.Error("Verify of the head alone succeeded")
	}
}

func TestVerify(t *testing.T) {
	fx := newFixture(t, fixtureOptions{})
	data := fx.write(t, WriterOptions{}, nil)
	rep, err := Verify(context.Background(), bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, b := range fx.blobs {
		total += int64(len(b.b))
	}
	if rep.Blobs != len(fx.blobs) || rep.BlobBytes != total || rep.Head == nil || len(rep.Head.Entries) != len(fx.entries) {
		t.Errorf("report %+v, want %d blobs of %d bytes", rep, len(fx.blobs), total)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Verify(ctx, bytes.NewReader(data)); !errors.Is(err, context.Canceled) {
		t.Errorf("Verify with a cancelled context: %v", err)
	}
}

func TestBuildIndex(t *testing.T) {
	fx := newFixture(t, fixtureOptions{})
	// The order of the input does not matter.
	rev := slices.Clone(fx.entries)
	slices.Reverse(rev)
	skipped := append(slices.Clone(fx.skipped), fx.skipped...)
	b, err := BuildIndex(rev, IndexOptions{CreatedBy: "ferry test", SkippedLayers: skipped})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, fx.index) {
		t.Errorf("index depends on entry order:\n%s\n%s", b, fx.index)
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(b, &idx); err != nil {
		t.Fatal(err)
	}
	if idx.SchemaVersion != 2 || idx.MediaType != types.OCIImageIndex {
		t.Errorf("index: schema %d media type %s", idx.SchemaVersion, idx.MediaType)
	}
	wantAnn := map[string]string{
		"dev.ferry.archive.version":    "1",
		"dev.ferry.archive.created-by": "ferry test",
		"dev.ferry.skipped-layers":     fx.foreign.d.String(),
	}
	for k, v := range wantAnn {
		if idx.Annotations[k] != v {
			t.Errorf("annotation %s = %q, want %q", k, idx.Annotations[k], v)
		}
	}
	root := idx.Manifests[0]
	if root.Digest != fx.root.d || root.Annotations["org.opencontainers.image.ref.name"] != "v1" ||
		root.Annotations["dev.ferry.role"] != "bundle" || root.Annotations["dev.ferry.original-ref"] != "registry.example/app/bundle:v1" {
		t.Errorf("root descriptor %+v", root)
	}
	for _, d := range idx.Manifests[1:] {
		if _, ok := d.Annotations["org.opencontainers.image.ref.name"]; ok {
			t.Errorf("%s has a ref.name", d.Digest)
		}
	}

	good := fx.entries[0]
	bad := func(mut func(e *Entry)) []Entry {
		e := good
		mut(&e)
		return []Entry{e}
	}
	for name, tc := range map[string]struct {
		entries []Entry
		opts    IndexOptions
		want    string
	}{
		"no created-by": {fx.entries, IndexOptions{}, "CreatedBy"},
		"no entries":    {nil, IndexOptions{CreatedBy: "x"}, "no entries"},
		"bad digest": {bad(func(e *Entry) { e.Descriptor.Digest = v1.Hash{Algorithm: "sha512", Hex: "ab"} }),
			IndexOptions{CreatedBy: "x"}, "sha256"},
		"no size":    {bad(func(e *Entry) { e.Descriptor.Size = 0 }), IndexOptions{CreatedBy: "x"}, "size"},
		"layer type": {bad(func(e *Entry) { e.Descriptor.MediaType = types.DockerLayer }), IndexOptions{CreatedBy: "x"}, "media type"},
		"no role":    {bad(func(e *Entry) { e.Role = "" }), IndexOptions{CreatedBy: "x"}, "role"},
		"no ref":     {bad(func(e *Entry) { e.OriginalRef = "" }), IndexOptions{CreatedBy: "x"}, "original reference"},
		// What an import would write or parse, refused before it does.
		"ref not a reference": {bad(func(e *Entry) { e.OriginalRef = "::::bad" }), IndexOptions{CreatedBy: "x"}, "not an image reference"},
		"tag not a tag":       {bad(func(e *Entry) { e.Tag = "../../evil tag" }), IndexOptions{CreatedBy: "x"}, "not a valid tag"},
		"tag of 129":          {bad(func(e *Entry) { e.Tag = strings.Repeat("a", 129) }), IndexOptions{CreatedBy: "x"}, "not a valid tag"},
		"tag on an image beside the bundle": {[]Entry{fx.entries[3], func() Entry { e := fx.entries[0]; e.Tag = "v2"; return e }()},
			IndexOptions{CreatedBy: "x"}, "only the root"},
		"two tags": {[]Entry{func() Entry { e := fx.entries[0]; e.Tag = "v2"; return e }(), func() Entry { e := fx.entries[1]; e.Tag = "v3"; return e }()},
			IndexOptions{CreatedBy: "x"}, "only the root"},
		"two roots":     {[]Entry{fx.entries[3], func() Entry { e := fx.entries[2]; e.Role = RoleBundle; return e }()}, IndexOptions{CreatedBy: "x"}, "one root"},
		"twice":         {[]Entry{good, good}, IndexOptions{CreatedBy: "x"}, "twice"},
		"skipped bogus": {fx.entries, IndexOptions{CreatedBy: "x", SkippedLayers: []v1.Descriptor{{Digest: v1.Hash{Algorithm: "md5", Hex: "00"}}}}, "skipped"},
	} {
		if _, err := BuildIndex(tc.entries, tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error mentioning %q", name, err, tc.want)
		}
	}
	// An archive of a single image: the image is the root and has the tag.
	// (Its reference sorts after the other's, so only the tag puts it first.)
	img := fx.entries[1]
	img.Tag = "1.0"
	b, err = BuildIndex([]Entry{fx.entries[0], img}, IndexOptions{CreatedBy: "x"})
	if err != nil {
		t.Fatal(err)
	}
	info, err := parseIndex(b)
	if err != nil || info.entries[0].Tag != "1.0" || info.entries[0].Descriptor.Digest != img.Descriptor.Digest {
		t.Errorf("tagged image is not first: %v %+v", err, info)
	}
	// A role this version does not know passes through (forward
	// compatibility), without an original reference if need be.
	future := Entry{Descriptor: good.Descriptor, Role: "provenance"}
	b, err = BuildIndex([]Entry{future}, IndexOptions{CreatedBy: "x"})
	if err != nil {
		t.Fatal(err)
	}
	info, err = parseIndex(b)
	if err != nil || info.entries[0].Role != "provenance" {
		t.Errorf("unknown role: %v", err)
	}
}

func TestArtifactEntries(t *testing.T) {
	fx := newFixture(t, fixtureOptions{})
	subject := fx.entries[0]
	other := fx.entries[1].Descriptor
	sig := Entry{Descriptor: other, Role: RoleSignature, OriginalRef: "registry.example/app:sha256-x.sig", Subject: subject.Descriptor.Digest, SignatureKind: "att"}
	ref := Entry{Descriptor: other, Role: RoleReferrer, OriginalRef: "registry.example/app@" + other.Digest.String(), Subject: subject.Descriptor.Digest}
	b, err := BuildIndex([]Entry{ref, subject, sig}, IndexOptions{CreatedBy: "x"})
	if err != nil {
		t.Fatal(err)
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(b, &idx); err != nil {
		t.Fatal(err)
	}
	found := map[string]map[string]string{}
	for _, d := range idx.Manifests {
		found[d.Annotations["dev.ferry.role"]] = d.Annotations
	}
	if a := found["signature"]; a["dev.ferry.subject"] != subject.Descriptor.Digest.String() || a["dev.ferry.signature-kind"] != "att" {
		t.Errorf("signature annotations %v", a)
	}
	if a := found["referrer"]; a["dev.ferry.subject"] != subject.Descriptor.Digest.String() || a["dev.ferry.signature-kind"] != "" {
		t.Errorf("referrer annotations %v", a)
	}
	info, err := parseIndex(b)
	if err != nil {
		t.Fatal(err)
	}
	got := map[Role]Entry{}
	for _, e := range info.entries {
		got[e.Role] = e
	}
	if e := got[RoleSignature]; e.Subject != sig.Subject || e.SignatureKind != "att" || e.OriginalRef != sig.OriginalRef {
		t.Errorf("signature read back as %+v", e)
	}
	if e := got[RoleReferrer]; e.Subject != ref.Subject || e.SignatureKind != "" {
		t.Errorf("referrer read back as %+v", e)
	}

	for name, tc := range map[string]struct {
		entries []Entry
		want    string
	}{
		"signature without subject": {[]Entry{subject, func() Entry { e := sig; e.Subject = v1.Hash{}; return e }()}, "needs a subject"},
		"referrer without subject":  {[]Entry{subject, func() Entry { e := ref; e.Subject = v1.Hash{}; return e }()}, "needs a subject"},
		"signature of another kind": {[]Entry{subject, func() Entry { e := sig; e.SignatureKind = "cert"; return e }()}, "signature kind"},
		"kind on a referrer":        {[]Entry{subject, func() Entry { e := ref; e.SignatureKind = "sig"; return e }()}, "signature kind"},
		"subject on an image":       {[]Entry{func() Entry { e := subject; e.Subject = other.Digest; return e }()}, "cannot have a subject"},
		"subject not in the index":  {[]Entry{sig}, "not an entry"},
		"tag on a signature":        {[]Entry{subject, func() Entry { e := sig; e.Tag = "v1"; return e }()}, "cannot have a tag"},
	} {
		if _, err := BuildIndex(tc.entries, IndexOptions{CreatedBy: "x"}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error mentioning %q", name, err, tc.want)
		}
	}
	// A reader refuses a subject annotation that is not a digest.
	idx.Manifests[1].Annotations["dev.ferry.subject"] = "sha256:nothex"
	bad, _ := json.Marshal(idx)
	if _, err := parseIndex(bad); err == nil || !strings.Contains(err.Error(), "dev.ferry.subject") {
		t.Errorf("bad subject annotation: %v", err)
	}
}

func TestParseLevel(t *testing.T) {
	for _, l := range []Level{Fastest, Default, Better, Best} {
		got, err := ParseLevel(l.String())
		if err != nil || got != l {
			t.Errorf("ParseLevel(%q) = %v, %v", l.String(), got, err)
		}
	}
	if _, err := ParseLevel("ultra"); err == nil {
		t.Error("ParseLevel(ultra) succeeded")
	}
	if _, err := NewWriter(io.Discard, WriterOptions{Level: 42}); err == nil {
		t.Error("NewWriter with level 42 succeeded")
	}
	if _, err := NewWriter(io.Discard, WriterOptions{Concurrency: -1}); err == nil {
		t.Error("NewWriter with concurrency -1 succeeded")
	}
}

func TestTarHeaderFormats(t *testing.T) {
	small := tarHeader("blobs/sha256/"+strings.Repeat("a", 64), 1<<33-1)
	big := tarHeader("blobs/sha256/"+strings.Repeat("a", 64), 1<<33)
	if small.Format != tar.FormatUSTAR || big.Format != tar.FormatPAX {
		t.Errorf("formats %v and %v", small.Format, big.Format)
	}
	for _, h := range []*tar.Header{small, big} {
		var buf bytes.Buffer
		if err := tar.NewWriter(&buf).WriteHeader(h); err != nil {
			t.Errorf("size %d: %v", h.Size, err)
		}
		// The header's bytes are the same every time (no clock, no user).
		var again bytes.Buffer
		tar.NewWriter(&again).WriteHeader(tarHeader(h.Name, h.Size))
		if !bytes.Equal(buf.Bytes(), again.Bytes()) {
			t.Errorf("size %d: header bytes differ", h.Size)
		}
	}
}

// TestReaderAcceptsPAX reads entries written in PAX format, as a large
// blob's would be.
func TestReaderAcceptsPAX(t *testing.T) {
	fx := newFixture(t, fixtureOptions{})
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range fx.entries0() {
		h := &tar.Header{Name: e.name, Typeflag: tar.TypeReg, Size: int64(len(e.body)), Mode: 0o644,
			Format: tar.FormatPAX, PAXRecords: map[string]string{"comment": "pax"}}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write(e.body)
	}
	tw.Close()
	if _, _, err := readArchive(buf.Bytes(), ReaderOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestEntriesAreWhatArchiveTarWrites checks the tar inside the zstd frames
// byte for byte against what archive/tar writes for the same entries: the
// Writer writes blob entries itself, straight into its frames, and must
// lay out headers, contents and padding as a tar.Writer does.
func TestEntriesAreWhatArchiveTarWrites(t *testing.T) {
	const small = 64 << 10
	// A layer whose size is a multiple of the tar block (no padding) and
	// one that is not, across several frames; one whose header and content
	// fill a frame exactly; a one-byte layer. Read half at a time, and by a
	// reader that returns its last bytes with io.EOF.
	readers := []func(io.Reader) io.Reader{iotest.HalfReader, iotest.DataErrReader}
	for i, size := range []int{3 * small, 5*small + small/3, small - 512, 1} {
		fx := newFixture(t, fixtureOptions{bigLayer: size})
		dec, err := zstd.NewReader(nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := dec.DecodeAll(fx.writeFrames(t, WriterOptions{Concurrency: 2}, small, readers[i%2]), nil)
		dec.Close()
		if err != nil {
			t.Fatal(err)
		}
		var want bytes.Buffer
		tw := tar.NewWriter(&want)
		tr := tar.NewReader(bytes.NewReader(got))
		entries := 0
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("layer of %d bytes: entry %d: %v", size, entries, err)
			}
			if err := tw.WriteHeader(h); err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(tw, tr); err != nil {
				t.Fatal(err)
			}
			entries++
		}
		if err := tw.Close(); err != nil {
			t.Fatal(err)
		}
		if entries < 4 {
			t.Fatalf("layer of %d bytes: %d entries read", size, entries)
		}
		if !bytes.Equal(got, want.Bytes()) {
			t.Errorf("layer of %d bytes: the archive's tar (%d bytes) differs from archive/tar's for its %d entries (%d bytes)", size, len(got), entries, want.Len())
		}
	}
}
