package relocate

import (
	"context"
	"fmt"
	"sort"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/archive"
	"github.com/ferry-dev/ferry/internal/parallel"
	"github.com/ferry-dev/ferry/internal/regerr"
	"github.com/ferry-dev/ferry/internal/registry"
)

// Signatures, attestations and referrers travel with what they are about
// when asked (Options.CosignSignatures, Options.Referrers): each costs
// requests for every image, found or not, so both are off by default, as
// imgpkg's --cosign-signatures is.
//
// They are looked for beside every entry of the plan's index (the root,
// nested bundles and the images locks name), in the repository each was
// resolved from. That is what imgpkg signs and fetches signatures for; the
// children of an index are not looked at (cosign signs the index digest
// unless told to recurse), nor are artifacts of artifacts (a signature of
// an SBOM referrer stays behind).

// CosignTag returns cosign's tag for an artifact of kind ("sig", "att",
// "sbom") about the manifest d: "sha256-<hex>.<kind>".
func CosignTag(d v1.Hash, kind string) string {
	return fmt.Sprintf("%s-%s.%s", d.Algorithm, d.Hex, kind)
}

// artifactTag returns the tag a signature entry is written under at the
// destination (the one it was found under), "" for other entries.
func artifactTag(e archive.Entry) string {
	if e.Role != archive.RoleSignature {
		return ""
	}
	return CosignTag(e.Subject, e.SignatureKind)
}

// hasImgpkgTag reports whether an entry of a role gets its own
// "sha256-<hex>.imgpkg" tag. imgpkg tags everything it copies, signatures
// included; it knows nothing of referrers, which the destination's
// referrers API (or the tag-schema fallback index) keeps listed.
func hasImgpkgTag(r archive.Role) bool { return r != archive.RoleReferrer }

// artifactWants looks up the artifacts of every image resolved so far and
// returns them as one level of wants, in plan order: for each image its
// cosign tags (sig, att, sbom), then its referrers by digest.
func (r *resolver) artifactWants(ctx context.Context, opts Options) ([]want, error) {
	subjects := make([]*Image, 0, len(r.imageOrder))
	for _, d := range r.imageOrder {
		if n := r.nodes[d]; n != nil && n.img != nil {
			// Built here, never pushed: nothing can be about it yet.
			continue
		}
		subjects = append(subjects, r.images[d])
	}
	found := make([][]want, len(subjects))
	err := parallel.ForEach(ctx, r.conc, len(subjects), func(ctx context.Context, i int) error {
		im := subjects[i]
		var ws []want
		if opts.CosignSignatures {
			for _, kind := range archive.SignatureKinds() {
				w, ok, err := r.cosignWant(ctx, im, kind)
				if err != nil {
					return err
				}
				if ok {
					ws = append(ws, w)
				}
			}
		}
		if opts.Referrers {
			rs, err := r.referrerWants(ctx, im)
			if err != nil {
				return err
			}
			ws = append(ws, rs...)
		}
		found[i] = ws
		return nil
	})
	if err != nil {
		return nil, err
	}
	var out []want
	for _, ws := range found {
		out = append(out, ws...)
	}
	r.artifactSubjects = len(subjects)
	return out, nil
}

// logArtifacts says how many artifacts were found, once register has
// checked them: a referrer that is about another image is not counted.
func (r *resolver) logArtifacts() {
	r.rep.Logf("found %d cosign signatures, attestations or SBOMs and %d referrers of %d images", r.artifactsFound[archive.RoleSignature], r.artifactsFound[archive.RoleReferrer], r.artifactSubjects)
}

// checkReferrer makes sure that n, listed as a referrer of w.subject, is
// one: its manifest names w.subject as its subject. A registry's listing
// (or a fallback index anyone can tag) may name any manifest, and one
// carried as "referrer of X" is presented so by the archive, inspect and
// the inventory, while at the destination nothing would point at it.
func (r *resolver) checkReferrer(w want, n *node) bool {
	if w.role != archive.RoleReferrer {
		return true
	}
	subject := n.subject
	switch {
	case subject == nil:
		r.rep.Warnf("%s lists %s, whose manifest has no subject: it is not a referrer of %s; leaving it out", w.lockedBy, n.digest, w.subject)
		n.rejected = true
		return false
	case *subject != w.subject:
		r.rep.Warnf("%s lists %s, whose subject is %s: it is not a referrer of %s; leaving it out", w.lockedBy, n.digest, *subject, w.subject)
		n.rejected = true
		return false
	}
	return true
}

// cosignWant looks up the tag "sha256-<hex>.<kind>" beside im. A HEAD is
// enough to learn the digest, and most lookups find nothing; registries
// such as Docker Hub do not count HEADs against pull limits.
func (r *resolver) cosignWant(ctx context.Context, im *Image, kind string) (want, bool, error) {
	tag := im.Source.Context().Tag(CosignTag(im.Digest, kind))
	desc, err := r.puller.Head(ctx, tag)
	if regerr.IsNotFound(err) {
		return want{}, false, nil
	}
	if err != nil {
		return want{}, false, fmt.Errorf("look up %s of %s: %w", tag, im.OriginalRef, err)
	}
	ref := tag.Context().Digest(desc.Digest.String())
	return want{
		ref:      ref,
		digest:   desc.Digest,
		original: tag.String(),
		kind:     wantArtifact,
		lockedBy: kind + " of " + im.OriginalRef,
		role:     archive.RoleSignature,
		subject:  im.Digest,
		sigKind:  kind,
	}, true, nil
}

// referrerWants lists the referrers of im: every page of the referrers
// API, or, where the registry has none, the "sha256-<hex>" fallback index
// (registry.Repo.Referrers). What a listing names is the registry's word:
// register checks each manifest's subject once it has it.
func (r *resolver) referrerWants(ctx context.Context, im *Image) ([]want, error) {
	repo, err := r.client.Repo(ctx, im.Source.Context(), registry.Access{})
	if err != nil {
		return nil, fmt.Errorf("list referrers of %s (%s): %w", im.OriginalRef, im.Source, err)
	}
	var descs []v1.Descriptor
	err = r.reread(ctx, "referrers of "+im.Source.String(), func() (err error) {
		descs, err = repo.Referrers(ctx, im.Digest, registry.ReferrersLimits{})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", im.OriginalRef, err)
	}
	sort.Slice(descs, func(i, j int) bool { return descs[i].Digest.String() < descs[j].Digest.String() })
	var out []want
	seen := map[v1.Hash]bool{}
	by := "referrers of " + im.OriginalRef // one string for every referrer
	for _, d := range descs {
		if seen[d.Digest] || (!d.MediaType.IsImage() && !d.MediaType.IsIndex()) {
			continue
		}
		seen[d.Digest] = true
		ref := im.Source.Context().Digest(d.Digest.String())
		w := want{
			ref:      ref,
			digest:   d.Digest,
			original: ref.String(),
			kind:     wantArtifact,
			lockedBy: by,
			role:     archive.RoleReferrer,
			subject:  im.Digest,
		}
		if err := r.name(w); err != nil {
			return nil, err
		}
		out = append(out, w)
	}
	return out, nil
}

// artifactImage is the Image register records for an artifact want.
func artifactImage(w want, n *node, d v1.Hash) (*Image, error) {
	platforms, children, err := n.entryOf()
	if err != nil {
		return nil, err
	}
	return &Image{
		Digest:        d,
		MediaType:     n.mediaType,
		Size:          int64(len(n.raw)),
		Role:          w.role,
		OriginalRef:   w.original,
		Source:        n.source,
		Platforms:     platforms,
		Children:      children,
		Subject:       w.subject,
		SignatureKind: w.sigKind,
	}, nil
}
