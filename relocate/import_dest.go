package relocate

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
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

// importBlobImage is an image of the plan whose manifest is at hand (so it
// need not have been PUT yet) and whose config and layers are read through
// blob: from the archive, or from the destination once uploaded. An import
// reads bundles' images.yml this way.
type importBlobImage struct {
	ctx  context.Context
	blob func(ctx context.Context, d v1.Hash) (io.ReadCloser, error)
	m    *importManifest
}

// RawManifest implements partial.CompressedImageCore.
func (i *importBlobImage) RawManifest() ([]byte, error) { return i.m.raw, nil }

// MediaType implements partial.CompressedImageCore.
func (i *importBlobImage) MediaType() (types.MediaType, error) { return i.m.mediaType, nil }

// RawConfigFile implements partial.CompressedImageCore.
func (i *importBlobImage) RawConfigFile() ([]byte, error) {
	mf, err := v1.ParseManifest(bytes.NewReader(i.m.raw))
	if err != nil {
		return nil, err
	}
	if size := mf.Config.Size; size < 0 || size > bundle.MaxConfigSize {
		return nil, fmt.Errorf("config %s declares %d bytes; a config may have at most %d", mf.Config.Digest, size, bundle.MaxConfigSize)
	}
	rc, err := i.blob(i.ctx, mf.Config.Digest)
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
func (i *importBlobImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	return &importBlobLayer{img: i, d: h}, nil
}

// importBlobLayer is a layer of an importBlobImage.
type importBlobLayer struct {
	img *importBlobImage
	d   v1.Hash
}

// Digest implements partial.CompressedLayer.
func (l *importBlobLayer) Digest() (v1.Hash, error) { return l.d, nil }

// Compressed implements partial.CompressedLayer.
func (l *importBlobLayer) Compressed() (io.ReadCloser, error) { return l.img.blob(l.img.ctx, l.d) }

// Size implements partial.CompressedLayer.
func (l *importBlobLayer) Size() (int64, error) {
	for _, b := range l.img.m.blobs {
		if b.Digest == l.d {
			return b.Size, nil
		}
	}
	return 0, fmt.Errorf("blob %s is not in manifest %s", l.d, l.img.m.digest)
}

// MediaType implements partial.CompressedLayer.
func (l *importBlobLayer) MediaType() (types.MediaType, error) {
	for _, b := range l.img.m.blobs {
		if b.Digest == l.d {
			return b.MediaType, nil
		}
	}
	return "", fmt.Errorf("blob %s is not in manifest %s", l.d, l.img.m.digest)
}

// sha256Hash is the digest of b.
func sha256Hash(b []byte) v1.Hash {
	sum := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}

// digestReader checks, at the end of a blob read from a registry, that its
// bytes have its size and digest: a registry that serves other bytes than
// it was asked for fails the read, naming where they came from.
type digestReader struct {
	rc   io.ReadCloser
	d    v1.Hash
	size int64
	from string
	h    hash.Hash
	n    int64
}

func newDigestReader(rc io.ReadCloser, d v1.Hash, size int64, from string) *digestReader {
	return &digestReader{rc: rc, d: d, size: size, from: from, h: sha256.New()}
}

// Read implements io.Reader.
func (r *digestReader) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	r.h.Write(p[:n])
	r.n += int64(n)
	if r.n > r.size {
		return n, fmt.Errorf("%s: more than the %d bytes expected", r.from, r.size)
	}
	if err == io.EOF {
		if got := hex.EncodeToString(r.h.Sum(nil)); r.n != r.size || got != r.d.Hex {
			return n, fmt.Errorf("%s: %d bytes with digest sha256:%s, want %d bytes with %s", r.from, r.n, got, r.size, r.d)
		}
	}
	return n, err
}

// Close implements io.Closer.
func (r *digestReader) Close() error { return r.rc.Close() }
