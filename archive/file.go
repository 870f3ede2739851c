package archive

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/zstd"
)

// File is an archive opened for random access: its head, and any config or
// layer read on its own, straight from where it lies, through the seek
// table and the table of contents. Reading a blob decompresses only the
// frames that hold it; the bytes before it are never read.
//
// A File verifies what it reads as a Reader does: the head in full when it
// is opened, and each blob against its tar header and its digest as it is
// read. It does not read what it is not asked for, so unlike a Reader it
// says nothing about the blobs nobody reads (Verify reads them all). A
// File is safe for concurrent use; each blob reader is not.
type File struct {
	ra   io.ReaderAt
	size int64
	opts ReaderOptions
	head *Head
	// frames are the frames before the table of contents: the tar.
	frames []frameLoc
	// dataEnd is where the table of contents starts.
	dataEnd int64
	blobs   map[v1.Hash]tocBlob
	// decoders are those blob readers released, for the next ones.
	decoders sync.Pool
}

// OpenFile opens the archive in ra, size bytes long. It reads the seek
// table and the table of contents at the end, then the head from the
// start (verified as NewReader verifies it), and checks that the table of
// contents lists exactly the configs and layers the manifests reference
// (skipped layers excepted), each in a frame of its own.
//
// It returns an error matching ErrNotSeekable when the archive has no seek
// table (written by an older ferry, gzip, plain tar): read it with
// NewReader, front to back. Any other error means the archive is damaged.
func OpenFile(ra io.ReaderAt, size int64, opts ReaderOptions) (*File, error) {
	opts = opts.withDefaults()
	ok, err := hasSeekTable(ra, size)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ErrNotSeekable
	}
	// The head comes first, as in any archive; reading it through a Reader
	// checks it the same way, within the Reader's limits, before the seek
	// table is trusted with any memory: the head bounds how many frames
	// the table may list. One decoder goroutine: nothing past the last
	// manifest is decompressed.
	headOpts := opts
	headOpts.Concurrency = 1
	ar, err := NewReader(io.NewSectionReader(ra, 0, size), headOpts)
	if err != nil {
		return nil, err
	}
	head := ar.Head()
	ar.Close()
	frames, err := readSeekTableMax(ra, size, seekFramesBound(head))
	if err != nil {
		return nil, err
	}
	if len(frames) == 0 {
		return nil, errors.New("seek table: no frames")
	}
	last := frames[len(frames)-1]
	toc, err := readTOC(ra, last, len(head.Blobs))
	if err != nil {
		return nil, err
	}
	blobs, err := checkTOC(head, frames[:len(frames)-1], toc, ar.skipped)
	if err != nil {
		return nil, err
	}
	return &File{
		ra:      ra,
		size:    size,
		opts:    opts,
		head:    head,
		frames:  frames[:len(frames)-1],
		dataEnd: last.offset,
		blobs:   blobs,
	}, nil
}

// checkTOC accepts a table of contents that lists each config and layer
// of head once (skipped layers and those a delta left out excepted), at
// its size, in frames of the tar (frames, the table of contents' own
// excepted) in increasing order. It returns the blobs by digest. OpenFile
// and Reader.CheckTrailer both check a table of contents with it, so that
// verify passes no table that import, inspect or serve would refuse.
func checkTOC(head *Head, frames []frameLoc, toc []tocBlob, skipped map[v1.Hash]bool) (map[v1.Hash]tocBlob, error) {
	want := make(map[v1.Hash]int64, len(head.Blobs))
	leftOut := head.Delta.leftOut()
	for _, b := range head.Blobs {
		if !skipped[b.Digest] && !leftOut[b.Digest] {
			want[b.Digest] = b.Size
		}
	}
	blobs := make(map[v1.Hash]tocBlob, len(toc))
	prev := -1
	for i, b := range toc {
		size, ok := want[b.Digest]
		_, listed := blobs[b.Digest]
		switch {
		case !ok && listed:
			return nil, fmt.Errorf("table of contents: blob %s listed twice", b.Digest)
		case !ok:
			return nil, fmt.Errorf("table of contents: blob %s is not a config or layer of the archive's manifests", b.Digest)
		case b.Size != size:
			return nil, fmt.Errorf("table of contents: blob %s: %d bytes, the manifests say %d", b.Digest, b.Size, size)
		case b.Frame <= prev || b.Frame >= len(frames):
			return nil, fmt.Errorf("table of contents: entry %d (blob %s) names frame %d, out of order or beyond the %d frames", i, b.Digest, b.Frame, len(frames))
		case frames[b.Frame].tarSize == 0:
			return nil, fmt.Errorf("table of contents: blob %s names frame %d, which holds no tar", b.Digest, b.Frame)
		}
		prev = b.Frame
		delete(want, b.Digest)
		blobs[b.Digest] = b
	}
	for _, b := range head.Blobs {
		if _, missing := want[b.Digest]; missing {
			return nil, fmt.Errorf("archive: blob %s (referenced by a manifest) is not in the table of contents", b.Digest)
		}
	}
	return blobs, nil
}

// Head returns the head read by OpenFile. The caller must not modify it.
func (f *File) Head() *Head { return f.head }

// BlobSpan returns the part of the archive that holds only the frames of
// configs and layers: from start, where the head's frames end, to end,
// where the table of contents and the seek table start. Each byte in it
// is checked when a blob is read, against the blob's digest; the bytes
// outside it (the head, the trailer) OpenFile read and trusted. A caller
// that holds checksums of pieces of the archive (the volumes of a split
// one) compares those outside the span before it uses the File. With no
// blob in a frame of its own, the span is empty (start == end).
func (f *File) BlobSpan() (start, end int64) {
	start = f.dataEnd
	first := len(f.frames)
	for _, b := range f.blobs {
		first = min(first, b.Frame)
	}
	if first < len(f.frames) {
		start = f.frames[first].offset
	}
	return start, f.dataEnd
}

// Has reports whether the archive holds blob d (a config or layer).
func (f *File) Has(d v1.Hash) bool {
	_, ok := f.blobs[d]
	return ok
}

// decoderOptions are those of every decoder reading one blob's frames:
// one goroutine, and memory bounded by ReaderOptions.MaxWindow, so that a
// hostile frame cannot claim more than a real one needs.
func (f *File) decoderOptions() []zstd.DOption {
	return []zstd.DOption{
		zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxWindow(f.opts.MaxWindow),
		zstd.WithDecoderMaxMemory(f.opts.MaxWindow),
	}
}

// Blob returns a reader of blob d's bytes, read straight from where the
// blob lies. The reader fails, naming the archive entry, if the tar header
// there is not d's, or if the bytes do not match d's size and digest when
// it reaches their end; Close releases its decoder. Every call returns a
// new, independent reader, so a failed upload can read the blob again.
func (f *File) Blob(d v1.Hash) (io.ReadCloser, error) {
	b, ok := f.blobs[d]
	if !ok {
		return nil, fmt.Errorf("archive: blob %s is not in the archive", d)
	}
	fr := f.frames[b.Frame]
	name := blobName(d)
	dec, err := f.decoder(io.NewSectionReader(f.ra, fr.offset, f.dataEnd-fr.offset))
	if err != nil {
		return nil, fmt.Errorf("archive entry %s: zstd: %w", name, err)
	}
	tr := tar.NewReader(dec)
	hdr, err := tr.Next()
	if err != nil {
		f.release(dec)
		return nil, fmt.Errorf("archive entry %s: at frame %d (offset %d): %w", name, b.Frame, fr.offset, explain(err))
	}
	if hdr.Name != name || hdr.Typeflag != tar.TypeReg || hdr.Size != b.Size {
		f.release(dec)
		return nil, fmt.Errorf("archive entry %s: frame %d (offset %d) starts entry %q (type %s, %d bytes), want %s (%d bytes): the table of contents is wrong",
			name, b.Frame, fr.offset, hdr.Name, typeName(hdr.Typeflag), hdr.Size, name, b.Size)
	}
	return &fileBlob{f: f, dec: dec, checkedBlob: checkedBlob{r: io.LimitReader(tr, b.Size), entryCheck: newEntryCheck(name, d, b.Size)}}, nil
}

// decoder returns a decoder reading r: one a blob reader released, or a
// new one. Reusing them spares each blob the allocation (and clearing) of
// a decoder's window, which costs as much as a tenth of an import's CPU
// when its blobs are a few MiB each.
func (f *File) decoder(r io.Reader) (*zstd.Decoder, error) {
	if dec, ok := f.decoders.Get().(*zstd.Decoder); ok {
		if err := dec.Reset(r); err == nil {
			return dec, nil
		}
		dec.Close()
	}
	return zstd.NewReader(r, f.decoderOptions()...)
}

// release keeps dec for the next blob. With one goroutine (decoderOptions)
// a decoder holds memory only, so one the pool drops needs no Close.
func (f *File) release(dec *zstd.Decoder) {
	if dec.Reset(nil) == nil {
		f.decoders.Put(dec)
	}
}

// fileBlob reads one blob of a File, verifying it at its end.
type fileBlob struct {
	f   *File
	dec *zstd.Decoder
	checkedBlob
}

// Read implements io.Reader.
func (b *fileBlob) Read(p []byte) (int, error) {
	if b.dec == nil {
		return 0, errors.New("archive: blob reader is closed")
	}
	return b.checkedBlob.Read(p)
}

// Close implements io.Closer.
func (b *fileBlob) Close() error {
	if b.dec != nil {
		b.f.release(b.dec)
		b.dec = nil
	}
	return nil
}
