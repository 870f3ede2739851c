package serve_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/archive"
	"github.com/ferry-dev/ferry/serve"
)

// smallLayer returns the source image's small layer: its digest and bytes.
func smallLayer(t *testing.T, s *source) (string, []byte) {
	t.Helper()
	layers, _ := s.app.Layers()
	d, _ := layers[0].Digest()
	rc, _ := layers[0].Compressed()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return d.String(), b
}

// holdStream has a client ask for path and read only the response's
// header: the server then blocks writing the body once the socket
// buffers are full (the blob is far larger than the few KiB startServer's
// and this client's buffers hold), holding its stream, as for a client on
// a slow network. The header comes after the
// stream is taken, so once it is read the stream is held.
func holdStream(t *testing.T, host, path string) (*http.Response, net.Conn) {
	t.Helper()
	conn, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.(*net.TCPConn).SetReadBuffer(4096)
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, host)
	resp, err := http.ReadResponse(bufio.NewReaderSize(conn, 512), nil)
	if err != nil {
		t.Fatal(err)
	}
	return resp, conn
}

// doWithin is do, failing instead of hanging when no answer comes.
func doWithin(t *testing.T, method, url string) (*http.Response, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, method, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return resp, body
}

// TestASlowClientHoldsUpNeitherConfigsNorForever: with one stream, held
// by a client downloading the big layer slowly, a verified config is
// still served, and a request that needs a stream is told to come back
// later (429 TOOMANYREQUESTS, Retry-After) instead of waiting unbounded.
func TestASlowClientHoldsUpNeitherConfigsNorForever(t *testing.T) {
	s := newSource(t)
	srv := startServer(t, s.archive, serve.Options{Streams: 1, StreamWait: 200 * time.Millisecond})
	cfg, _ := s.app.ConfigName()
	rawCfg, _ := s.app.RawConfigFile()
	cfgURL := srv.url + "/v2/src/app/blobs/" + cfg.String()
	if resp, body := do(t, http.MethodGet, cfgURL, nil); resp.StatusCode != 200 || !bytes.Equal(body, rawCfg) {
		t.Fatalf("the config: %d", resp.StatusCode)
	}

	slow, _ := holdStream(t, srv.host, "/v2/src/app/blobs/"+s.bigDigest.String())
	for range 2 {
		resp, body := doWithin(t, http.MethodGet, cfgURL)
		if resp.StatusCode != 200 || !bytes.Equal(body, rawCfg) {
			t.Errorf("the config while the stream is held: %d, %d bytes, the right ones %v", resp.StatusCode, len(body), bytes.Equal(body, rawCfg))
		}
	}
	small, _ := smallLayer(t, s)
	for what, d := range map[string]string{"the big layer again": s.bigDigest.String(), "the small layer, not checked yet": small} {
		resp, body := doWithin(t, http.MethodGet, srv.url+"/v2/src/app/blobs/"+d)
		wantError(t, what, resp, body, http.StatusTooManyRequests, "TOOMANYREQUESTS")
		if resp.Header.Get("Retry-After") != "1" {
			t.Errorf("%s: Retry-After %q, want 1 (the 200ms wait, in whole seconds)", what, resp.Header.Get("Retry-After"))
		}
		if resp.Header.Get("ETag") != "" || resp.Header.Get("Docker-Content-Digest") != "" {
			t.Errorf("%s: the error carries ETag %q, Docker-Content-Digest %q", what, resp.Header.Get("ETag"), resp.Header.Get("Docker-Content-Digest"))
		}
	}
	if slow.StatusCode != 200 {
		t.Errorf("the slow client: %d", slow.StatusCode)
	}
}

// TestIfNoneMatchNeedsNoStream: a blob GET whose If-None-Match names the
// blob's ETag is answered 304 at once, even while every stream is held,
// the blob's check included: a blob is named by its digest, so the client
// has its bytes. A blob known damaged is still refused (500), not 304.
func TestIfNoneMatchNeedsNoStream(t *testing.T) {
	s := newSource(t)
	srv := startServer(t, s.archive, serve.Options{Streams: 1, StreamWait: 200 * time.Millisecond})
	holdStream(t, srv.host, "/v2/src/app/blobs/"+s.bigDigest.String())
	small, _ := smallLayer(t, s)
	for what, d := range map[string]string{"the big layer, verified": s.bigDigest.String(), "the small layer, not checked yet": small} {
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.url+"/v2/src/app/blobs/"+d, nil)
		req.Header.Set("If-None-Match", `"`+d+`"`)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			cancel()
			t.Fatalf("%s: %v", what, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		if resp.StatusCode != http.StatusNotModified || len(body) != 0 || resp.Header.Get("ETag") != `"`+d+`"` {
			t.Errorf("%s, If-None-Match its ETag, every stream held: %d, %d bytes, ETag %q; want 304, no body, the ETag", what, resp.StatusCode, len(body), resp.Header.Get("ETag"))
		}
	}

	bad := startServer(t, damagedCopy(t, s), serve.Options{})
	url := bad.url + "/v2/src/app/blobs/" + s.bigDigest.String()
	resp, body := do(t, http.MethodGet, url, nil)
	wantError(t, "GET of the damaged blob", resp, body, http.StatusInternalServerError, "UNKNOWN")
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		resp, _ := do(t, method, url, map[string]string{"If-None-Match": `"` + s.bigDigest.String() + `"`})
		if resp.StatusCode != http.StatusInternalServerError {
			t.Errorf("%s of the blob known damaged, If-None-Match its ETag: %d, want 500", method, resp.StatusCode)
		}
	}
}

// checkTimes is a recorder that also notes when each blob's check ended.
type checkTimes struct {
	*recorder
	checked chan time.Time
}

func (c *checkTimes) Logf(format string, args ...any) {
	if strings.HasPrefix(format, "verified blob") {
		select {
		case c.checked <- time.Now():
		default:
		}
	}
	c.recorder.Logf(format, args...)
}

// TestABlobRequestWaitsOneStreamWaitInAll: a blob request waits for its
// blob's check to get a stream, then for a stream of its own: StreamWait
// in all, not StreamWait for each. With one stream, held (as a download
// holds it) for three quarters of the wait, then handed to the check and
// taken again as soon as the check is done, the request gets its 429 within
// what was left of its wait after the check. Given a whole new wait there,
// it would come StreamWait or more after the check, for certain; that it
// comes before depends on timing, with a generous 1.5 s of slack.
func TestABlobRequestWaitsOneStreamWaitInAll(t *testing.T) {
	const wait = 2 * time.Second
	s := newSource(t)
	rep := &checkTimes{recorder: &recorder{}, checked: make(chan time.Time, 1)}
	reg, err := serve.New(t.Context(), openFile(t, s.archive), serve.Options{Streams: 1, StreamWait: wait, Reporter: rep})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(reg)
	defer hs.Close()
	release, err := reg.TakeStream(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	type answer struct {
		resp *http.Response
		body []byte
		err  error
		at   time.Time
	}
	answered := make(chan answer, 1)
	go func() {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, hs.URL+"/v2/src/app/blobs/"+s.bigDigest.String(), nil)
		resp, err := http.DefaultClient.Do(req)
		var a answer
		if err == nil {
			a.body, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		a.resp, a.err, a.at = resp, err, time.Now()
		answered <- a
	}()
	time.Sleep(wait * 3 / 4) // the request's check waits for the stream meanwhile
	release()
	// The check waited first, so it has the stream now: this waits for
	// the check to end, before the request can ask for a stream.
	release, err = reg.TakeStream(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	a := <-answered
	if a.err != nil {
		t.Fatal(a.err)
	}
	wantError(t, "the blob, every stream busy", a.resp, a.body, http.StatusTooManyRequests, "TOOMANYREQUESTS")
	select {
	case checked := <-rep.checked:
		if after := a.at.Sub(checked); after >= wait {
			t.Errorf("the 429 came %s after the blob's check, which had waited %s for the stream: the request waited more than StreamWait (%s) in all", after.Round(time.Millisecond), wait*3/4, wait)
		}
	default:
		t.Error("the blob was not checked: the request did not wait for its check to get the stream")
	}
}

// leave sends a request for path and closes the connection without
// waiting for the answer.
func leave(t *testing.T, host, method, path string) {
	t.Helper()
	conn, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: %s\r\n\r\n", method, path, host)
	conn.Close()
}

// waitLogged waits for a request log line containing s, failing after a
// generous while (a safety net, not a timing check).
func waitLogged(t *testing.T, rep *recorder, s string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); rep.count(false, s) == 0; {
		if time.Now().After(deadline) {
			rep.mu.Lock()
			defer rep.mu.Unlock()
			t.Fatalf("no log line contains %q:\n%s", s, strings.Join(rep.logs, "\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestTheLogSaysWhenTheClientLeftFirst: a request abandoned while it
// waited for a stream, or for its blob's check, answered nothing: it is
// logged 499 (nginx's "client closed request"), not 200.
func TestTheLogSaysWhenTheClientLeftFirst(t *testing.T) {
	s := newSource(t)
	srv := startServer(t, s.archive, serve.Options{Streams: 1, StreamWait: time.Hour})
	big := "/v2/src/app/blobs/" + s.bigDigest.String()
	holdStream(t, srv.host, big)
	small, _ := smallLayer(t, s)
	for _, path := range []string{big, "/v2/src/app/blobs/" + small} {
		leave(t, srv.host, http.MethodGet, path)
		waitLogged(t, srv.rep, " GET "+path+" ")
		if n := srv.rep.count(false, " GET "+path+" 499 0 bytes "); n != 1 {
			t.Errorf("GET %s, abandoned while waiting: %d log lines with 499 0 bytes, want 1", path, n)
		}
	}
}

// TestManyOrUnorderedRangesGetTheWholeBlob: each range costs the server a
// seek into the archive, so a Range of more than 16 ranges, or of ranges
// that overlap or go backwards, is ignored (RFC 9110 14.2): 200 and the
// whole blob. Up to 16 ordered ranges are served part by part.
func TestManyOrUnorderedRangesGetTheWholeBlob(t *testing.T) {
	s := newSource(t)
	srv := startServer(t, s.archive, serve.Options{})
	d, blob := smallLayer(t, s)
	url := srv.url + "/v2/src/app/blobs/" + d
	ones := func(n int) string {
		var specs []string
		for i := range n {
			specs = append(specs, fmt.Sprintf("%d-%d", 10*i, 10*i))
		}
		return "bytes=" + strings.Join(specs, ",")
	}
	for _, h := range []string{ones(17), "bytes=0-9,5-14", "bytes=10-19,0-9", "bytes=100-,0-9", "bytes=-10,0-9", "bytes=0-9,9-9"} {
		resp, body := do(t, http.MethodGet, url, map[string]string{"Range": h})
		if resp.StatusCode != 200 || !bytes.Equal(body, blob) {
			t.Errorf("Range %.60q: %d, %d bytes; want 200 and the whole %d-byte blob", h, resp.StatusCode, len(body), len(blob))
		}
	}
	for h, parts := range map[string]int{ones(16): 16, "bytes=0-9,10-19": 2, fmt.Sprintf("bytes=0-0,%d-,5-5", len(blob)): 2} {
		resp, body := do(t, http.MethodGet, url, map[string]string{"Range": h})
		_, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
		if resp.StatusCode != http.StatusPartialContent || err != nil {
			t.Errorf("Range %.60q: %d %q, want 206 multipart", h, resp.StatusCode, resp.Header.Get("Content-Type"))
			continue
		}
		mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
		n := 0
		for ; ; n++ {
			if _, err := mr.NextPart(); err != nil {
				break
			}
		}
		if n != parts {
			t.Errorf("Range %.60q: %d parts, want %d", h, n, parts)
		}
	}
}

// countingReaderAt counts the bytes read from the archive file.
type countingReaderAt struct {
	r io.ReaderAt
	n atomic.Int64
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.n.Add(int64(n))
	return n, err
}

// TestRangesInOneFrameReadItOnce: the parts of a multi-range request that
// lie in one frame are read on from one part to the next, not each from
// the frame's start: 16 parts spread over the first frame read about as
// much of the archive as one range at the last of them.
func TestRangesInOneFrameReadItOnce(t *testing.T) {
	s := newSource(t)
	f, err := os.Open(s.archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	cr := &countingReaderAt{r: f}
	af, err := archive.OpenFile(cr, fi.Size(), archive.ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := serve.New(t.Context(), af, serve.Options{})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(reg)
	defer hs.Close()
	url := hs.URL + "/v2/src/app/blobs/" + s.bigDigest.String()
	if resp, _ := do(t, http.MethodGet, url, map[string]string{"Range": "bytes=0-0"}); resp.StatusCode != http.StatusPartialContent {
		t.Fatalf("a first range (the check): %d", resp.StatusCode)
	}

	const step = 250000 // 16 steps stay within the first frame's 4 MiB
	cr.n.Store(0)
	resp, body := do(t, http.MethodGet, url, map[string]string{"Range": fmt.Sprintf("bytes=%d-%d", 15*step, 15*step)})
	one := cr.n.Load()
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, s.big[15*step:15*step+1]) {
		t.Fatalf("one range: %d", resp.StatusCode)
	}

	var specs []string
	for i := range 16 {
		specs = append(specs, fmt.Sprintf("%d-%d", i*step, i*step))
	}
	cr.n.Store(0)
	resp, body = do(t, http.MethodGet, url, map[string]string{"Range": "bytes=" + strings.Join(specs, ",")})
	many := cr.n.Load()
	_, params, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	for i := range 16 {
		p, err := mr.NextPart()
		if err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
		got, _ := io.ReadAll(p)
		if !bytes.Equal(got, s.big[i*step:i*step+1]) {
			t.Errorf("part %d: %x, want %x", i, got, s.big[i*step:i*step+1])
		}
	}
	if many > 2*one {
		t.Errorf("16 ranges in one frame read %d bytes of the archive, one range at the last of them %d: want at most twice", many, one)
	}
}

// TestIfNoneMatchIsAnsweredForManifestsAndBlobHeads: an If-None-Match
// naming the digest's ETag gets 304 without a body for a manifest (GET and
// HEAD, by tag and digest) and a blob HEAD, as for a blob GET.
func TestIfNoneMatchIsAnsweredForManifestsAndBlobHeads(t *testing.T) {
	s := newSource(t)
	srv := startServer(t, s.archive, serve.Options{})
	appDigest, _ := s.app.Digest()
	etag := `"` + appDigest.String() + `"`
	bigTag := `"` + s.bigDigest.String() + `"`
	for _, c := range []struct{ method, path, inm string }{
		{"GET", "/v2/src/app/manifests/" + appDigest.String(), etag},
		{"HEAD", "/v2/src/app/manifests/" + appDigest.String(), etag},
		{"GET", "/v2/src/app/manifests/" + appDigest.String(), `"other", W/` + etag},
		{"GET", "/v2/src/app/manifests/" + appDigest.String(), "*"},
		{"HEAD", "/v2/src/app/blobs/" + s.bigDigest.String(), bigTag},
		{"GET", "/v2/src/app/blobs/" + s.bigDigest.String(), bigTag},
	} {
		resp, body := do(t, c.method, srv.url+c.path, map[string]string{"If-None-Match": c.inm})
		if resp.StatusCode != http.StatusNotModified || len(body) != 0 || resp.Header.Get("ETag") == "" {
			t.Errorf("%s %s, If-None-Match %s: %d, %d bytes, ETag %q; want 304, no body, the ETag", c.method, c.path, c.inm, resp.StatusCode, len(body), resp.Header.Get("ETag"))
		}
	}
	raw, _ := s.app.RawManifest()
	resp, body := do(t, http.MethodGet, srv.url+"/v2/src/app/manifests/"+appDigest.String(), map[string]string{"If-None-Match": bigTag})
	if resp.StatusCode != 200 || !bytes.Equal(body, raw) {
		t.Errorf("a manifest with another ETag in If-None-Match: %d", resp.StatusCode)
	}
	resp, _ = do(t, http.MethodHead, srv.url+"/v2/src/app/blobs/"+s.bigDigest.String(), map[string]string{"If-None-Match": etag})
	if resp.StatusCode != 200 || resp.ContentLength != int64(len(s.big)) {
		t.Errorf("a blob HEAD with another ETag in If-None-Match: %d, Content-Length %d", resp.StatusCode, resp.ContentLength)
	}
	// An error says nothing of the blob it could not serve.
	resp, _ = do(t, http.MethodGet, srv.url+"/v2/src/app/blobs/"+s.bigDigest.String(), map[string]string{"Range": fmt.Sprintf("bytes=%d-", len(s.big))})
	if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable || resp.Header.Get("ETag") != "" || resp.Header.Get("Docker-Content-Digest") != "" {
		t.Errorf("416: %d with ETag %q, Docker-Content-Digest %q; want neither", resp.StatusCode, resp.Header.Get("ETag"), resp.Header.Get("Docker-Content-Digest"))
	}
}

// TestADownloadCutShortIsLoggedAsSo: a client that goes away in the middle
// of the big layer gets a log line that says the response was cut short,
// not a plain 200 that would read as a download done.
func TestADownloadCutShortIsLoggedAsSo(t *testing.T) {
	s := newSource(t)
	srv := startServer(t, s.archive, serve.Options{})
	path := "/v2/src/app/blobs/" + s.bigDigest.String()
	resp, conn := holdStream(t, srv.host, path)
	if resp.StatusCode != 200 {
		t.Fatalf("the big layer: %d", resp.StatusCode)
	}
	conn.Close()
	deadline := time.Now().Add(20 * time.Second)
	for srv.rep.count(false, path) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no log line for the download cut short")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := srv.rep.count(false, path+" 200 "); n != 1 || srv.rep.count(false, "cut short") != 1 {
		t.Errorf("log %q; want the download's 200 logged once, said to be cut short", srv.rep.logs)
	}

	// A download read to its end is not.
	small, _ := smallLayer(t, s)
	doWithin(t, http.MethodGet, srv.url+"/v2/src/app/blobs/"+small)
	if srv.rep.count(false, small+" 200 ") != 1 || srv.rep.count(false, "cut short") != 1 {
		t.Errorf("log %q; want the small layer's download logged, not cut short", srv.rep.logs)
	}
}
