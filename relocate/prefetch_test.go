package relocate

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// blobStore serves generated blobs with a small random delay, so that
// downloads finish out of order, and records how much the prefetcher holds.
type blobStore struct {
	data [][]byte

	mu        sync.Mutex
	open      int
	maxOpen   int
	fetches   map[int]int
	failFirst map[int]bool
	// cutFirst blobs send half their bytes, then io.ErrUnexpectedEOF (as
	// net/http reports a body cut short), the first time.
	cutFirst map[int]bool
}

func (s *blobStore) blobOpener(blobs []Blob) blobOpener {
	index := map[v1.Hash]int{}
	for i, b := range blobs {
		index[b.Digest] = i
	}
	return func(ctx context.Context, b Blob) (io.ReadCloser, error) {
		i := index[b.Digest]
		s.mu.Lock()
		s.fetches[i]++
		first := s.fetches[i] == 1
		cut := s.cutFirst[i] && first
		if s.failFirst[i] && first {
			s.mu.Unlock()
			return nil, fmt.Errorf("blob %d: transient failure", i)
		}
		s.open++
		s.maxOpen = max(s.maxOpen, s.open)
		s.mu.Unlock()
		select {
		case <-time.After(time.Duration(rand.IntN(3)) * time.Millisecond):
		case <-ctx.Done():
			s.mu.Lock()
			s.open--
			s.mu.Unlock()
			return nil, ctx.Err()
		}
		r := io.Reader(bytes.NewReader(s.data[i]))
		if cut {
			half := s.data[i][:len(s.data[i])/2]
			r = io.MultiReader(bytes.NewReader(half), iotest.ErrReader(io.ErrUnexpectedEOF))
		}
		return &storeReader{Reader: r, s: s}, nil
	}
}

type storeReader struct {
	io.Reader
	s    *blobStore
	once sync.Once
}

func (r *storeReader) Close() error {
	r.once.Do(func() {
		r.s.mu.Lock()
		r.s.open--
		r.s.mu.Unlock()
	})
	return nil
}

func TestPrefetcherKeepsOrderAndBounds(t *testing.T) {
	sizes := []int{10, memSpoolMax + 1, 300, 2 * memSpoolMax, 5, memSpoolMax + 7, 1, 4 * memSpoolMax, 20, 30}
	s := &blobStore{fetches: map[int]int{}, failFirst: map[int]bool{2: true, 5: true}}
	var blobs []Blob
	for i, n := range sizes {
		b := make([]byte, n)
		for j := range b {
			b[j] = byte(i*7 + j)
		}
		s.data = append(s.data, b)
		sum := sha256.Sum256(b)
		blobs = append(blobs, Blob{Digest: v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", sum)}, Size: int64(n)})
	}
	const workers = 4
	budget := int64(memSpoolMax + prefetchHead) // below two large blobs at once
	pf := newPrefetcher(context.Background(), blobs, s.blobOpener(blobs), workers, budget)
	for i := range blobs {
		rc, err := pf.next(i)
		if err != nil {
			t.Fatalf("blob %d: %v", i, err)
		}
		got, err := io.ReadAll(rc)
		if err != nil {
			t.Fatal(err)
		}
		pf.mu.Lock()
		ahead, reserved := pf.ahead, pf.reserved
		pf.mu.Unlock()
		if ahead > workers || reserved > budget {
			t.Errorf("at blob %d: %d blobs, %d bytes held ahead; limits %d, %d", i, ahead, reserved, workers, budget)
		}
		rc.Close()
		if !bytes.Equal(got, s.data[i]) {
			t.Fatalf("blob %d: got %d bytes that are not the blob", i, len(got))
		}
	}
	if err := pf.close(); err != nil {
		t.Fatal(err)
	}
	// Memory is reused from blob to blob: every chunk ever made is back,
	// and there were never more than the budget holds.
	if pf.made == 0 || len(pf.free) != pf.made {
		t.Errorf("%d chunks made, %d given back", pf.made, len(pf.free))
	}
	if made := int64(pf.made) * prefetchChunk; made > budget {
		t.Errorf("%d bytes of chunks made, more than the budget of %d", made, budget)
	}
	for _, c := range pf.free {
		if len(c) != prefetchChunk {
			t.Fatalf("a chunk of %d bytes given back, want %d", len(c), prefetchChunk)
		}
	}
	if s.maxOpen > workers {
		t.Errorf("%d downloads at once, want at most %d", s.maxOpen, workers)
	}
	if s.fetches[2] != 2 || s.fetches[5] != 2 {
		t.Errorf("blobs whose first fetch failed were fetched %d and %d times, want a second try each", s.fetches[2], s.fetches[5])
	}
	if s.open != 0 {
		t.Errorf("%d downloads left open", s.open)
	}
}

// A small blob whose download a worker saw cut short is fetched again by
// the writer, never handed over short.
func TestPrefetcherFetchesAgainABlobCutShort(t *testing.T) {
	s := &blobStore{fetches: map[int]int{}, cutFirst: map[int]bool{1: true}}
	var blobs []Blob
	for i, n := range []int{100, 3000} {
		b := bytes.Repeat([]byte{byte(i + 1)}, n)
		s.data = append(s.data, b)
		blobs = append(blobs, Blob{Digest: v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%064x", i)}, Size: int64(n)})
	}
	pf := newPrefetcher(context.Background(), blobs, s.blobOpener(blobs), 2, 1<<20)
	defer pf.close()
	rc, err := pf.next(0)
	if err != nil {
		t.Fatal(err)
	}
	// Blob 1 is a worker's (the writer holds blob 0): wait for it.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		pf.mu.Lock()
		st := pf.state[1]
		pf.mu.Unlock()
		if st == slotSpooled || st == slotFailed || time.Now().After(deadline) {
			break
		}
	}
	rc.Close()
	rc, err = pf.next(1)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, s.data[1]) {
		t.Errorf("blob 1: %d bytes (%v), want its %d", len(got), err, len(s.data[1]))
	}
	s.mu.Lock()
	fetches := s.fetches[1]
	s.mu.Unlock()
	if fetches != 2 {
		t.Errorf("blob 1 fetched %d times, want 2", fetches)
	}
}

func TestPrefetcherCleansUpWhenAbandoned(t *testing.T) {
	s := &blobStore{fetches: map[int]int{}}
	var blobs []Blob
	for i := range 6 {
		b := bytes.Repeat([]byte{byte(i)}, memSpoolMax+100)
		s.data = append(s.data, b)
		blobs = append(blobs, Blob{Digest: v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%064x", i)}, Size: int64(len(b))})
	}
	ctx, cancel := context.WithCancel(context.Background())
	pf := newPrefetcher(ctx, blobs, s.blobOpener(blobs), 4, 1<<30)
	rc, err := pf.next(0)
	if err != nil {
		t.Fatal(err)
	}
	// Let the workers start the next downloads (their first bytes in
	// memory, the rest left open), then give up.
	deadline := time.Now().Add(5 * time.Second)
	for {
		pf.mu.Lock()
		started := pf.state[1] == slotSpooled && pf.state[2] == slotSpooled
		pf.mu.Unlock()
		if started || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	s.mu.Lock()
	open := s.open
	s.mu.Unlock()
	if open < 3 {
		t.Fatalf("%d downloads open; the workers should hold the next ones open", open)
	}
	cancel()
	rc.Close()
	if _, err := pf.next(1); err == nil {
		t.Error("next after cancel succeeded")
	}
	if err := pf.close(); err != nil {
		t.Fatal(err)
	}
	if s.open != 0 {
		t.Errorf("%d downloads left open after cancel", s.open)
	}
}
