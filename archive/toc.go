package archive

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
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

// readTOC reads the table of contents from the frame fr, for a head of
// maxBlobs configs and layers. Nothing of it is trusted before it is
// bounded: its size by what maxBlobs entries take, its entries counted
// as they are decoded, so that a frame of millions of empty entries costs
// no more than the head it claims to describe.
func readTOC(ra io.ReaderAt, fr frameLoc, maxBlobs int) ([]tocBlob, error) {
	if fr.tarSize != 0 {
		return nil, fmt.Errorf("table of contents: the frame before the seek table holds %d bytes of tar, want a skippable frame", fr.tarSize)
	}
	limit := int64(maxTOCSize)
	if maxBlobs < (maxTOCSize-tocBaseBytes)/tocEntryBytes {
		limit = tocBaseBytes + int64(maxBlobs)*tocEntryBytes
	}
	if fr.size < skippableHeaderSize {
		return nil, fmt.Errorf("table of contents: frame of %d bytes, want %d or more", fr.size, skippableHeaderSize)
	}
	if fr.size > skippableHeaderSize+limit {
		return nil, fmt.Errorf("table of contents: %d bytes, more than the %d that %d configs and layers take", fr.size-skippableHeaderSize, limit, maxBlobs)
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
	doc, err := decodeTOC(b[skippableHeaderSize:], maxBlobs)
	if e := (noDigestError{}); errors.As(err, &e) {
		return nil, e
	}
	if err != nil {
		return nil, fmt.Errorf("table of contents: %w", err)
	}
	if doc.MediaType != TOCMediaType {
		return nil, fmt.Errorf("table of contents: media type %q, want %q", doc.MediaType, TOCMediaType)
	}
	return doc.Blobs, nil
}

// What a table of contents may take: tocBaseBytes for its media type and
// braces, tocEntryBytes per blob, twice what ferry writes for a sha512
// digest and sizes of 19 digits.
const (
	tocBaseBytes  = 256
	tocEntryBytes = 256
)

// decodeTOC decodes the table of contents b, one entry at a time, refusing
// more than maxBlobs entries and an entry without a digest.
func decodeTOC(b []byte, maxBlobs int) (tocDoc, error) {
	var doc tocDoc
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := wantDelim(dec, '{'); err != nil {
		return doc, err
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return doc, err
		}
		switch tok {
		case "mediaType":
			err = dec.Decode(&doc.MediaType)
		case "blobs":
			doc.Blobs, err = decodeTOCBlobs(dec, doc.Blobs, maxBlobs)
		default:
			var skip json.RawMessage
			err = dec.Decode(&skip)
		}
		if err != nil {
			return doc, err
		}
	}
	if err := wantDelim(dec, '}'); err != nil {
		return doc, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return doc, errors.New("data after the JSON document")
	}
	return doc, nil
}

// decodeTOCBlobs decodes the list of blobs, appending them to blobs.
func decodeTOCBlobs(dec *json.Decoder, blobs []tocBlob, maxBlobs int) ([]tocBlob, error) {
	tok, err := dec.Token()
	if err != nil || tok == nil {
		return blobs, err // null: no blobs
	}
	if tok != json.Delim('[') {
		return blobs, fmt.Errorf("blobs: %v, want a list", tok)
	}
	for dec.More() {
		if len(blobs) >= maxBlobs {
			return blobs, fmt.Errorf("more than %d entries, the manifests reference %d configs and layers", maxBlobs, maxBlobs)
		}
		var e tocBlob
		if err := dec.Decode(&e); err != nil {
			return blobs, fmt.Errorf("entry %d: %w", len(blobs), err)
		}
		if e.Digest == (v1.Hash{}) {
			return blobs, noDigestError{len(blobs)}
		}
		blobs = append(blobs, e)
	}
	return blobs, wantDelim(dec, ']')
}

// noDigestError is decodeTOC's error for entry i, which has no digest.
type noDigestError struct{ i int }

func (e noDigestError) Error() string {
	return fmt.Sprintf("table of contents entry %d has no digest", e.i)
}

// wantDelim reads the next token of dec, which must be d.
func wantDelim(dec *json.Decoder, d json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok != d {
		return fmt.Errorf("%v where %v was expected", tok, d)
	}
	return nil
}
