package relocate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/archive"
	"github.com/ferry-dev/ferry/internal/atomicfile"
	"github.com/ferry-dev/ferry/internal/volumes"
)

// PlanArchive returns the plan of re-packing the archive in r (`ferry
// export --from-tar`): the same images, in index.json's roles, the same
// manifests and blobs, read from r instead of registries. r holds an
// imgpkg tarball or a ferry archive, not a delta (export --since), which
// lacks blobs; it must stay open until Export is done. A file (or the
// volumes of one, volumes.Set) with an imgpkg tarball or a ferry archive
// with a seek table is read at random; anything else (a pipe, gzip, an
// archive without a seek table) front to back, once (see streamBlobs);
// such a plan holds the stream's decompressor and temporary files, which
// Export releases when it returns, and Plan.Close if it is never exported.
// Export then writes a ferry archive of the plan, compressed at its level
// and split as asked, whose blobs are verified as they are read and again
// as they are written. Export's context cannot interrupt a read of r
// already blocked (a pipe whose sender stopped): a caller reading such a
// pipe gives a reader whose Read returns when that context ends, as the
// CLI does for standard input.
func PlanArchive(r io.Reader) (*Plan, error) {
	f, ok, err := openRandom(r)
	if err != nil {
		return nil, err
	}
	if !ok {
		return planStream(r)
	}
	open := f.Blob
	if _, split := r.(*volumes.Set); split {
		// A blob read through damage names the volume at fault.
		open = func(d v1.Hash) (io.ReadCloser, error) {
			rc, err := f.Blob(d)
			if err != nil {
				return nil, blameVolume(r, err)
			}
			return &blamingReader{ReadCloser: rc, in: r}, nil
		}
	}
	p, err := repackPlan(f.Head(), open, false)
	if err != nil {
		return nil, err
	}
	// At random, the bundles' layers (small) are read now, so that a
	// bundle locking an image the archive does not hold is refused
	// before anything is written, as export -b refuses it.
	if err := checkLocksAhead(f.Head(), open); err != nil {
		return nil, err
	}
	return p, nil
}

// checkLocksAhead reads the layer of every bundle of h through open and
// checks, as verify does, that every image its images.yml locks is an
// entry of h; a layer that does not match its digest is named as such
// first.
func checkLocksAhead(h *archive.Head, open func(v1.Hash) (io.ReadCloser, error)) error {
	locks, err := newLockChecks(h)
	if err != nil {
		return err
	}
	for _, d := range keysInOrder(locks.byLayer) {
		rc, err := open(d)
		if err != nil {
			return err
		}
		err = locks.read(context.Background(), d, rc)
		rc.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// blamingReader passes the errors of reading a blob of in through
// blameVolume.
type blamingReader struct {
	io.ReadCloser
	in io.Reader
}

func (b *blamingReader) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		err = blameVolume(b.in, err)
	}
	return n, err
}

// planStream is PlanArchive of an archive read front to back.
func planStream(r io.Reader) (*Plan, error) {
	ar, err := archive.NewReader(r, archive.ReaderOptions{})
	if err != nil {
		return nil, err
	}
	s := &streamBlobs{r: ar, spooled: map[v1.Hash]*spoolFile{}, taken: map[v1.Hash]bool{}}
	p, err := repackPlan(ar.Head(), s.open, true)
	if err != nil {
		ar.Close()
		return nil, err
	}
	s.left = len(p.Blobs)
	p.sequential = true
	p.stream = s
	return p, nil
}

// repackPlan is the plan of re-packing the archive whose head is h; open
// reads a config or layer of it. checkLocks has each bundle's layer
// checked as it is read (lockedHeldReader), for a stream, whose layers
// cannot be read ahead.
func repackPlan(h *archive.Head, open func(v1.Hash) (io.ReadCloser, error), checkLocks bool) (*Plan, error) {
	if h.Delta != nil {
		// Its import finds what it left out at the destination; a re-pack
		// has nowhere to read those blobs from.
		return nil, fmt.Errorf("a delta archive (export --since) cannot be re-packed on its own: it leaves out %d configs and layers, expected at the destination, that a re-packed archive would have to carry; re-pack the full archive instead", len(h.Delta.LeftOut))
	}
	// Two refusals of every import, a re-pack makes before it writes:
	// the root's tag, another manifest's bookkeeping tag, here, and a
	// bundle locking an image the archive does not hold (PlanArchive
	// reads the layers ahead; a stream is checked as each bundle's layer
	// is read, below).
	if err := importRefusal(h); err != nil {
		return nil, err
	}
	locks, err := newLockChecks(h)
	if err != nil {
		return nil, err
	}
	p := &Plan{Manifests: make(map[v1.Hash]Manifest, len(h.Manifests)), local: map[v1.Hash]func() (io.ReadCloser, error){}}

	// Media types come from the descriptors that name each manifest:
	// index.json's, then those of indexes, to any depth.
	var walk func(d v1.Descriptor) error
	walk = func(d v1.Descriptor) error {
		if _, ok := p.Manifests[d.Digest]; ok {
			return nil
		}
		raw, ok := h.Manifests[d.Digest]
		if !ok {
			return fmt.Errorf("manifest %s is not in the archive's head", d.Digest)
		}
		p.Manifests[d.Digest] = Manifest{Raw: raw, MediaType: d.MediaType}
		p.TotalBytes += int64(len(raw))
		if !d.MediaType.IsIndex() {
			return nil
		}
		idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
		if err != nil {
			return fmt.Errorf("index %s: %w", d.Digest, err)
		}
		for _, c := range idx.Manifests {
			if c.MediaType.IsImage() || c.MediaType.IsIndex() {
				if err := walk(c); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for _, e := range h.Entries {
		d := e.Descriptor
		if err := walk(d); err != nil {
			return nil, err
		}
		im := &Image{
			Digest: d.Digest, MediaType: d.MediaType, Size: d.Size, Role: e.Role,
			OriginalRef: e.OriginalRef, Tag: e.Tag, Subject: e.Subject, SignatureKind: e.SignatureKind,
		}
		if d.Platform != nil {
			im.Platforms = []v1.Platform{*d.Platform}
		}
		if d.MediaType.IsIndex() {
			idx, _ := v1.ParseIndexManifest(bytes.NewReader(h.Manifests[d.Digest]))
			for _, c := range idx.Manifests {
				if c.Platform != nil {
					im.Platforms = append(im.Platforms, *c.Platform)
				}
				if c.MediaType.IsImage() || c.MediaType.IsIndex() {
					im.Children = append(im.Children, c.Digest)
				}
			}
		}
		p.Images = append(p.Images, im)
		if p.Root == nil && (e.Role == archive.RoleBundle || e.Tag != "") {
			p.Root = im
		}
	}

	configs := map[v1.Hash]bool{}
	for _, m := range p.Manifests {
		if m.MediaType.IsImage() {
			if mf, err := v1.ParseManifest(bytes.NewReader(m.Raw)); err == nil {
				configs[mf.Config.Digest] = true
			}
		}
	}
	skipped := map[v1.Hash]bool{}
	for _, d := range h.SkippedLayers {
		skipped[d] = true
	}
	var cs, ls []Blob
	for _, d := range h.Blobs {
		b := Blob{Digest: d.Digest, Size: d.Size, MediaType: d.MediaType, Config: configs[d.Digest], URLs: d.URLs,
			Image: fmt.Sprintf("blob %s of the archive", d.Digest)}
		switch {
		case skipped[d.Digest]:
			p.Skipped = append(p.Skipped, b)
			continue
		case b.Config:
			cs = append(cs, b)
		default:
			ls = append(ls, b)
		}
		p.TotalBytes += d.Size
		digest := d.Digest
		p.local[digest] = func() (io.ReadCloser, error) { return open(digest) }
		if bs, ok := locks.byLayer[digest]; ok && checkLocks {
			size := d.Size
			p.local[digest] = func() (io.ReadCloser, error) {
				rc, err := open(digest)
				if err != nil {
					return nil, err
				}
				return newLockedHeldReader(rc, size, bs[0], locks), nil
			}
		}
	}
	// The order Resolve gives: configs, then layers, each by digest.
	byDigest := func(bs []Blob) {
		sort.Slice(bs, func(i, j int) bool { return bs[i].Digest.String() < bs[j].Digest.String() })
	}
	byDigest(cs)
	byDigest(ls)
	p.Blobs = append(cs, ls...)
	return p, nil
}

// streamBlobs hands out the blobs of an archive read front to back, in the
// order the plan writes them (configs, then layers, each by digest, as
// ferry writes an archive and imgpkg its tarball). A blob the stream holds
// before its turn is copied to a temporary file, removed once read (or at
// once, where an open file can be removed), until its turn comes: memory
// stays flat whatever the order. Export reads a sequential plan one blob
// at a time (Plan.sequential); a blob cannot be read twice.
//
// The temporary files are made in os.TempDir ($TMPDIR, else /tmp on Unix).
type streamBlobs struct {
	mu      sync.Mutex
	r       *archive.Reader
	spooled map[v1.Hash]*spoolFile
	taken   map[v1.Hash]bool
	left    int // blobs not yet handed out
	done    bool
	err     error // of the end of the stream, once checked
	closed  bool
}

// open returns the blob d.
func (s *streamBlobs) open(d v1.Hash) (io.ReadCloser, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("blob %s: the plan of the stream is closed", d)
	}
	if s.taken[d] {
		return nil, fmt.Errorf("blob %s: already read from the stream, which cannot be read again", d)
	}
	if f, ok := s.spooled[d]; ok {
		delete(s.spooled, d)
		s.taken[d] = true
		s.left--
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			closeSpool(f)
			return nil, err
		}
		fi, err := f.Stat()
		if err != nil {
			closeSpool(f)
			return nil, err
		}
		return &streamBlob{s: s, r: f, size: fi.Size(), spool: f}, nil
	}
	for {
		got, size, rd, err := s.r.Next()
		if err == io.EOF {
			return nil, fmt.Errorf("blob %s: not in the archive", d)
		}
		if err != nil {
			return nil, err
		}
		if got == d {
			s.taken[d] = true
			s.left--
			return &streamBlob{s: s, r: rd, size: size}, nil
		}
		if err := s.spool(got, rd); err != nil {
			return nil, err
		}
	}
}

// spool copies blob d, met before its turn, to a temporary file.
func (s *streamBlobs) spool(d v1.Hash, rd io.Reader) error {
	// Without a name where the system allows it, so that nothing is left
	// whatever happens next, a kill included.
	af, name, err := atomicfile.Anonymous("", "ferry-repack-*")
	if err != nil {
		return fmt.Errorf("blob %s, ahead of its turn in the stream: %w", d, err)
	}
	f := &spoolFile{File: af, name: name}
	if _, err := io.Copy(f, rd); err != nil {
		closeSpool(f)
		return fmt.Errorf("blob %s, ahead of its turn in the stream: %w", d, err)
	}
	s.spooled[d] = f
	return nil
}

// spoolFile is a blob met before its turn: a scratch file, with the name
// that could not be removed at once, if any.
type spoolFile struct {
	*os.File
	name string
}

// closeSpool closes a scratch file and removes its name, if it has one.
func closeSpool(f *spoolFile) {
	f.Close()
	if f.name != "" {
		os.Remove(f.name)
	}
}

// close releases the stream's decompressor and the temporary files of the
// blobs not handed out; a blob handed out closes its own (streamBlob.Close).
// An export that fails or is cancelled part way leaves both behind
// otherwise: finish, which releases the decompressor, runs only once the
// last blob is read.
func (s *streamBlobs) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	for d, f := range s.spooled {
		closeSpool(f)
		delete(s.spooled, d)
	}
	s.r.Close()
}

// finish reads the stream to its end once every blob is handed out, so
// that its last checksum (zstd's, gzip's CRC) and its end are verified.
func (s *streamBlobs) finish() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.left > 0 || s.done {
		return s.err
	}
	s.done = true
	_, _, _, err := s.r.Next()
	switch {
	case err == nil:
		s.err = errors.New("archive: a blob after every blob the manifests reference")
	case err != io.EOF:
		s.err = err
	}
	s.r.Close()
	return s.err
}

// streamBlob is a blob open is handing out: the stream's entry, or the
// temporary file it was copied to. Having read its last byte, the last
// blob handed out checks the stream's end (finish) before it returns it:
// the reader stops at the blob's size, and would not see an error after.
type streamBlob struct {
	s     *streamBlobs
	r     io.Reader
	size  int64
	n     int64
	spool *spoolFile
	ended bool
}

// Read implements io.Reader.
func (b *streamBlob) Read(p []byte) (int, error) {
	if b.ended {
		return 0, io.EOF
	}
	n, err := b.r.Read(p)
	b.n += int64(n)
	if b.n >= b.size && (err == nil || err == io.EOF) {
		if ferr := b.s.finish(); ferr != nil {
			// Its last bytes withheld: a reader of exactly size bytes
			// (io.CopyN) would drop an error that comes with them.
			return 0, ferr
		}
		if b.s.done {
			// The stream has moved past this blob: its bytes are all
			// read, and verified by the archive's Reader.
			b.ended = true
		}
	}
	return n, err
}

// Close implements io.Closer.
func (b *streamBlob) Close() error {
	if b.spool != nil {
		closeSpool(b.spool)
		b.spool = nil
	}
	return nil
}

// lockedHeldReader passes a bundle's layer through while a goroutine
// parses its images.yml from a copy of the bytes and checks that every
// image it locks is an entry of the archive; the check's error is the
// read's, in place of the layer's last bytes, so a re-pack of such an
// archive fails before it is put in place. The layer is never held: the check
// reads it as it streams (a pipe), as verify does.
type lockedHeldReader struct {
	rc     io.ReadCloser
	pw     *io.PipeWriter
	left   int64 // bytes of the layer not yet read
	result chan error
	err    error // the check's, once known
	ended  bool
}

func newLockedHeldReader(rc io.ReadCloser, size int64, b bundleRef, locks *lockChecks) *lockedHeldReader {
	pr, pw := io.Pipe()
	r := &lockedHeldReader{rc: rc, pw: pw, left: size, result: make(chan error, 1)}
	go func() {
		l, err := parseBundleLayer(context.Background(), locks.manifests, b, pr)
		if err == nil {
			_, err = lockedHeld(b.source(), l, locks.inArchive)
		}
		// To its end, whatever images.yml held, so the reader never
		// blocks on a write nobody reads.
		io.Copy(io.Discard, pr)
		pr.Close()
		r.result <- err
	}()
	return r
}

func (r *lockedHeldReader) Read(p []byte) (int, error) {
	if r.ended {
		if r.err != nil {
			return 0, r.err
		}
		return r.rc.Read(p)
	}
	n, err := r.rc.Read(p)
	if n > 0 {
		r.pw.Write(p[:n])
		r.left -= int64(n)
	}
	switch {
	case err == nil && r.left > 0:
		return n, nil
	case err == nil || err == io.EOF:
		// The whole layer (a reader that stops at its size never asks
		// for the EOF): the check has all it reads. Its refusal keeps
		// the last bytes back, for a reader of exactly the size
		// (io.ReadFull) drops an error that comes with them. A stream's
		// blob gives a digest mismatch with its last bytes: that error
		// comes first, in the case below.
		r.end(nil)
		if r.err != nil {
			return 0, r.err
		}
		return n, err
	}
	r.end(err)
	return n, err
}

// end closes the copy for the check, with cause when the layer's read
// failed, and waits for the check.
func (r *lockedHeldReader) end(cause error) {
	if r.ended {
		return
	}
	r.ended = true
	if cause != nil {
		r.pw.CloseWithError(cause)
		<-r.result
		return
	}
	r.pw.Close()
	r.err = <-r.result
}

func (r *lockedHeldReader) Close() error {
	r.end(errors.New("the layer was closed before its end"))
	return r.rc.Close()
}
