package relocate_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/internal/testregistry"
	"github.com/ferry-dev/ferry/relocate"
)

// artSource is impSource with artifacts beside it: a cosign signature of
// app1 (tag sha256-<app1>.sig), a cosign attestation of the root bundle
// (sha256-<root>.att), and an OCI artifact whose subject is app2, pushed by
// digest into a ggcr registry without the referrers API, so that
// go-containerregistry records it in the "sha256-<app2>" fallback index.
type artSource struct {
	*impSource
	sig, att, ref v1.Image
	sigTag        string // in src/app1
	attTag        string // in src/root
}

// cosignImage is shaped like what cosign pushes: an OCI manifest whose one
// layer carries the payload and the signature annotation.
func cosignImage(t testing.TB, layerType types.MediaType, payload string) v1.Image {
	t.Helper()
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	return impMust(mutate.Append(img, mutate.Addendum{
		Layer:       static.NewLayer([]byte(payload), layerType),
		Annotations: map[string]string{"dev.cosignproject.cosign/signature": "MEUCIQ" + payload[:8]},
	}))
}

func newArtSource(t testing.TB) *artSource {
	t.Helper()
	s := &artSource{impSource: impNewSource(t, 0)}
	app1, app2, root := impMust(s.app1.Digest()), impMust(s.app2.Digest()), impMust(s.root.Digest())

	s.sig = cosignImage(t, "application/vnd.dev.cosign.simplesigning.v1+json", `{"critical":{"image":{"docker-manifest-digest":"`+app1.String()+`"}}}`)
	s.sigTag = "sha256-" + app1.Hex + ".sig"
	s.att = cosignImage(t, "application/vnd.dsse.envelope.v1+json", `{"payloadType":"application/vnd.in-toto+json","subject":"`+root.String()+`"}`)
	s.attTag = "sha256-" + root.Hex + ".att"
	for _, p := range []struct {
		repo, tag string
		img       v1.Image
	}{{"src/app1", s.sigTag, s.sig}, {"src/root", s.attTag, s.att}} {
		ref := impMust(name.NewTag(s.ep.Repo(p.repo) + ":" + p.tag))
		if err := remote.Write(ref, p.img, s.opts...); err != nil {
			t.Fatal(err)
		}
	}

	art := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	art = mutate.ConfigMediaType(art, "application/vnd.example.sbom.v1+json")
	art = impMust(mutate.Append(art, mutate.Addendum{Layer: static.NewLayer([]byte(`{"sbom":"app2"}`), "application/spdx+json")}))
	s.ref = mutate.Subject(art, v1.Descriptor{MediaType: types.DockerManifestSchema2, Digest: app2, Size: int64(len(impMust(s.app2.RawManifest())))}).(v1.Image)
	if impMust(s.app2.MediaType()) != types.DockerManifestSchema2 {
		t.Fatalf("app2 is %s; the subject descriptor assumes Docker schema 2", impMust(s.app2.MediaType()))
	}
	ref := impMust(name.NewDigest(s.ep.Repo("src/app2") + "@" + impMust(s.ref.Digest()).String()))
	if err := remote.Write(ref, s.ref, s.opts...); err != nil {
		t.Fatal(err)
	}
	// The source has no referrers API: the artifact is listed only by the
	// fallback tag go-containerregistry wrote.
	if _, err := remote.Head(impMust(name.NewTag(s.ep.Repo("src/app2")+":sha256-"+app2.Hex)), s.opts...); err != nil {
		t.Fatalf("the source has no referrers fallback tag: %v", err)
	}
	return s
}

func (s *artSource) resolve(t testing.TB, sigs, refs bool) *relocate.Plan {
	t.Helper()
	p, err := relocate.Resolve(context.Background(), relocate.Source{Bundle: s.rootTagRef},
		relocate.Options{Remote: s.opts, CosignSignatures: sigs, Referrers: refs})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (s *artSource) exportWith(t testing.TB, sigs, refs bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := relocate.Export(context.Background(), s.resolve(t, sigs, refs), &buf, relocate.ExportOptions{Remote: s.opts}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// wantArtTags is the complete tag set with signatures carried: the usual
// tags, each cosign tag again, and each signature's own .imgpkg tag (or its
// repo-based form). Referrers get no tag of their own.
func (s *artSource) wantArtTags(t testing.TB, sigs, repoBased bool) map[string]string {
	t.Helper()
	want := s.wantTags(t)
	if !sigs {
		return want
	}
	sig, att := impMust(s.sig.Digest()), impMust(s.att.Digest())
	want[s.sigTag] = sig.String()
	want[s.attTag] = att.String()
	if repoBased {
		want["src-app1-sha256-"+sig.Hex+".imgpkg"] = sig.String()
		want["src-root-sha256-"+att.Hex+".imgpkg"] = att.String()
	} else {
		want["sha256-"+sig.Hex+".imgpkg"] = sig.String()
		want["sha256-"+att.Hex+".imgpkg"] = att.String()
	}
	return want
}

// artDest is a destination registry: one of testregistry's, or ggcr's
// with its referrers API switched on.
type artDest struct {
	Repo          func(path string) string
	RemoteOptions func(t testing.TB) []remote.Option
}

func fromTestRegistry(reg *testregistry.Registry) artDest {
	return artDest{Repo: reg.Repo, RemoteOptions: reg.RemoteOptions}
}

// newReferrersRegistry is go-containerregistry's registry with the OCI 1.1
// referrers API (CNCF distribution v3.1.2 has none: pushes to it use the
// tag-schema fallback).
func newReferrersRegistry(t testing.TB) artDest {
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.WithReferrersSupport(true), ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	return artDest{
		Repo:          func(path string) string { return host + "/" + path },
		RemoteOptions: func(testing.TB) []remote.Option { return nil },
	}
}

// regTags lists every tag of repo in reg with its digest.
func regTags(t testing.TB, reg artDest, repo string) map[string]string {
	t.Helper()
	r := impMust(name.NewRepository(reg.Repo(repo)))
	opts := reg.RemoteOptions(t)
	list, err := remote.List(r, opts...)
	var terr *transport.Error
	if errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound {
		return map[string]string{}
	}
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, tg := range list {
		out[tg] = impMust(remote.Head(r.Tag(tg), opts...)).Digest.String()
	}
	return out
}

// checkReferrer asserts that the destination lists the artifact as a
// referrer of app2, and, on a registry without the referrers API, that the
// fallback tag is there; it returns the tags without the fallback tag.
func (s *artSource) checkReferrer(t testing.TB, reg artDest, repo string, fallback bool) map[string]string {
	t.Helper()
	got := regTags(t, reg, repo)
	app2 := impMust(s.app2.Digest())
	fb := "sha256-" + app2.Hex
	if _, ok := got[fb]; ok != fallback {
		t.Errorf("fallback tag %s present = %v, want %v", fb, ok, fallback)
	}
	delete(got, fb)
	r := impMust(name.NewRepository(reg.Repo(repo)))
	idx, err := remote.Referrers(r.Digest(app2.String()), reg.RemoteOptions(t)...)
	if err != nil {
		t.Fatal(err)
	}
	want := impMust(s.ref.Digest())
	var listed []v1.Hash
	for _, d := range impMust(idx.IndexManifest()).Manifests {
		listed = append(listed, d.Digest)
	}
	if len(listed) != 1 || listed[0] != want {
		t.Errorf("referrers of app2 at the destination: %v, want [%s]", listed, want)
	}
	if _, err := remote.Head(r.Digest(want.String()), reg.RemoteOptions(t)...); err != nil {
		t.Errorf("referrer %s not at the destination: %v", want, err)
	}
	return got
}

func TestArtifactsExportImport(t *testing.T) {
	s := newArtSource(t)
	data := s.exportWith(t, true, true)

	inv, err := relocate.Inspect(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	roles := map[string]string{}
	for _, im := range inv.Images {
		roles[im.Digest] = im.Role + " of " + im.Subject
	}
	for d, want := range map[v1.Hash]string{
		impMust(s.sig.Digest()): "signature of " + impMust(s.app1.Digest()).String(),
		impMust(s.att.Digest()): "signature of " + impMust(s.root.Digest()).String(),
		impMust(s.ref.Digest()): "referrer of " + impMust(s.app2.Digest()).String(),
	} {
		if roles[d.String()] != want {
			t.Errorf("archive entry %s: %q, want %q", d, roles[d.String()], want)
		}
	}

	// Into registries without the referrers API (CNCF distribution v3.1.2,
	// ggcr's by default), where the fallback tag must be written, and into
	// one with it, where no such tag is needed.
	for _, tc := range []struct {
		name     string
		reg      artDest
		fallback bool
	}{
		{"distribution", fromTestRegistry(testregistry.NewDistribution(t)), true},
		{"ggcr", fromTestRegistry(testregistry.NewGGCR(t)), true},
		{"referrers API", newReferrersRegistry(t), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			repo := impMust(name.NewRepository(tc.reg.Repo("dst/imported")))
			if _, err := relocate.Import(context.Background(), bytes.NewReader(data), repo, relocate.ImportOptions{DestinationOptions: relocate.DestinationOptions{Remote: tc.reg.RemoteOptions(t)}, SpoolDir: t.TempDir()}); err != nil {
				t.Fatal(err)
			}
			got := s.checkReferrer(t, tc.reg, "dst/imported", tc.fallback)
			if d := impDiffTags(got, s.wantArtTags(t, true, false)); d != "" {
				t.Error(d)
			}
		})
	}

	t.Run("repo-based tags", func(t *testing.T) {
		reg := testregistry.NewGGCR(t)
		repo := impMust(name.NewRepository(reg.Repo("dst/imported")))
		if _, err := relocate.Import(context.Background(), bytes.NewReader(data), repo, relocate.ImportOptions{DestinationOptions: relocate.DestinationOptions{Remote: reg.RemoteOptions(t), RepoBasedTags: true}, SpoolDir: t.TempDir()}); err != nil {
			t.Fatal(err)
		}
		got := regTags(t, fromTestRegistry(reg), "dst/imported")
		sig, att := impMust(s.sig.Digest()), impMust(s.att.Digest())
		for tag, d := range map[string]v1.Hash{
			"src-app1-sha256-" + sig.Hex + ".imgpkg": sig,
			"src-root-sha256-" + att.Hex + ".imgpkg": att,
			s.sigTag:                                 sig,
			s.attTag:                                 att,
		} {
			if got[tag] != d.String() {
				t.Errorf("tag %s = %q, want %s", tag, got[tag], d)
			}
		}
		for _, d := range []v1.Hash{sig, att} {
			if _, ok := got["sha256-"+d.Hex+".imgpkg"]; ok {
				t.Errorf("repo-based import wrote sha256-%s.imgpkg", d.Hex)
			}
		}
	})
}

func TestArtifactsCopy(t *testing.T) {
	s := newArtSource(t)
	reg := newReferrersRegistry(t)
	repo := impMust(name.NewRepository(reg.Repo("dst/copied")))
	res, err := relocate.Copy(context.Background(), s.resolve(t, true, true), repo, relocate.CopyOptions{DestinationOptions: relocate.DestinationOptions{Remote: s.opts}})
	if err != nil {
		t.Fatal(err)
	}
	got := s.checkReferrer(t, reg, "dst/copied", false)
	if d := impDiffTags(got, s.wantArtTags(t, true, false)); d != "" {
		t.Error(d)
	}
	// The human tag is still the last one written.
	if last := res.Tags[len(res.Tags)-1]; last.Tag != "v1" {
		t.Errorf("last tag written is %s, want v1", last.Tag)
	}
}

func TestArtifactsOnlyWhenAsked(t *testing.T) {
	s := newArtSource(t)
	for _, tc := range []struct {
		name       string
		sigs, refs bool
	}{{"neither", false, false}, {"signatures only", true, false}, {"referrers only", false, true}} {
		t.Run(tc.name, func(t *testing.T) {
			p := s.resolve(t, tc.sigs, tc.refs)
			var sigs, refs int
			for _, im := range p.Images {
				switch im.Role {
				case "signature":
					sigs++
				case "referrer":
					refs++
				}
			}
			if (sigs == 2) != tc.sigs || (sigs != 0) != tc.sigs || (refs == 1) != tc.refs || (refs != 0) != tc.refs {
				t.Fatalf("plan has %d signatures and %d referrers", sigs, refs)
			}
			reg := testregistry.NewGGCR(t)
			repo := impMust(name.NewRepository(reg.Repo("dst/x")))
			if _, err := relocate.Copy(context.Background(), p, repo, relocate.CopyOptions{DestinationOptions: relocate.DestinationOptions{Remote: s.opts}}); err != nil {
				t.Fatal(err)
			}
			got := regTags(t, fromTestRegistry(reg), "dst/x")
			want := s.wantArtTags(t, tc.sigs, false)
			if tc.refs {
				want["sha256-"+impMust(s.app2.Digest()).Hex] = got["sha256-"+impMust(s.app2.Digest()).Hex]
				if want["sha256-"+impMust(s.app2.Digest()).Hex] == "" {
					t.Error("no referrers fallback tag at the destination")
				}
			}
			if d := impDiffTags(got, want); d != "" {
				t.Error(d)
			}
		})
	}
}
