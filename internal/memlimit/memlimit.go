// Package memlimit keeps the Go runtime's soft memory limit a bound on
// garbage, never on what the program holds.
//
// A soft limit near what a streaming command holds by design keeps its
// RSS flat: the collector runs before garbage piles up. But a command may
// legitimately hold more (an archive head of tens of thousands of
// manifests, read by import or inspect), and the runtime counts more than
// the live heap against the limit (freed spans not yet returned, stacks,
// metadata): near the limit the collector runs back to back, taking half
// the CPU and making the work several times slower. Keep watches the
// share of CPU the collector takes and lifts the limit while it is high,
// and lowers it back towards the base once the live heap has shrunk.
package memlimit

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

const (
	liveMetric  = "/gc/heap/live:bytes"
	gcCPUMetric = "/cpu/classes/gc/total:cpu-seconds"
	cpuMetric   = "/cpu/classes/total:cpu-seconds"

	// thrashing is the share of CPU above which the collector is taken
	// to run for want of room rather than for garbage.
	thrashing = 0.25
)

// Next returns the limit to set after a period in which the collector
// took gcShare of the CPU, with cur in force, live bytes found live and a
// base of base: half as much again while the collector thrashes; back
// towards the base (never below it, nor below four times what is live)
// once it rests.
func Next(base, cur, live int64, gcShare float64) int64 {
	switch {
	case gcShare > thrashing:
		return cur + cur/2
	case cur > base && 4*live < cur:
		return max(base, cur*3/4, 4*live)
	}
	return cur
}

// Keep sets the soft memory limit to base and, until ctx ends, every
// period moves it as Next says.
func Keep(ctx context.Context, base int64, period time.Duration) {
	debug.SetMemoryLimit(base)
	go func() {
		t := time.NewTicker(period)
		defer t.Stop()
		w := newWatch(base)
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			w.tick()
		}
	}()
}

// watch is Keep's state between ticks.
type watch struct {
	base, cur     int64
	sample        []metrics.Sample
	lastGC, lastT float64
}

func newWatch(base int64) *watch {
	w := &watch{base: base, cur: base, sample: []metrics.Sample{{Name: liveMetric}, {Name: gcCPUMetric}, {Name: cpuMetric}}}
	w.read()
	return w
}

// read returns the live heap and the collector's share of the CPU since
// the last read.
func (w *watch) read() (live int64, gcShare float64) {
	metrics.Read(w.sample)
	for _, s := range w.sample {
		if s.Value.Kind() == metrics.KindBad {
			return 0, 0
		}
	}
	gc, total := w.sample[1].Value.Float64(), w.sample[2].Value.Float64()
	if d := total - w.lastT; d > 0 {
		gcShare = (gc - w.lastGC) / d
	}
	w.lastGC, w.lastT = gc, total
	return int64(w.sample[0].Value.Uint64()), gcShare
}

// tick sets the limit the last period calls for.
func (w *watch) tick() {
	live, share := w.read()
	if next := Next(w.base, w.cur, live, share); next != w.cur {
		debug.SetMemoryLimit(next)
		w.cur = next
	}
}
