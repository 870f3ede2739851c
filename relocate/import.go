package relocate

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/archive"
	"github.com/ferry-dev/ferry/internal/ctxio"
)

// DefaultImportConcurrency is how many registry requests an import runs at
// once (existence checks, uploads, manifests, tags) when
// ImportOptions.Concurrency is zero, and so how many blobs upload at once.
//
// Why 8: on loopback client and registry share the CPU (reading,
// verifying, the registry's hashing), so overlap gains nothing; behind
// latency each upload's round trips dominate and concurrency pays up to
// about 8. BenchmarkImport (16 images × 4 layers of 2 MiB into an
// in-memory distribution registry, 2 cores, 10 ms per request) gave 21 MB/s
// at 1, 40 at 2, 69 at 4, 92 at 8 and 105 at 16, when an upload took four
// round trips (HEAD, POST, PATCH, PUT); it takes two now (POST, PUT: the
// HEADs are made first, for every blob at once), and make bench's latency
// run gives today's figures (README, Performance).
const DefaultImportConcurrency = 8

// DefaultImportSpoolBytes bounds the temporary disk used by blobs waiting
// for their upload when ImportOptions.SpoolDir is set and SpoolBytes is
// zero.
const DefaultImportSpoolBytes int64 = 2 << 30

// ImportOptions configures Import.
type ImportOptions struct {
	// DestinationOptions say how to reach and write the destination. With
	// DryRun an import reads only the archive's head (index.json and the
	// manifests) and, from a file, each bundle's layer; it does not verify
	// the other configs and layers, so it is quick on any archive; see
	// Import.
	DestinationOptions
	// SpoolDir, when set, makes an import read front to back (from a pipe,
	// or an archive without a seek table) keep each large blob in a
	// temporary file under it until its upload is done, in a directory
	// removed before Import returns: an upload that fails part way is then
	// sent again in full, at the cost of writing the blob to disk. Without
	// it, a large blob streams from the archive straight into its upload,
	// which resumes after a dropped connection from what the registry
	// holds (see registry.Repo.UploadStream), and nothing is written to
	// disk. An archive read from a file with a seek table never spools:
	// any blob can be read again from the file.
	SpoolDir string
	// SpoolBytes bounds the temporary disk those blobs use; 0 means
	// DefaultImportSpoolBytes. A single blob bigger than that is still
	// spooled, alone.
	SpoolBytes int64
	// Operation is what the caller calls the import, which its errors
	// name ("copy to REPO: …" for copy --tar); empty means "import".
	Operation string
	// Archive is what the caller calls the archive read ("rel.tar.zst",
	// "standard input"), which the errors name after the operation
	// ("import rel.tar.zst to REPO: …"); empty names none.
	Archive string

	// spoolSlots overrides how many blobs may be held at once (tests and
	// measurements); 0 means Concurrency+1.
	spoolSlots int
}

// TagAction says what an import or a copy does to a tag.
type TagAction string

// What an import or a copy does to a tag.
const (
	// TagCreate writes a tag that did not exist.
	TagCreate TagAction = "create"
	// TagMove points an existing tag at another digest (TagResult.Previous
	// says which). The root's original tag is only moved once everything
	// else is in place.
	TagMove TagAction = "move"
	// TagUnchanged leaves a tag that already points at the right digest;
	// it is not written again.
	TagUnchanged TagAction = "unchanged"
)

// TagResult is one tag an import or a copy writes, or would write in a dry
// run.
type TagResult struct {
	// Tag is the tag, without the repository.
	Tag string `json:"tag"`
	// Digest is what the tag points at afterwards. In a dry run it is
	// empty for the tags of a locations image that cannot be computed yet
	// (see Import).
	Digest string `json:"digest"`
	// Previous is what the tag pointed at before, empty if it did not exist.
	Previous string `json:"previous,omitempty"`
	// Action is TagCreate, TagMove or TagUnchanged.
	Action TagAction `json:"action"`
}

// ImportResult describes an import or a copy (or, with DryRun, what it
// would do).
type ImportResult struct {
	// Repository is the destination repository.
	Repository string `json:"repository"`
	// Root is repo@digest of the root bundle (or of the single tagged
	// image); empty when there is no root (a lock file's images).
	Root string `json:"root,omitempty"`
	// Tag is the root's original tag, written last; empty when the root was
	// exported by digest.
	Tag string `json:"tag,omitempty"`
	// Tags lists every tag written or left unchanged (or, in a dry run,
	// that would be), in the order they are written.
	Tags []TagResult `json:"tags"`
	// Images counts what the archive's index.json lists (a copy: what an
	// export of its plan would list), each digest once: bundles, images,
	// indexes and artifacts, as ExportResult.Images does.
	Images int `json:"images"`
	// BlobsUploaded and BytesUploaded count the configs and layers sent to
	// the destination (in a dry run: missing there), the locations
	// images' included (not in a dry run, which does not build them all).
	// Mounted blobs are not among them: no byte of theirs was sent.
	BlobsUploaded int   `json:"blobsUploaded"`
	BytesUploaded int64 `json:"bytesUploaded"`
	// BlobsMounted and BytesMounted count, apart from those, the blobs a
	// copy within one registry mounted from their source repository
	// instead of sending their bytes, and a delta's left-out blobs mounted
	// from another repository (LeftOutMounted).
	BlobsMounted int   `json:"blobsMounted,omitempty"`
	BytesMounted int64 `json:"bytesMounted,omitempty"`
	// BlobsPresent and BytesPresent count those the destination already had.
	BlobsPresent int   `json:"blobsPresent"`
	BytesPresent int64 `json:"bytesPresent"`
	// BlobsLeftOut and BytesLeftOut count the blobs a delta archive left
	// out, which the destination held: each is among BlobsPresent when
	// repo had it, BlobsMounted when it was mounted from another
	// repository of the registry, where an inventory saw it (in a dry run:
	// would be), BlobsUploaded when the registry would not mount it;
	// LeftOutMounted and BytesLeftOutMounted count the mounted ones.
	BlobsLeftOut        int   `json:"blobsLeftOut,omitempty"`
	BytesLeftOut        int64 `json:"bytesLeftOut,omitempty"`
	LeftOutMounted      int   `json:"leftOutMounted,omitempty"`
	BytesLeftOutMounted int64 `json:"bytesLeftOutMounted,omitempty"`
	// LeftOutFrom says from which repositories those the destination
	// lacked were taken (mounted, or uploaded), sorted by name.
	LeftOutFrom []LeftOutSource `json:"leftOutFrom,omitempty"`
	// ManifestsPushed and ManifestsPresent count the manifests
	// and indexes PUT (in a dry run: missing) and already there; a
	// locations image counts in ManifestsPushed when it is written.
	ManifestsPushed  int `json:"manifestsPushed"`
	ManifestsPresent int `json:"manifestsPresent"`
	// DryRun is set when nothing was changed.
	DryRun bool `json:"dryRun"`
	// Unchecked says, in a dry run, what could not be checked without
	// uploading (a bundle's images.yml whose layer is neither at the
	// destination nor in the archive read so far).
	Unchecked []string `json:"unchecked,omitempty"`
}

// Import puts everything a ferry archive holds into repo, recreating what
// imgpkg writes there (docs/destination.md):
//
//   - From the head (index.json and the manifests) it knows every blob. It
//     asks repo which manifests it has (a manifest present implies its
//     blobs), then about each of the other blobs, ahead of the uploads
//     and in their order, and uploads only the missing ones, each
//     verified against its digest as it is read (a mismatch aborts the
//     import, naming the digest and archive entry).
//   - When r is a file with a seek table (archive.OpenFile), each missing
//     blob is read straight from where it lies, several at once, and blobs
//     repo has are never read: a re-import reads the head alone. The same
//     holds for the volumes of a split archive (a volumes.Set, checked
//     first: see checkVolumes) and for a tarball imgpkg copy --to-tar
//     wrote (archive.OpenImgpkg), whose entries get the tags imgpkg's own
//     import gives them. Otherwise (a pipe, an older archive, gzip or
//     plain tar, an imgpkg tarball on a pipe) the archive is read once,
//     front to back, and each missing blob is uploaded as it goes by (see
//     ImportOptions.SpoolDir). Nothing is extracted to disk.
//   - Then every manifest is PUT, children before parents, by its
//     "sha256-<hex>.imgpkg" (or repo-based) tag when it has one, which
//     stores and tags it in one request, and by digest otherwise; the
//     digest the registry reports is checked against the archive's.
//   - Then an image-locations image per bundle with its two tags, and last
//     the root's original tag, the commit point: a failure earlier never
//     moves it. Tags already pointing at the right digest are not written
//     again.
//
// An import is idempotent and resumable: run again after a failure or a
// kill, it uploads only what is missing and completes. The locations images
// are built from each bundle's images.yml, read from the archive (a file) or
// back from the destination once the blobs are in (a stream).
//
// With DryRun only the head is read: the result says which blobs are
// missing and which tags would be created or moved. From a stream, a bundle
// whose layer is not in repo yet cannot have its locations image computed
// without reading the archive's layers, so its locations tag is reported
// with an empty Digest, and the tag named after the locations image's own
// digest is not listed.
func Import(ctx context.Context, r io.Reader, repo name.Repository, opts ImportOptions) (*ImportResult, error) {
	res, err := runImport(ctx, r, repo, opts)
	if err != nil {
		what := opts.operation()
		if opts.Archive != "" {
			what += " " + opts.Archive
		}
		return nil, fmt.Errorf("%s to %s: %w", what, repo, withHTTPStatus(blameVolume(r, err)))
	}
	return res, nil
}

// operation names what the import is to the user: "import", or the
// command that runs one (Operation).
func (o ImportOptions) operation() string {
	if o.Operation == "" {
		return "import"
	}
	return o.Operation
}

func runImport(ctx context.Context, r io.Reader, repo name.Repository, opts ImportOptions) (*ImportResult, error) {
	f, ok, err := openRandom(r)
	if err != nil {
		return nil, err
	}
	if ok {
		return importFile(ctx, f, repo, opts)
	}
	// No read starts once ctx ends, or once the uploads have failed
	// (importer.stream ends reads). A read already blocked on a silent pipe
	// still waits for its data, unless r is a ctxio.ContextReader (the CLI
	// reads standard input through a ctxio.Detached), which returns at once.
	reads, endReads := context.WithCancelCause(ctx)
	defer endReads(nil)
	ar, err := archive.NewReader(ctxio.NewReader(reads, r), archive.ReaderOptions{})
	if err != nil {
		return nil, err
	}
	defer ar.Close()
	head, err := archiveImportHead(ar.Head())
	if err != nil {
		return nil, err
	}
	dst, err := newDestination(ctx, repo, head, opts.DestinationOptions)
	if err != nil {
		return nil, err
	}
	dst.checkInMove = true
	im := &importer{ar: ar, opts: opts, endReads: endReads}
	return dst.commit(ctx, opts.operation(), func(ctx context.Context, dst *destination, _ *ImportResult) error {
		return im.stream(ctx, dst)
	})
}

// importer carries what an import from a stream adds to the commit phase:
// the archive whose stream brings the configs and layers.
type importer struct {
	ar   *archive.Reader
	opts ImportOptions
	// endReads ends the reads of the archive's stream.
	endReads context.CancelCauseFunc
}

// stream reads the archive's configs and layers, uploading those repo
// lacks.
func (im *importer) stream(ctx context.Context, dst *destination) error {
	slots := im.opts.spoolSlots
	if slots <= 0 {
		slots = dst.conc + 1
	}
	budget := im.opts.SpoolBytes
	if budget <= 0 {
		budget = DefaultImportSpoolBytes
	}
	up := newImportUploads(ctx, dst, slots, budget, im.opts.SpoolDir)
	defer up.close()
	// Once an upload has failed for good nothing more is read: a read
	// waiting on a silent stream (or copying a large blob) returns, and the
	// upload's failure, recorded first, is the one returned.
	defer context.AfterFunc(up.ctx, func() {
		if err := up.failure(); err != nil {
			im.endReads(err)
		}
	})()
	defer dst.headAhead(up.ctx, dst.head.archiveOrder())()

	seen := map[v1.Hash]bool{}
	for {
		if up.ctx.Err() != nil {
			break
		}
		d, size, rd, err := im.ar.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			up.fail(err)
			break
		}
		seen[d] = true
		want, ok := dst.head.blobSize[d]
		if !ok || dst.blobPresent[d] {
			// Present already, or referenced by no manifest: the Reader
			// still verifies it as it skips it.
			continue
		}
		if want != size {
			up.fail(fmt.Errorf("archive entry blobs/%s/%s: %d bytes, the manifests say %d", d.Algorithm, d.Hex, size, want))
			break
		}
		if err := up.add(d, size, rd); err != nil {
			up.fail(err)
			break
		}
	}
	if err := up.close(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, b := range dst.head.blobs {
		if !seen[b.Digest] && !dst.head.isLeftOut(b.Digest) {
			return fmt.Errorf("blob %s is referenced by a manifest but not in the archive", b.Digest)
		}
	}
	return nil
}

// archiveOrder lists the blobs as a ferry archive holds them: the configs,
// then the layers, each sorted by digest (an order for HEADs sent ahead:
// other archives may differ).
func (h *importHead) archiveOrder() []v1.Descriptor {
	configs := map[v1.Hash]bool{}
	for _, m := range h.manifests {
		configs[m.config.Digest] = true
	}
	var first, then []v1.Descriptor
	for _, b := range h.blobs {
		if configs[b.Digest] {
			first = append(first, b)
		} else {
			then = append(then, b)
		}
	}
	return append(first, then...)
}
