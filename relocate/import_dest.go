package relocate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/internal/bundle"
	"github.com/ferry-dev/ferry/internal/regerr"
	"github.com/ferry-dev/ferry/internal/taglist"
)

// What an import asks of the destination registry, through
// go-containerregistry: existence checks, manifest PUTs checked against the
// digest the registry reports, tags, and reading a bundle's layer back.

// withHTTPStatus adds the HTTP status to a registry error whose message
// gives only the registry's error code: "UNKNOWN" says less to a user than
// "HTTP 413 Request Entity Too Large" (a quota) or "HTTP 507".
func withHTTPStatus(err error) error {
	var te *transport.Error
	if err == nil || !errors.As(err, &te) || te.StatusCode == 0 {
		return err
	}
	return fmt.Errorf("%w (HTTP %d %s)", err, te.StatusCode, http.StatusText(te.StatusCode))
}

// importBlobExists HEADs a blob in repo.
func importBlobExists(ctx context.Context, p *remote.Puller, repo name.Repository, d v1.Hash) (bool, error) {
	l, err := p.Layer(ctx, repo.Digest(d.String()))
	if err != nil {
		return false, err
	}
	ok, err := partial.Exists(l)
	if err != nil {
		return false, fmt.Errorf("check blob %s@%s: %w", repo, d, err)
	}
	return ok, nil
}

// importHeadManifest returns the descriptor the registry reports for ref, or nil
// when it has no such manifest or tag.
func importHeadManifest(ctx context.Context, p *remote.Puller, ref name.Reference) (*v1.Descriptor, error) {
	desc, err := p.Head(ctx, ref)
	if regerr.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("check %s: %w", ref, err)
	}
	return desc, nil
}

// importListTags returns the tags of repo; a repository that does not exist yet
// has none. The listing is bounded (taglist.Names): a registry whose
// pagination loops must not hang an import whose blobs are all up.
func importListTags(ctx context.Context, p *remote.Puller, repo name.Repository) (map[string]bool, error) {
	list, err := taglist.Names(ctx, p, repo, taglist.Limits{})
	if regerr.IsNotFound(err) {
		return map[string]bool{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list tags of %s: %w", repo, err)
	}
	out := make(map[string]bool, len(list))
	for _, t := range list {
		out[t] = true
	}
	return out, nil
}

// importRawManifest is a manifest to PUT exactly as the archive holds it, so the
// registry computes the same digest.
type importRawManifest struct {
	raw       []byte
	mediaType types.MediaType
}

// RawManifest implements remote.Taggable.
func (m importRawManifest) RawManifest() ([]byte, error) { return m.raw, nil }

// MediaType sets the Content-Type of the PUT.
func (m importRawManifest) MediaType() (types.MediaType, error) { return m.mediaType, nil }

// importPutManifest PUTs m at repo@d and checks that the registry now
// serves d there. go-containerregistry's Put does not expose the response's
// Docker-Content-Digest, so the check is a HEAD of repo@d, whose
// Docker-Content-Digest and size must be those of the archive's bytes.
func importPutManifest(ctx context.Context, push *remote.Pusher, pull *remote.Puller, repo name.Repository, d v1.Hash, m importRawManifest) error {
	ref := repo.Digest(d.String())
	if err := push.Put(ctx, ref, m); err != nil {
		return fmt.Errorf("put manifest %s: %w", ref, err)
	}
	desc, err := pull.Head(ctx, ref)
	if err != nil {
		return fmt.Errorf("check manifest %s after put: %w", ref, err)
	}
	if desc.Digest != d || desc.Size != int64(len(m.raw)) {
		return fmt.Errorf("put manifest %s: registry reports digest %s and size %d, the archive has %s and %d bytes",
			ref, desc.Digest, desc.Size, d, len(m.raw))
	}
	return nil
}

// importDestImage is an image of the archive whose blobs are read from the
// destination: its manifest comes from the archive (so it need not have
// been PUT yet), its config and layers from the registry (verified against
// their digests by go-containerregistry as they are read). An import reads
// bundles' images.yml this way once the blobs are in.
type importDestImage struct {
	ctx    context.Context
	puller *remote.Puller
	repo   name.Repository
	m      *importManifest
}

// RawManifest implements partial.CompressedImageCore.
func (i *importDestImage) RawManifest() ([]byte, error) { return i.m.raw, nil }

// MediaType implements partial.CompressedImageCore.
func (i *importDestImage) MediaType() (types.MediaType, error) { return i.m.mediaType, nil }

// RawConfigFile implements partial.CompressedImageCore.
func (i *importDestImage) RawConfigFile() ([]byte, error) {
	mf, err := v1.ParseManifest(bytes.NewReader(i.m.raw))
	if err != nil {
		return nil, err
	}
	if size := mf.Config.Size; size < 0 || size > bundle.MaxConfigSize {
		return nil, fmt.Errorf("config %s declares %d bytes; a config may have at most %d", mf.Config.Digest, size, bundle.MaxConfigSize)
	}
	l, err := i.puller.Layer(i.ctx, i.repo.Digest(mf.Config.Digest.String()))
	if err != nil {
		return nil, err
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, mf.Config.Size+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) != mf.Config.Size {
		return nil, fmt.Errorf("config %s: the registry sent other than the %d bytes the manifest declares", mf.Config.Digest, mf.Config.Size)
	}
	return b, nil
}

// LayerByDigest implements partial.CompressedImageCore.
func (i *importDestImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	return i.puller.Layer(i.ctx, i.repo.Digest(h.String()))
}
