package e2e

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/internal/testregistry"
)

// artifactFixture is the export fixture with artifacts beside it, built
// here: a cosign signature of app1, an attestation of the nested bundle,
// an SBOM of the index (cosign's .sig/.att/.sbom tags), and an OCI artifact
// whose subject is app2, pushed by digest; CNCF distribution v3.1.2 has no
// referrers API, so go-containerregistry records it under the
// "sha256-<app2 hex>" fallback tag.
type artifactFixture struct {
	*exportFixture
	// sigs maps each cosign tag to its manifest's digest.
	sigs     map[string]v1.Hash
	referrer v1.Hash
}

func cosignShaped(t *testing.T, layerType types.MediaType, payload string) v1.Image {
	t.Helper()
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.Append(img, mutate.Addendum{
		Layer:       static.NewLayer([]byte(payload), layerType),
		Annotations: map[string]string{"dev.cosignproject.cosign/signature": "MEUCIQ-test"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func newArtifactFixture(t *testing.T, reg *testregistry.Registry) *artifactFixture {
	t.Helper()
	f := &artifactFixture{exportFixture: newExportFixture(t, reg), sigs: map[string]v1.Hash{}}
	opts := reg.RemoteOptions(t)
	for _, a := range []struct {
		subject name.Digest
		kind    string
		mt      types.MediaType
	}{
		{f.app1, "sig", "application/vnd.dev.cosign.simplesigning.v1+json"},
		{f.inner, "att", "application/vnd.dsse.envelope.v1+json"},
		{f.index, "sbom", "application/spdx+json"},
	} {
		img := cosignShaped(t, a.mt, `{"subject":"`+a.subject.DigestStr()+`","kind":"`+a.kind+`"}`)
		tag := "sha256-" + hexOf(a.subject.DigestStr()) + "." + a.kind
		ref := a.subject.Context().Tag(tag)
		if err := remote.Write(ref, img, opts...); err != nil {
			t.Fatal(err)
		}
		d, _ := img.Digest()
		f.sigs[tag] = d
	}

	app2, err := remote.Get(f.app2, opts...)
	if err != nil {
		t.Fatal(err)
	}
	art := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), "application/vnd.example.sbom.v1+json")
	art, err = mutate.Append(art, mutate.Addendum{Layer: static.NewLayer([]byte(`{"sbom":"app2"}`), "application/spdx+json")})
	if err != nil {
		t.Fatal(err)
	}
	withSubject := mutate.Subject(art, app2.Descriptor).(v1.Image)
	f.referrer, _ = withSubject.Digest()
	if err := remote.Write(f.app2.Context().Digest(f.referrer.String()), withSubject, opts...); err != nil {
		t.Fatal(err)
	}
	return f
}

// wantArtifactTags extends wantTags: every cosign tag again, and each
// signature image's own .imgpkg tag (imgpkg writes one); the referrer gets
// no tag of its own.
func (f *artifactFixture) wantArtifactTags(t *testing.T) map[string]string {
	want := f.wantTags(t)
	for tag, d := range f.sigs {
		want[tag] = d.String()
		want["sha256-"+d.Hex+".imgpkg"] = d.String()
	}
	return want
}

// assertArtifacts checks the complete tag set of repo in dst, and that the
// referrer is listed for app2 there (through the fallback tag, which must
// exist, since dst has no referrers API either).
func (f *artifactFixture) assertArtifacts(t *testing.T, dst *testregistry.Registry, repo string) {
	t.Helper()
	got := tagsOf(t, dst, repo)
	fallback := "sha256-" + hexOf(f.app2.DigestStr())
	if got[fallback] == "" {
		t.Errorf("no referrers fallback tag %s at the destination", fallback)
	}
	delete(got, fallback)
	assertTags(t, got, f.wantArtifactTags(t))

	r, _ := name.NewRepository(repo)
	idx, err := remote.Referrers(r.Digest(f.app2.DigestStr()), dst.RemoteOptions(t)...)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := idx.IndexManifest()
	if len(m.Manifests) != 1 || m.Manifests[0].Digest != f.referrer {
		t.Errorf("referrers of app2 at the destination: %+v, want only %s", m.Manifests, f.referrer)
	}
}

func TestSignaturesAndReferrersThroughAnArchive(t *testing.T) {
	src := testregistry.NewDistribution(t)
	f := newArtifactFixture(t, src)
	archive := filepath.Join(t.TempDir(), "signed.tar.zst")
	mustFerry(t, "export", "-b", f.root, "-o", archive, "--cosign-signatures", "--referrers")
	// The archive stays one that verify and inspect accept, and inspect
	// lists the tags import will write.
	mustFerry(t, "verify", archive)
	insp := mustFerry(t, "inspect", archive)
	for tag := range f.sigs {
		if !strings.Contains(insp.Stdout, tag) {
			t.Errorf("inspect does not list %s:\n%s", tag, insp.Stdout)
		}
	}

	dst := testregistry.NewDistribution(t)
	repo := dst.Repo("far/release")
	mustFerry(t, "import", "-f", archive, "--to-repo", repo)
	f.assertArtifacts(t, dst, repo)
}

func TestSignaturesAndReferrersByCopy(t *testing.T) {
	src := testregistry.NewDistribution(t)
	f := newArtifactFixture(t, src)
	dst := testregistry.NewDistribution(t)
	repo := dst.Repo("far/release")
	res := parseCopyJSON(t, mustFerry(t, "copy", "-b", f.root, "--to-repo", repo, "--cosign-signatures", "--referrers", "--json"))
	if n := len(res.Tags); n == 0 || res.Tags[n-1].Tag != "v1" {
		t.Fatalf("the root tag is not written last: %+v", res.Tags)
	}
	f.assertArtifacts(t, dst, repo)
}

func TestNoSignaturesOrReferrersUnlessAsked(t *testing.T) {
	src := testregistry.NewDistribution(t)
	f := newArtifactFixture(t, src)
	archive := filepath.Join(t.TempDir(), "plain.tar.zst")
	mustFerry(t, "export", "-b", f.root, "-o", archive)
	dst := testregistry.NewDistribution(t)
	mustFerry(t, "import", "-f", archive, "--to-repo", dst.Repo("far/a"))
	assertTags(t, tagsOf(t, dst, dst.Repo("far/a")), f.wantTags(t))
	mustFerry(t, "copy", "-b", f.root, "--to-repo", dst.Repo("far/b"))
	assertTags(t, tagsOf(t, dst, dst.Repo("far/b")), f.wantTags(t))
}
