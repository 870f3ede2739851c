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
	"io/fs"
	"os"
	"path/filepath"

	"github.com/ferry-dev/ferry/internal/atomicfile"
)

// MaxVolumes is the most volumes of one archive: three digits keep the
// names in order for `cat FILE.0*` and for every directory listing.
const MaxVolumes = 999

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
	h    *hasher
	done []written
	err  error
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
	w.h = newHasher()
	return w, nil
}

// next starts the next volume.
func (w *Writer) next() error {
	i := len(w.done) + 1
	if i > MaxVolumes {
		return fmt.Errorf("split %s: more than %d volumes of %d bytes; choose a larger split size", w.path, MaxVolumes, w.max)
	}
	f, err := atomicfile.Create(Name(w.path, i))
	if err != nil {
		return err
	}
	w.cur, w.curN = f, 0
	return nil
}

// finish closes the current volume's hashing; its file waits for Commit.
func (w *Writer) finish() {
	sum := w.h.sum()
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
		if w.cur == nil {
			if w.err = w.next(); w.err != nil {
				return n, w.err
			}
		}
		chunk := p[:min(int64(len(p)), w.max-w.curN)]
		m, err := w.cur.Write(chunk)
		w.h.write(chunk[:m])
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

// Commit gives every volume its final name and writes path.sha256 with one
// line per volume, holding the lock atomicfile.CommitWithChecksum holds on
// the directory. It first removes an old path.sha256 (a crash must not
// leave new volumes beside a checksum file that calls them damaged), then
// syncs and renames the volumes in order; if one fails, those already
// renamed are removed again. It then removes what an earlier export left
// under the same name and would be taken for part of this one: volumes
// numbered after the last, and an unsplit archive at path itself.
func (w *Writer) Commit() ([]Volume, error) {
	if w.err != nil {
		err := w.err
		w.Abort()
		return nil, err
	}
	if w.cur != nil {
		w.finish()
	}
	w.h.stop()
	w.h = nil
	// Whatever happens next, the Writer is done.
	w.err = fmt.Errorf("split %s: already committed", w.path)
	// As for an unsplit archive, the volumes and their checksum file are
	// put in place under the directory's lock, so that two exports to one
	// name never leave a mix of both.
	unlock := atomicfile.LockDir(filepath.Dir(w.path))
	defer unlock()
	if err := os.Remove(w.path + ".sha256"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		w.Abort()
		return nil, fmt.Errorf("split %s: %w", w.path, err)
	}
	for i, d := range w.done {
		if err := d.f.Commit(); err != nil {
			for _, prev := range w.done[:i] {
				os.Remove(prev.vol.Path)
			}
			w.err = err
			w.Abort()
			return nil, err
		}
	}
	if err := RemoveStale(w.path, len(w.done)); err != nil {
		return nil, err
	}
	if fi, err := os.Lstat(w.path); err == nil && fi.Mode().IsRegular() {
		if err := os.Remove(w.path); err != nil {
			return nil, fmt.Errorf("split %s: remove the unsplit archive an earlier export left: %w", w.path, err)
		}
	}
	vols := make([]Volume, len(w.done))
	sums := make([]atomicfile.Checksum, len(w.done))
	for i, d := range w.done {
		vols[i] = d.vol
		sum, err := hex.DecodeString(d.vol.SHA256)
		if err != nil {
			return nil, err
		}
		sums[i] = atomicfile.Checksum{Path: d.vol.Path, Sum: sum}
	}
	if err := atomicfile.WriteChecksums(w.path+".sha256", sums); err != nil {
		return nil, fmt.Errorf("split %s: checksum file: %w", w.path, err)
	}
	return vols, nil
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
		w.h.stop()
		w.h = nil
	}
	return first
}

// RemoveStale removes the volumes of the archive path numbered after n
// (all of them for n = 0): what an earlier export with more volumes, or a
// split export before an unsplit one, left under the same name. They are
// numbered from 1 without gaps, so it stops at the first that is absent.
func RemoveStale(path string, n int) error {
	for i := n + 1; i <= MaxVolumes; i++ {
		err := os.Remove(Name(path, i))
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("remove volume %s an earlier export left: %w", Name(path, i), err)
		}
	}
	return nil
}
