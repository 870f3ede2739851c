package archive

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/fixtures/golden"
)

// goldenImgpkg returns basic.imgpkg.tar, which imgpkg itself wrote.
func goldenImgpkg(t testing.TB) []byte {
	t.Helper()
	b, err := golden.ReadFile("basic.imgpkg.tar")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// imgpkgEntries splits an imgpkg tarball into its entries, manifest.json
// decoded, for tests to change and rebuild with buildTar.
func imgpkgEntries(t testing.TB, b []byte) ([]map[string]any, []tarEntry) {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(b))
	var items []map[string]any
	var es []tarEntry
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return items, es
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		if h.Name == "manifest.json" {
			if err := json.Unmarshal(body, &items); err != nil {
				t.Fatal(err)
			}
		}
		es = append(es, tarEntry{name: h.Name, body: body})
	}
}

// withManifestJSON replaces the manifest.json entry of es.
func withManifestJSON(t testing.TB, es []tarEntry, items []map[string]any) []tarEntry {
	out := append([]tarEntry(nil), es...)
	out[0].body = mustJSON(items)
	return out
}

func openImgpkgBytes(b []byte) (*ImgpkgTar, error) {
	return OpenImgpkg(bytes.NewReader(b), int64(len(b)), ReaderOptions{})
}

func TestOpenImgpkgGolden(t *testing.T) {
	tb, err := openImgpkgBytes(goldenImgpkg(t))
	if err != nil {
		t.Fatal(err)
	}
	h := tb.Head()
	if len(h.Entries) != 2 || h.CreatedBy != ImgpkgCreatedBy || h.Compression != CompressionNone {
		t.Fatalf("head: %d entries, created by %q, %s", len(h.Entries), h.CreatedBy, h.Compression)
	}
	root, app := h.Entries[0], h.Entries[1]
	if root.Descriptor.Digest.String() != golden.Bundle || root.Role != RoleBundle || root.Tag != "v1" {
		t.Errorf("root entry %+v, want bundle %s tagged v1", root, golden.Bundle)
	}
	if app.Descriptor.Digest.String() != golden.App1 || app.Role != RoleImage || app.OriginalRef != golden.App1Ref || app.Tag != "" {
		t.Errorf("image entry %+v, want %s", app, golden.App1Ref)
	}
	if _, ok := h.Index.Annotations[AnnotationSeekable]; ok {
		t.Error("the described index claims a seek table")
	}
	// Every manifest and blob hashes to its digest, read independently.
	for d, m := range h.Manifests {
		if s := sha256.Sum256(m); hex.EncodeToString(s[:]) != d.Hex {
			t.Errorf("manifest %s has other bytes", d)
		}
	}
	want := map[string]bool{golden.BundleConfig: true, golden.BundleLayer: true}
	for _, b := range h.Blobs {
		if !tb.Has(b.Digest) {
			t.Errorf("Has(%s) = false", b.Digest)
		}
		rc, err := tb.Blob(b.Digest)
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if s := sha256.Sum256(data); "sha256:"+hex.EncodeToString(s[:]) != b.Digest.String() || int64(len(data)) != b.Size {
			t.Errorf("blob %s reads %d bytes hashing elsewhere", b.Digest, len(data))
		}
		delete(want, b.Digest.String())
	}
	if len(h.Blobs) != 4 || len(want) != 0 {
		t.Errorf("blobs %v, want 4 including %v", h.Blobs, want)
	}
	if tb.Has(v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("0", 64)}) {
		t.Error("Has an absent blob")
	}
}

func TestOpenImgpkgNotImgpkg(t *testing.T) {
	fx := newFixture(t, fixtureOptions{})
	for name, b := range map[string][]byte{
		"empty":             nil,
		"ferry zstd":        fx.write(t, WriterOptions{}, nil),
		"ferry plain tar":   buildTar(t, fx.entries0()),
		"text":              []byte(strings.Repeat("hello ", 200)),
		"manifest.json 2nd": buildTar(t, []tarEntry{{name: "x", body: []byte("x")}, {name: "manifest.json", body: []byte("[]")}}),
	} {
		if _, err := openImgpkgBytes(b); !errors.Is(err, ErrNotImgpkg) {
			t.Errorf("%s: %v, want ErrNotImgpkg", name, err)
		}
	}
}

// badImgpkgTarball is a damaged or hostile variant of the golden imgpkg
// tarball, and what the error refusing it in place (OpenImgpkg) must say.
type badImgpkgTarball struct {
	name string
	tar  []byte
	want string
}

func TestOpenImgpkgRefusesBadTarballs(t *testing.T) {
	for _, tc := range badImgpkgTarballs(t) {
		t.Run(tc.name, func(t *testing.T) {
			_, err := openImgpkgBytes(tc.tar)
			t.Log(err)
			if err == nil || errors.Is(err, ErrNotImgpkg) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// editItems returns a copy of manifest.json's items changed by f.
func editItems(items []map[string]any, f func(items []map[string]any)) []map[string]any {
	var c []map[string]any
	json.Unmarshal(mustJSON(items), &c)
	f(c)
	return c
}

// listedLayer is layer j of manifest.json's list for the image of item i
// (imgpkg's ImageLayerDescriptor: MediaType, Digest, DiffID, Size).
func listedLayer(items []map[string]any, i, j int) map[string]any {
	return items[i]["Image"].(map[string]any)["Layers"].([]any)[j].(map[string]any)
}

// imgpkgLayers is manifest.json's list of the layers ls, their DiffID
// (which ferry does not check) left empty.
func imgpkgLayers(ls ...testBlob) []any {
	out := []any{}
	for _, l := range ls {
		out = append(out, map[string]any{"MediaType": string(l.mt), "Digest": l.d.String(), "DiffID": "", "Size": len(l.b)})
	}
	return out
}

// sigItem is an item of manifest.json: a cosign signature of subject (hex).
func sigItem(subject string) map[string]any {
	cfg := `{"architecture":"","os":"","rootfs":{"type":"layers","diff_ids":[]},"config":{}}`
	cd := digestOf([]byte(cfg))
	m := string(mustJSON(map[string]any{"schemaVersion": 2, "mediaType": string(types.DockerManifestSchema2),
		"config": map[string]any{"mediaType": string(types.DockerConfigJSON), "size": len(cfg), "digest": cd.String()}, "layers": []any{}}))
	return map[string]any{"Image": map[string]any{
		"Refs":     []string{"127.0.0.1:5900/src/app1@" + digestOf([]byte(m)).String()},
		"Config":   map[string]any{"Digest": cd.String(), "Raw": cfg},
		"Manifest": map[string]any{"MediaType": string(types.DockerManifestSchema2), "Digest": digestOf([]byte(m)).String(), "Raw": m},
		"Tag":      "sha256-" + subject + ".sig",
	}}
}

// badImgpkgTarballs builds the variants both ways of reading refuse.
func badImgpkgTarballs(t *testing.T) []badImgpkgTarball {
	gold := goldenImgpkg(t)
	items, es := imgpkgEntries(t, gold)
	image := func(i int) map[string]any { return items[i]["Image"].(map[string]any) }
	appLayer := es[2].name
	edit := func(f func(items []map[string]any)) []map[string]any { return editItems(items, f) }
	if image(0)["Tag"] != "v1" {
		t.Fatal("golden tarball: the bundle is not the first item")
	}
	big := bytes.Repeat([]byte{1}, 600)
	dataEnd := tarDataEnd(t, gold)
	return []badImgpkgTarball{
		{"symlink", buildTar(t, append(append([]tarEntry(nil), es...), tarEntry{name: "sha256-" + strings.Repeat("a", 64) + ".tar.gz", typ: tar.TypeSymlink, link: "/etc/passwd"})), "only regular files"},
		{"escaping name", buildTar(t, append(append([]tarEntry(nil), es...), tarEntry{name: "../evil", body: []byte("x")})), `"../evil"`},
		{"absolute name", buildTar(t, append(append([]tarEntry(nil), es...), tarEntry{name: "/etc/x", body: []byte("x")})), `"/etc/x"`},
		{"duplicate layer", buildTar(t, append(append([]tarEntry(nil), es...), es[2])), "appears twice"},
		{"unreferenced layer", buildTar(t, append(append([]tarEntry(nil), es...), tarEntry{name: "sha256-" + digestOf(big).Hex + ".tar.gz", body: big})), "not referenced"},
		{"entry named after a config", buildTar(t, append(append([]tarEntry(nil), es...), tarEntry{name: strings.Replace(image(1)["Config"].(map[string]any)["Digest"].(string), ":", "-", 1) + ".tar.gz", body: []byte(image(1)["Config"].(map[string]any)["Raw"].(string))})), "not referenced by any manifest as a layer"},
		{"layer of another size", buildTar(t, []tarEntry{es[0], es[1], {name: appLayer, body: es[2].body[:100]}}), appLayer},
		{"missing layer", buildTar(t, es[:2]), "is missing"},
		{"bad JSON", buildTar(t, []tarEntry{{name: "manifest.json", body: []byte("{")}}), "manifest.json"},
		{"no images", buildTar(t, []tarEntry{{name: "manifest.json", body: []byte("[]")}}), "no images"},
		{"manifest digest", buildTar(t, withManifestJSON(t, es, edit(func(c []map[string]any) {
			c[1]["Image"].(map[string]any)["Manifest"].(map[string]any)["Raw"] = `{"schemaVersion":2}`
		}))), "content has digest"},
		{"config digest", buildTar(t, withManifestJSON(t, es, edit(func(c []map[string]any) {
			c[1]["Image"].(map[string]any)["Config"].(map[string]any)["Raw"] = `{}`
		}))), "config sha256:"},
		{"root not a bundle", buildTar(t, withManifestJSON(t, es, edit(func(c []map[string]any) {
			c[1]["Image"].(map[string]any)["Labels"] = map[string]any{"dev.carvel.imgpkg.copy.root-bundle": ""}
		}))), "no dev.carvel.imgpkg.bundle label"},
		{"two items, one entry", buildTar(t, withManifestJSON(t, es, edit(func(c []map[string]any) {
			c[0]["ImageIndex"] = map[string]any{}
		}))), "exactly one of Image and ImageIndex"},
		{"signature without its subject", buildTar(t, withManifestJSON(t, es, append(edit(func([]map[string]any) {}), sigItem(strings.Repeat("b", 64))))), "subject"},
		{"another tagged image", buildTar(t, withManifestJSON(t, es, edit(func(c []map[string]any) {
			c[1]["Image"].(map[string]any)["Tag"] = "latest"
		}))), "tag"},
		{"tag not a tag", buildTar(t, withManifestJSON(t, es, edit(func(c []map[string]any) {
			c[0]["Image"].(map[string]any)["Tag"] = "../../evil tag"
		}))), "not a valid tag"},
		{"reference not a reference", buildTar(t, withManifestJSON(t, es, edit(func(c []map[string]any) {
			c[1]["Image"].(map[string]any)["Refs"] = []string{"::::bad"}
			c[1]["Image"].(map[string]any)["OrigRef"] = "::::bad"
		}))), "not an image reference"},
		{"layer listed with another digest", buildTar(t, withManifestJSON(t, es, edit(func(c []map[string]any) {
			listedLayer(c, 1, 0)["Digest"] = "sha256:" + strings.Repeat("0", 64)
		}))), "layer 0 listed as sha256:" + strings.Repeat("0", 64)},
		{"layer listed at another size", buildTar(t, withManifestJSON(t, es, edit(func(c []map[string]any) {
			listedLayer(c, 1, 0)["Size"] = 1
		}))), "(1 bytes"},
		{"layer listed with another media type", buildTar(t, withManifestJSON(t, es, edit(func(c []map[string]any) {
			listedLayer(c, 1, 0)["MediaType"] = string(types.OCILayer)
		}))), string(types.OCILayer)},
		{"layers not listed", buildTar(t, withManifestJSON(t, es, edit(func(c []map[string]any) {
			delete(c[1]["Image"].(map[string]any), "Layers")
		}))), "lists 0 layers"},
		{"a layer listed twice", buildTar(t, withManifestJSON(t, es, edit(func(c []map[string]any) {
			im := c[1]["Image"].(map[string]any)
			im["Layers"] = append(im["Layers"].([]any), listedLayer(c, 1, 0))
		}))), "lists 2 layers"},
		{"truncated", gold[:len(gold)-2000], "truncated"},
		{"data after the end", append(bytes.Clone(gold), "GARBAGE, not zeros"...), "data after the end of the tar"},
		{"1 MiB of data after the end", append(bytes.Clone(gold), bytes.Repeat([]byte("X"), 1<<20)...), "data after the end of the tar"},
		{"zeros then data after the end", append(append(bytes.Clone(gold), make([]byte, 4096)...), 'x'), "data after the end of the tar"},
		{"too much padding", append(bytes.Clone(gold), make([]byte, maxTrailing+512)...), "padding after the end"},
		{"no end-of-archive marker", gold[:dataEnd], "no end-of-archive marker"},
		{"half an end-of-archive marker", append(bytes.Clone(gold[:dataEnd]), make([]byte, 512)...), "no end-of-archive marker"},
		{"head limit", func() []byte {
			var buf bytes.Buffer
			tw := tar.NewWriter(&buf)
			tw.WriteHeader(&tar.Header{Name: "manifest.json", Typeflag: tar.TypeReg, Size: 1 << 40, Mode: 0o644})
			return append(buf.Bytes(), make([]byte, 4096)...)
		}(), "past the end"},
	}
}

// tarDataEnd returns where the last entry of the tar b ends, its padding
// included: where the end-of-archive marker starts.
func tarDataEnd(t *testing.T, b []byte) int {
	t.Helper()
	sr := bytes.NewReader(b)
	tr := tar.NewReader(sr)
	end := 0
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return end
		}
		if err != nil {
			t.Fatal(err)
		}
		end = len(b) - sr.Len() + int(h.Size+511)&^511
	}
}

// Zeros after the end-of-archive marker (GNU tar pads to 10 KiB records)
// are accepted, read in place as on a stream, up to maxTrailing.
func TestImgpkgTarAcceptsZeroPaddingAfterItsEnd(t *testing.T) {
	gold := goldenImgpkg(t)
	if end := tarDataEnd(t, gold); len(gold) != end+1024 {
		t.Fatalf("golden tarball: %d bytes, want the last entry's end (%d) and the two zero blocks", len(gold), end)
	}
	for _, n := range []int{1, 10240 - len(gold)%10240, maxTrailing} {
		b := append(bytes.Clone(gold), make([]byte, n)...)
		if _, err := openImgpkgBytes(b); err != nil {
			t.Errorf("%d zero bytes after the end, in place: %v", n, err)
		}
		r, err := NewReader(bytes.NewReader(b), ReaderOptions{})
		if err == nil {
			_, err = readAllBlobs(r)
			r.Close()
		}
		if err != nil {
			t.Errorf("%d zero bytes after the end, on a stream: %v", n, err)
		}
	}
}

func TestOpenImgpkgReadsASignature(t *testing.T) {
	gold := goldenImgpkg(t)
	items, es := imgpkgEntries(t, gold)
	// A signature with its subject present is carried as a signature.
	withSig := buildTar(t, withManifestJSON(t, es, append(editItems(items, func([]map[string]any) {}), sigItem(strings.TrimPrefix(golden.App1, "sha256:")))))
	tb, err := openImgpkgBytes(withSig)
	if err != nil {
		t.Fatal(err)
	}
	var sig *Entry
	for i, e := range tb.Head().Entries {
		if e.Role == RoleSignature {
			sig = &tb.Head().Entries[i]
		}
	}
	if sig == nil || sig.Subject.String() != golden.App1 || sig.SignatureKind != "sig" || sig.Tag != "" ||
		sig.OriginalRef != "127.0.0.1:5900/src/app1:sha256-"+strings.TrimPrefix(golden.App1, "sha256:")+".sig" {
		t.Fatalf("signature entry %+v", sig)
	}
}

func TestImgpkgBlobCatchesDamagedLayer(t *testing.T) {
	gold := goldenImgpkg(t)
	_, es := imgpkgEntries(t, gold)
	es[2].body = bytes.Clone(es[2].body)
	es[2].body[10] ^= 0xff
	tb, err := openImgpkgBytes(buildTar(t, es))
	if err != nil {
		t.Fatalf("a damaged layer body is found when read, not at open: %v", err)
	}
	d := v1.Hash{Algorithm: "sha256", Hex: strings.TrimSuffix(strings.TrimPrefix(es[2].name, "sha256-"), ".tar.gz")}
	rc, err := tb.Blob(d)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := io.ReadAll(rc); err == nil || !strings.Contains(err.Error(), es[2].name) {
		t.Fatalf("reading a damaged layer: %v, want an error naming %s", err, es[2].name)
	}
}

// foreignImgpkg is an imgpkg tarball of one Windows image, tagged ltsc,
// whose foreign layer imgpkg left out; it returns the tarball and that
// layer's digest.
func foreignImgpkg(t *testing.T) ([]byte, v1.Hash) {
	cfg := newBlob(types.DockerConfigJSON, []byte(`{"architecture":"amd64","os":"windows","config":{}}`))
	layer := newBlob(types.DockerLayer, []byte("a layer"))
	foreign := newBlob(types.DockerForeignLayer, []byte("foreign"))
	m := manifestJSON(types.DockerManifestSchema2, cfg, layer, foreign)
	items := []map[string]any{{"Image": map[string]any{
		"Refs":     []string{"r.example/win@" + m.d.String()},
		"Layers":   imgpkgLayers(layer, foreign),
		"Config":   map[string]any{"Digest": cfg.d.String(), "Raw": string(cfg.b)},
		"Manifest": map[string]any{"MediaType": string(m.mt), "Digest": m.d.String(), "Raw": string(m.b)},
		"Tag":      "ltsc",
	}}}
	return buildTar(t, []tarEntry{
		{name: "manifest.json", body: mustJSON(items)},
		{name: "sha256-" + layer.d.Hex + ".tar.gz", body: layer.b},
	}), foreign.d
}

func TestOpenImgpkgSkipsNonDistributableLayers(t *testing.T) {
	b, foreign := foreignImgpkg(t)
	tb, err := openImgpkgBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	h := tb.Head()
	if len(h.SkippedLayers) != 1 || h.SkippedLayers[0] != foreign {
		t.Fatalf("skipped %v, want the foreign layer", h.SkippedLayers)
	}
	e := h.Entries[0]
	if e.Role != RoleImage || e.Tag != "ltsc" || e.Descriptor.Platform == nil || e.Descriptor.Platform.OS != "windows" {
		t.Fatalf("entry %+v: an image of an archive without a bundle keeps its tag and platform", e)
	}
}

// FuzzOpenImgpkg feeds OpenImgpkg arbitrary input: it must return errors,
// not panic or hang, and every blob it then returns must match its digest.
func FuzzOpenImgpkg(f *testing.F) {
	gold := goldenImgpkg(f)
	f.Add(gold)
	f.Add(gold[:len(gold)-700])
	flipped := bytes.Clone(gold)
	flipped[600] ^= 1
	f.Add(flipped)
	// Hostile shapes (issue 13): many images, each an entry, and a chain
	// of nested indexes listed flat.
	f.Add(imgpkgManyArchive(f, 40, true))
	f.Add(imgpkgChainArchive(f, 40, true))
	f.Fuzz(func(t *testing.T, data []byte) {
		tb, err := OpenImgpkg(bytes.NewReader(data), int64(len(data)), ReaderOptions{MaxManifestSize: 64 << 10, MaxHeadSize: 256 << 10})
		if err != nil {
			return
		}
		for _, b := range tb.Head().Blobs {
			rc, err := tb.Blob(b.Digest)
			if err != nil {
				continue
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				continue
			}
			if s := sha256.Sum256(got); hex.EncodeToString(s[:]) != b.Digest.Hex {
				t.Fatalf("blob %s read without error has another digest", b.Digest)
			}
		}
	})
}

func TestOpenImgpkgIndex(t *testing.T) {
	shared := newBlob(types.OCILayer, []byte("a layer both children have"))
	type child struct{ cfg, layer, m testBlob }
	var children []child
	var ms []any
	for i, arch := range []string{"amd64", "arm64"} {
		cfg := newBlob(types.OCIConfigJSON, []byte(`{"architecture":"`+arch+`","os":"linux"}`))
		l := newBlob(types.OCILayer, randomBytes(uint64(40+i), 900))
		m := manifestJSON(types.OCIManifestSchema1, cfg, l, shared)
		children = append(children, child{cfg, l, m})
		d := m.desc()
		d["platform"] = map[string]string{"architecture": arch, "os": "linux"}
		ms = append(ms, d)
	}
	idx := newBlob(types.OCIImageIndex, mustJSON(map[string]any{"schemaVersion": 2, "mediaType": string(types.OCIImageIndex), "manifests": ms}))
	var images []any
	es := []tarEntry{{name: "manifest.json"}}
	for _, c := range children {
		images = append(images, map[string]any{
			"Refs":     []string{"r.example/multi@" + c.m.d.String()},
			"Layers":   imgpkgLayers(c.layer, shared),
			"Config":   map[string]any{"Digest": c.cfg.d.String(), "Raw": string(c.cfg.b)},
			"Manifest": map[string]any{"MediaType": string(c.m.mt), "Digest": c.m.d.String(), "Raw": string(c.m.b)},
		})
		es = append(es, tarEntry{name: "sha256-" + c.layer.d.Hex + ".tar.gz", body: c.layer.b})
	}
	es = append(es, tarEntry{name: "sha256-" + shared.d.Hex + ".tar.gz", body: shared.b})
	es[0].body = mustJSON([]map[string]any{{"ImageIndex": map[string]any{
		"Refs": []string{"r.example/multi@" + idx.d.String()}, "MediaType": string(idx.mt), "Digest": idx.d.String(),
		"Raw": string(idx.b), "Images": images, "Tag": "1.0",
	}}})
	tb, err := openImgpkgBytes(buildTar(t, es))
	if err != nil {
		t.Fatal(err)
	}
	h := tb.Head()
	if len(h.Entries) != 1 || h.Entries[0].Descriptor.Digest != idx.d || h.Entries[0].Role != RoleImage || h.Entries[0].Tag != "1.0" {
		t.Fatalf("entries %+v: the index alone, an image keeping its tag", h.Entries)
	}
	if len(h.Manifests) != 3 {
		t.Fatalf("%d manifests, want the index and its two children", len(h.Manifests))
	}
	want := map[v1.Hash][]byte{shared.d: shared.b}
	for _, c := range children {
		want[c.cfg.d], want[c.layer.d] = c.cfg.b, c.layer.b
	}
	if len(h.Blobs) != len(want) {
		t.Fatalf("%d blobs, want %d (the shared layer once)", len(h.Blobs), len(want))
	}
	for d, b := range want {
		rc, err := tb.Blob(d)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("blob %s: %v", d, err)
		}
	}

	// A child manifest.json does not carry is refused, naming the index.
	es[0].body = mustJSON([]map[string]any{{"ImageIndex": map[string]any{
		"Refs": []string{"r.example/multi@" + idx.d.String()}, "MediaType": string(idx.mt), "Digest": idx.d.String(),
		"Raw": string(idx.b), "Images": images[:1],
	}}})
	if _, err := openImgpkgBytes(buildTar(t, es)); err == nil || !strings.Contains(err.Error(), "index "+idx.d.String()) {
		t.Fatalf("index child missing: %v", err)
	}
}

// A config is read from manifest.json, never from a tar entry (OpenImgpkg
// refuses an entry of a config's name: see badImgpkgTarballs): Layer must
// not offer it for ranges, or `ferry serve` would send a client bytes it
// did not check when it read the config.
func TestImgpkgLayerIsNeverAConfig(t *testing.T) {
	tb, err := openImgpkgBytes(goldenImgpkg(t))
	if err != nil {
		t.Fatal(err)
	}
	configs, layers := 0, 0
	for _, raw := range tb.Head().Manifests {
		var m v1.Manifest
		if json.Unmarshal(raw, &m) != nil || m.Config.Digest.Hex == "" {
			continue
		}
		configs++
		if _, ok := tb.Layer(m.Config.Digest); ok {
			t.Errorf("Layer(%s) offers a config", m.Config.Digest)
		}
		for _, l := range m.Layers {
			layers++
			if _, ok := tb.Layer(l.Digest); !ok {
				t.Errorf("Layer(%s), a layer of the golden tarball: not offered", l.Digest)
			}
		}
	}
	if configs == 0 || layers == 0 {
		t.Fatalf("the golden tarball has %d configs and %d layers, want some of each", configs, layers)
	}
}

// A chain of nested indexes in manifest.json is named by item and depth,
// not by its whole path: the labels of thousands of levels (JSON allows
// that deep) would otherwise be held at once, each longer than the last,
// memory growing with the square of the depth. The error at the bottom of
// a 300-deep chain is as short as one at the top.
func TestImgpkgNestedIndexLabelsStayShort(t *testing.T) {
	raw := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}`
	ok := map[string]any{"MediaType": string(types.OCIImageIndex), "Digest": digestOf([]byte(raw)).String(), "Raw": raw}
	chain := func(depth int) []byte {
		inner := map[string]any{"MediaType": string(types.OCIImageIndex), "Digest": digestOf([]byte("x")).String(), "Raw": raw}
		for range depth {
			outer := maps.Clone(ok)
			outer["Indexes"] = []any{inner}
			inner = outer
		}
		inner["Refs"] = []string{"127.0.0.1:5900/src/multi"}
		return buildTar(t, []tarEntry{{name: "manifest.json", body: mustJSON([]map[string]any{{"ImageIndex": inner}})}})
	}
	_, shallow := openImgpkgBytes(chain(1))
	_, deep := openImgpkgBytes(chain(300))
	if shallow == nil || deep == nil || !strings.Contains(deep.Error(), "300 deep") {
		t.Fatalf("want both refused, the deep one naming its depth: %v; %v", shallow, deep)
	}
	if len(deep.Error()) > len(shallow.Error())+16 {
		t.Errorf("the error 300 levels down is %d bytes, against %d one level down: %.200s…", len(deep.Error()), len(shallow.Error()), deep)
	}
}
