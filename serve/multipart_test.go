package serve_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/relocate"
	"github.com/ferry-dev/ferry/serve"
)

// TestAMultipartRangeWhoseClientLeavesCrashesNothing: http.ServeContent
// writes a response of several ranges from a goroutine of its own, which
// may still be reading the blob when the client has gone and the handler
// returns. That read must not meet the blob's reader closed under it nor
// its stream released (under -race: no data race; without: no panic in a
// goroutine net/http does not recover, which would end the process), and
// the server goes on serving the blob.
func TestAMultipartRangeWhoseClientLeavesCrashesNothing(t *testing.T) {
	s := newSource(t)
	a, closer, err := relocate.OpenSeekable(context.Background(), s.archive)
	if err != nil {
		t.Fatal(err)
	}
	defer closer.Close()
	reg, err := serve.New(t.Context(), a, serve.Options{Streams: 4})
	if err != nil {
		t.Fatal(err)
	}
	// The kernel's default send buffers, so that the server's writes go
	// through until the client resets the connection.
	hs := httptest.NewServer(reg)
	defer hs.Close()
	host := strings.TrimPrefix(hs.URL, "http://")
	path := "/v2/src/app/blobs/" + s.bigDigest.String()
	// Checked first, so that each request streams at once.
	if resp, _ := do(t, http.MethodGet, hs.URL+path, map[string]string{"Range": "bytes=0-0"}); resp.StatusCode != http.StatusPartialContent {
		t.Fatalf("Range bytes=0-0: status %d, want 206", resp.StatusCode)
	}
	// Five parts in three frames of the big layer.
	rng := "bytes=0-199999,1000000-1199999,4500000-4699999,5000000-5199999,8900000-9099999"
	for i := range 150 {
		conn, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nRange: %s\r\n\r\n", path, host, rng)
		// Leave after a varying part of the answer, with a reset, so that
		// the server's next write fails at once.
		buf := make([]byte, 1000+(i%60)*15000)
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		io.ReadFull(conn, buf)
		conn.(*net.TCPConn).SetLinger(0)
		conn.Close()
		time.Sleep(time.Duration(i%5) * time.Millisecond)
	}
	resp, body := do(t, http.MethodGet, hs.URL+path, nil)
	if resp.StatusCode != http.StatusOK || string(body) != string(s.big) {
		t.Errorf("the blob afterwards: status %d, %d bytes, want 200 and its %d bytes", resp.StatusCode, len(body), len(s.big))
	}
}
