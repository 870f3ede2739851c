// Package archive reads and writes ferry's archive format, version 1: one
// zstd stream around one POSIX tar whose contents are an OCI Image Layout
// 1.1 (docs/archive-format.md). It knows nothing about registries; relocate feeds the
// Writer and consumes the Reader.
//
// The tar holds, in this order and nothing else:
//
//	oci-layout            {"imageLayoutVersion":"1.0.0"}
//	index.json            an OCI index, one descriptor per archive Entry
//	blobs/sha256/<hex>    every manifest and index reachable from index.json
//	                      (the head), sorted by digest
//	blobs/sha256/<hex>    configs and layers, in the order the writer chose,
//	                      each digest once
//
// The head comes first so that an import reads the archive once, front to
// back, from a pipe: by the time the first layer arrives it knows every
// image, tag and blob of the archive.
//
// No directory entries are written: GNU tar, bsdtar and Go extractors
// create blobs/sha256/ on their own, and layout readers (go-containerregistry
// layout.FromPath, crane, oras, regctl) only open files. The Reader accepts
// "blobs/" and "blobs/sha256/" directory entries between index.json and the
// first blob, so a layout re-tarred in that order still reads.
//
// Tar headers are deterministic: USTAR (PAX only for blobs of 8 GiB and
// more), mtime 0, uid/gid 0, no user or group names, mode 0644. The zstd
// stream is a sequence of independent frames of at most frameSize bytes of
// tar each (plus one frame boundary right after the head), each with its
// content checksum (frameSize explains why frames rather than one).
// The same inputs therefore give the same bytes whatever
// WriterOptions.Concurrency is.
package archive
