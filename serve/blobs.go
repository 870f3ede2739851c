package serve

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/relocate"
)

// Serving a blob: the first request for it waits while the whole blob is
// read and checked (source.verify; for a ferry archive
// archive.File.VerifyBlob: digest, size, and the seek table's frame
// sizes), and the requests that arrive meanwhile wait for that same
// check; no byte leaves before it passes. Afterwards every request, a
// Range request included, reads only what it needs (a ferry archive's
// frames that hold it, each still checked against its zstd checksum and
// the fingerprint the check recorded for it, so that a frame swapped for
// another valid one since fails; a range of an imgpkg tarball). A blob that fails is refused to every
// client from then on, without being read again.

// verification is the check of one blob, shared by the requests for it.
type verification struct {
	started chan struct{} // closed when the check has its stream
	done    chan struct{} // closed when vb or err is set
	vb      verifiedBlob
	err     error
}

// blob answers GET and HEAD of /v2/<name>/blobs/<digest>, with Range.
func (r *Registry) blob(w http.ResponseWriter, req *http.Request, repo *relocate.ViewRepository, ref string) *regError {
	d, rerr := parseDigest(ref)
	if rerr != nil {
		return rerr
	}
	if why, ok := r.absent[d]; ok {
		// Not in the archive by design: unknown here, as at a registry
		// that lacks it, so that a client looks for it elsewhere rather
		// than retrying a failure.
		return newError(http.StatusNotFound, codeBlobUnknown, "blob %s is not in the archive: %s", d, why)
	}
	if !repo.Blobs[d] {
		return newError(http.StatusNotFound, codeBlobUnknown, "blob %s is not in %s", d, repo.Name)
	}
	b, inMemory := r.view.Blobs[d]
	size := r.sizes[d]
	if inMemory {
		size = int64(len(b))
	}
	etag := `"` + d.String() + `"`
	// Its Range and conditions are rewritten as they are decided.
	req = req.Clone(req.Context())
	var ends []int64
	ranged := false // a Range is served, ends its satisfiable ranges
	if rh := req.Header.Get("Range"); rh != "" {
		// A HEAD is answered as a GET without Range would be: a Range
		// applies to GET only (RFC 9110, 14.2), and HEAD reads nothing.
		// An If-Range other than the blob's ETag (a date included: the
		// blob has none) asks for the whole blob (13.1.5), as
		// ServeContent would decide.
		if req.Method != http.MethodGet || !ifRange(req, etag) {
			rh = ""
		} else {
			rh = byteRanges(rh, size)
		}
		if rh != "" {
			req.Header.Set("Range", rh)
			ends, ranged = rangeEnds(rh, size), true
		} else {
			req.Header.Del("Range")
		}
	}
	// Dropped by logWriter should the answer be an error.
	h := w.Header()
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Content-Type", "application/octet-stream")
	h.Set("ETag", etag)
	if !inMemory && req.Method == http.MethodGet {
		b, inMemory = r.smallBlob(d)
	}
	// Known damaged: refused, even to a client that says it has the blob.
	if err := r.failed(d); err != nil {
		return damaged(d, err)
	}
	// The conditions are decided here, in RFC 9110's order (13.2.2), as
	// ServeContent would decide them, so that a failed one gets the error
	// document, without waiting for the blob's check or a stream.
	if !ifMatch(req, etag) {
		return newError(http.StatusPreconditionFailed, codeUnsupported, "blob %s: If-Match %s does not name its ETag %s", d, echoed(strings.Join(req.Header.Values("If-Match"), ", ")), etag)
	}
	// Met: ServeContent, which reads only the first If-Match field, is
	// not to decide otherwise.
	req.Header.Del("If-Match")
	// A blob is named by its digest: a client holding that ETag holds its
	// bytes, and is answered without reading them or waiting for a stream.
	if notModified(w, req, d) {
		return nil
	}
	if ranged && len(ends) == 0 {
		h.Set("Content-Range", "bytes */"+strconv.FormatInt(size, 10))
		return newError(http.StatusRequestedRangeNotSatisfiable, codeUnsupported, "blob %s: no byte of its %d satisfies Range %s", d, size, echoed(req.Header.Get("Range")))
	}
	if inMemory {
		// Made for the view (a locations image's config or layer), or
		// small and verified: no stream needed.
		http.ServeContent(w, req, "", time.Time{}, bytes.NewReader(b))
		return nil
	}
	if req.Method == http.MethodHead {
		// Nothing is sent but the size, which the manifests give: no need
		// to read the blob.
		h.Set("Accept-Ranges", "bytes")
		h.Set("Content-Length", strconv.FormatInt(size, 10))
		w.WriteHeader(http.StatusOK)
		return nil
	}
	// One StreamWait for the whole request: for its blob's check to get a
	// stream, then for its own. The check's reading the blob is no wait for
	// a stream: the deadline moves on by it.
	deadline := time.Now().Add(r.wait)
	vb, reading, err := r.verify(req.Context(), d, deadline)
	switch {
	case err == nil:
	case errors.Is(err, errShuttingDown):
		return newError(http.StatusServiceUnavailable, codeUnknown, "%v", err)
	case errors.Is(err, errBusy):
		return r.busy(w, d)
	case req.Context().Err() != nil:
		return nil // the client went away
	default:
		return damaged(d, err)
	}
	if b, ok := r.smallBlob(d); ok {
		// Kept by the check this request waited for.
		http.ServeContent(w, req, "", time.Time{}, bytes.NewReader(b))
		return nil
	}
	release, err := r.acquire(req.Context(), deadline.Add(reading))
	if errors.Is(err, errBusy) {
		return r.busy(w, d)
	}
	if err != nil {
		return nil // the client went away
	}
	// ServeContent answers several ranges from a goroutine of its own,
	// which may still be reading when the client has gone and
	// ServeContent returned: Close waits for its read, and makes the next
	// fail, before the stream is released.
	defer release()
	c := &blobContent{vb: vb, ends: ends}
	defer c.Close()
	http.ServeContent(w, req, "", time.Time{}, c)
	if err := c.Err(); err != nil {
		// The response is cut short (its Content-Length unmet), so the
		// client sees a failure, never a whole answer of other bytes:
		// aborted, so that HTTP/1 closes the connection and HTTP/2
		// resets the stream rather than end it as if it were whole.
		// The archive no longer gives the bytes that were checked (it
		// changed, or its disk fails): the blob is damaged from now on,
		// as if its check had failed, for every client.
		r.damagedSince(d, err)
		panic(http.ErrAbortHandler)
	}
	return nil
}

// damagedSince records that blob d, checked already, could not be read
// again as it was checked (err): every request for it is then refused,
// as for a blob whose check failed, and it counts in DamagedBlobs. While
// the server stops, a read that fails is not the blob's fault.
func (r *Registry) damagedSince(d v1.Hash, err error) {
	if r.ctx.Err() != nil {
		r.rep.Warnf("blob %s: %v", d, err)
		return
	}
	err = fmt.Errorf("the archive changed since its check, or cannot be read: %w", err)
	v := &verification{started: make(chan struct{}), done: make(chan struct{}), err: err}
	close(v.started)
	close(v.done)
	r.mu.Lock()
	if old, ok := r.verified[d]; ok {
		select {
		case <-old.done:
			if old.err != nil {
				// Found damaged by another request already.
				r.mu.Unlock()
				return
			}
		default:
		}
	}
	r.verified[d] = v
	r.mu.Unlock()
	r.damaged.Add(1)
	if r.onDamage != nil {
		r.onDamage(d, err)
		return
	}
	r.rep.Warnf("blob %s is damaged and refused to every client: %v", d, err)
}

// ifMatch reports whether req's If-Match, if any, names etag (a strong
// comparison, RFC 9110 13.1.1) or is "*".
func ifMatch(req *http.Request, etag string) bool {
	values := req.Header.Values("If-Match")
	if len(values) == 0 {
		return true
	}
	for _, v := range values {
		for _, t := range strings.Split(v, ",") {
			if t = strings.Trim(t, " \t"); t == "*" || t == etag {
				return true
			}
		}
	}
	return false
}

// ifRange reports whether req's Range is to be served: it has no
// If-Range, or one naming etag (a strong comparison, RFC 9110 13.1.5).
func ifRange(req *http.Request, etag string) bool {
	ir := req.Header.Get("If-Range")
	return ir == "" || strings.Trim(ir, " \t") == etag
}

// errBusy is the outcome of waiting StreamWait for a stream in vain.
var errBusy = errors.New("every stream is busy")

// busy answers a request that found every stream busy for StreamWait:
// come back later.
func (r *Registry) busy(w http.ResponseWriter, d v1.Hash) *regError {
	w.Header().Set("Retry-After", strconv.Itoa(int((r.wait+time.Second-1)/time.Second)))
	return newError(http.StatusTooManyRequests, codeTooManyRequests, "blob %s: all %d streams of the archive are busy with other clients: retry later", d, cap(r.streams))
}

// maxRanges is the most ranges a Range request is answered part by part.
// Each part costs a seek in the archive (up to a frame decoded to reach
// it), so a request of thousands of tiny ranges would cost the server
// hundreds of times the whole blob; RFC 9110 (14.2) lets a server ignore
// such a Range, and too many, overlapping or unordered ranges are
// answered with the whole blob instead.
const maxRanges = 16

// byteRanges returns the Range header a blob is served with: h as
// http.ServeContent reads it when h is a valid bytes ranges-specifier (RFC
// 9110, 14.1.1), and "" when it is not, or names another unit: a server
// ignores such a Range and sends the whole representation (14.2), where
// ServeContent alone would answer 416. ServeContent also takes "+1" for a
// number and refuses one beyond int64, and sends "-0" as an empty part;
// here a number is digits only, one beyond int64 is clamped to it (a
// first-pos there is beyond any blob, as it was), and "-0", which no byte
// satisfies, becomes a first-pos beyond any blob, so that a Range of
// nothing else is answered 416. A Range of more than maxRanges ranges, or
// whose ranges within a blob of size bytes overlap or are out of order,
// is "" too (14.2 allows ignoring it), as is any Range of an empty blob,
// which no range satisfies: ServeContent sends it whole for a Range that
// starts at a position, but a malformed 206 (bytes 0--1/0) for a suffix.
func byteRanges(h string, size int64) string {
	if size == 0 {
		return ""
	}
	unit, set, ok := strings.Cut(h, "=")
	if !ok || !strings.EqualFold(unit, "bytes") {
		return ""
	}
	var specs []string
	for _, spec := range strings.Split(set, ",") {
		// A list's elements may be empty, and surrounded by spaces and
		// tabs; a range-spec holds none.
		spec = strings.Trim(spec, " \t")
		if spec == "" {
			continue
		}
		first, last, ok := strings.Cut(spec, "-")
		switch {
		case !ok:
			return ""
		case first == "" && isDigits(last) && strings.TrimLeft(last, "0") == "":
			specs = append(specs, maxPos+"-")
		case first == "" && isDigits(last):
			specs = append(specs, "-"+clampPos(last))
		case isDigits(first) && last == "":
			specs = append(specs, clampPos(first)+"-")
		case isDigits(first) && isDigits(last) && cmpPos(last, first) >= 0:
			specs = append(specs, clampPos(first)+"-"+clampPos(last))
		default:
			return ""
		}
	}
	if len(specs) == 0 || len(specs) > maxRanges || !ascending(specs, size) {
		return ""
	}
	return "bytes=" + strings.Join(specs, ",")
}

// ascending reports whether the ranges of specs (as byteRanges writes
// them) that some byte of a blob of size bytes satisfies follow each
// other without overlapping.
func ascending(specs []string, size int64) bool {
	next := int64(0) // the first byte the next range may start at
	for _, sp := range spans(specs, size) {
		if sp[0] < next {
			return false
		}
		next = sp[1]
	}
	return true
}

// spans returns the first byte and the end (one past the last byte) of
// each range of specs (as byteRanges writes them) that some byte of a blob
// of size bytes satisfies, in their order; ServeContent drops the others.
func spans(specs []string, size int64) [][2]int64 {
	var out [][2]int64
	for _, spec := range specs {
		first, last, _ := strings.Cut(spec, "-")
		var start, end int64
		if first == "" {
			n, _ := strconv.ParseInt(last, 10, 64)
			start, end = max(size-n, 0), size
		} else {
			start, _ = strconv.ParseInt(first, 10, 64)
			end = size
			if last != "" {
				l, _ := strconv.ParseInt(last, 10, 64)
				end = min(l, size-1) + 1
			}
		}
		if start < size {
			out = append(out, [2]int64{start, end})
		}
	}
	return out
}

// rangeEnds returns where each part of a Range header that byteRanges
// wrote ends (one past its last byte), ascending.
func rangeEnds(h string, size int64) []int64 {
	_, set, _ := strings.Cut(h, "=")
	var ends []int64
	for _, sp := range spans(strings.Split(set, ","), size) {
		ends = append(ends, sp[1])
	}
	return ends
}

// maxPos is the largest position ServeContent reads.
const maxPos = "9223372036854775807"

func isDigits(s string) bool {
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

// cmpPos compares two positions written in digits, of any length.
func cmpPos(a, b string) int {
	a, b = trimZeros(a), trimZeros(b)
	if len(a) != len(b) {
		return len(a) - len(b)
	}
	return strings.Compare(a, b)
}

// clampPos returns the position p (digits), or maxPos when p is beyond it.
func clampPos(p string) string {
	if cmpPos(p, maxPos) > 0 {
		return maxPos
	}
	return trimZeros(p)
}

func trimZeros(p string) string {
	if t := strings.TrimLeft(p, "0"); t != "" {
		return t
	}
	return "0"
}

func damaged(d v1.Hash, err error) *regError {
	return newError(http.StatusInternalServerError, codeUnknown, "blob %s cannot be served, the archive is damaged: %v", d, err)
}

// verify returns blob d verified, starting its verification or waiting
// for the one under way. With a deadline it waits until then at most for
// the verification to get a stream (errBusy), however long it then takes:
// reading is how long it waited for the verification once that had its
// stream.
func (r *Registry) verify(ctx context.Context, d v1.Hash, deadline time.Time) (vb verifiedBlob, reading time.Duration, err error) {
	r.mu.Lock()
	v, ok := r.verified[d]
	if !ok {
		v = &verification{started: make(chan struct{}), done: make(chan struct{})}
		r.verified[d] = v
		go r.runVerification(d, v)
	}
	r.mu.Unlock()
	if !deadline.IsZero() {
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		select {
		case <-v.started:
		case <-v.done:
		case <-t.C:
			return nil, 0, errBusy
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		}
	}
	start := time.Now()
	select {
	case <-v.done:
		return v.vb, time.Since(start), v.err
	case <-ctx.Done():
		return nil, 0, ctx.Err()
	}
}

// VerifyAhead starts checking every config and layer of the archive in the
// background, one at a time in the head's order, so that a client that
// comes later waits for no check and a damaged blob is reported (Warnf)
// before anyone asks for it. A request for a blob not checked yet starts
// its check at once, or joins the one under way, as without VerifyAhead.
// It returns at once; the work ends with the Registry's context, and a
// Logf says when it is done.
func (r *Registry) VerifyAhead() {
	go func() {
		start := time.Now()
		var n, damaged int
		var size int64
		for _, b := range r.src.Head().Blobs {
			if _, ok := r.absent[b.Digest]; ok {
				continue
			}
			if _, _, err := r.verify(r.ctx, b.Digest, time.Time{}); err != nil {
				if r.ctx.Err() != nil {
					return
				}
				damaged++
			}
			n++
			size += b.Size
		}
		if damaged > 0 {
			r.rep.Warnf("checked the archive's %d configs and layers (%d bytes) in %s: %d damaged, refused to every client", n, size, time.Since(start).Round(time.Millisecond), damaged)
			return
		}
		r.rep.Logf("checked the archive's %d configs and layers (%d bytes) in %s: all match their digests", n, size, time.Since(start).Round(time.Millisecond))
	}()
}

// runVerification reads blob d in full, within a stream, and records the
// outcome; a small blob is then kept (keepSmall). The server stopping is
// not the blob's fault: that outcome is not kept.
func (r *Registry) runVerification(d v1.Hash, v *verification) {
	defer close(v.done)
	release, err := r.acquire(r.ctx, time.Time{})
	if err == nil {
		close(v.started)
		defer release()
		start := time.Now()
		v.vb, err = r.src.verify(r.ctx, d)
		if err == nil {
			r.rep.Logf("verified blob %s (%d bytes) in %s", d, v.vb.Size(), time.Since(start).Round(time.Millisecond))
			r.keepSmall(v.vb)
		}
	}
	if err != nil && r.ctx.Err() != nil {
		v.err = errShuttingDown
		r.mu.Lock()
		delete(r.verified, d)
		r.mu.Unlock()
		return
	}
	if err != nil {
		v.err = err
		r.damaged.Add(1)
		if r.onDamage != nil {
			r.onDamage(d, err)
			return
		}
		r.rep.Warnf("blob %s is damaged and refused to every client: %v", d, err)
	}
}

// DamagedBlobs is how many configs and layers were found damaged so far.
func (r *Registry) DamagedBlobs() int { return int(r.damaged.Load()) }

// failed returns the error of blob d's verification if it failed.
func (r *Registry) failed(d v1.Hash) error {
	r.mu.Lock()
	v, ok := r.verified[d]
	r.mu.Unlock()
	if !ok {
		return nil
	}
	select {
	case <-v.done:
		return v.err
	default:
		return nil
	}
}

// Small blobs: a config (or a small layer) would otherwise wait for a
// stream behind clients slowly downloading large layers, for the few
// bytes it is. Once verified, one of at most smallBlob bytes is kept in
// memory, smallBudget bytes of them in all, and served without a stream.
const (
	smallBlob   = 64 << 10
	smallBudget = 16 << 20
)

// keepSmall keeps verified blob vb in memory if it is small and the
// budget allows. It runs within the verification's stream; reading the
// blob again costs little, as its bytes start its first frame. What it
// read is hashed again before it is kept, for the server's life: the file
// may have changed since the check (a range that ends inside a frame is
// not checked against the frame's end).
func (r *Registry) keepSmall(vb verifiedBlob) {
	size := vb.Size()
	r.mu.Lock()
	fits := size <= smallBlob && r.smallBytes+size <= smallBudget
	r.mu.Unlock()
	if !fits {
		return
	}
	rc, err := vb.Range(0, size)
	if err != nil {
		return // served from the archive, which reports the error
	}
	defer rc.Close()
	b := make([]byte, size)
	if _, err := io.ReadFull(rc, b); err != nil {
		return
	}
	if got := sha256.Sum256(b); vb.Digest().Algorithm != "sha256" || hex.EncodeToString(got[:]) != vb.Digest().Hex {
		// Served from the archive instead, whose reads check each frame.
		r.rep.Warnf("blob %s: read again after its check, its %d bytes have sha256:%x: the archive changed since; not kept in memory", vb.Digest(), size, got)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.smallBytes+size <= smallBudget {
		r.small[vb.Digest()] = b
		r.smallBytes += size
	}
}

// smallBlob returns blob d if it is kept in memory.
func (r *Registry) smallBlob(d v1.Hash) ([]byte, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, ok := r.small[d]
	return b, ok
}

// acquire takes one of the streams, waiting for one while ctx lasts and,
// with a deadline, until then at most (errBusy). A stream free at once is
// taken even when the deadline has passed.
func (r *Registry) acquire(ctx context.Context, deadline time.Time) (func(), error) {
	release := func() { <-r.streams }
	select {
	case r.streams <- struct{}{}:
		return release, nil
	default:
	}
	var expired <-chan time.Time
	if !deadline.IsZero() {
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		expired = t.C
	}
	select {
	case r.streams <- struct{}{}:
		return release, nil
	case <-expired:
		return nil, errBusy
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// blobContent is a verified blob as the io.ReadSeeker http.ServeContent
// wants (it seeks to the start of each range, then reads it): a read opens
// a range reader at the current offset, kept while reads follow on, and
// while the next range starts at most skipAhead bytes further.
//
// The last byte of each range (of the response, without Range) is given
// only once what it was read from is checked again: the range reader's
// frame read to its end (a ferry archive), the whole layer (an imgpkg
// tarball, at the last byte of the response). The blob was checked before
// its first byte was sent, but the file may have changed since; a range
// that ends inside a frame would otherwise go out whole, unchecked. A
// failed check cuts the response short, which the client sees.
//
// Its methods may be called from two goroutines at once (see blob): mu
// makes each whole, and once Close is called no read touches the blob
// again.
type blobContent struct {
	mu     sync.Mutex
	closed bool
	vb     verifiedBlob
	ends   []int64 // where each range ends (one past its last byte); none: the blob's end
	pos    int64
	rc     io.ReadCloser
	at     int64 // where rc is
	err    error // the first read error
}

// wholeChecker is a range reader that can only check what it reads with
// the whole blob (a range of an imgpkg tarball's layer).
type wholeChecker interface{ CheckWhole() error }

// errContentClosed is what reading a blobContent after Close returns.
var errContentClosed = errors.New("the response is over: its blob reader is closed")

// Seek implements io.Seeker.
func (c *blobContent) Seek(offset int64, whence int) (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += c.pos
	case io.SeekEnd:
		offset += c.vb.Size()
	default:
		return 0, fmt.Errorf("seek: whence %d", whence)
	}
	if offset < 0 {
		return 0, errors.New("seek before the start")
	}
	c.pos = offset
	return offset, nil
}

// partEnd returns where the range holding pos ends, and whether it is the
// last range.
func (c *blobContent) partEnd() (end int64, last bool) {
	for i, e := range c.ends {
		if e > c.pos {
			return e, i == len(c.ends)-1
		}
	}
	return c.vb.Size(), true
}

// Read implements io.Reader.
func (c *blobContent) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, errContentClosed
	}
	return c.read(p)
}

// Err returns the first error reading the blob (not Close's).
func (c *blobContent) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// read is Read, with mu held.
func (c *blobContent) read(p []byte) (int, error) {
	size := c.vb.Size()
	if c.pos >= size {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	if c.rc != nil && c.pos > c.at && c.pos-c.at <= skipAhead {
		// Reading on to the next part costs less than a new reader,
		// which would decode its frame from the start to get there.
		n, err := io.CopyN(io.Discard, c.rc, c.pos-c.at)
		c.at += n
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			c.err = err
			return 0, err
		}
	}
	if c.rc == nil || c.at != c.pos {
		c.closeReader()
		rc, err := c.vb.Range(c.pos, size-c.pos)
		if err != nil {
			c.err = err
			return 0, err
		}
		c.rc, c.at = rc, c.pos
	}
	end, last := c.partEnd()
	if c.pos < end-1 {
		p = p[:min(int64(len(p)), end-1-c.pos)]
	} else {
		p = p[:1]
	}
	n, err := c.rc.Read(p)
	if n > 0 && c.pos+int64(n) == end {
		if err2 := c.check(last); err2 != nil {
			c.err = err2
			return 0, err2
		}
	}
	c.pos += int64(n)
	c.at += int64(n)
	if err == io.EOF && c.pos < size {
		err = io.ErrUnexpectedEOF
	}
	if err != nil && err != io.EOF && c.err == nil {
		c.err = err
	}
	return n, err
}

// check checks again what the last byte of a range was read from, before
// it is given (see blobContent). A ferry archive's range reader has
// checked each frame before giving any of it (archive's rangeReader); an
// imgpkg tarball's layer, a plain range of the file, is hashed whole.
func (c *blobContent) check(last bool) error {
	if wc, ok := c.rc.(wholeChecker); ok && last {
		err := wc.CheckWhole()
		// It read on, or read the blob apart: rc is not where c.at says.
		c.closeReader()
		return err
	}
	return nil
}

// skipAhead is how far on a range reader is read rather than a new one
// opened: a frame of ferry's archives (4 MiB), the most a new reader may
// decode before the offset.
const skipAhead = 4 << 20

// Close releases the range reader, once a read under way has returned;
// reads that follow fail.
func (c *blobContent) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	c.closeReader()
	return nil
}

// closeReader releases the range reader, with mu held.
func (c *blobContent) closeReader() {
	if c.rc != nil {
		c.rc.Close()
		c.rc = nil
	}
}
