package archive

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"maps"
	"slices"

	"github.com/ferry-dev/ferry/internal/ctxio"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/zstd"
)

// Compression is how an archive's tar is compressed.
type Compression string

// Compressions a Reader detects by their magic bytes.
const (
	CompressionZstd Compression = "zstd"
	CompressionGzip Compression = "gzip"
	CompressionNone Compression = "none"
)

// Reader limits; see ReaderOptions.
const (
	// DefaultMaxWindow admits every stream the zstd CLI writes without
	// --long=28 or more (--ultra -22 and --long use 128 MiB windows);
	// ferry's own frames use 8 MiB.
	DefaultMaxWindow = 128 << 20
	// DefaultMaxHeadSize bounds index.json and the manifests held in
	// memory together.
	DefaultMaxHeadSize = 256 << 20
	// maxTrailing bounds the zero padding accepted after the tar's end
	// marker (GNU tar pads to 10 KiB records; 1 MiB admits any usual
	// blocking factor) so that a stream of zeros cannot keep a Reader busy.
	maxTrailing = 1 << 20
	// maxLayoutSize bounds the oci-layout file.
	maxLayoutSize = 4 << 10
)

// ReaderOptions configures a Reader. The zero value is sensible.
type ReaderOptions struct {
	// MaxWindow caps the zstd window (and with it the decoder's memory)
	// a stream may ask for; 0 means DefaultMaxWindow. It stops
	// decompression bombs that declare huge windows.
	MaxWindow uint64
	// MaxManifestSize caps one manifest or index; 0 means
	// DefaultMaxManifestSize.
	MaxManifestSize int64
	// MaxHeadSize caps index.json and the manifests together; 0 means
	// DefaultMaxHeadSize.
	MaxHeadSize int64
	// Concurrency is the number of zstd blocks decoded ahead; 0 means the
	// decoder's default (GOMAXPROCS, at most 4), 1 decodes synchronously
	// in the caller's goroutine and reads no further ahead than needed.
	Concurrency int
}

// withDefaults fills in the zero fields.
func (opts ReaderOptions) withDefaults() ReaderOptions {
	if opts.MaxWindow == 0 {
		opts.MaxWindow = DefaultMaxWindow
	}
	if opts.MaxManifestSize <= 0 {
		opts.MaxManifestSize = DefaultMaxManifestSize
	}
	if opts.MaxHeadSize <= 0 {
		opts.MaxHeadSize = DefaultMaxHeadSize
	}
	return opts
}

// Head is what precedes the configs and layers of an archive: the layout
// version, index.json and every manifest and index it reaches.
type Head struct {
	// Compression is how the archive was compressed.
	Compression Compression
	// Version is the archive format version (AnnotationArchiveVersion).
	Version int
	// CreatedBy is AnnotationCreatedBy ("" when absent).
	CreatedBy string
	// Index is index.json.
	Index *v1.IndexManifest
	// Entries are index.json's descriptors, in its order.
	Entries []Entry
	// Manifests are every manifest and index of the head, by digest.
	Manifests map[v1.Hash][]byte
	// SkippedLayers are the layers the manifests reference that were left
	// out of the archive (non-distributable).
	SkippedLayers []v1.Hash
	// Delta is set on a delta archive (version 2): the blobs it leaves out,
	// which the destination is expected to hold, and why.
	Delta *Delta
	// Blobs are the configs and layers the manifests reference and the
	// head does not hold, sorted by digest, skipped layers included: what
	// follows the head (minus SkippedLayers), with sizes for `ferry
	// inspect`.
	Blobs []v1.Descriptor
}

// Reader reads an archive in one pass, front to back, from any io.Reader
// (a pipe will do). NewReader reads and verifies the head; Next then
// returns the configs and layers one by one. Every byte is verified: each
// blob against its digest and size, the stream against its zstd checksums
// or gzip CRC, and at the end, the archive against its manifests (every
// config and layer present, except skipped layers). Failures name the tar
// entry they concern. A tarball imgpkg wrote is read the same way (its
// manifest.json as the head; see readImgpkgHead). A Reader is not safe
// for concurrent use.
type Reader struct {
	src    *countingReader // the decompressed tar
	raw    *countingReader // the bytes given to NewReader, as read
	closer func()
	tr     *tar.Reader

	head    *Head
	cat     *catalog
	skipped map[v1.Hash]bool
	leftOut map[v1.Hash]bool
	seen    map[string]bool
	present map[v1.Hash]bool
	last    string // the last entry read, for messages
	blobs   bool   // a blob entry has been read: no more directories

	// entryEnd is where the last entry's data ends in the tar; offsets
	// records where each config and layer's header starts, and tarSize
	// the tar's whole length once read: what a seek table must agree with.
	entryEnd int64
	offsets  map[v1.Hash]int64
	tarSize  int64
	// zframes is the zstd stream, decoded frame by frame, which records
	// each frame's sizes for the seek table to be checked against; nil
	// when the archive is not zstd-compressed.
	zframes *frameStream

	// imgpkg is set when the stream is a tarball imgpkg wrote: configs,
	// which its manifest.json carries, are handed out first (configs),
	// then its layer entries.
	imgpkg  bool
	configs []heldBlob

	cur       *blobReader
	buf       []byte // for draining
	err       error
	eof       bool
	bodyBlobs int
	bodyBytes int64
}

// NewReader detects the compression of r (zstd, gzip or none, by magic
// bytes) and reads the head (or an imgpkg tarball's manifest.json, when
// that is the first entry): oci-layout (first; version checked),
// index.json (second; format version checked), then every manifest and
// index reachable from index.json, each verified against its digest and
// size, and every layer listed as skipped must be one the manifests
// reference as non-distributable. It reads nothing past the last manifest.
// Close releases the decoder; it does not close r.
func NewReader(r io.Reader, opts ReaderOptions) (*Reader, error) {
	opts = opts.withDefaults()
	raw := &countingReader{r: r}
	br := bufio.NewReaderSize(raw, 64<<10)
	magic, err := br.Peek(512)
	if len(magic) == 0 {
		if err == nil || err == io.EOF {
			return nil, errors.New("not a ferry archive: empty input")
		}
		// The caller names the file; a read's *fs.PathError would name
		// it again ("read adir: is a directory").
		if pe, ok := errors.AsType[*fs.PathError](err); ok {
			return nil, fmt.Errorf("cannot read it: %w", pe.Err)
		}
		return nil, fmt.Errorf("cannot read it: %w", err)
	}
	ar := &Reader{
		raw:     raw,
		offsets: map[v1.Hash]int64{},
		seen:    map[string]bool{},
		present: map[v1.Hash]bool{},
		skipped: map[v1.Hash]bool{},
	}
	var tarStream io.Reader
	var comp Compression
	switch {
	case isZstd(magic):
		dopts := []zstd.DOption{
			zstd.WithDecoderMaxWindow(opts.MaxWindow),
			zstd.WithDecoderMaxMemory(opts.MaxWindow),
			zstd.WithDecoderLowmem(true),
		}
		if opts.Concurrency > 0 {
			dopts = append(dopts, zstd.WithDecoderConcurrency(opts.Concurrency))
		}
		src := &ctxio.ErrReader{R: br}
		dec, err := zstd.NewReader(nil, dopts...)
		if err != nil {
			return nil, fmt.Errorf("archive: zstd: %w", err)
		}
		ar.zframes = newFrameStream(src, dec)
		tarStream, ar.closer, comp = &decodeReader{r: ar.zframes, src: src, name: "zstd"}, dec.Close, CompressionZstd
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		src := &ctxio.ErrReader{R: br}
		gz, err := gzip.NewReader(src)
		if err != nil {
			return nil, fmt.Errorf("archive: gzip: %w", err)
		}
		tarStream, ar.closer, comp = &decodeReader{r: gz, src: src, name: "gzip"}, func() { gz.Close() }, CompressionGzip
	case len(magic) >= 262 && bytes.Equal(magic[257:262], []byte("ustar")):
		tarStream, comp = br, CompressionNone
	case bytes.HasPrefix(magic, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		return nil, errors.New("archive: xz compression is not supported (zstd, gzip or none)")
	case bytes.HasPrefix(magic, []byte("BZh")):
		return nil, errors.New("archive: bzip2 compression is not supported (zstd, gzip or none)")
	default:
		return nil, errors.New("not a ferry archive: neither zstd, gzip nor a tar")
	}
	ar.src = &countingReader{r: tarStream}
	ar.tr = tar.NewReader(ar.src)
	if err := ar.readHead(comp, opts); err != nil {
		ar.Close()
		return nil, err
	}
	if ar.zframes != nil {
		// The seek table's own frame, and those it may list.
		ar.zframes.bound(seekFramesBound(ar.head) + 1)
	}
	return ar, nil
}

// isZstd reports a zstd frame or a skippable frame (0x184D2A5?), which
// may precede the first zstd frame.
func isZstd(b []byte) bool {
	if len(b) < 4 {
		return false
	}
	return bytes.Equal(b[:4], []byte{0x28, 0xb5, 0x2f, 0xfd}) ||
		(b[0]&0xf0 == 0x50 && b[1] == 0x2a && b[2] == 0x4d && b[3] == 0x18)
}

// decodeReader is a decompressor whose errors about its input (a stream it
// cannot decode: "tableLog too large") become a corruptError, which
// explain puts in words. Errors reading the input, and those explain
// already words (a truncated stream, a checksum, the window), pass as they
// are.
type decodeReader struct {
	r    io.Reader
	src  *ctxio.ErrReader // the compressed stream as the decompressor reads it
	name string
}

func (d *decodeReader) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	if err == nil || err == io.EOF || d.src.Err != nil ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, zstd.ErrCRCMismatch) || errors.Is(err, gzip.ErrChecksum) ||
		errors.Is(err, zstd.ErrWindowSizeExceeded) || errors.Is(err, zstd.ErrDecoderSizeExceeded) {
		return n, err
	}
	return n, &corruptError{name: d.name, err: err}
}

// corruptError is a decompressor's refusal of its input.
type corruptError struct {
	name string
	err  error
}

func (e *corruptError) Error() string { return e.name + ": " + e.err.Error() }
func (e *corruptError) Unwrap() error { return e.err }

// joinHint is said of a corrupt stream: a common cause is volumes joined
// in the wrong order (cat FILE.003 FILE.002) or one left out, which no
// reader of the joined bytes can tell from other damage.
const joinHint = "if it was joined from volumes, check their order and that none is missing"

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// truncated says where an archive cut short ends, err being the read's
// io.ErrUnexpectedEOF: inside the last entry or after it, and at which
// byte of what NewReader was given. Its digest is short; the error
// matches ErrDamaged.
func (r *Reader) truncated(err error) error {
	where := "after"
	if r.src.n < r.entryEnd {
		where = "inside"
	}
	return r.truncatedAt(where, r.last, err)
}

// truncatedAt is truncated, cut where ("inside", "after") entry name.
func (r *Reader) truncatedAt(where, name string, err error) error {
	last := name
	if d, ok := parseBlobName(last); ok {
		last = "blobs/sha256/" + d.Hex[:12]
	}
	return damaged(fmt.Errorf("archive truncated %s entry %s (at byte %d of the file, expected more): the copy is incomplete (%s): %w",
		where, last, r.raw.n, joinHint, err))
}

// next reads the next tar header and checks what any entry must satisfy:
// a name of the layout, seen once, a regular file (or one of the two
// optional directories before the first blob).
func (r *Reader) next() (*tar.Header, error) {
	// archive/tar reads exactly the header blocks and skips exactly the
	// padding, so an entry's header starts at the end of the previous
	// entry's data rounded up to a block.
	at := (r.entryEnd + 511) &^ 511
	hdr, err := r.tr.Next()
	if err == nil {
		r.entryEnd = r.src.n + hdr.Size
		if d, ok := parseBlobName(hdr.Name); ok {
			r.offsets[d] = at
		}
	}
	if err == io.EOF {
		return nil, io.EOF
	}
	if err != nil {
		if r.last == "" {
			return nil, fmt.Errorf("first archive entry: %w", explain(err))
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, r.truncated(err)
		}
		return nil, fmt.Errorf("archive entry after %s: %w", r.last, explain(err))
	}
	name := hdr.Name
	r.last = name
	if r.seen[name] {
		return nil, fmt.Errorf("archive entry %s: appears twice", name)
	}
	r.seen[name] = true
	if r.imgpkg {
		if !imgpkgLayerName.MatchString(name) {
			return nil, fmt.Errorf("archive entry %q: not a name imgpkg writes (%s first, then sha256-<64 lowercase hex>.tar.gz)", name, imgpkgManifest)
		}
		return hdr, checkRegular(hdr)
	}
	if name == blobsDir || name == blobsSHA256 {
		if hdr.Typeflag != tar.TypeDir {
			return nil, fmt.Errorf("archive entry %s: type %q, want a directory", name, hdr.Typeflag)
		}
		if r.blobs || !r.seen[indexName] {
			return nil, fmt.Errorf("archive entry %s: directories go between index.json and the first blob", name)
		}
		return hdr, nil
	}
	if name != layoutName && name != indexName {
		// manifest.json first: a tarball imgpkg wrote, which readHead
		// reads from here on.
		if _, ok := parseBlobName(name); !ok && (name != imgpkgManifest || len(r.seen) != 1) {
			if imgpkgLayerName.MatchString(name) {
				return nil, fmt.Errorf("archive entry %q: not a name of the layout, but of a layer of an imgpkg tarball, whose first entry would be %s", name, imgpkgManifest)
			}
			return nil, fmt.Errorf("archive entry %q: not a name of the layout (oci-layout, index.json, blobs/sha256/<64 lowercase hex>)", name)
		}
	}
	return hdr, checkRegular(hdr)
}

// checkRegular accepts a regular file of a sane size.
func checkRegular(hdr *tar.Header) error {
	if hdr.Typeflag != tar.TypeReg {
		return fmt.Errorf("archive entry %s: type %s, only regular files are allowed", hdr.Name, typeName(hdr.Typeflag))
	}
	if hdr.Size < 0 {
		return fmt.Errorf("archive entry %s: size %d", hdr.Name, hdr.Size)
	}
	return nil
}

func typeName(t byte) string {
	switch t {
	case tar.TypeSymlink:
		return "symlink"
	case tar.TypeLink:
		return "hard link"
	case tar.TypeChar, tar.TypeBlock:
		return "device"
	case tar.TypeFifo:
		return "fifo"
	case tar.TypeDir:
		return "directory"
	}
	return fmt.Sprintf("%q", t)
}

// readAll reads an entry the head holds in memory.
func (r *Reader) readAll(hdr *tar.Header) ([]byte, error) {
	b := make([]byte, hdr.Size)
	if _, err := io.ReadFull(r.tr, b); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("archive entry %s: %w", hdr.Name, explain(err))
	}
	return b, nil
}

func (r *Reader) readHead(comp Compression, opts ReaderOptions) error {
	hdr, err := r.next()
	if err == io.EOF {
		return errors.New("archive: empty tar, want oci-layout first")
	}
	if err != nil {
		return err
	}
	if hdr.Name == imgpkgManifest {
		return r.readImgpkgHead(hdr, comp, opts)
	}
	if hdr.Name != layoutName {
		return fmt.Errorf("archive entry %s: the first entry must be %s", hdr.Name, layoutName)
	}
	if hdr.Size > maxLayoutSize {
		return fmt.Errorf("archive entry %s: %d bytes, more than %d", layoutName, hdr.Size, maxLayoutSize)
	}
	b, err := r.readAll(hdr)
	if err != nil {
		return err
	}
	var layout struct {
		Version string `json:"imageLayoutVersion"`
	}
	if err := json.Unmarshal(b, &layout); err != nil {
		return fmt.Errorf("archive entry %s: %w", layoutName, err)
	}
	if layout.Version != layoutVerOCI {
		return fmt.Errorf("archive entry %s: imageLayoutVersion %q, want %q", layoutName, layout.Version, layoutVerOCI)
	}

	hdr, err = r.next()
	if err == io.EOF {
		return fmt.Errorf("archive: truncated archive: no %s after %s", indexName, layoutName)
	}
	if err != nil {
		return err
	}
	if hdr.Name != indexName {
		return fmt.Errorf("archive entry %s: the second entry must be %s", hdr.Name, indexName)
	}
	held := hdr.Size
	if held > opts.MaxHeadSize {
		return fmt.Errorf("archive entry %s: %d bytes, more than the %d-byte head limit", indexName, hdr.Size, opts.MaxHeadSize)
	}
	if b, err = r.readAll(hdr); err != nil {
		return err
	}
	info, err := parseIndex(b)
	if err != nil {
		return fmt.Errorf("archive entry %w", err)
	}
	cat, err := newCatalog(info, opts.MaxManifestSize)
	if err != nil {
		return fmt.Errorf("archive entry %s: %w", indexName, err)
	}

	// Manifests are sorted by digest, so an index's children may come
	// before the index that makes them wanted: hold such blobs until the
	// head is complete. Anything still held then is out of place. Each
	// manifest added is looked up among those held by the digests it newly
	// wants (catalog.fresh), never by scanning them all: a chain of nested
	// indexes in reverse digest order must cost its length, not its square.
	pending := map[v1.Hash][]byte{}
	cat.fresh = cat.fresh[:0]
	for !cat.complete() {
		hdr, err := r.next()
		if err == io.EOF {
			d, ref := cat.firstWanted()
			return fmt.Errorf("archive: manifest %s (referenced by %s) is not in the archive's head (truncated archive?)", d, ref.from)
		}
		if err != nil {
			return err
		}
		if hdr.Typeflag == tar.TypeDir {
			continue
		}
		d, ok := parseBlobName(hdr.Name)
		if !ok {
			return fmt.Errorf("archive entry %s: out of order, blobs follow %s", hdr.Name, indexName)
		}
		r.blobs = true
		if hdr.Size > opts.MaxManifestSize {
			w, ref := cat.firstWanted()
			return fmt.Errorf("archive entry %s: %d bytes where a manifest was expected: manifest %s (referenced by %s) is not in the head, or a config or layer comes before the last manifest",
				hdr.Name, hdr.Size, w, ref.from)
		}
		if held += hdr.Size; held > opts.MaxHeadSize {
			return fmt.Errorf("archive entry %s: the head is more than %d bytes", hdr.Name, opts.MaxHeadSize)
		}
		b, err := r.readAll(hdr)
		if err != nil {
			return err
		}
		if got := sha256.Sum256(b); hex.EncodeToString(got[:]) != d.Hex {
			return fmt.Errorf("archive entry %s: content has digest sha256:%x, want %s", hdr.Name, got, d)
		}
		if !cat.wanted(d) {
			pending[d] = b
			continue
		}
		if err := addManifest(cat, d, b); err != nil {
			return err
		}
		for len(cat.fresh) > 0 {
			pd := cat.fresh[len(cat.fresh)-1]
			cat.fresh = cat.fresh[:len(cat.fresh)-1]
			pb, held := pending[pd]
			if !held || !cat.wanted(pd) {
				continue
			}
			delete(pending, pd)
			if err := addManifest(cat, pd, pb); err != nil {
				return err
			}
		}
	}
	if len(pending) > 0 {
		d := slices.SortedFunc(maps.Keys(pending), cmpHash)[0]
		if ref, ok := cat.blobs[d]; ok {
			return fmt.Errorf("archive entry %s: a config or layer (referenced by %s) before the last manifest; configs and layers follow all manifests", blobName(d), ref.from)
		}
		return fmt.Errorf("archive entry %s: not referenced by index.json or any manifest", blobName(d))
	}

	if err := cat.checkSkipped(info.skipped); err != nil {
		return fmt.Errorf("archive entry %s: %w", indexName, err)
	}
	if err := cat.checkLeftOut(info.delta, info.skipped); err != nil {
		return fmt.Errorf("archive entry %s: %w", indexName, err)
	}
	r.cat = cat
	for _, s := range info.skipped {
		r.skipped[s] = true
	}
	r.leftOut = info.delta.leftOut()
	r.head = &Head{
		Compression:   comp,
		Version:       info.version,
		CreatedBy:     info.createdBy,
		Index:         info.index,
		Entries:       info.entries,
		Manifests:     cat.manifests,
		SkippedLayers: info.skipped,
		Blobs:         cat.expected(),
		Delta:         info.delta,
	}
	return nil
}

func addManifest(cat *catalog, d v1.Hash, b []byte) error {
	if err := cat.addManifest(d, b); err != nil {
		return fmt.Errorf("archive entry %s: %w", blobName(d), err)
	}
	return nil
}

// Head returns the head read by NewReader. The caller must not modify it.
func (r *Reader) Head() *Head { return r.head }

// Index returns index.json.
func (r *Reader) Index() *v1.IndexManifest { return r.head.Index }

// Entries returns index.json's descriptors with ferry's annotations
// decoded, in index.json's order.
func (r *Reader) Entries() []Entry { return slices.Clone(r.head.Entries) }

// Manifest returns a manifest or index of the head.
func (r *Reader) Manifest(d v1.Hash) ([]byte, bool) {
	b, ok := r.head.Manifests[d]
	return b, ok
}

// SkippedLayers returns the layers left out of the archive
// (AnnotationSkippedLayers).
func (r *Reader) SkippedLayers() []v1.Hash { return slices.Clone(r.head.SkippedLayers) }

// Next returns the next config or layer: its digest, its size and a reader
// of its bytes, valid until the next call. The reader verifies size and
// digest when it reaches EOF and fails, naming the entry and digest, if
// they are wrong; if the caller does not read it to the end, Next drains
// and verifies it first.
//
// Next returns io.EOF at the end of the archive, and only after checking
// the tar's end marker, the compression's last checksum, and that every
// config and layer the manifests reference was present, skipped layers
// excepted. Any error is final: later calls return it again.
func (r *Reader) Next() (v1.Hash, int64, io.Reader, error) {
	if r.err != nil {
		return v1.Hash{}, 0, nil, r.err
	}
	if r.eof {
		return v1.Hash{}, 0, nil, io.EOF
	}
	if r.cur != nil {
		if err := r.cur.drain(); err != nil {
			return r.fail(err)
		}
		r.cur = nil
	}
	if len(r.configs) > 0 {
		// Verified with manifest.json; counted as read.
		c := r.configs[0]
		r.configs = r.configs[1:]
		r.present[c.d] = true
		r.bodyBlobs++
		r.bodyBytes += int64(len(c.b))
		return c.d, int64(len(c.b)), bytes.NewReader(c.b), nil
	}
	before := r.src.n
	hdr, err := r.next()
	if err == io.EOF {
		if err := r.finish(r.src.n - before); err != nil {
			return r.fail(err)
		}
		r.eof = true
		return v1.Hash{}, 0, nil, io.EOF
	}
	if err != nil {
		return r.fail(err)
	}
	d, ok := r.blobDigest(hdr.Name)
	if !ok {
		return r.fail(fmt.Errorf("archive entry %s: out of order, only blobs follow the manifests", hdr.Name))
	}
	if r.present[d] {
		return r.fail(fmt.Errorf("archive entry %s: blob %s appears twice (a config %s carries)", hdr.Name, d, imgpkgManifest))
	}
	ref, ok := r.cat.blobs[d]
	if _, isManifest := r.cat.manifests[d]; !ok || isManifest {
		return r.fail(fmt.Errorf("archive entry %s: not referenced by any manifest as a config or layer", hdr.Name))
	}
	if r.leftOut[d] {
		return r.fail(fmt.Errorf("archive entry %s: %s lists it as left out of this delta", hdr.Name, indexName))
	}
	if hdr.Size != ref.desc.Size {
		return r.fail(fmt.Errorf("archive entry %s: %d bytes, %s says %d", hdr.Name, hdr.Size, ref.from, ref.desc.Size))
	}
	r.cur = &blobReader{r: r, entryCheck: newEntryCheck(hdr.Name, d, hdr.Size)}
	return d, hdr.Size, r.cur, nil
}

func (r *Reader) fail(err error) (v1.Hash, int64, io.Reader, error) {
	r.err = err
	return v1.Hash{}, 0, nil, err
}

// finish checks the end of the archive; consumed is what the tar reader
// read to find it.
func (r *Reader) finish(consumed int64) error {
	r.buf = nil
	if err := checkTarEnd(consumed, r.last, r.src); err != nil {
		return err
	}
	r.tarSize = r.src.n
	for _, b := range r.head.Blobs {
		if !r.present[b.Digest] && !r.skipped[b.Digest] && !r.leftOut[b.Digest] {
			return fmt.Errorf("archive: blob %s (referenced by %s) is missing", b.Digest, r.cat.blobs[b.Digest].from)
		}
	}
	return nil
}

// checkTarEnd checks the end of a tar, one rule whether it is read on a
// stream (Reader) or in place (OpenImgpkg): consumed is what archive/tar
// read past the last entry's data (last names that entry) to report the
// end, and rest is what follows, read to its end here, which also makes a
// decompressor verify its last checksum.
func checkTarEnd(consumed int64, last string, rest io.Reader) error {
	// A tar ends with two zero blocks; archive/tar reports a tar that
	// simply stops at an entry boundary, or after one zero block, as a
	// clean end too. What it read to say so (the last entry's padding,
	// under 512 bytes, then the blocks) tells them apart.
	if consumed < 2*512 {
		return fmt.Errorf("archive: truncated archive after %s: no end-of-archive marker", last)
	}
	buf := make([]byte, 32<<10)
	var trailing int64
	for {
		n, err := rest.Read(buf)
		trailing += int64(n)
		if !allZero(buf[:n]) {
			return errors.New("archive: data after the end of the tar")
		}
		if trailing > maxTrailing {
			return fmt.Errorf("archive: more than %d bytes of padding after the end of the tar", maxTrailing)
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("archive: after the end of the tar: %w", explain(err))
		}
	}
}

// explain turns the errors of the decompressors and archive/tar into
// words for the user, keeping them for errors.Is.
func explain(err error) error {
	switch {
	case errors.Is(err, ErrDamaged):
		return err
	case errors.Is(err, io.ErrUnexpectedEOF):
		return damaged(fmt.Errorf("truncated archive (%s): %w", joinHint, err))
	case errors.Is(err, zstd.ErrCRCMismatch), errors.Is(err, gzip.ErrChecksum):
		return damaged(fmt.Errorf("checksum mismatch, the archive is corrupt (%s): %w", joinHint, err))
	case errors.Is(err, zstd.ErrWindowSizeExceeded), errors.Is(err, zstd.ErrDecoderSizeExceeded):
		// A frame header read from damaged bytes claims any window.
		return damaged(fmt.Errorf("zstd window over the reader's limit (ReaderOptions.MaxWindow), or a corrupt archive (%s): %w", joinHint, err))
	case errors.As(err, new(*corruptError)), zstdCorrupt(err):
		return damaged(fmt.Errorf("the archive is corrupt (%w); %s", err, joinHint))
	case errors.Is(err, tar.ErrHeader):
		return damaged(fmt.Errorf("corrupt archive: %w", err))
	}
	return err
}

// ErrDamaged matches (errors.Is) the errors for an archive's bytes that
// are not what they should be: cut short, failing a checksum, no valid
// zstd or tar, a blob whose content does not match its digest. A caller
// reading the volumes of a split archive uses it to know when comparing
// each volume with its checksum line can name the volume at fault.
var ErrDamaged = errors.New("the archive's bytes are damaged")

// damagedError marks err as matching ErrDamaged without changing its text.
type damagedError struct{ err error }

func (e *damagedError) Error() string        { return e.err.Error() }
func (e *damagedError) Unwrap() error        { return e.err }
func (e *damagedError) Is(target error) bool { return target == ErrDamaged }

func damaged(err error) error { return &damagedError{err} }

// zstdCorrupt reports whether err is one of the errors klauspost's
// decoder gives for bytes that are no valid zstd: damage, or volumes
// joined in the wrong order.
func zstdCorrupt(err error) bool {
	for _, e := range []error{zstd.ErrReservedBlockType, zstd.ErrCompressedSizeTooBig, zstd.ErrBlockTooSmall,
		zstd.ErrUnexpectedBlockSize, zstd.ErrMagicMismatch, zstd.ErrWindowSizeTooSmall, zstd.ErrUnknownDictionary,
		zstd.ErrFrameSizeExceeded, zstd.ErrFrameSizeMismatch} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// Close releases the decompressor. It does not close the io.Reader given
// to NewReader. The Reader must not be used afterwards.
func (r *Reader) Close() error {
	if r.closer != nil {
		r.closer()
		r.closer = nil
	}
	if r.err == nil && !r.eof {
		r.err = errors.New("archive: Reader is closed")
	}
	return nil
}

// blobReader is the reader Next returns: the tar entry, hashed as it is
// read and verified at its end.
type blobReader struct {
	r *Reader
	entryCheck
	err  error
	done bool
}

// entryCheck hashes a blob entry's bytes as they are read and checks their
// size and digest at the end.
type entryCheck struct {
	name string
	d    v1.Hash
	size int64
	h    hash.Hash
	n    int64
}

func newEntryCheck(name string, d v1.Hash, size int64) entryCheck {
	return entryCheck{name: name, d: d, size: size, h: sha256.New()}
}

func (c *entryCheck) add(p []byte) {
	c.h.Write(p)
	c.n += int64(len(p))
}

// verify is called at the end of the entry's bytes.
func (c *entryCheck) verify() error {
	if got := hex.EncodeToString(c.h.Sum(nil)); c.n != c.size || got != c.d.Hex {
		return damaged(fmt.Errorf("archive entry %s: content (%d bytes) has digest sha256:%s, want %s (%d bytes)", c.name, c.n, got, c.d, c.size))
	}
	return nil
}

// Read implements io.Reader.
func (b *blobReader) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.done {
		return 0, io.EOF
	}
	if b.r.cur != b {
		b.err = fmt.Errorf("archive entry %s: read after Reader.Next moved on", b.name)
		return 0, b.err
	}
	n, err := b.r.tr.Read(p)
	b.add(p[:n])
	switch {
	case err == io.EOF:
		if b.err = b.verify(); b.err != nil {
			return n, b.err
		}
		b.done = true
		b.r.present[b.d] = true
		b.r.bodyBlobs++
		b.r.bodyBytes += b.size
		return n, io.EOF
	case errors.Is(err, io.ErrUnexpectedEOF):
		b.err = b.r.truncatedAt("inside", b.name, err)
		return n, b.err
	case err != nil:
		b.err = fmt.Errorf("archive entry %s: %w", b.name, explain(err))
		return n, b.err
	}
	return n, nil
}

// drain reads the rest of the blob, verifying it.
func (b *blobReader) drain() error {
	if b.done {
		return nil
	}
	if b.r.buf == nil {
		b.r.buf = make([]byte, 256<<10)
	}
	for {
		_, err := b.Read(b.r.buf)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
