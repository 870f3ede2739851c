package serve

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// warnings is a progress.Reporter keeping its warnings.
type warnings struct {
	mu    sync.Mutex
	lines []string
}

func (w *warnings) Start(string, int64) {}
func (w *warnings) Add(int64)           {}
func (w *warnings) Done()               {}
func (w *warnings) Logf(string, ...any) {}
func (w *warnings) Warnf(f string, a ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.lines = append(w.lines, fmt.Sprintf(f, a...))
}

// A small blob read again after its check is kept in memory (and served
// from there for the server's life) only if those bytes match its digest.
func TestKeepSmallKeepsOnlyBytesOfTheDigest(t *testing.T) {
	right := []byte(`{"config":{"Env":["A=1"]}}`)
	sum := sha256.Sum256(right)
	d := v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", sum)}
	other := bytes.Clone(right)
	other[5] ^= 0x20

	rep := &warnings{}
	r := &Registry{rep: rep, small: map[v1.Hash][]byte{}}
	r.keepSmall(heldBlob{d: d, b: other}) // as if the file changed between the check and this read
	if b, ok := r.smallBlob(d); ok {
		t.Fatalf("kept %q for %s, whose bytes are %q", b, d, right)
	}
	if r.smallBytes != 0 {
		t.Errorf("%d bytes of the budget taken", r.smallBytes)
	}
	if len(rep.lines) != 1 || !strings.Contains(rep.lines[0], d.String()) || !strings.Contains(rep.lines[0], "changed") {
		t.Errorf("warnings %q, want one naming %s and that the archive changed", rep.lines, d)
	}

	r.keepSmall(heldBlob{d: d, b: right})
	if b, ok := r.smallBlob(d); !ok || !bytes.Equal(b, right) {
		t.Errorf("the blob's own bytes: kept %v (%q)", ok, b)
	}
}
