package serve_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/ferry-dev/ferry/relocate"
	"github.com/ferry-dev/ferry/serve"
)

// TestAResponseCutShortOverHTTP2IsReset: over TLS (HTTP/2, as ferry serve
// --tls-cert speaks), a blob whose archive file changed after its check
// is cut short where the change is found. The stream must then be reset
// (RST_STREAM), not ended with END_STREAM after fewer DATA bytes than its
// content-length, which a client may take for the whole blob (RFC 9113,
// 8.1.1, calls such a response malformed); the request is logged all the
// same.
func TestAResponseCutShortOverHTTP2IsReset(t *testing.T) {
	s := newSource(t)
	data, err := os.ReadFile(s.archive)
	if err != nil {
		t.Fatal(err)
	}
	path := t.TempDir() + "/h2.tar.zst"
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	a, closer, err := relocate.OpenSeekable(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer closer.Close()
	rep := &recorder{}
	reg, err := serve.New(t.Context(), a, serve.Options{Reporter: rep})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(reg)
	hs.EnableHTTP2 = true
	hs.StartTLS()
	defer hs.Close()
	blobPath := "/v2/src/app/blobs/" + s.bigDigest.String()
	// Checked, and served whole, before the change.
	resp, err := hs.Client().Get(hs.URL + blobPath)
	if err != nil {
		t.Fatal(err)
	}
	// Read to its end, so that its handler is done before the change:
	// one still reading would find the change and make the blob damaged.
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusOK {
		t.Fatalf("before the change: %s %d, want HTTP/2 and 200", resp.Proto, resp.StatusCode)
	}

	// The layer is random, stored as zstd raw blocks: its bytes lie in the
	// file as they are. One byte of its second frame changes.
	at := bytes.Index(data, s.big[6<<20:6<<20+64])
	if at < 0 {
		t.Fatal("the big layer's bytes are not in the archive as they are")
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{data[at+10] ^ 1}, int64(at+10)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	// Go's client hides how a stream ends: its frames are read here.
	conn, err := tls.Dial("tcp", strings.TrimPrefix(hs.URL, "https://"), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := conn.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 30})
	fr.WriteWindowUpdate(0, 1<<30)
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, kv := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "x"}, {":path", blobPath}} {
		enc.WriteField(hpack.HeaderField{Name: kv[0], Value: kv[1]})
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	dec := hpack.NewDecoder(4096, nil)
	var clen, got int64
	status := ""
	for done := false; !done; {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("after %d of %d bytes: %v", got, clen, err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.HeadersFrame:
			fields, err := dec.DecodeFull(f.HeaderBlockFragment())
			if err != nil {
				t.Fatal(err)
			}
			for _, hf := range fields {
				switch hf.Name {
				case "content-length":
					clen, _ = strconv.ParseInt(hf.Value, 10, 64)
				case ":status":
					status = hf.Value
				}
			}
		case *http2.DataFrame:
			got += int64(len(f.Data()))
			if f.StreamEnded() {
				t.Fatalf("the stream ended (END_STREAM) after %d of its content-length %d bytes, want it reset", got, clen)
			}
		case *http2.RSTStreamFrame:
			done = true
		case *http2.GoAwayFrame:
			t.Fatalf("GOAWAY after %d of %d bytes, want the stream reset", got, clen)
		}
	}
	if status != "200" || clen != int64(len(s.big)) || got >= clen {
		t.Errorf("reset after %d bytes of a %s answer of content-length %d, want fewer than the blob's %d", got, status, clen, len(s.big))
	}
	// The request log's line comes once the handler has returned.
	deadline := time.Now().Add(10 * time.Second)
	for rep.count(false, "GET "+blobPath+" 200") < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := rep.count(false, "GET "+blobPath+" 200"); n != 2 {
		t.Errorf("%d request log lines for the blob's two GETs, want 2", n)
	}
}
