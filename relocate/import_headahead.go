package relocate

import (
	"context"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/internal/parallel"
)

// A mover asks repo about each blob the probe left unchecked just before
// it would send it (alreadyThere). Asked there, each blob's HEAD is a
// round trip an upload slot waits for: with the registry 10 ms away, a
// third of an upload's time (HEAD, POST, PUT). headAhead sends those
// HEADs ahead of the uploads, in the order the mover takes the blobs, on
// connections of their own, so that an upload slot usually finds its
// answer waiting. The requests are the same ones, and uploads still start
// with the first answer rather than after the last.

// headAnswer is the answer to one HEAD sent ahead.
type headAnswer struct {
	done chan struct{} // closed once ok or err is set
	ok   bool
	err  error
}

// headAhead starts the HEADs of the blobs of descs the probe left
// unchecked, in order, dst.conc at once, and returns the function that
// stops them and waits for them; the mover calls it before it returns.
// alreadyThere takes their answers.
func (dst *destination) headAhead(ctx context.Context, descs []v1.Descriptor) (stop func()) {
	var todo []v1.Descriptor
	answers := map[v1.Hash]*headAnswer{}
	for _, b := range descs {
		if dst.unchecked[b.Digest] && answers[b.Digest] == nil {
			answers[b.Digest] = &headAnswer{done: make(chan struct{})}
			todo = append(todo, b)
		}
	}
	if len(todo) < 2 {
		return func() {}
	}
	dst.foundMu.Lock()
	dst.ahead = answers
	dst.foundMu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		// Each answer is kept, a failure included: the mover that takes
		// it fails as it would have asking itself.
		_ = parallel.ForEach(ctx, dst.conc, len(todo), func(ctx context.Context, i int) error {
			a := answers[todo[i].Digest]
			a.ok, a.err = dst.reg.BlobExists(ctx, todo[i].Digest, todo[i].Size)
			close(a.done)
			return nil
		})
	}()
	return func() {
		cancel()
		wg.Wait()
		dst.foundMu.Lock()
		dst.ahead = nil
		dst.foundMu.Unlock()
	}
}

// aheadAnswer waits for the answer headAhead got for d, if it asked.
func (dst *destination) aheadAnswer(ctx context.Context, d v1.Hash) (ok, asked bool, err error) {
	dst.foundMu.Lock()
	a := dst.ahead[d]
	dst.foundMu.Unlock()
	if a == nil {
		return false, false, nil
	}
	select {
	case <-a.done:
		return a.ok, true, a.err
	case <-ctx.Done():
		return false, true, ctx.Err()
	}
}
