package archive

import (
	"bytes"
	"errors"
	"testing"
)

func TestCheckFrameStarts(t *testing.T) {
	_, data := seekableFixture(t)
	if err := CheckFrameStarts(bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("a good archive: %v", err)
	}
	frames := walkFrames(t, data)

	// Two equal-sized pieces swapped, as volumes renamed out of order:
	// the first frame start inside the first piece is named.
	piece := len(data) / 4
	swapped := bytes.Clone(data)
	copy(swapped[piece:2*piece], data[2*piece:3*piece])
	copy(swapped[2*piece:3*piece], data[piece:2*piece])
	err := CheckFrameStarts(bytes.NewReader(swapped), int64(len(swapped)))
	var fe *FrameStartError
	if !errors.As(err, &fe) {
		t.Fatalf("swapped pieces: %v, want a FrameStartError", err)
	}
	first := -1
	for i, f := range frames {
		if f.offset >= piece && f.offset < 2*piece {
			first = i
			break
		}
	}
	if fe.Frame != first || fe.Offset != int64(frames[first].offset) {
		t.Fatalf("error names frame %d at %d, want frame %d at %d (the first in the moved piece)", fe.Frame, fe.Offset, first, frames[first].offset)
	}

	// No seek table at the end: not seekable.
	if err := CheckFrameStarts(bytes.NewReader(data[:len(data)-1]), int64(len(data)-1)); !errors.Is(err, ErrNotSeekable) {
		t.Fatalf("cut archive: %v, want ErrNotSeekable", err)
	}
}
