package archive

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// Volumes joined in the wrong order (cat X.001 X.003 X.002 X.004) make a
// stream the zstd decoder cannot decode: the error says the archive is
// corrupt and what to check, not only the decoder's words ("tableLog too
// large").
func TestStreamJoinedInTheWrongOrderIsNamedCorrupt(t *testing.T) {
	fx := newFixture(t, fixtureOptions{bigLayer: 1 << 20})
	data := fx.write(t, WriterOptions{}, nil)
	for _, parts := range []int{4, 5, 7} {
		size := (len(data) + parts - 1) / parts
		var vols [][]byte
		for p := data; len(p) > 0; p = p[min(len(p), size):] {
			vols = append(vols, p[:min(len(p), size)])
		}
		// The second and third volumes swapped.
		joined := bytes.Join([][]byte{vols[0], vols[2], vols[1], bytes.Join(vols[3:], nil)}, nil)
		_, _, err := readArchive(joined, ReaderOptions{})
		if err == nil {
			t.Fatalf("%d volumes, .002 and .003 swapped: read without error", parts)
		}
		msg := err.Error()
		if !strings.Contains(msg, "corrupt") || !strings.Contains(msg, joinHint) {
			t.Errorf("%d volumes, .002 and .003 swapped: %v, want it named corrupt with the hint %q", parts, err, joinHint)
		}
	}
}

// An error reading the compressed stream (a volume that fails its
// checksum, a broken pipe) is that error, not taken for a corrupt archive.
func TestReadErrorIsNotNamedCorrupt(t *testing.T) {
	fx := newFixture(t, fixtureOptions{bigLayer: 1 << 20})
	data := fx.write(t, WriterOptions{}, nil)
	for name, z := range map[string][]byte{"zstd": data, "gzip": gzipBytes(t, unzstd(t, data))} {
		want := errors.New("volume .002 has another sha256")
		in := io.MultiReader(bytes.NewReader(z[:len(z)/2]), iotest.ErrReader(want))
		r, err := NewReader(in, ReaderOptions{})
		if err == nil {
			for err == nil {
				var rd io.Reader
				if _, _, rd, err = r.Next(); err == nil {
					_, err = io.Copy(io.Discard, rd)
				}
			}
			r.Close()
		}
		if !errors.Is(err, want) || strings.Contains(err.Error(), "corrupt") {
			t.Errorf("%s: reading a stream that fails: %v, want the read error, not a corrupt archive", name, err)
		}
	}
}
