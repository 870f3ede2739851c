package relocate

import (
	"bufio"
	"context"
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
	"github.com/ferry-dev/ferry/internal/ctxio"
	"github.com/ferry-dev/ferry/internal/fifo"
	"github.com/ferry-dev/ferry/internal/inventory"
	"github.com/ferry-dev/ferry/internal/progress"
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
	// path is the --since path ReadSince read, files what it read there
	// (the volumes of a split archive): an export must not replace one
	// (checkNotABase).
	path  string
	files []os.FileInfo
}

// ErrOutputIsABase is matched (errors.Is) by the error of an export whose
// output would replace a file one of its --since bases was read from: the
// delta would take the place of the archive it leaves blobs out for. Like
// a wrong flag, it is a matter of how ferry was called.
var ErrOutputIsABase = errors.New("the output would replace a --since base")

// checkNotABase refuses an export to path (as atomicfile.Target returned
// it) that would write or replace a file one of since was read from: path
// itself, its checksum file, or a volume name (an unsplit export replaces
// the volumes of an earlier one, a split one writes them).
func checkNotABase(path string, since []*Since) error {
	if len(since) == 0 {
		return nil
	}
	names := []string{path, path + ".sha256"}
	for i := 1; i <= volumes.MaxVolumes; i++ {
		names = append(names, volumes.Name(path, i))
	}
	for _, name := range names {
		fi, err := os.Lstat(name)
		if err != nil {
			continue
		}
		for _, s := range since {
			for _, b := range s.files {
				if os.SameFile(fi, b) {
					return fmt.Errorf("%w: %s is %s, which --since %s was read from; write the delta under another name", ErrOutputIsABase, name, describeBaseFile(b, s), s.path)
				}
			}
		}
	}
	return nil
}

// describeBaseFile names b, one of the files s was read from.
func describeBaseFile(b os.FileInfo, s *Since) string {
	if len(s.files) > 1 {
		return "the volume " + b.Name() + " of the base"
	}
	return "the base itself"
}

// sinceFiles describes the files in, as ReadSince opened it, holds: the
// file, or each volume of a Set.
func sinceFiles(in io.Reader) []os.FileInfo {
	switch in := in.(type) {
	case *os.File:
		if fi, err := in.Stat(); err == nil {
			return []os.FileInfo{fi}
		}
	case *volumes.Set:
		var out []os.FileInfo
		for _, v := range in.Volumes() {
			if fi, err := os.Stat(v.Path); err == nil {
				out = append(out, fi)
			}
		}
		return out
	}
	return nil
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
			return notABase{errIsADirectory}
		}
	}
	return notABase{errors.New("not a regular file")}
}

// errIsADirectory is why a directory is not a base.
var errIsADirectory = errors.New("is a directory, not a ferry archive or inventory")

// errArchiveFromPipe is why an archive base cannot come from a pipe.
var errArchiveFromPipe = errors.New("a pipe, and not an inventory: an archive base is read at random (its table of contents and seek table are at its end), not front to back; give the archive's file")

// readSinceStream reads a --since base from in, which cannot be read at
// random (a pipe): an inventory, told apart from its first bytes and
// decoded as it comes, at most inventory.MaxSize bytes, hashed as it is
// read. Anything else is refused (errArchiveFromPipe), as is a directory.
// Reads of an *os.File end when ctx is done, even one blocked waiting for
// the writer (readCtx).
func readSinceStream(ctx context.Context, path string, in io.Reader) (*Since, error) {
	if f, ok := in.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.IsDir() {
			return nil, notABase{errIsADirectory}
		}
	}
	r, stop := readCtx(ctx, in)
	defer stop()
	br := bufio.NewReaderSize(r, sniffSize)
	peek, err := br.Peek(sniffSize)
	if err != nil && err != io.EOF {
		return nil, err
	}
	if !inventory.Sniff(peek) {
		if len(peek) == 0 {
			return nil, notABase{errors.New("a pipe that gave nothing (its writer ended without a byte): not an inventory")}
		}
		return nil, notABase{errArchiveFromPipe}
	}
	return readInventory(ctx, br, -1, path, filepath.Base(path))
}

// readCtx returns a reader of in that fails with ctx.Err() once ctx is
// done, and what to call when it is no longer read. An *os.File that the
// runtime polls (a pipe, a FIFO, a terminal) gets a read deadline in the
// past when ctx is done, which ends a read blocked in it; any other reader
// is checked before each read (ctxio.NewReader).
func readCtx(ctx context.Context, in io.Reader) (io.Reader, func()) {
	r := ctxio.NewReader(ctx, in)
	f, ok := in.(*os.File)
	if !ok || f.SetReadDeadline(time.Time{}) != nil {
		return r, func() {}
	}
	stop := context.AfterFunc(ctx, func() { f.SetReadDeadline(time.Unix(1, 0)) })
	return ctxErrReader{ctx, r}, func() { stop() }
}

// ctxErrReader is a reader whose errors, once ctx is done, are ctx.Err():
// a read ended by the deadline readCtx set says why it was ended.
type ctxErrReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxErrReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err != nil && err != io.EOF {
		if cerr := c.ctx.Err(); cerr != nil {
			err = cerr
		}
	}
	return n, err
}

// ReadSince reads a --since file, told apart by its content: an inventory
// (a JSON document of inventory.MediaType) or a ferry archive, unsplit or
// the volumes of a split export (volumes.OpenArchive).
//
// An archive is opened as verify --since opens a base (openBase): what it
// holds is what its table of contents lists, which the seek table at its
// end vouches for, so one cut short or with a damaged trailer is refused;
// one without a seek table (gzip, plain tar, an older ferry) is read whole
// and verified first. The blobs it holds are those it carried and, for a
// delta, those it left out itself (its import found them at the
// destination). The sha256 recorded is the file's as it is now, computed
// (the volumes joined); a checksum file beside it that says otherwise
// stops the export: the base changed since it was written. An inventory
// is read at most inventory.MaxSize bytes, hashed as it is decoded.
//
// A pipe (a FIFO, or process substitution's /dev/fd/N: `--since <(ssh far
// ferry inventory --repo R -o -)`) holds an inventory only: it is read
// front to back as it comes (readSinceStream). A FIFO is opened without
// waiting in open(2) for its writer, and its reads end when ctx is done,
// so that a signal still ends ferry while nothing writes to it.
func ReadSince(ctx context.Context, path string, rep progress.Reporter) (s *Since, err error) {
	rep = progress.OrNop(rep)
	var in io.ReadCloser
	var files []os.FileInfo
	defer func() {
		if s != nil {
			s.path, s.files = path, files
		}
	}()
	fi, serr := os.Stat(path)
	pipe := serr == nil && fi.Mode()&fs.ModeNamedPipe != 0
	if pipe {
		var f *os.File
		f, err = fifo.Open(ctx, path)
		if err == nil {
			in = f
		}
	} else {
		in, err = volumes.OpenArchive(ctx, path)
	}
	if errors.Is(err, fs.ErrNotExist) {
		err = notABase{err}
	}
	if err != nil {
		return nil, fmt.Errorf("--since %s: %w", path, err)
	}
	defer in.Close()
	files = sinceFiles(in)
	ra, size, ok := archive.RandomAccess(in)
	if !ok && !pipe {
		// A device (/dev/null, a terminal): neither a file nor what a
		// command writes an inventory into.
		return nil, fmt.Errorf("--since %s: %w", path, notRegular(in))
	}
	if !ok {
		s, err := readSinceStream(ctx, path, in)
		if err != nil {
			return nil, fmt.Errorf("--since %s: %w", path, err)
		}
		return s, nil
	}
	name := filepath.Base(path)
	if vs, split := in.(*volumes.Set); split {
		name = filepath.Base(vs.Base())
	}
	// What the file is, from its first bytes, before any is hashed: a
	// file that is neither costs nothing.
	if sniffInventory(ra, size) {
		s, err := readInventory(ctx, io.NewSectionReader(ra, 0, size), size, path, name)
		if err != nil {
			return nil, fmt.Errorf("--since %s: %w", path, err)
		}
		return s, nil
	}
	b, err := openBase(ctx, path, in, rep)
	if errors.Is(err, ErrNotABase) {
		return nil, fmt.Errorf("--since %s: %w (%v)", path, ErrNotABase, err)
	}
	if err != nil {
		return nil, fmt.Errorf("--since %s: %w", path, err)
	}
	sum, err := baseSum(ctx, path, in, ra, size)
	if err != nil {
		return nil, fmt.Errorf("--since %s: %w", path, err)
	}
	s = &Since{Base: archive.Base{Kind: archive.BaseArchive, Name: name, SHA256: sum}, Blobs: make(map[v1.Hash]string, len(b.held))}
	for d := range b.held {
		s.Blobs[d] = ""
	}
	return s, nil
}

// readInventory reads the inventory in r, size bytes (-1: not known, a
// pipe, read up to one byte more than inventory.MaxSize), as a base named
// name: one map of its blobs, each with the first repository that holds
// it, the document's lists dropped as the map is filled.
func readInventory(ctx context.Context, r io.Reader, size int64, path, name string) (*Since, error) {
	if size > inventory.MaxSize {
		return nil, fmt.Errorf("inventory of %s, more than %s: not one ferry wrote", progress.Bytes(size), progress.Bytes(inventory.MaxSize))
	}
	h := sha256.New()
	var read int64
	if size < 0 {
		r = &countingReader{r: io.LimitReader(r, inventory.MaxSize+1), n: &read}
	}
	doc, err := inventory.Decode(io.TeeReader(ctxio.NewReader(ctx, r), h), path)
	if read > inventory.MaxSize {
		return nil, fmt.Errorf("inventory of more than %s: not one ferry wrote", progress.Bytes(inventory.MaxSize))
	}
	if errors.Is(err, inventory.ErrNotInventory) {
		return nil, notABase{fmt.Errorf("%w (%v)", ErrNotABase, err)}
	}
	if err != nil {
		return nil, err
	}
	if len(doc.Repositories) > archive.MaxBaseRepositories {
		// Said here, before any blob is fetched: the delta's head would
		// refuse it (an import asks each repository for what it lacks).
		return nil, fmt.Errorf("the inventory lists %d repositories; a delta's base may name at most %d: take inventories of fewer repositories, and give each with --since", len(doc.Repositories), archive.MaxBaseRepositories)
	}
	n := 0
	for _, r := range doc.Repositories {
		n += len(r.Blobs)
	}
	s := &Since{
		Base:  archive.Base{Kind: archive.BaseInventory, Name: name, SHA256: hex.EncodeToString(h.Sum(nil)), Created: doc.Created.UTC().Format(time.RFC3339)},
		Blobs: make(map[v1.Hash]string, n),
	}
	for i := range doc.Repositories {
		r := &doc.Repositories[i]
		repo := r.Name()
		s.Base.Repositories = append(s.Base.Repositories, repo)
		for _, it := range r.Blobs {
			if _, ok := s.Blobs[it.Digest]; !ok {
				s.Blobs[it.Digest] = repo
			}
		}
		r.Blobs, r.Manifests = nil, nil
	}
	return s, nil
}

// baseSum returns the sha256 of the base archive at path (in, ra: size
// bytes), read whole as it is now. The volumes of a split export are read
// front to back, each compared with its line of the checksum file; an
// unsplit file's checksum file, when it names the file (checksumOf, as
// verify reads it), must give the same sum: a base cut short or damaged
// since it was written must not be recorded under its old sum.
func baseSum(ctx context.Context, path string, in io.Reader, ra io.ReaderAt, size int64) (string, error) {
	h := sha256.New()
	vs, split := in.(*volumes.Set)
	r := io.Reader(io.NewSectionReader(ra, 0, size))
	if split {
		r = vs
	}
	if _, err := io.CopyBuffer(h, ctxio.NewReader(ctx, r), make([]byte, 1<<20)); err != nil {
		return "", err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if split {
		return sum, nil
	}
	side := path + ".sha256"
	want, ok, err := checksumOf(path, side)
	if err != nil {
		return "", err
	}
	if ok && want != sum {
		return "", fmt.Errorf("its sha256 is %s, but %s says %s: the archive changed since it was written (cut short or damaged)", sum, filepath.Base(side), want)
	}
	return sum, nil
}

// sniffInventory reports whether the file ra reads, size bytes long, may
// be an inventory rather than an archive (inventory.Sniff): JSON, which
// no archive is.
func sniffInventory(ra io.ReaderAt, size int64) bool {
	peek, _ := bufio.NewReaderSize(io.NewSectionReader(ra, 0, size), sniffSize).Peek(sniffSize)
	return inventory.Sniff(peek)
}

// sniffSize is how many of a base's first bytes tell what it is.
const sniffSize = 4096

// countingReader counts in *n the bytes read from r.
type countingReader struct {
	r io.Reader
	n *int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	*c.n += int64(n)
	return n, err
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

// warnUnused warns of each base that holds none of the configs and layers
// p carries, and when nothing at all is left out: --since is given to make
// the archive smaller, and a stale or unrelated base would otherwise give
// a full archive without a word.
func warnUnused(rep progress.Reporter, p *Plan, since []*Since, d *archive.Delta) {
	if len(since) == 0 {
		return
	}
	seen := make(map[string]bool, len(since))
	for _, s := range since {
		if seen[s.Base.SHA256] {
			continue
		}
		seen[s.Base.SHA256] = true
		if !slices.ContainsFunc(p.Blobs, func(b Blob) bool { _, ok := s.Blobs[b.Digest]; return ok }) {
			rep.Warnf("--since %s holds none of the configs and layers this export carries", s.Base)
		}
	}
	if len(d.LeftOut) == 0 {
		rep.Warnf("--since: nothing is left out; the archive is a full one")
	}
}
