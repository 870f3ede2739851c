package bundle

import (
	"archive/tar"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"sync/atomic"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/lock"
)

// IsBundle reports whether cfg carries LabelKey. Like imgpkg, it checks
// that the key exists, whatever its value.
func IsBundle(cfg *v1.ConfigFile) bool {
	if cfg == nil {
		return false
	}
	_, ok := cfg.Config.Labels[LabelKey]
	return ok
}

// IsBundleImage reports whether img's config carries LabelKey. It reads
// the config with ReadConfig.
func IsBundleImage(img v1.Image) (bool, error) {
	cfg, err := ReadConfig(img, "image")
	if err != nil {
		return false, err
	}
	return IsBundle(cfg), nil
}

// MaxConfigSize bounds the image configs ferry reads into memory, to tell
// a bundle from an image and to learn an image's platform. Real configs
// are a few KiB (a long build history makes tens); a registry named by a
// lock can declare any size, and go-containerregistry's ConfigFile buffers
// what is declared before checking the digest.
const MaxConfigSize = 8 << 20

// ReadConfig reads the config of img. A config whose manifest declares
// more than MaxConfigSize bytes (or a negative size) is refused before it
// is fetched, naming source (the image) and the declared size; no more
// than the declared size is read whatever the registry sends, and the
// bytes are checked against the config's digest.
func ReadConfig(img v1.Image, source string) (*v1.ConfigFile, error) {
	cfg, _, err := ReadConfigRaw(img, source)
	return cfg, err
}

// ReadConfigRaw is ReadConfig, also returning the config's bytes (checked
// against its digest), which a caller may keep rather than fetch again.
func ReadConfigRaw(img v1.Image, source string) (*v1.ConfigFile, []byte, error) {
	m, err := img.Manifest()
	if err != nil {
		return nil, nil, fmt.Errorf("%s: reading manifest: %w", source, err)
	}
	d := m.Config
	if d.Size < 0 || d.Size > MaxConfigSize {
		return nil, nil, fmt.Errorf("%s: config %s declares %d bytes; a config may have at most %d", source, d.Digest, d.Size, MaxConfigSize)
	}
	l, err := partial.ConfigLayer(img)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: config %s: %w", source, d.Digest, err)
	}
	b, err := readExactly(l.Compressed, d, source, "config")
	if err != nil {
		return nil, nil, err
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(b))
	if err != nil {
		return nil, nil, fmt.Errorf("%s: config %s: %w", source, d.Digest, err)
	}
	return cfg, b, nil
}

// readExactly reads the blob d that open opens, no more than its declared
// size whatever the registry sends, and checks it against d's size and
// digest. source names the image in errors, what the blob ("config").
func readExactly(open func() (io.ReadCloser, error), d v1.Descriptor, source, what string) ([]byte, error) {
	rc, err := open()
	if err != nil {
		return nil, fmt.Errorf("%s: %s %s: %w", source, what, d.Digest, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, d.Size+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %s %s: %w", source, what, d.Digest, err)
	}
	if int64(len(b)) != d.Size {
		return nil, fmt.Errorf("%s: %s %s: got %s bytes, the manifest declares %d", source, what, d.Digest, atLeast(len(b), d.Size), d.Size)
	}
	h, err := v1.Hasher(d.Digest.Algorithm)
	if err != nil {
		return nil, fmt.Errorf("%s: %s %s: %w", source, what, d.Digest, err)
	}
	h.Write(b)
	if got := hex.EncodeToString(h.Sum(nil)); got != d.Digest.Hex {
		return nil, fmt.Errorf("%s: %s %s: content has digest %s:%s", source, what, d.Digest, d.Digest.Algorithm, got)
	}
	return b, nil
}

// atLeast says how many bytes were read: n, or "more than size" when the
// read stopped past the declared size.
func atLeast(n int, size int64) string {
	if int64(n) > size {
		return fmt.Sprintf("more than %d", size)
	}
	return fmt.Sprint(n)
}

// ReadImagesLock reads the .imgpkg/images.yml of the bundle img. source names
// the bundle in errors (its reference, or an archive entry). The bundle must
// have exactly one layer, as imgpkg requires.
func ReadImagesLock(img v1.Image, source string) (*lock.ImagesLock, error) {
	data, ok, err := readLayerFile(img, source, ImagesLockPath)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%s: bundle has no %s", source, ImagesLockPath)
	}
	return lock.ParseImagesLock(data, fileSource(source, ImagesLockPath))
}

func fileSource(source, file string) string {
	return fmt.Sprintf("%s (%s)", source, file)
}

// readLayerFile returns the content of the regular file named want in the
// only layer of img. Names are compared as pull extracts them (layerName):
// "./x" and ".\x" are "x".
// The whole layer is read even after the file is found: reading to the end
// is what makes go-containerregistry check the layer against its digest, and
// a second entry of the same name (which extraction would let win) is an
// error rather than a silent disagreement with `pull`.
func readLayerFile(img v1.Image, source, want string) (data []byte, found bool, err error) {
	layers, err := img.Layers()
	if err != nil {
		return nil, false, fmt.Errorf("%s: reading layers: %w", source, err)
	}
	if len(layers) != 1 {
		return nil, false, fmt.Errorf("%s: expected exactly one layer, found %d", source, len(layers))
	}
	tl := &endTrackedLayer{l: layers[0]}
	ul, err := partial.CompressedToLayer(tl)
	if err != nil {
		return nil, false, fmt.Errorf("%s: reading layer: %w", source, err)
	}
	data, found, err = readFileIn(ul, source, want)
	if err != nil && tl.ended() {
		// Every byte arrived and matched the digest (go-containerregistry
		// ends a layer's reader only then): the fault is in what the
		// bundle holds, and reading it again would give the same error.
		d, _ := layers[0].Digest()
		return nil, false, &ContentError{Err: fmt.Errorf("%w (layer %s matches its digest: its content is damaged)", err, d)}
	}
	return data, found, err
}

// endTrackedLayer is a layer whose compressed reader notes that it reached
// its end, so that a failure to decompress or untar it can be told apart:
// a connection cut part way (worth reading again) or a fault in bytes read
// whole and checked. It offers only the compressed side, so that
// partial.CompressedToLayer decompresses through it.
type endTrackedLayer struct {
	l   v1.Layer
	eof atomic.Bool
}

func (t *endTrackedLayer) ended() bool                         { return t.eof.Load() }
func (t *endTrackedLayer) Digest() (v1.Hash, error)            { return t.l.Digest() }
func (t *endTrackedLayer) Size() (int64, error)                { return t.l.Size() }
func (t *endTrackedLayer) MediaType() (types.MediaType, error) { return t.l.MediaType() }

// Compressed implements partial.CompressedLayer.
func (t *endTrackedLayer) Compressed() (io.ReadCloser, error) {
	rc, err := t.l.Compressed()
	if err != nil {
		return nil, err
	}
	return &endReader{ReadCloser: rc, eof: &t.eof}, nil
}

// endReader sets eof when its reader returns io.EOF.
type endReader struct {
	io.ReadCloser
	eof *atomic.Bool
}

func (r *endReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	if err == io.EOF {
		r.eof.Store(true)
	}
	return n, err
}

// MaxKeptLayerSize is the largest bundle layer ReadImagesLockKeep keeps:
// most bundles carry a few configuration files, and an export or copy that
// already holds their layer need not fetch it again.
const MaxKeptLayerSize = 1 << 20

// ReadImagesLockKeep is ReadImagesLock, also returning the layer's bytes,
// as stored (compressed) and checked against its digest, when its manifest
// declares at most MaxKeptLayerSize bytes; nil for a larger layer, which is
// streamed as ReadImagesLock streams it.
func ReadImagesLockKeep(img v1.Image, source string) (*lock.ImagesLock, []byte, error) {
	m, err := img.Manifest()
	if err != nil {
		return nil, nil, fmt.Errorf("%s: reading manifest: %w", source, err)
	}
	if len(m.Layers) != 1 || m.Layers[0].Size < 0 || m.Layers[0].Size > MaxKeptLayerSize {
		l, err := ReadImagesLock(img, source)
		return l, nil, err
	}
	d := m.Layers[0]
	l, err := img.LayerByDigest(d.Digest)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: layer %s: %w", source, d.Digest, err)
	}
	raw, err := readExactly(l.Compressed, d, source, "layer")
	if err != nil {
		return nil, nil, err
	}
	// From here on the bytes are whole and match their digest: a truncated
	// gzip or tar inside them is what the bundle holds, and reading it
	// again would only give the same error.
	kept, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(raw)), nil
	})
	if err != nil {
		return nil, nil, &ContentError{Err: fmt.Errorf("%s: layer %s matches its digest, but its content is damaged: %w", source, d.Digest, err)}
	}
	data, ok, err := readFileIn(kept, source, ImagesLockPath)
	if err != nil {
		return nil, nil, &ContentError{Err: fmt.Errorf("%w (the layer matches its digest: its content is damaged)", err)}
	}
	if !ok {
		return nil, nil, fmt.Errorf("%s: bundle has no %s", source, ImagesLockPath)
	}
	il, err := lock.ParseImagesLock(data, fileSource(source, ImagesLockPath))
	if err != nil {
		return nil, nil, &ContentError{Err: err}
	}
	return il, raw, nil
}

// ContentError is a fault in bytes that were read whole and match their
// digest (a truncated gzip stream inside a layer, say): unlike an
// io.ErrUnexpectedEOF from a connection cut part way, fetching them again
// cannot cure it, so a caller that retries reads stops.
type ContentError struct{ Err error }

// Error implements error.
func (e *ContentError) Error() string { return e.Err.Error() }

// Unwrap returns the fault itself.
func (e *ContentError) Unwrap() error { return e.Err }

// readFileIn returns the content of the regular file named want in layer l
// (see readLayerFile).
func readFileIn(l v1.Layer, source, want string) (data []byte, found bool, err error) {
	rc, err := l.Uncompressed()
	if err != nil {
		return nil, false, fmt.Errorf("%s: reading layer: %w", source, err)
	}
	defer rc.Close()

	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, false, fmt.Errorf("%s: reading layer: %w", source, err)
		}
		if layerName(h.Name) != want {
			continue
		}
		if h.Typeflag != tar.TypeReg {
			return nil, false, fmt.Errorf("%s: %s in the layer is not a regular file", source, want)
		}
		if found {
			return nil, false, fmt.Errorf("%s: %s appears twice in the layer", source, want)
		}
		// The one bound of lock documents, checked from the tar header
		// before anything is read.
		if h.Size > lock.MaxDocumentSize {
			return nil, false, fmt.Errorf("%s: %s is %d bytes, more than the %d a lock document may have", source, want, h.Size, lock.MaxDocumentSize)
		}
		data, err = io.ReadAll(tr)
		if err != nil {
			return nil, false, fmt.Errorf("%s: reading %s: %w", source, want, err)
		}
		found = true
	}
	if _, err := io.Copy(io.Discard, rc); err != nil {
		return nil, false, fmt.Errorf("%s: reading layer: %w", source, err)
	}
	return data, found, nil
}

// layerName is the slash-separated path, relative to the layer's root, that
// the tar entry name n stands for, read as pull extracts it
// (internal/safetar): a backslash is a separator, as in imgpkg's pull,
// because older imgpkg releases running on Windows wrote such names, and a
// leading "/" or "./" says nothing. The file export and copy take for
// .imgpkg/images.yml is thus the one pull writes there, and a layer that
// holds it under both spellings is refused by both, as a second entry of
// the same name.
func layerName(n string) string {
	return strings.TrimPrefix(path.Clean(strings.ReplaceAll(n, `\`, "/")), "/")
}
