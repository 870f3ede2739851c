package relocate

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/archive"
	"github.com/ferry-dev/ferry/internal/inventory"
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

// ErrNotABase is returned by ReadSince for a file that is neither a ferry
// archive nor an inventory.
var ErrNotABase = errors.New("neither a ferry archive nor a ferry inventory")

// ReadSince reads a --since file, told apart by its content: an inventory
// (JSON naming inventory.MediaType) or a ferry archive (its head only: the
// blobs it carried, and those it left out itself, which its import found
// at the destination). The file's sha256 is recorded in the Base.
func ReadSince(path string) (*Since, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--since %s: %w", path, err)
	}
	defer f.Close()
	peek, _ := bufio.NewReader(f).Peek(4096)
	sum, err := fileSHA256(f)
	if err != nil {
		return nil, fmt.Errorf("--since %s: %w", path, err)
	}
	name := filepath.Base(path)
	if inventory.Sniff(peek) {
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
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("--since %s: %w", path, err)
	}
	head, err := archive.Inspect(f)
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

func fileSHA256(f *os.File) (string, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// delta works out what an export of p leaves out given the bases: every
// config and layer a base holds (the first base that does is recorded).
// It returns nil when nothing is given.
func delta(p *Plan, since []*Since) *archive.Delta {
	if len(since) == 0 {
		return nil
	}
	d := &archive.Delta{}
	for _, s := range since {
		d.Bases = append(d.Bases, s.Base)
	}
	for _, b := range p.Blobs {
		for i, s := range since {
			if repo, ok := s.Blobs[b.Digest]; ok {
				d.LeftOut = append(d.LeftOut, archive.LeftOut{Digest: b.Digest, Size: b.Size, Base: i, Repository: repo})
				break
			}
		}
	}
	return d
}
