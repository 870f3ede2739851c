package relocate

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/ferry-dev/ferry/archive"
	"github.com/ferry-dev/ferry/internal/bundle"
	"github.com/ferry-dev/ferry/internal/ctxio"
	"github.com/ferry-dev/ferry/internal/progress"
)

// maxBundleLayer bounds the bundle layers Verify keeps in memory to read
// their images.yml; bundles hold configuration, not payloads.
const maxBundleLayer = 64 << 20

// VerifyResult is what `ferry verify` reports.
type VerifyResult struct {
	Archive  string `json:"archive"`
	SHA256   string `json:"sha256"`
	Images   int    `json:"images"`
	Blobs    int    `json:"blobs"`
	Bytes    int64  `json:"bytes"`
	Bundles  int    `json:"bundles"`
	Sidecar  string `json:"checksumFile,omitempty"`
	Verified bool   `json:"verified"`
}

// VerifyFile reads the archive at path once, offline, and checks every
// blob's digest and size, every manifest's references, that every image a
// bundle's images.yml locks is in the archive, and, when path.sha256
// exists, the archive's checksum against it.
func VerifyFile(ctx context.Context, path string, rep progress.Reporter) (*VerifyResult, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	defer f.Close()
	res := &VerifyResult{Archive: path}
	if fi, err := f.Stat(); err == nil {
		progress.OrNop(rep).Start("verify", fi.Size())
		defer progress.OrNop(rep).Done()
	}
	sum := sha256.New()
	in := io.TeeReader(&reportReader{r: ctxio.NewReader(ctx, bufio.NewReaderSize(f, 1<<20)), rep: progress.OrNop(rep)}, sum)
	if err := verify(ctx, in, res); err != nil {
		return res, fmt.Errorf("verify %s: %w", path, err)
	}
	// Whatever follows the tar's end (zstd padding) is part of the file's sum.
	if _, err := io.Copy(io.Discard, in); err != nil {
		return res, fmt.Errorf("verify %s: %w", path, err)
	}
	res.SHA256 = hex.EncodeToString(sum.Sum(nil))
	side := path + ".sha256"
	b, err := os.ReadFile(side)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return res, fmt.Errorf("verify %s: %w", side, err)
	default:
		fields := strings.Fields(string(b))
		if len(fields) < 1 || fields[0] != res.SHA256 {
			return res, fmt.Errorf("verify %s: the archive's sha256 is %s, but %s says %q", path, res.SHA256, filepath.Base(side), strings.TrimSpace(string(b)))
		}
		res.Sidecar = side
	}
	res.Verified = true
	return res, nil
}

// verify reads the archive in r once, checking it whole.
func verify(ctx context.Context, r io.Reader, res *VerifyResult) error {
	ar, err := archive.NewReader(r, archive.ReaderOptions{})
	if err != nil {
		return err
	}
	defer ar.Close()
	head := ar.Head()
	res.Images = len(head.Entries)

	// The layers of bundles are kept to read their images.yml at the end.
	type bundleRef struct {
		entry archive.Entry
		layer v1.Descriptor
	}
	var bundles []bundleRef
	want := map[v1.Hash][]byte{}
	inArchive := map[v1.Hash]bool{}
	for _, e := range head.Entries {
		inArchive[e.Descriptor.Digest] = true
		if e.Role != archive.RoleBundle && e.Role != archive.RoleNestedBundle {
			continue
		}
		var m v1.Manifest
		if err := json.Unmarshal(head.Manifests[e.Descriptor.Digest], &m); err != nil {
			return fmt.Errorf("bundle %s: manifest: %w", e.Descriptor.Digest, err)
		}
		if len(m.Layers) != 1 {
			return fmt.Errorf("bundle %s (%s) has %d layers, want 1", e.OriginalRef, e.Descriptor.Digest, len(m.Layers))
		}
		if m.Layers[0].Size > maxBundleLayer {
			return fmt.Errorf("bundle %s (%s): layer of %d bytes is larger than a bundle's %d", e.OriginalRef, e.Descriptor.Digest, m.Layers[0].Size, maxBundleLayer)
		}
		bundles = append(bundles, bundleRef{entry: e, layer: m.Layers[0]})
		want[m.Layers[0].Digest] = nil
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		d, size, blob, err := ar.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		res.Blobs++
		res.Bytes += size
		if _, ok := want[d]; ok {
			b, err := io.ReadAll(blob)
			if err != nil {
				return err
			}
			want[d] = b
			continue
		}
		if _, err := io.Copy(io.Discard, blob); err != nil {
			return err
		}
	}
	// Every image a bundle locks must have travelled with it.
	for _, b := range bundles {
		src := fmt.Sprintf("bundle %s (%s)", b.entry.OriginalRef, b.entry.Descriptor.Digest)
		data := want[b.layer.Digest]
		layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(data)), nil
		}, tarball.WithMediaType(b.layer.MediaType))
		if err != nil {
			return fmt.Errorf("%s: %w", src, err)
		}
		img, err := mutate.AppendLayers(empty.Image, layer)
		if err != nil {
			return err
		}
		l, err := bundle.ReadImagesLock(img, src)
		if err != nil {
			return err
		}
		for _, li := range l.Images {
			d, err := li.Digest()
			if err != nil {
				return fmt.Errorf("%s: %w", src, err)
			}
			h, err := v1.NewHash(d.DigestStr())
			if err != nil {
				return fmt.Errorf("%s: %w", src, err)
			}
			if !inArchive[h] {
				return fmt.Errorf("%s locks %s, which the archive does not hold", src, li.Image)
			}
		}
		res.Bundles++
	}
	return nil
}
