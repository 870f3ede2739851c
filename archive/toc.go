package archive

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// The table of contents says where each config and layer starts: the
// index, in the seek table, of the frame its tar header opens (the Writer
// starts a frame at every blob). It sits in a zstd skippable frame of its
// own, the last frame before the seek table, as zstd:chunked keeps its TOC
// at the end of a layer. Together they let a reader with a file decompress
// any one blob without reading anything before it.
//
// Nothing in it is trusted: a reader checks it against the head (every
// config and layer listed once, at its size, in frames that exist) and
// every blob read through it against its tar header (name, type, size) and
// its digest, so a wrong table of contents can only make a read fail.
const (
	skippableMagicTOC = 0x184D2A5C
	// TOCMediaType names the table of contents' JSON document.
	TOCMediaType = "application/vnd.ferry.archive.toc.v1+json"
	// maxTOCSize bounds the table of contents a reader loads: about 500,000
	// blobs.
	maxTOCSize = 64 << 20
)

// tocBlob is one config or layer of the table of contents.
type tocBlob struct {
	Digest v1.Hash `json:"digest"`
	Size   int64   `json:"size"`
	// Frame is the index in the seek table of the frame that starts with
	// the blob's tar header.
	Frame int `json:"frame"`
}

// tocDoc is the table of contents, compact JSON, blobs in archive order.
type tocDoc struct {
	MediaType string    `json:"mediaType"`
	Blobs     []tocBlob `json:"blobs"`
}

func encodeTOC(blobs []tocBlob) ([]byte, error) {
	if blobs == nil {
		blobs = []tocBlob{}
	}
	b, err := json.Marshal(tocDoc{MediaType: TOCMediaType, Blobs: blobs})
	if err != nil {
		return nil, fmt.Errorf("table of contents: %w", err)
	}
	if len(b) > maxTOCSize {
		return nil, fmt.Errorf("table of contents: %d bytes, more than %d", len(b), maxTOCSize)
	}
	return b, nil
}

// readTOC reads the table of contents from the frame fr.
func readTOC(ra io.ReaderAt, fr frameLoc) ([]tocBlob, error) {
	if fr.tarSize != 0 {
		return nil, fmt.Errorf("table of contents: the frame before the seek table holds %d bytes of tar, want a skippable frame", fr.tarSize)
	}
	if fr.size < skippableHeaderSize || fr.size > skippableHeaderSize+maxTOCSize {
		return nil, fmt.Errorf("table of contents: frame of %d bytes, want %d to %d", fr.size, skippableHeaderSize, skippableHeaderSize+maxTOCSize)
	}
	b := make([]byte, fr.size)
	if _, err := ra.ReadAt(b, fr.offset); err != nil {
		return nil, fmt.Errorf("read table of contents: %w", err)
	}
	if m := binary.LittleEndian.Uint32(b); m != skippableMagicTOC {
		return nil, fmt.Errorf("table of contents: frame magic %#x, want %#x", m, skippableMagicTOC)
	}
	if n := int64(binary.LittleEndian.Uint32(b[4:])); n != fr.size-skippableHeaderSize {
		return nil, fmt.Errorf("table of contents: frame says %d bytes, the seek table %d", n, fr.size-skippableHeaderSize)
	}
	var doc tocDoc
	if err := json.Unmarshal(b[skippableHeaderSize:], &doc); err != nil {
		return nil, fmt.Errorf("table of contents: %w", err)
	}
	if doc.MediaType != TOCMediaType {
		return nil, fmt.Errorf("table of contents: media type %q, want %q", doc.MediaType, TOCMediaType)
	}
	return doc.Blobs, nil
}
