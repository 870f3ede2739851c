package ctxio

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
)

func TestReaderStopsWhenContextIsDone(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	r := NewReader(ctx, bytes.NewReader([]byte("0123456789")))
	buf := make([]byte, 4)
	if n, err := r.Read(buf); n != 4 || err != nil || string(buf) != "0123" {
		t.Fatalf("read %d %q, %v", n, buf[:n], err)
	}
	cancel()
	if n, err := r.Read(buf); n != 0 || !errors.Is(err, context.Canceled) {
		t.Errorf("after cancel: read %d, %v; want 0, context.Canceled", n, err)
	}
}

func TestReaderPassesThrough(t *testing.T) {
	b, err := io.ReadAll(NewReader(context.Background(), bytes.NewReader([]byte("all of it"))))
	if err != nil || string(b) != "all of it" {
		t.Errorf("read %q, %v", b, err)
	}
}
