package serve_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/serve"
)

// fetch sends a GET and reads its body, reporting a body cut short as
// an error rather than failing the test.
func fetch(t *testing.T, url, rng string) (*http.Response, []byte, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

// servedCopy serves a copy of the source's archive, which the test may
// change, and gets the big layer from it once, so that it is checked. It
// returns the archive's bytes, the copy's path, the server, and the big
// layer's URL.
func servedCopy(t *testing.T) (s *source, data []byte, path string, srv *served, url string) {
	t.Helper()
	s = newSource(t)
	data, err := os.ReadFile(s.archive)
	if err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(t.TempDir(), "copy.tar.zst")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	srv = startServer(t, path, serve.Options{})
	url = srv.url + "/v2/src/app/blobs/" + s.bigDigest.String()
	if resp, body := do(t, http.MethodGet, url, nil); resp.StatusCode != http.StatusOK || !bytes.Equal(body, s.big) {
		t.Fatalf("the blob before the change: %d, %d bytes", resp.StatusCode, len(body))
	}
	return s, data, path, srv, url
}

// A blob is checked before its first byte is sent; the archive file may
// change afterwards (a failing disk, a copy still being written). A range
// that ends inside a zstd frame is then read from the changed frame, whose
// checksum is only checked at its end: its last byte is given only once
// the frame has been read to its end, so that a client never gets a whole
// range (or a whole multipart answer) of bytes other than the blob's: the
// response is cut short instead. From then on the blob is damaged, as if
// its check had failed: every request for it is refused (500), ranges of
// unchanged frames and HEAD included, and a warning says so. (It once
// went on serving, every request for the changed bytes cut short with
// nothing else said.)
func TestARangeOfAFileChangedSinceItsCheckIsNeverSentWhole(t *testing.T) {
	s, data, path, srv, url := servedCopy(t)

	// The layer is random, stored as zstd raw blocks: its bytes lie in
	// the file as they are. One byte of its first frame changes.
	const changed = 100010
	at := bytes.Index(data, s.big[changed-10:changed+54])
	if at < 0 {
		t.Fatal("the big layer's bytes are not in the archive as they are")
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{data[at+10] ^ 0x01}, int64(at+10)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	for _, rng := range []string{
		// To the blob's end: first, while the blob is not known to be
		// damaged, and more than the server's write buffer, so that
		// what goes out before the frame's end reaches the client.
		fmt.Sprintf("bytes=%d-", changed-10),
		"bytes=100000-101023",      // ends inside the changed frame
		"bytes=0-99,100000-100099", // multipart, the second part over the change
	} {
		resp, body, err := fetch(t, url, rng)
		if err == nil && resp.StatusCode == http.StatusPartialContent {
			t.Errorf("Range %s over the changed byte: a whole 206 answer of %d bytes (only the blob's bytes: %v), want it cut short", rng, len(body), onlyBlobBytes(resp, body, s.big))
		}
		// Not even cut short does an answer carry a byte other than
		// the blob's: no byte of a frame goes out before the frame is
		// checked.
		var first int64
		if resp != nil && resp.StatusCode == http.StatusPartialContent && !strings.Contains(rng, ",") {
			fmt.Sscanf(resp.Header.Get("Content-Range"), "bytes %d-", &first)
			if !bytes.Equal(body, s.big[first:first+int64(len(body))]) {
				t.Errorf("Range %s over the changed byte: the %d bytes received are not the blob's", rng, len(body))
			}
		}
	}
	if srv.rep.count(true, "is damaged and refused to every client") != 1 || srv.reg.DamagedBlobs() != 1 {
		t.Errorf("want one warning that the blob is damaged, and it counted (for the exit status) once: %d counted, %q", srv.reg.DamagedBlobs(), srv.rep.warns)
	}

	// Refused now, even a range of another frame, unchanged, and HEAD.
	from := int64(len(s.big) - 1000)
	resp, body, err := fetch(t, url, fmt.Sprintf("bytes=%d-%d", from, from+99))
	if err != nil || resp.StatusCode != http.StatusInternalServerError || !bytes.Contains(body, []byte(s.bigDigest.String())) {
		t.Errorf("a range of an unchanged frame once the blob is damaged: %v, %v, %q; want a 500 naming the blob", err, resp, body)
	}
	if resp, _ := do(t, http.MethodHead, url, nil); resp.StatusCode != http.StatusInternalServerError {
		t.Errorf("HEAD once the blob is damaged: %d, want 500", resp.StatusCode)
	}
}

// onlyBlobBytes reports whether a 206 answer carries only the blob's own
// bytes.
func onlyBlobBytes(resp *http.Response, body, blob []byte) bool {
	mt, params, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt != "multipart/byteranges" {
		var first, last, size int64
		fmt.Sscanf(resp.Header.Get("Content-Range"), "bytes %d-%d/%d", &first, &last, &size)
		return bytes.Equal(body, blob[first:last+1])
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	for {
		p, err := mr.NextPart()
		if err != nil {
			return true
		}
		var first, last, size int64
		fmt.Sscanf(p.Header.Get("Content-Range"), "bytes %d-%d/%d", &first, &last, &size)
		got, _ := io.ReadAll(p)
		if !bytes.Equal(got, blob[first:last+1]) {
			return false
		}
	}
}

// zstdFrames returns the offset and length of each frame (skippable frames
// included) of the zstd stream data, walked as RFC 8878 (3.1) lays it out.
func zstdFrames(t *testing.T, data []byte) [][2]int {
	t.Helper()
	var out [][2]int
	for off := 0; off < len(data); {
		magic := binary.LittleEndian.Uint32(data[off:])
		if magic&0xFFFFFFF0 == 0x184D2A50 {
			n := 8 + int(binary.LittleEndian.Uint32(data[off+4:]))
			out = append(out, [2]int{off, n})
			off += n
			continue
		}
		if magic != 0xFD2FB528 {
			t.Fatalf("no zstd frame at offset %d", off)
		}
		p := off + 4
		fhd := data[p]
		p++
		single, checksum, dictID, fcsFlag := fhd>>5&1, fhd>>2&1, fhd&3, fhd>>6
		if single == 0 {
			p++ // Window_Descriptor
		}
		p += []int{0, 1, 2, 4}[dictID]
		fcs := []int{0, 2, 4, 8}[fcsFlag]
		if fcsFlag == 0 && single == 1 {
			fcs = 1
		}
		p += fcs
		for {
			bh := int(data[p]) | int(data[p+1])<<8 | int(data[p+2])<<16
			p += 3
			if bh>>1&3 == 1 { // RLE: one byte
				p++
			} else {
				p += bh >> 3
			}
			if bh&1 == 1 {
				break
			}
		}
		if checksum == 1 {
			p += 4
		}
		out = append(out, [2]int{off, p - off})
		off = p
	}
	return out
}

// After the blob is checked, the archive file is rewritten in place (as
// `cp` over it does) with two frames of the big layer traded places: each
// is a valid zstd frame of the same sizes with a valid checksum, so only
// the frames' fingerprints recorded by the check tell. The server never
// sends those bytes whole under the blob's digest: the answer is cut
// short, and a warning says the archive changed.
func TestFramesSwappedSinceTheCheckAreNeverSentAsTheBlob(t *testing.T) {
	s, data, path, srv, url := servedCopy(t)

	// The frame holding the big layer's byte at 5 MiB (random bytes lie
	// in the file as they are) and one beside it of the same compressed
	// size (frames of 4 MiB of tar).
	frames := zstdFrames(t, data)
	var a, b [2]int
	for i := 1; i+1 < len(frames); i++ {
		fr := frames[i]
		if !bytes.Contains(data[fr[0]:fr[0]+fr[1]], s.big[5<<20:5<<20+64]) {
			continue
		}
		for _, other := range [][2]int{frames[i-1], frames[i+1]} {
			if other[1] == fr[1] {
				a, b = other, fr
			}
		}
		break
	}
	if a[1] == 0 {
		t.Fatal("no two frames of the big layer of one size")
	}
	swapped := bytes.Clone(data)
	copy(swapped[a[0]:], data[b[0]:b[0]+b[1]])
	copy(swapped[b[0]:], data[a[0]:a[0]+a[1]])
	if err := os.WriteFile(path, swapped, 0o644); err != nil { // the same inode, rewritten
		t.Fatal(err)
	}

	for _, rng := range []string{
		"", // the whole blob
		"bytes=5000000-5000099",
		"bytes=0-99,5000000-5000099",
		"bytes=5000000-",
	} {
		resp, body, err := fetch(t, url, rng)
		if err == nil && (resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusPartialContent) {
			t.Errorf("Range %q after the swap: a whole %d answer of %d bytes (only the blob's bytes: %v), want it cut short", rng, resp.StatusCode, len(body), resp.StatusCode == http.StatusOK && bytes.Equal(body, s.big) || resp.StatusCode == http.StatusPartialContent && onlyBlobBytes(resp, body, s.big))
		}
	}
	if srv.rep.count(true, "the archive changed since the blob was checked") == 0 {
		t.Errorf("no warning says the archive changed: %q", srv.rep.warns)
	}
}
