package archive

import (
	"bytes"
	"io"
	"testing"
)

// A File reuses the decoders of blob readers that were closed: one
// abandoned part way, or one that failed on damaged bytes, must leave
// nothing behind for the next blob read with it, which gets its own bytes,
// checked as ever.
func TestFileBlobAfterAnAbandonedOrFailedRead(t *testing.T) {
	fx, data := seekableFixture(t)
	// The last blob's frame damaged: reading it fails.
	damaged := fx.blobs[len(fx.blobs)-1]
	i, frames := blobFrames(t, data, damaged)
	bad := bytes.Clone(data)
	bad[frames[i].offset+frames[i].size/2] ^= 0x20
	f, err := OpenFile(bytes.NewReader(bad), int64(len(bad)), ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	readAll := func(i int) ([]byte, error) {
		rc, err := f.Blob(fx.blobs[i].d)
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		return io.ReadAll(rc)
	}
	for round := range 3 {
		for i, b := range fx.blobs[:len(fx.blobs)-1] {
			// Half of it, then closed: its decoder goes back mid-frame.
			rc, err := f.Blob(b.d)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(rc, make([]byte, len(b.b)/2)); err != nil {
				t.Fatalf("round %d, blob %s: %v", round, b.d, err)
			}
			rc.Close()
			if _, err := readAll(len(fx.blobs) - 1); err == nil {
				t.Fatalf("round %d: damaged blob %s read without error", round, damaged.d)
			}
			got, err := readAll(i)
			if err != nil || !bytes.Equal(got, b.b) {
				t.Errorf("round %d, blob %s after an abandoned and a failed read: %v; %d bytes, want %d", round, b.d, err, len(got), len(b.b))
			}
		}
	}
}
