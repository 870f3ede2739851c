package relocate

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/archive"
	"github.com/ferry-dev/ferry/internal/progress"
	"github.com/ferry-dev/ferry/tags"
)

// `ferry serve` answers registry requests from an archive. What it answers
// is decided here, from the archive's head, by the same rules an import
// follows: RepoView gives one repository exactly the tags an import into
// it writes (computed by the import's own code, locations images
// included); MirrorView puts each image back under its original
// repository path. The configs and layers stay in the archive.

// RegistryView is an archive's content arranged as the repositories of a
// read-only registry. It holds every manifest it serves and the few small
// blobs made for it (those of locations images); the archive's configs and
// layers are only named, by digest.
type RegistryView struct {
	// Repositories are the repositories served, by name.
	Repositories map[string]*ViewRepository
	// Manifests are the manifests and indexes of every repository: the
	// archive's head, and the locations images of a RepoView.
	Manifests map[v1.Hash]ViewManifest
	// Blobs are the configs and layers made for the view, which the
	// archive does not hold.
	Blobs map[v1.Hash][]byte
	// Root is "repository:tag" of the root (the bundle, or the single
	// tagged image) when it has a tag, for people to pull.
	Root string
	// Warnings say what MirrorView could not place: an entry without an
	// original reference, or whose repository the server cannot serve, or
	// two entries claiming one tag.
	Warnings []string
}

// ViewRepository is one repository of a RegistryView.
type ViewRepository struct {
	// Name is the repository's path, without a registry.
	Name string
	// Tags map each tag to the manifest it names.
	Tags map[string]v1.Hash
	// Manifests are the manifests and indexes the repository holds, index
	// children included.
	Manifests map[v1.Hash]bool
	// Blobs are the configs and layers its manifests reference, in the
	// archive or in RegistryView.Blobs; layers left out of the archive
	// (non-distributable) are not among them, but those a delta left out
	// are (the repository holds them where the delta is imported; serve
	// answers them as unknown).
	Blobs map[v1.Hash]bool
	// Referrers list, for each subject digest, the manifests of the
	// repository whose subject it is, as the referrers API describes them
	// (sorted by digest).
	Referrers map[v1.Hash][]v1.Descriptor
}

// ViewManifest is a manifest or index served as it is in the archive.
type ViewManifest struct {
	Raw       []byte
	MediaType types.MediaType
}

// SortedTags returns the repository's tags, sorted as the tags API lists
// them.
func (r *ViewRepository) SortedTags() []string {
	out := make([]string, 0, len(r.Tags))
	for t := range r.Tags {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// RepoViewOptions configure RepoView.
type RepoViewOptions struct {
	// RepoBasedTags gives the tags of an import with --repo-based-tags.
	RepoBasedTags bool
	// Name is used to parse original references (for RepoBasedTags).
	Name []name.Option
}

// RepoView arranges the archive f as the one repository repo (a path, no
// registry) holding everything an import into it would, with exactly the
// tags it writes: "sha256-<hex>.imgpkg" (or repo-based), cosign's tags,
// each bundle's locations image with its two tags, and the original tag.
// The locations images are built from each bundle's images.yml, read from
// the archive.
func RepoView(ctx context.Context, f RandomArchive, repo string, opts RepoViewOptions) (*RegistryView, error) {
	head, err := archiveImportHead(f.Head())
	if err != nil {
		return nil, err
	}
	// The commit phase's tag and locations logic, with nothing to write
	// to: a destination without a registry, reading the archive.
	dst := &destination{
		opts:      DestinationOptions{RepoBasedTags: opts.RepoBasedTags, Name: opts.Name},
		conc:      DefaultImportConcurrency,
		rep:       progress.Nop{},
		head:      head,
		blob:      func(_ context.Context, d v1.Hash) (io.ReadCloser, error) { return f.Blob(d) },
		blobLocal: true,
	}
	imgpkg, originals, err := dst.entryTags()
	if err != nil {
		return nil, err
	}
	if err := locksLeftOut(head); err != nil {
		return nil, err
	}
	locs, err := dst.locations(ctx, head.bundles())
	if err != nil {
		return nil, err
	}
	// What import refuses, serve does not show as a repository an import
	// would have made (a delta's left-out configs are not at hand).
	if _, err := dst.checkRoles(ctx, locs, f.Has); err != nil {
		return nil, err
	}
	// Its locations images would tell pull that a locked image missing
	// from the archive is in the repository.
	if err := dst.checkLocked(ctx, locs, dst.conc); err != nil {
		return nil, err
	}
	v := newRegistryView(head)
	r := v.repository(repo)
	for d := range head.manifests {
		r.Manifests[d] = true
	}
	for _, b := range head.blobs {
		r.Blobs[b.Digest] = true
	}
	tags := imgpkg
	for _, l := range locs {
		v.Manifests[l.digest] = ViewManifest{Raw: l.m.raw, MediaType: l.m.mediaType}
		r.Manifests[l.digest] = true
		blobs, err := imageBlobs(l.img)
		if err != nil {
			return nil, fmt.Errorf("bundle %s: locations image: %w", l.bundle.name(), err)
		}
		for _, b := range blobs {
			d := sha256Hash(b)
			v.Blobs[d] = b
			r.Blobs[d] = true
		}
		tags = append(tags, importLocationTags(l)...)
	}
	// In the import's order: a later tag of the same name wins, as it
	// would in the destination.
	for _, t := range append(tags, originals...) {
		r.Tags[t.tag] = t.digest
	}
	if len(originals) > 0 {
		v.Root = repo + ":" + originals[len(originals)-1].tag
	}
	if err := v.findReferrers(); err != nil {
		return nil, err
	}
	return v.RegistryView, nil
}

// locksLeftOut refuses a delta that left out the layer of one of its
// bundles (one unchanged since the base): the images.yml that layer holds,
// which the locations image is built from, is only at the base's
// destination, and reading it from the archive would fail as if the
// archive were damaged.
func locksLeftOut(head *importHead) error {
	for _, b := range head.bundles() {
		for _, l := range head.manifests[b.digest].layers {
			lo, ok := head.leftOut[l]
			if !ok {
				continue
			}
			return fmt.Errorf("bundle %s: --repo builds the image-locations image from the bundle's images.yml, "+
				"whose layer %s this delta left out (held at the destination of its base %s): "+
				"serve the delta without --repo, or import it", b.name(), l, head.delta.Bases[lo.Base])
		}
	}
	return nil
}

// MirrorView arranges the archive's head h as the repositories its images
// came from: each entry of index.json (with every manifest and blob it
// reaches) under the repository path of its original reference, without
// the registry, and tagged with the tag of that reference when it has one
// (the root bundle's, a cosign signature's), so that a client pulling
// HOST/team/app@sha256:… from the server finds what it would find at
// registry.example.com/team/app. Entries without an original reference
// are not served (Warnings says so), nor are those whose repository path
// checkRepo, when not nil, refuses: a name the reference's grammar allows
// but the server's does not ("team/app_", "a..b") would be listed and then
// refused to every request.
func MirrorView(h *archive.Head, checkRepo func(repo string) error) (*RegistryView, error) {
	head, err := archiveImportHead(h)
	if err != nil {
		return nil, err
	}
	v := newRegistryView(head)
	for _, e := range h.Entries {
		d := e.Descriptor.Digest
		if e.OriginalRef == "" {
			v.Warnings = append(v.Warnings, fmt.Sprintf("index.json entry %s (role %s) has no original reference: not served", d, e.Role))
			continue
		}
		ref, err := name.ParseReference(e.OriginalRef, name.WeakValidation)
		if err != nil {
			v.Warnings = append(v.Warnings, fmt.Sprintf("index.json entry %s: original reference %q: %v: not served", d, e.OriginalRef, err))
			continue
		}
		repo := ref.Context().RepositoryStr()
		if checkRepo != nil {
			if err := checkRepo(repo); err != nil {
				v.Warnings = append(v.Warnings, fmt.Sprintf("index.json entry %s: original reference %q: %v: not served (serve the archive with --repo to serve it)", d, e.OriginalRef, err))
				continue
			}
		}
		r := v.repository(repo)
		v.reach(r, d)
		// A reference without a tag parses with "latest": only a tag
		// actually written counts.
		if t, ok := ref.(name.Tag); ok && strings.HasSuffix(e.OriginalRef, ":"+t.TagStr()) && v.mirrorTag(t.TagStr(), r.Name, e) {
			v.tag(r, t.TagStr(), d)
		}
		if e.Tag != "" && v.mirrorTag(e.Tag, r.Name, e) {
			v.tag(r, e.Tag, d)
			v.Root = r.Name + ":" + e.Tag
		}
	}
	if err := v.findReferrers(); err != nil {
		return nil, err
	}
	return v.RegistryView, nil
}

// mirrorTag reports whether an original tag may name e in a mirror, and
// warns when not: a tag of the shape of one that names another manifest
// by its digest (sha256-<hex>.imgpkg, a locations tag, cosign's, the referrers tag schema's sha256-<hex>) would
// let the archive pass e off as that manifest's bookkeeping (its
// locations, its signature), which an import refuses too. e stays served
// by digest. e's own such tags are its own: its .imgpkg tag (plain or
// repo-based), and a signature's cosign tag, which names its subject.
func (v registryView) mirrorTag(tag, repo string, e archive.Entry) bool {
	d := e.Descriptor.Digest
	if !tags.NamesADigest(tag) || tag == tags.Imgpkg(d) || tag == tags.RepoBased(repo, d) || tag == artifactTag(e) {
		return true
	}
	v.Warnings = append(v.Warnings, fmt.Sprintf("original tag %q of %s names another manifest's digest: not served (%s is, by digest)", tag, d, d))
	return false
}

// registryView is a RegistryView being built.
type registryView struct {
	*RegistryView
	head *importHead
}

func newRegistryView(head *importHead) registryView {
	v := registryView{
		RegistryView: &RegistryView{
			Repositories: map[string]*ViewRepository{},
			Manifests:    make(map[v1.Hash]ViewManifest, len(head.manifests)),
			Blobs:        map[v1.Hash][]byte{},
		},
		head: head,
	}
	for d, m := range head.manifests {
		v.Manifests[d] = ViewManifest{Raw: m.raw, MediaType: m.mediaType}
	}
	return v
}

// repository returns the repository called name, adding it.
func (v registryView) repository(name string) *ViewRepository {
	r, ok := v.Repositories[name]
	if !ok {
		r = &ViewRepository{
			Name:      name,
			Tags:      map[string]v1.Hash{},
			Manifests: map[v1.Hash]bool{},
			Blobs:     map[v1.Hash]bool{},
			Referrers: map[v1.Hash][]v1.Descriptor{},
		}
		v.Repositories[name] = r
	}
	return r
}

// reach adds manifest d to r, with its index children and the configs and
// layers they reference.
func (v registryView) reach(r *ViewRepository, d v1.Hash) {
	if r.Manifests[d] {
		return
	}
	r.Manifests[d] = true
	m := v.head.manifests[d]
	for _, b := range m.blobs {
		if _, isManifest := v.head.manifests[b.Digest]; !isManifest && !v.head.skipped[b.Digest] {
			r.Blobs[b.Digest] = true
		}
	}
	for _, c := range m.children {
		v.reach(r, c.Digest)
	}
}

// tag points tag of r at d, unless an earlier entry claimed it.
func (v registryView) tag(r *ViewRepository, tag string, d v1.Hash) {
	if prev, ok := r.Tags[tag]; ok && prev != d {
		v.Warnings = append(v.Warnings, fmt.Sprintf("%s:%s names both %s and %s: serving the first", r.Name, tag, prev, d))
		return
	}
	r.Tags[tag] = d
}

// findReferrers lists, in each repository, the manifests that name a
// subject, described as the referrers API describes them: media type,
// digest, size, artifact type (the manifest's, else its config's media
// type) and annotations.
func (v registryView) findReferrers() error {
	type referrer struct {
		desc    v1.Descriptor
		subject v1.Hash
	}
	found := map[v1.Hash]*referrer{}
	for d, m := range v.Manifests {
		var probe struct {
			ArtifactType string            `json:"artifactType"`
			Config       *v1.Descriptor    `json:"config"`
			Subject      *v1.Descriptor    `json:"subject"`
			Annotations  map[string]string `json:"annotations"`
		}
		if err := json.Unmarshal(m.Raw, &probe); err != nil {
			return fmt.Errorf("manifest %s: %w", d, err)
		}
		if probe.Subject == nil {
			continue
		}
		at := probe.ArtifactType
		if at == "" && probe.Config != nil {
			at = string(probe.Config.MediaType)
		}
		found[d] = &referrer{
			desc: v1.Descriptor{
				MediaType: m.MediaType, Digest: d, Size: int64(len(m.Raw)),
				ArtifactType: at, Annotations: probe.Annotations,
			},
			subject: probe.Subject.Digest,
		}
	}
	for _, r := range v.Repositories {
		for d := range r.Manifests {
			if ref := found[d]; ref != nil {
				r.Referrers[ref.subject] = append(r.Referrers[ref.subject], ref.desc)
			}
		}
		for _, list := range r.Referrers {
			sort.Slice(list, func(i, j int) bool { return list[i].Digest.String() < list[j].Digest.String() })
		}
	}
	return nil
}
