package archive

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Heads shaped by an attacker (issue 13, items 4 and 9): many artifacts of
// one subject, long chains of nested indexes, sizes that overflow a sum.

// headTar is a plain tar of an archive whose head is entries and manifests
// (written in digest order, as a Writer does) followed by blobs.
func headTar(t testing.TB, entries []Entry, manifests []testBlob, blobs ...testBlob) []byte {
	t.Helper()
	idx, err := BuildIndex(entries, IndexOptions{CreatedBy: "hostile test"})
	if err != nil {
		t.Fatal(err)
	}
	return headTarIndex(t, idx, manifests, blobs...)
}

func headTarIndex(t testing.TB, index []byte, manifests []testBlob, blobs ...testBlob) []byte {
	t.Helper()
	ms := slices.Clone(manifests)
	slices.SortFunc(ms, func(a, b testBlob) int { return strings.Compare(a.d.Hex, b.d.Hex) })
	ms = slices.CompactFunc(ms, func(a, b testBlob) bool { return a.d == b.d })
	es := []tarEntry{
		{name: "oci-layout", body: []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{name: "index.json", body: index},
	}
	for _, m := range ms {
		es = append(es, tarEntry{name: "blobs/sha256/" + m.d.Hex, body: m.b})
	}
	for _, b := range blobs {
		es = append(es, tarEntry{name: "blobs/sha256/" + b.d.Hex, body: b.b})
	}
	return buildTar(t, es)
}

// smallImage is an image manifest over a shared config and layer;
// salt makes its digest unique.
func smallImage(salt int, cfg, layer testBlob) testBlob {
	return newBlob(types.OCIManifestSchema1, mustJSON(map[string]any{
		"schemaVersion": 2,
		"mediaType":     string(types.OCIManifestSchema1),
		"config":        cfg.desc(),
		"layers":        []any{layer.desc()},
		"annotations":   map[string]string{"n": fmt.Sprint(salt)},
	}))
}

func smallIndex(child testBlob) testBlob {
	return newBlob(types.OCIImageIndex, mustJSON(map[string]any{
		"schemaVersion": 2,
		"mediaType":     string(types.OCIImageIndex),
		"manifests":     []any{child.desc()},
	}))
}

func sharedBlobs() (cfg, layer testBlob) {
	return newBlob(types.OCIConfigJSON, []byte(`{"architecture":"amd64","os":"linux"}`)),
		newBlob(types.OCILayer, []byte("layer"))
}

// rawIndex writes index.json by hand, quickly even under the race
// detector: entries of role image, or referrers of subject when it is set.
func rawIndex(n int, m testBlob, ref func(i int) string, subject v1.Hash, last *Entry) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, `{"schemaVersion":2,"mediaType":%q,"manifests":[`, types.OCIImageIndex)
	role := RoleImage
	if subject != (v1.Hash{}) {
		role = RoleReferrer
	}
	for i := range n {
		fmt.Fprintf(&b, `{"mediaType":%q,"digest":%q,"size":%d,"annotations":{%q:%q,%q:%q`,
			m.mt, m.d, len(m.b), AnnotationRole, role, AnnotationOriginalRef, ref(i))
		if role == RoleReferrer {
			fmt.Fprintf(&b, `,%q:%q`, AnnotationSubject, subject)
		}
		b.WriteString(`}},`)
	}
	fmt.Fprintf(&b, `{"mediaType":%q,"digest":%q,"size":%d,"annotations":{%q:%q,%q:%q}}]`,
		last.Descriptor.MediaType, last.Descriptor.Digest, last.Descriptor.Size, AnnotationRole, last.Role, AnnotationOriginalRef, last.OriginalRef)
	fmt.Fprintf(&b, `,"annotations":{%q:"1",%q:"hostile test"}}`, AnnotationArchiveVersion, AnnotationCreatedBy)
	return []byte(b.String())
}

// referrersArchive is an image and n artifacts about it, listed before it
// in index.json (artifacts true), or the same index.json without the
// subjects, the artifact listed n times as a plain image (artifacts false).
// The artifacts share one manifest: the checks of index.json are what is
// measured, not the reading of manifests.
func referrersArchive(t testing.TB, n int, artifacts bool) []byte {
	cfg, layer := sharedBlobs()
	img, art := smallImage(0, cfg, layer), smallImage(1, cfg, layer)
	var subject v1.Hash
	if artifacts {
		subject = img.d
	}
	last := Entry{Descriptor: desc(img), Role: RoleImage, OriginalRef: "r.example/img@" + img.d.String()}
	idx := rawIndex(n, art, func(i int) string { return fmt.Sprintf("r.example/a%d", i) }, subject, &last)
	return headTarIndex(t, idx, []testBlob{img, art}, cfg, layer)
}

// chainArchive is n image manifests: nested (chain true), an image under
// n-1 indexes each naming the next, the outermost one in index.json; or
// flat (chain false), each image an entry of index.json.
func chainArchive(t testing.TB, n int, chain bool) []byte {
	cfg, layer := sharedBlobs()
	var ms []testBlob
	if chain {
		m := smallImage(0, cfg, layer)
		ms = append(ms, m)
		for range n - 1 {
			m = newBlob(types.OCIImageIndex, fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":%q,"manifests":[{"mediaType":%q,"digest":%q,"size":%d}]}`,
				types.OCIImageIndex, m.mt, m.d, len(m.b)))
			ms = append(ms, m)
		}
		return headTar(t, []Entry{{Descriptor: desc(m), Role: RoleImage, OriginalRef: "r.example/chain@" + m.d.String()}}, ms, cfg, layer)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `{"schemaVersion":2,"mediaType":%q,"manifests":[`, types.OCIImageIndex)
	for i := range n {
		m := newBlob(types.OCIManifestSchema1, fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":%q,"digest":%q,"size":%d},"layers":[{"mediaType":%q,"digest":%q,"size":%d}],"annotations":{"n":"%d"}}`,
			types.OCIManifestSchema1, cfg.mt, cfg.d, len(cfg.b), layer.mt, layer.d, len(layer.b), i))
		ms = append(ms, m)
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"mediaType":%q,"digest":%q,"size":%d,"annotations":{%q:"image",%q:"r.example/i%d"}}`, m.mt, m.d, len(m.b), AnnotationRole, AnnotationOriginalRef, i)
	}
	fmt.Fprintf(&b, `],"annotations":{%q:"1",%q:"hostile test"}}`, AnnotationArchiveVersion, AnnotationCreatedBy)
	return headTarIndex(t, []byte(b.String()), ms, cfg, layer)
}

// TestChainedIndexesRead checks what the lookup of held-back manifests
// must still do: a chain whose links arrive in any digest order is read
// whole, and its blobs after it.
func TestChainedIndexesRead(t *testing.T) {
	data := chainArchive(t, 200, true)
	head, blobs, err := readArchive(data, ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(head.Manifests) != 200 || len(blobs) != 2 {
		t.Errorf("read %d manifests and %d blobs, want 200 and 2", len(head.Manifests), len(blobs))
	}
}

// TestRejectSizeOverflow: descriptor sizes are a writer's claim. Two
// layers near 2^62 once summed to a negative total in inspect and import;
// the head is refused, naming the blob and its manifest.
func TestRejectSizeOverflow(t *testing.T) {
	cfg, _ := sharedBlobs()
	big := func(b byte) map[string]any {
		return map[string]any{"mediaType": string(types.OCILayer), "size": int64(1)<<62 + 1, "digest": "sha256:" + strings.Repeat(string(b), 64)}
	}
	over := newBlob(types.OCIManifestSchema1, mustJSON(map[string]any{
		"schemaVersion": 2,
		"mediaType":     string(types.OCIManifestSchema1),
		"config":        cfg.desc(),
		"layers":        []any{big('a'), big('b')},
	}))
	// Two manifests each claiming one such layer: no manifest alone
	// overflows, the archive does.
	one := func(b byte) testBlob {
		return newBlob(types.OCIManifestSchema1, mustJSON(map[string]any{
			"schemaVersion": 2,
			"mediaType":     string(types.OCIManifestSchema1),
			"config":        cfg.desc(),
			"layers":        []any{big(b), big(b + 1)},
		}))
	}
	a, b := one('c'), one('e')
	negative := newBlob(types.OCIManifestSchema1, mustJSON(map[string]any{
		"schemaVersion": 2,
		"mediaType":     string(types.OCIManifestSchema1),
		"config":        cfg.desc(),
		"layers":        []any{map[string]any{"mediaType": string(types.OCILayer), "size": -5, "digest": "sha256:" + strings.Repeat("f", 64)}},
	}))
	for _, tc := range []struct {
		name      string
		manifests []testBlob
		want      []string
	}{
		{"within one manifest", []testBlob{over}, []string{"sha256:" + strings.Repeat("b", 64), "manifest " + over.d.String(), "size 4611686018427387905", "total"}},
		{"across manifests", []testBlob{a, b}, []string{"size 4611686018427387905", "total"}},
		{"negative", []testBlob{negative}, []string{"sha256:" + strings.Repeat("f", 64), "size -5"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var entries []Entry
			for i, m := range tc.manifests {
				entries = append(entries, Entry{Descriptor: desc(m), Role: RoleImage, OriginalRef: fmt.Sprintf("r.example/big%d", i)})
			}
			_, err := Inspect(bytes.NewReader(headTar(t, entries, tc.manifests, cfg)))
			wantErr(t, err, tc.want...)
			// The Writer shares the check: it never writes such a head.
			idx, err := BuildIndex(entries, IndexOptions{CreatedBy: "x"})
			if err != nil {
				t.Fatal(err)
			}
			ms := map[v1.Hash][]byte{}
			for _, m := range tc.manifests {
				ms[m.d] = m.b
			}
			w, err := NewWriter(&bytes.Buffer{}, WriterOptions{Concurrency: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			wantErr(t, w.WriteHeader(idx, ms), tc.want...)
		})
	}
}

// TestRejectHugeIndexString: one annotation as large as the head limit
// was held twice (the file's bytes and the decoded string: 250 MB cost
// inspect 511 MB). A string of index.json over MaxIndexString is refused
// before index.json is decoded, by Reader and Writer alike.
func TestRejectHugeIndexString(t *testing.T) {
	cfg, layer := sharedBlobs()
	img := smallImage(0, cfg, layer)
	for _, n := range []int{MaxIndexString, MaxIndexString + 1} {
		d := desc(img)
		d.Annotations = map[string]string{"note": strings.Repeat("x", n)}
		entries := []Entry{{Descriptor: d, Role: RoleImage, OriginalRef: "r.example/img"}}
		_, err := Inspect(bytes.NewReader(headTar(t, entries, []testBlob{img}, cfg, layer)))
		if n == MaxIndexString {
			if err != nil {
				t.Errorf("a string of %d bytes: %v", n, err)
			}
			continue
		}
		wantErr(t, err, "index.json", fmt.Sprintf("a string of %d bytes", n))
		w, err := NewWriter(&bytes.Buffer{}, WriterOptions{Concurrency: 1})
		if err != nil {
			t.Fatal(err)
		}
		idx, err := BuildIndex(entries, IndexOptions{CreatedBy: "x"})
		if err != nil {
			t.Fatal(err)
		}
		wantErr(t, w.WriteHeader(idx, map[v1.Hash][]byte{img.d: img.b}), fmt.Sprintf("a string of %d bytes", n))
		w.Close()
	}
	if n, at, _ := longestString([]byte(`{"a":"x\"yz","bb":"` + `\\` + `"}`)); n != 5 || at != 5 {
		t.Errorf("longestString = %d at %d, want 5 at 5", n, at)
	}
}

// deltaArchive is a delta archive of one image of 2n layers, n left out:
// the other n listed as skipped non-distributable layers (skipped true),
// or, the plain case, as distributable layers the archive does not hold
// (which Inspect, reading the head only, does not miss). Each left-out
// blob was once searched for in the whole list of skipped layers.
func deltaArchive(t testing.TB, n int, skipped bool) []byte {
	cfg, _ := sharedBlobs()
	layer := func(i int, mt types.MediaType) v1.Descriptor {
		return v1.Descriptor{MediaType: mt, Size: 1, Digest: digestOf(fmt.Appendf(nil, "layer %d", i))}
	}
	var layers, skip []v1.Descriptor
	delta := &Delta{Bases: []Base{{Kind: BaseArchive, Name: "v1.tar.zst", SHA256: strings.Repeat("ab", 32)}}}
	for i := range n {
		l := layer(i, types.OCILayer)
		layers = append(layers, l)
		delta.LeftOut = append(delta.LeftOut, LeftOut{Digest: l.Digest, Size: l.Size})
	}
	for i := range n {
		mt := types.OCILayer
		if skipped {
			mt = types.OCIRestrictedLayer
		}
		l := layer(n+i, mt)
		layers = append(layers, l)
		if skipped {
			skip = append(skip, l)
		}
	}
	// Manifests stay under DefaultMaxManifestSize: ten thousand layers
	// each, all of them under one image index.
	var ms []testBlob
	var children []v1.Descriptor
	for chunk := range slices.Chunk(layers, 10_000) {
		m := newBlob(types.OCIManifestSchema1, mustJSON(v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1,
			Config: v1.Descriptor{MediaType: cfg.mt, Size: int64(len(cfg.b)), Digest: cfg.d}, Layers: chunk}))
		ms = append(ms, m)
		children = append(children, desc(m))
	}
	top := newBlob(types.OCIImageIndex, mustJSON(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: children}))
	idx, err := BuildIndex([]Entry{{Descriptor: desc(top), Role: RoleImage, OriginalRef: "r.example/delta@" + top.d.String()}},
		IndexOptions{CreatedBy: "hostile test", SkippedLayers: skip, Delta: delta})
	if err != nil {
		t.Fatal(err)
	}
	return headTarIndex(t, idx, append(ms, top))
}

// imgpkgImageItem is an item of manifest.json: image m, whose config is
// cfg and only layer is layer.
func imgpkgImageItem(m, cfg, layer testBlob, ref string) map[string]any {
	return map[string]any{
		"Refs":     []string{ref},
		"Layers":   imgpkgLayers(layer),
		"Config":   map[string]any{"Digest": cfg.d.String(), "Raw": string(cfg.b)},
		"Manifest": map[string]any{"MediaType": string(m.mt), "Digest": m.d.String(), "Raw": string(m.b)},
		"OrigRef":  ref,
	}
}

// imgpkgManyArchive is n images over a shared config and layer, as an
// imgpkg tarball (imgpkg true) or, the plain case it is timed against,
// the same head as a ferry archive. Every image is an entry: once, each
// manifest read searched all those still wanted for the smallest digest.
func imgpkgManyArchive(t testing.TB, n int, imgpkg bool) []byte {
	cfg, layer := sharedBlobs()
	ms := make([]testBlob, n)
	for i := range ms {
		ms[i] = smallImage(i, cfg, layer)
	}
	ref := func(i int) string { return fmt.Sprintf("r.example/i%d@%s", i, ms[i].d) }
	if !imgpkg {
		entries := make([]Entry, n)
		for i, m := range ms {
			entries[i] = Entry{Descriptor: desc(m), Role: RoleImage, OriginalRef: ref(i)}
		}
		return headTar(t, entries, ms, cfg, layer)
	}
	items := make([]map[string]any, n)
	for i, m := range ms {
		items[i] = map[string]any{"Image": imgpkgImageItem(m, cfg, layer, ref(i))}
	}
	return buildTar(t, []tarEntry{{name: "manifest.json", body: mustJSON(items)}, {name: "sha256-" + layer.d.Hex + ".tar.gz", body: layer.b}})
}

// imgpkgChainArchive is an image under n-1 indexes, each naming the next,
// the outermost the only entry: in an imgpkg tarball (imgpkg true) the
// inner indexes are listed flat among the outermost's Indexes (deep JSON
// would stop at the decoder's nesting limit first), or the same head as a
// ferry archive.
func imgpkgChainArchive(t testing.TB, n int, imgpkg bool) []byte {
	cfg, layer := sharedBlobs()
	img := smallImage(0, cfg, layer)
	chain := []testBlob{img}
	for range n - 1 {
		chain = append(chain, smallIndex(chain[len(chain)-1]))
	}
	top := chain[len(chain)-1]
	ref := "r.example/chain@" + top.d.String()
	if !imgpkg {
		return headTar(t, []Entry{{Descriptor: desc(top), Role: RoleImage, OriginalRef: ref}}, chain, cfg, layer)
	}
	inner := make([]any, 0, n-2)
	for _, ix := range chain[1 : len(chain)-1] {
		inner = append(inner, map[string]any{"MediaType": string(ix.mt), "Digest": ix.d.String(), "Raw": string(ix.b), "Refs": []string{"r.example/chain@" + ix.d.String()}})
	}
	items := []map[string]any{{"ImageIndex": map[string]any{
		"Refs": []string{ref}, "OrigRef": ref, "MediaType": string(top.mt), "Digest": top.d.String(), "Raw": string(top.b),
		"Images":  []any{imgpkgImageItem(img, cfg, layer, "r.example/chain@"+img.d.String())},
		"Indexes": inner,
	}}}
	return buildTar(t, []tarEntry{{name: "manifest.json", body: mustJSON(items)}, {name: "sha256-" + layer.d.Hex + ".tar.gz", body: layer.b}})
}
