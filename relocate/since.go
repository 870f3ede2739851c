package relocate

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/archive"
	"github.com/ferry-dev/ferry/internal/inventory"
	"github.com/ferry-dev/ferry/internal/volumes"
)

// Since is one base of a delta export (`--since`): what the destination is
// known to hold, from a previous archive or from an inventory of the far
// side.
type Since struct {
	// Base is what the delta records of it.
	Base archive.Base
	// Blobs are the configs and layers it says the destination holds, each
	// with the repository an inventory found it in ("" for an archive).
	Blobs map[v1.Hash]string
}

// ErrNotABase is matched (errors.Is) by ReadSince's error for a --since
// path that cannot be a base: a file that is neither a ferry archive nor
// an inventory, a directory, or no file at all. Like a wrong flag, it is
// a matter of how ferry was called.
var ErrNotABase = errors.New("neither a ferry archive nor a ferry inventory")

// notABase is an error about a --since path that cannot be a base (of
// export, or of verify): it matches ErrNotABase and ErrNotABaseArchive,
// and reads as the error it wraps.
type notABase struct{ error }

func (e notABase) Unwrap() error { return e.error }
func (notABase) Is(target error) bool {
	return target == ErrNotABase || target == ErrNotABaseArchive
}

// notRegular says why path, open as f, cannot be read as a base: it is a
// directory, or another file that cannot be read at random (a pipe).
func notRegular(f io.Reader) error {
	if d, ok := f.(*os.File); ok {
		if fi, err := d.Stat(); err == nil && fi.IsDir() {
			return notABase{errors.New("is a directory, not a ferry archive or inventory")}
		}
	}
	return notABase{errors.New("not a regular file")}
}

// ReadSince reads a --since file, told apart by its content: an inventory
// (JSON naming inventory.MediaType) or a ferry archive (its head only: the
// blobs it carried, and those it left out itself, which its import found
// at the destination), unsplit or the volumes of a split export
// (volumes.OpenArchive). The file's sha256 (the volumes joined) is
// recorded in the Base.
func ReadSince(path string) (*Since, error) {
	in, err := volumes.OpenArchive(path)
	if errors.Is(err, fs.ErrNotExist) {
		err = notABase{err}
	}
	if err != nil {
		return nil, fmt.Errorf("--since %s: %w", path, err)
	}
	defer in.Close()
	ra, size, ok := archive.RandomAccess(in)
	if !ok {
		return nil, fmt.Errorf("--since %s: %w", path, notRegular(in))
	}
	from0 := func() io.Reader { return io.NewSectionReader(ra, 0, size) }
	name := filepath.Base(path)
	// The sum only names the base in the delta's record: the checksum file
	// an export wrote beside it spares hashing a base of many gigabytes.
	// A split export's lists its volumes' sums, not the archive's.
	sum, haveSum := "", false
	if vs, split := in.(*volumes.Set); split {
		if err := checkVolumes(vs); err != nil {
			return nil, fmt.Errorf("--since %s: %w", path, err)
		}
		name = filepath.Base(vs.Base())
	} else {
		sum, haveSum = sidecarSHA256(path)
	}
	if !haveSum {
		h := sha256.New()
		if _, err := io.Copy(h, from0()); err != nil {
			return nil, fmt.Errorf("--since %s: %w", path, err)
		}
		sum = hex.EncodeToString(h.Sum(nil))
	}
	if sniffInventory(ra, size) {
		doc, err := inventory.Read(path)
		if err != nil {
			return nil, fmt.Errorf("--since %s: %w", path, err)
		}
		s := &Since{Base: archive.Base{Kind: archive.BaseInventory, Name: name, SHA256: sum, Created: doc.Created.UTC().Format(time.RFC3339)}, Blobs: map[v1.Hash]string{}}
		for _, r := range doc.Repositories {
			s.Base.Repositories = append(s.Base.Repositories, r.Name())
		}
		for d, h := range doc.Blobs() {
			s.Blobs[d] = h.Repository
		}
		return s, nil
	}
	head, err := archive.Inspect(from0())
	if err != nil {
		return nil, fmt.Errorf("--since %s: %w (%v)", path, ErrNotABase, err)
	}
	s := &Since{Base: archive.Base{Kind: archive.BaseArchive, Name: name, SHA256: sum}, Blobs: map[v1.Hash]string{}}
	for _, b := range head.Blobs {
		if !slices.Contains(head.SkippedLayers, b.Digest) {
			s.Blobs[b.Digest] = ""
		}
	}
	return s, nil
}

// sniffInventory reports whether the file ra reads, size bytes long, is an
// inventory rather than an archive.
func sniffInventory(ra io.ReaderAt, size int64) bool {
	peek, _ := bufio.NewReader(io.NewSectionReader(ra, 0, size)).Peek(4096)
	return inventory.Sniff(peek)
}

// sidecarSHA256 reads the sum of path from path.sha256 (sha256sum
// format), if there is one: a checksum file listing volumes, or another
// file, says nothing of path itself.
func sidecarSHA256(path string) (string, bool) {
	side := path + ".sha256"
	if fi, err := os.Stat(side); err != nil || fi.Size() > 4096 {
		return "", false
	}
	sums, err := volumes.ReadChecksums(side)
	if err != nil || len(sums) != 1 {
		return "", false
	}
	sum, ok := sums[filepath.Base(path)]
	return sum, ok
}

// delta works out what an export of p leaves out given the bases: every
// config and layer a base holds. A base given twice (the same sha256) is
// recorded once. Each blob is expected from the first base, in the order
// given, that names a repository to mount it from (an inventory), else
// from the first that holds it: an archive listed before an inventory
// must not keep an import into another repository of the inventory's
// registry from mounting what that repository holds. It returns nil when
// nothing is given.
func delta(p *Plan, since []*Since) *archive.Delta {
	if len(since) == 0 {
		return nil
	}
	d := &archive.Delta{}
	var bases []*Since
	for _, s := range since {
		if !slices.ContainsFunc(d.Bases, func(b archive.Base) bool { return b.SHA256 == s.Base.SHA256 }) {
			d.Bases = append(d.Bases, s.Base)
			bases = append(bases, s)
		}
	}
	for _, b := range p.Blobs {
		at, from := -1, ""
		for i, s := range bases {
			if repo, ok := s.Blobs[b.Digest]; ok && (at < 0 || (from == "" && repo != "")) {
				at, from = i, repo
			}
		}
		if at >= 0 {
			d.LeftOut = append(d.LeftOut, archive.LeftOut{Digest: b.Digest, Size: b.Size, Base: at, Repository: from})
		}
	}
	return d
}
