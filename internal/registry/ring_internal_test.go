package registry

import (
	"bytes"
	"io"
	"testing"
)

func TestResumableRewinds(t *testing.T) {
	blob := make([]byte, 6<<20)
	for i := range blob {
		blob[i] = byte(i * 7 / 3)
	}
	for _, tc := range []struct {
		window        int
		first, resume int64
	}{{6 << 20, 3 << 20, 0}, {6 << 20, 3<<20 + 12345, 1 << 20}, {1 << 20, 5 << 20, 4<<20 + 17}, {4096, 5<<20 + 100, 5<<20 + 50}} {
		b := &resumable{src: bytes.NewReader(blob), ring: make([]byte, tc.window)}
		// Reads larger than the window, as an HTTP client's may be.
		buf := make([]byte, 3*tc.window+7)
		for read := int64(0); read < tc.first; {
			n, err := b.Read(buf[:min(int64(len(buf)), tc.first-read)])
			if err != nil {
				t.Fatal(err)
			}
			read += int64(n)
		}
		if tc.resume < b.windowStart() {
			t.Fatalf("resume %d before the window %d", tc.resume, b.windowStart())
		}
		b.rewind(tc.resume)
		got, err := io.ReadAll(b)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, blob[tc.resume:]) {
			t.Errorf("%+v: resumed bytes differ", tc)
		}
	}
}
