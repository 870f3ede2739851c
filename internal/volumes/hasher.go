package volumes

import (
	"crypto/sha256"
	"encoding/hex"
)

// hasher computes the sha256 of each volume on a goroutine of its own. The
// bytes of a volume are also hashed by whoever writes or reads the whole
// archive (its joined sha256); hashing them twice on one goroutine costs a
// split export a tenth of its throughput, on two it overlaps. A copy of
// each chunk waits in a queue of hasherQueue buffers, reused.
type hasher struct {
	jobs chan hashJob
	free chan []byte
	sums chan string
}

// hashJob is a chunk to hash, or (end) the end of a volume.
type hashJob struct {
	b   []byte
	end bool
}

// hasherQueue bounds the chunks waiting: the memory held is that many
// chunks (a chunk is at most a compressed frame, about 4 MiB).
const hasherQueue = 2

func newHasher() *hasher {
	h := &hasher{jobs: make(chan hashJob, hasherQueue), free: make(chan []byte, hasherQueue+1), sums: make(chan string)}
	go h.run()
	return h
}

func (h *hasher) run() {
	sh := sha256.New()
	for j := range h.jobs {
		if j.end {
			h.sums <- hex.EncodeToString(sh.Sum(nil))
			sh.Reset()
			continue
		}
		sh.Write(j.b)
		select {
		case h.free <- j.b:
		default:
		}
	}
	close(h.sums)
}

// write queues a copy of p for the current volume.
func (h *hasher) write(p []byte) {
	if len(p) == 0 {
		return
	}
	var b []byte
	select {
	case b = <-h.free:
	default:
	}
	h.jobs <- hashJob{b: append(b[:0], p...)}
}

// sum ends the current volume and returns its sha256, once every byte
// queued before it is hashed.
func (h *hasher) sum() string {
	h.jobs <- hashJob{end: true}
	return <-h.sums
}

// stop ends the goroutine; the hasher must not be used afterwards.
func (h *hasher) stop() {
	close(h.jobs)
	for range h.sums {
	}
}
