package archive

import (
	"bytes"
	"encoding/binary"
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
	firstIn := -1
	for i, f := range frames {
		if f.offset >= piece && f.offset < 2*piece {
			firstIn = i
			break
		}
	}
	if fe.Frame != firstIn || fe.Offset != int64(frames[firstIn].offset) {
		t.Fatalf("error names frame %d at %d, want frame %d at %d (the first in the moved piece)", fe.Frame, fe.Offset, firstIn, frames[firstIn].offset)
	}

	// The first piece swapped with the second: no frame starts where the
	// archive starts.
	first := bytes.Clone(data)
	copy(first[:piece], data[piece:2*piece])
	copy(first[piece:2*piece], data[:piece])
	if err := CheckFrameStarts(bytes.NewReader(first), int64(len(first))); !errors.As(err, &fe) || fe.Frame != 0 || fe.Offset != 0 {
		t.Fatalf("first piece moved: %v, want frame 0 named", err)
	}
	// The archive starts with a frame, but its head is damaged.
	head := bytes.Clone(data)
	head[frames[1].offset/2] ^= 0xff
	if err := CheckFrameStarts(bytes.NewReader(head), int64(len(head))); !errors.Is(err, ErrBadHead) {
		t.Fatalf("head damaged: %v, want ErrBadHead", err)
	}

	// A seek table claiming far more frames than the head allows is
	// refused before anything its size is allocated.
	claim := bytes.Clone(data)
	binary.LittleEndian.PutUint32(claim[len(claim)-9:], 0x7000000)
	if err := CheckFrameStarts(bytes.NewReader(claim), int64(len(claim))); err == nil || errors.Is(err, ErrNotSeekable) || errors.As(err, &fe) {
		t.Fatalf("a seek table claiming 0x7000000 frames: %v", err)
	}

	// No seek table at the end: not seekable.
	if err := CheckFrameStarts(bytes.NewReader(data[:len(data)-1]), int64(len(data)-1)); !errors.Is(err, ErrNotSeekable) {
		t.Fatalf("cut archive: %v, want ErrNotSeekable", err)
	}
}
