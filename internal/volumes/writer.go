// Package volumes splits an archive's bytes into consecutive files of at
// most a given size, its volumes (FILE.001, FILE.002, …), and reads them
// back as one. Joined in order (cat FILE.0*) the volumes are exactly the
// archive: the split is of the bytes, below any format, so that every
// reader of the archive (random access included) works on volumes
// unchanged, and `cat` remains a way to rebuild the file.
//
// FILE.sha256, in sha256sum format, has one line per volume, so that
// `sha256sum -c` checks each on its own, and so that a reader knows how many
// volumes there are (docs/archive-format.md, "Split volumes").
package volumes

import (
	"encoding/hex"
	"errors"
	"fmt"
	"sync"

	"github.com/ferry-dev/ferry/internal/atomicfile"
	"github.com/ferry-dev/ferry/internal/hashing"
)

// MaxVolumes is the most volumes an export writes: FILE.001 to FILE.099,
// every one of which `cat FILE.0*`, the documented way to join them,
// matches, in order. Names keep three digits (the format allows up to
// .999, and readers accept them), but a 100th volume, FILE.100, would
// silently escape that glob.
const MaxVolumes = 99

// Name returns the path of volume i (from 1) of the archive at path.
func Name(path string, i int) string { return path + Suffix(i) }

// Suffix returns the suffix of volume i, ".001" for the first: how errors
// name a volume.
func Suffix(i int) string { return fmt.Sprintf(".%03d", i) }

// Volume is one volume of an archive.
type Volume struct {
	// Path is the volume's file.
	Path string `json:"path"`
	// Size is its length in bytes.
	Size int64 `json:"bytes"`
	// SHA256 is the hex sha256 of its bytes (empty, and left out of JSON,
	// when not known: inspect reads no volume whole).
	SHA256 string `json:"sha256,omitempty"`
}

// Writer writes an archive as volumes of at most a given size. Each volume
// is written to a temporary file beside its final name (atomicfile); only
// Commit gives them their names, all of them or none, so a failed or
// interrupted export leaves no volume under a final name.
type Writer struct {
	path string
	max  int64
	cur  *atomicfile.File
	curN int64
	h    *hashing.Async
	done []written
	err  error
	// over counts the bytes past the last volume MaxVolumes allows. They
	// are not written: the Writer only counts them, so that Commit can
	// name the split size the archive needs instead of a guess.
	over int64

	// files are every volume's temporary file, and unlinked is set by
	// Unlink, both under mu: Unlink may be called while a Write is in
	// progress.
	mu       sync.Mutex
	files    []*atomicfile.File
	unlinked bool
}

// written is a volume whose bytes are all written, waiting for Commit.
type written struct {
	f   *atomicfile.File
	vol Volume
}

// Create starts writing the volumes of the archive path, each of at most
// size bytes. Like atomicfile.Create it fails at once when path's
// directory is missing or not writable: the first volume's temporary file
// is created now.
func Create(path string, size int64) (*Writer, error) {
	if size <= 0 {
		return nil, fmt.Errorf("split %s: volume size %d, want at least one byte", path, size)
	}
	w := &Writer{path: path, max: size}
	if err := w.next(); err != nil {
		return nil, err
	}
	w.h = hashing.NewAsync()
	return w, nil
}

// next starts the next volume.
func (w *Writer) next() error {
	i := len(w.done) + 1
	w.mu.Lock()
	unlinked := w.unlinked
	w.mu.Unlock()
	if unlinked {
		return errSplitAborted
	}
	// Created without holding mu: on a stalled disk the create may block,
	// and Unlink, which takes mu, must not wait for it.
	f, err := atomicfile.CreateName(Name(w.path, i))
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.unlinked {
		// Unlink ran meanwhile: this file is not among those it removed.
		f.Abort()
		return errSplitAborted
	}
	w.files = append(w.files, f)
	w.cur, w.curN = f, 0
	return nil
}

// errSplitAborted is what a Writer says once Unlink has run.
var errSplitAborted = errors.New("split: aborted")

// Unlink removes the temporary files of the volumes at once, before
// Abort: unlike every other method it may be called while a Write is in
// progress in another goroutine, one blocked on a stalled disk that the
// caller gives up waiting for (atomicfile.File.Unlink). No volume is
// started after it, and Commit fails. Abort must still be called, once no
// Write is in progress, to close the files and release their locks.
func (w *Writer) Unlink() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.unlinked = true
	var first error
	for _, f := range w.files {
		if err := f.Unlink(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// finish closes the current volume's hashing; its file waits for Commit.
func (w *Writer) finish() {
	sum := w.h.Sum()
	w.done = append(w.done, written{f: w.cur, vol: Volume{
		Path: Name(w.path, len(w.done)+1), Size: w.curN, SHA256: sum,
	}})
	w.cur = nil
}

// Write writes p across as many volumes as it needs. A volume is started
// only when a byte is written to it, so the last volume is never empty.
func (w *Writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	n := 0
	for len(p) > 0 {
		if w.cur == nil && len(w.done) == MaxVolumes {
			m, err := w.overflow(p)
			return n + m, err
		}
		if w.cur == nil {
			if w.err = w.next(); w.err != nil {
				return n, w.err
			}
		}
		chunk := p[:min(int64(len(p)), w.max-w.curN)]
		m, err := w.cur.Write(chunk)
		w.h.Write(chunk[:m])
		w.curN += int64(m)
		n += m
		if err != nil {
			w.err = fmt.Errorf("volume %s: %w", Suffix(len(w.done)+1), err)
			return n, w.err
		}
		if w.curN == w.max {
			w.finish()
		}
		p = p[m:]
	}
	return n, nil
}

// overflow counts p, which would go past the last volume allowed. The
// first time, it removes the volumes written (the export will fail, and
// they would only hold the disk until then).
func (w *Writer) overflow(p []byte) (int, error) {
	if w.over == 0 {
		for _, d := range w.done {
			if err := d.f.Abort(); err != nil {
				w.err = err
				return 0, err
			}
		}
		w.h.Close()
		w.h = nil
	}
	w.over += int64(len(p))
	return len(p), nil
}

// tooMany is Commit's error for an archive that needed more than
// MaxVolumes volumes: the split size that would have been enough.
func (w *Writer) tooMany() error {
	total := MaxVolumes*w.max + w.over
	need := (total + MaxVolumes - 1) / MaxVolumes
	return fmt.Errorf("split %s: the archive has %d bytes, more than %d volumes of %d bytes (export writes at most %d, %s to %s, so that cat %s.0* joins them all): choose a split size of at least %d bytes",
		w.path, total, MaxVolumes, w.max, MaxVolumes, Suffix(1), Suffix(MaxVolumes), w.path, need)
}

// Commit gives every volume its final name and writes path.sha256 with one
// line per volume, replacing all an earlier export left under path's name
// (Put: all or nothing, under the directory's lock). The warnings say what
// of the earlier export could not be removed once the volumes were in
// place.
func (w *Writer) Commit() ([]Volume, []error, error) {
	if w.err == nil && w.over > 0 {
		w.err = w.tooMany()
	}
	w.mu.Lock()
	if w.err == nil && w.unlinked {
		w.err = errors.New("split: aborted")
	}
	w.mu.Unlock()
	if w.err != nil {
		err := w.err
		w.Abort()
		return nil, nil, err
	}
	if w.cur != nil {
		w.finish()
	}
	w.h.Close()
	w.h = nil
	// Whatever happens next, the Writer is done.
	w.err = fmt.Errorf("split %s: already committed", w.path)
	vols := make([]Volume, len(w.done))
	files := make([]*atomicfile.File, len(w.done))
	sums := make([]atomicfile.Checksum, len(w.done))
	for i, d := range w.done {
		vols[i], files[i] = d.vol, d.f
		sum, err := hex.DecodeString(d.vol.SHA256)
		if err != nil {
			w.Abort()
			return nil, nil, err
		}
		sums[i] = atomicfile.Checksum{Path: d.vol.Path, Sum: sum}
	}
	warnings, err := Put(w.path, files, sums)
	if err != nil {
		return nil, nil, fmt.Errorf("split %s: %w", w.path, err)
	}
	return vols, warnings, nil
}

// Abort removes every temporary volume. It does nothing after Commit, so
// it can be deferred.
func (w *Writer) Abort() error {
	var first error
	for _, d := range w.done {
		if err := d.f.Abort(); err != nil && first == nil {
			first = err
		}
	}
	if w.cur != nil {
		if err := w.cur.Abort(); err != nil && first == nil {
			first = err
		}
	}
	if w.err == nil {
		w.err = errors.New("split: aborted")
	}
	if w.h != nil {
		w.h.Close()
		w.h = nil
	}
	return first
}
