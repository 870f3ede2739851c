package archive

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// WriterOptions configures a Writer.
type WriterOptions struct {
	// Level is the zstd level; the zero value is Default.
	Level Level
	// Concurrency is how many zstd frames are compressed at once; 0 means
	// GOMAXPROCS, 1 compresses in the caller's goroutine. It never changes
	// the output.
	Concurrency int
	// MaxHeadSize caps index.json and the manifests together, as
	// ReaderOptions.MaxHeadSize does for a reader; 0 means
	// DefaultMaxHeadSize, what a reader accepts by default.
	MaxHeadSize int64
}

// Writer writes an archive: WriteHeader once, WriteBlob for every config
// and layer, Close. It checks as it goes that the result is an archive a
// Reader accepts: every manifest reachable from index.json is in the head,
// every blob verifies and is referenced, none is written twice, none is
// missing at Close.
//
// Once a call has failed after bytes reached the output (a blob that does
// not match its digest, a failed write), every later call returns that
// error and the output must be discarded. Errors that are caught before
// anything is written (a digest written twice, an unknown blob) leave the
// Writer usable. A Writer is not safe for concurrent use.
type Writer struct {
	fw  *frameWriter
	tw  *tar.Writer
	hdr bytes.Buffer // a blob's tar header

	cat     *catalog
	skipped map[v1.Hash]bool
	leftOut map[v1.Hash]bool
	written map[v1.Hash]bool
	toc     []tocBlob
	header  bool
	closed  bool
	failed  error

	maxHeadSize int64
}

// NewWriter returns a Writer that writes a zstd-compressed archive to w.
// Close does not close w.
func NewWriter(w io.Writer, opts WriterOptions) (*Writer, error) {
	return newWriter(w, opts, frameSize)
}

func newWriter(w io.Writer, opts WriterOptions, frameSize int) (*Writer, error) {
	fw, err := newFrameWriter(w, opts.Level, opts.Concurrency, frameSize)
	if err != nil {
		return nil, fmt.Errorf("archive writer: %w", err)
	}
	if opts.MaxHeadSize <= 0 {
		opts.MaxHeadSize = DefaultMaxHeadSize
	}
	return &Writer{
		fw:          fw,
		tw:          tar.NewWriter(fw),
		written:     map[v1.Hash]bool{},
		maxHeadSize: opts.MaxHeadSize,
	}, nil
}

// tarHeader is the one header every entry gets, so that archives depend on
// content only: no times, owners or host modes.
func tarHeader(name string, size int64) *tar.Header {
	h := &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     name,
		Size:     size,
		Mode:     0o644,
		ModTime:  time.Unix(0, 0),
		Format:   tar.FormatUSTAR,
	}
	if size >= 1<<33 { // USTAR's size field stops below 8 GiB.
		h.Format = tar.FormatPAX
	}
	return h
}

// WriteHeader writes oci-layout, index (from BuildIndex) and the manifests
// and indexes, sorted by digest. manifests must hold exactly the closure of
// index: every manifest and index it names, and those they name, each
// matching its digest and at most DefaultMaxManifestSize bytes (what a
// Reader accepts by default). Every layer index.json lists as skipped must
// be referenced by a manifest, always as a non-distributable layer.
func (w *Writer) WriteHeader(index []byte, manifests map[v1.Hash][]byte) error {
	if err := w.usable(); err != nil {
		return err
	}
	if w.header {
		return errors.New("archive head: WriteHeader called twice")
	}
	info, err := parseIndex(index)
	if err != nil {
		return fmt.Errorf("archive head: %w", err)
	}
	cat, err := newCatalog(info, DefaultMaxManifestSize)
	if err != nil {
		return fmt.Errorf("archive head: %w", err)
	}
	// A head over what a Reader accepts makes an archive no import reads:
	// refused here, before a byte of it is written.
	total := int64(len(index))
	for _, b := range manifests {
		total += int64(len(b))
	}
	if total > w.maxHeadSize {
		return fmt.Errorf("archive head: index.json and the manifests come to %d bytes, more than the %d-byte head limit a reader accepts: split the content into smaller bundles or lock files", total, w.maxHeadSize)
	}
	for d, b := range manifests {
		if err := checkDigest(d); err != nil {
			return fmt.Errorf("archive head: manifest: %w", err)
		}
		if got := sha256.Sum256(b); hex.EncodeToString(got[:]) != d.Hex {
			return fmt.Errorf("archive head: manifest %s: its bytes have digest sha256:%x", d, got)
		}
	}
	// Level by level (index.json's, then their children...), each in
	// digest order, so that the error for a bad set names the same
	// manifest every time.
	for !cat.complete() {
		level := slices.SortedFunc(maps.Keys(cat.want), cmpHash)
		for _, d := range level {
			b, ok := manifests[d]
			if !ok {
				return fmt.Errorf("archive head: manifest %s (referenced by %s) is not among the manifests given", d, cat.want[d].from)
			}
			if err := cat.addManifest(d, b); err != nil {
				return fmt.Errorf("archive head: %w", err)
			}
		}
	}
	if err := cat.checkSkipped(info.skipped); err != nil {
		return fmt.Errorf("archive head: %s: %w", indexName, err)
	}
	if err := cat.checkLeftOut(info.delta, info.skipped); err != nil {
		return fmt.Errorf("archive head: %s: %w", indexName, err)
	}
	order := make([]v1.Hash, 0, len(manifests))
	for d := range manifests {
		if _, ok := cat.manifests[d]; !ok {
			return fmt.Errorf("archive head: manifest %s is not reachable from index.json", d)
		}
		order = append(order, d)
	}
	slices.SortFunc(order, func(a, b v1.Hash) int { return cmpHash(a, b) })

	w.header = true
	w.cat = cat
	w.skipped = map[v1.Hash]bool{}
	for _, s := range info.skipped {
		w.skipped[s] = true
	}
	w.leftOut = info.delta.leftOut()
	if err := w.writeEntry(layoutName, []byte(layoutJSON)); err != nil {
		return err
	}
	if err := w.writeEntry(indexName, index); err != nil {
		return err
	}
	for _, d := range order {
		if err := w.writeEntry(blobName(d), manifests[d]); err != nil {
			return err
		}
		w.written[d] = true
	}
	// End the frame with the head, so the head decompresses on its own.
	if err := w.tw.Flush(); err != nil {
		return w.fail(fmt.Errorf("archive head: %w", err))
	}
	w.fw.endFrame()
	if err := w.fw.failure(); err != nil {
		return w.fail(fmt.Errorf("archive head: %w", err))
	}
	return nil
}

// cmpHash orders digests as their strings sort, without building them.
func cmpHash(a, b v1.Hash) int {
	if c := strings.Compare(a.Algorithm, b.Algorithm); c != 0 {
		return c
	}
	return strings.Compare(a.Hex, b.Hex)
}

func (w *Writer) writeEntry(name string, b []byte) error {
	if err := w.tw.WriteHeader(tarHeader(name, int64(len(b)))); err != nil {
		return w.fail(fmt.Errorf("%s: %w", name, err))
	}
	if _, err := w.tw.Write(b); err != nil {
		return w.fail(fmt.Errorf("%s: %w", name, err))
	}
	return nil
}

// WriteBlob writes a config or layer of size bytes read from r, in the
// caller's order. It verifies digest and size as the bytes stream through
// (memory does not grow with the blob), and refuses a digest that no
// manifest references, that was already written, or that index.json lists
// as skipped. It reads exactly size bytes, plus one to detect a longer r.
func (w *Writer) WriteBlob(d v1.Hash, size int64, r io.Reader) error {
	if err := w.usable(); err != nil {
		return err
	}
	if !w.header {
		return fmt.Errorf("blob %s: WriteBlob before WriteHeader", d)
	}
	if err := checkDigest(d); err != nil {
		return fmt.Errorf("blob: %w", err)
	}
	if w.written[d] {
		return fmt.Errorf("blob %s: already in the archive", d)
	}
	if w.skipped[d] {
		return fmt.Errorf("blob %s: index.json lists it as skipped", d)
	}
	if w.leftOut[d] {
		return fmt.Errorf("blob %s: index.json lists it as left out of this delta", d)
	}
	ref, ok := w.cat.blobs[d]
	if !ok {
		return fmt.Errorf("blob %s: no manifest in the archive references it", d)
	}
	if ref.desc.Size != size {
		return fmt.Errorf("blob %s: size %d, %s says %d", d, size, ref.from, ref.desc.Size)
	}

	// Every blob starts a frame of its own, so that a reader with the
	// seek table and the table of contents can decompress it alone.
	if err := w.tw.Flush(); err != nil {
		return w.fail(fmt.Errorf("blob %s: %w", d, err))
	}
	w.fw.endFrame()
	w.toc = append(w.toc, tocBlob{Digest: d, Size: size, Frame: w.fw.cut})

	// The entry is written past the tar.Writer, which is left between
	// entries (flushed above): its header as a tar.Writer writes it, then
	// the content read straight into the frames, then the padding to the
	// next 512-byte block, the bytes tw itself would have written.
	if err := w.writeBlobHeader(d, size); err != nil {
		return w.fail(fmt.Errorf("blob %s: %w", d, err))
	}
	h := sha256.New()
	n, err := w.fw.readFrom(r, size, h)
	switch {
	case err != nil:
		return w.fail(fmt.Errorf("blob %s: after %d of %d bytes: %w", d, n, size, err))
	case n < size:
		return w.fail(fmt.Errorf("blob %s: got %d bytes, want %d", d, n, size))
	}
	if pad := -size & (tarBlock - 1); pad > 0 {
		var zeros [tarBlock]byte
		if _, err := w.fw.Write(zeros[:pad]); err != nil {
			return w.fail(fmt.Errorf("blob %s: %w", d, err))
		}
	}
	var one [1]byte
	if k, _ := io.ReadFull(r, one[:]); k > 0 {
		return w.fail(fmt.Errorf("blob %s: longer than %d bytes", d, size))
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != d.Hex {
		return w.fail(fmt.Errorf("blob %s: content has digest sha256:%s", d, got))
	}
	w.written[d] = true
	return nil
}

// Close ends the tar and the zstd stream; it does not close the underlying
// writer. It fails, naming the blob and a manifest that references it, if a
// config or layer the manifests reference was not written (skipped layers
// excepted). Calling it again returns nil.
func (w *Writer) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	err := w.failed
	if err == nil && !w.header {
		err = errors.New("archive: closed before WriteHeader")
	}
	if err == nil {
		for _, b := range w.cat.expected() {
			if !w.written[b.Digest] && !w.skipped[b.Digest] && !w.leftOut[b.Digest] {
				err = fmt.Errorf("archive: blob %s (referenced by %s) was not written", b.Digest, w.cat.blobs[b.Digest].from)
				break
			}
		}
	}
	if err == nil {
		if terr := w.tw.Close(); terr != nil {
			err = fmt.Errorf("archive: %w", terr)
		}
	}
	if err != nil {
		w.fw.abort()
		return err
	}
	// After the tar: the table of contents, then the seek table, both in
	// skippable frames that decompress to nothing.
	toc, err := encodeTOC(w.toc)
	if err == nil {
		w.fw.writeSkippable(skippableMagicTOC, toc)
		err = w.fw.Close()
	} else {
		w.fw.abort()
	}
	if err != nil {
		err = fmt.Errorf("archive: %w", err)
	}
	return err
}

// Cancel abandons the archive; unlike every other method it may be called
// from any goroutine, at any time, and more than once. The call in
// progress, if any (one waiting for the output to take a frame included),
// and every later one fail with err (the first Cancel's, unless the Writer
// failed before); the frames queued are dropped, not written; and Close
// returns without waiting for a write in progress on the underlying
// writer, which cannot be interrupted (a full pipe nobody reads, a stalled
// disk): it may go on after Close, until it returns, and nothing is written
// after it. Done says when it has. What was written must be discarded.
func (w *Writer) Cancel(err error) {
	w.fw.cancel(err)
}

// Done returns a channel closed once nothing more will be written to the
// underlying writer: after Close, when its last write has returned. Close
// waits for that unless the Writer was cancelled: a caller that owns the
// underlying writer waits for Done before closing or reusing it.
func (w *Writer) Done() <-chan struct{} {
	return w.fw.done
}

// tarBlock is tar's block size, to which an entry is padded with zeros.
const tarBlock = 512

// writeBlobHeader writes the tar header of blob d to the frames, as
// w.tw would: a tar.Writer of its own makes it, into a buffer (it writes a
// header whole, in WriteHeader) and is dropped before the content.
func (w *Writer) writeBlobHeader(d v1.Hash, size int64) error {
	w.hdr.Reset()
	if err := tar.NewWriter(&w.hdr).WriteHeader(tarHeader(blobName(d), size)); err != nil {
		return err
	}
	_, err := w.fw.Write(w.hdr.Bytes())
	return err
}

func (w *Writer) usable() error {
	if w.failed != nil {
		return w.failed
	}
	if w.closed {
		return errors.New("archive: Writer is closed")
	}
	return nil
}

func (w *Writer) fail(err error) error {
	if w.failed == nil {
		w.failed = err
	}
	return w.failed
}
