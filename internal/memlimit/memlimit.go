// Package memlimit keeps the Go runtime's soft memory limit a bound on
// garbage, never on what the program holds.
//
// A soft limit near what a streaming command holds by design keeps its
// RSS flat: the collector runs before garbage piles up. But a command may
// legitimately hold more (an archive head of tens of thousands of
// manifests, read by import or inspect), and the runtime counts more than
// the live heap against the limit (freed spans not yet returned, stacks,
// metadata): near the limit the collector runs back to back, taking half
// the CPU and making the work several times slower. Keep watches for that
// (the collector busy while the memory the limit counts is at the limit)
// and lifts the limit, never above what is live plus the base again, and
// lowers it back towards the base once the memory in use has fallen well
// below it.
package memlimit

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

const (
	liveMetric     = "/gc/heap/live:bytes"
	totalMetric    = "/memory/classes/total:bytes"
	releasedMetric = "/memory/classes/heap/released:bytes"
	gcCPUMetric    = "/cpu/classes/gc/total:cpu-seconds"
	cpuMetric      = "/cpu/classes/total:cpu-seconds"
	idleMetric     = "/cpu/classes/idle:cpu-seconds"
	// The collector's marking on processors that had nothing else to do:
	// free, not forced (runtime/metrics says to subtract it from the GC
	// time for the compulsory part), so counted neither as GC nor as busy.
	idleMarkMetric = "/cpu/classes/gc/mark/idle:cpu-seconds"

	// thrashing is the share of CPU above which a collector working at
	// the limit is taken to run for want of room rather than for garbage.
	thrashing = 0.25
)

// Usage is what one period showed.
type Usage struct {
	// Live is the heap the last collection found live; InUse the memory
	// the limit counts (all the runtime holds but what it returned).
	Live, InUse int64
	// GCShare is the collector's share of the CPU the process used (its
	// processors' busy time, not all they could have had): a machine busy
	// with other work lowers both alike, and must not hide a collector
	// that runs back to back.
	GCShare float64
}

// Next returns the limit to set after a period that showed u, with cur in
// force and a base of base. While the collector thrashes at the limit
// (busy, and the memory in use within a tenth of it), half as much again,
// but never more than four times the live heap plus the base: room for
// what is held and its garbage, not a lifted bound. Once the memory in use
// is below half the limit, a quarter less, never below the base.
func Next(base, cur int64, u Usage) int64 {
	return next(base, cur, u, thrashing)
}

// next is Next with the collector's share taken as thrashing above thrash.
func next(base, cur int64, u Usage, thrash float64) int64 {
	switch {
	case u.GCShare > thrash && u.InUse > cur-cur/10:
		ceiling := max(base, 4*u.Live+base)
		return max(cur, min(cur+cur/2, ceiling))
	case cur > base && u.InUse < cur/2:
		return max(base, cur-cur/4)
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
	base, cur        int64
	sample           []metrics.Sample
	lastGC, lastBusy float64
	thrash           float64 // thrashing, but for a test
	last             Usage   // what the last tick read, for a failing test to show
}

func newWatch(base int64) *watch {
	w := &watch{base: base, cur: base, thrash: thrashing, sample: []metrics.Sample{
		{Name: liveMetric}, {Name: totalMetric}, {Name: releasedMetric}, {Name: gcCPUMetric}, {Name: cpuMetric}, {Name: idleMetric}, {Name: idleMarkMetric}}}
	w.read()
	return w
}

// read returns what the period since the last read showed.
func (w *watch) read() (u Usage, ok bool) {
	metrics.Read(w.sample)
	for _, s := range w.sample {
		if s.Value.Kind() == metrics.KindBad {
			return u, false
		}
	}
	idleMark := w.sample[6].Value.Float64()
	gc, busy := w.sample[3].Value.Float64()-idleMark, w.sample[4].Value.Float64()-w.sample[5].Value.Float64()-idleMark
	if d := busy - w.lastBusy; d > 0 {
		u.GCShare = (gc - w.lastGC) / d
	}
	w.lastGC, w.lastBusy = gc, busy
	u.Live = int64(w.sample[0].Value.Uint64())
	u.InUse = int64(w.sample[1].Value.Uint64() - w.sample[2].Value.Uint64())
	return u, true
}

// tick sets the limit the last period calls for.
func (w *watch) tick() {
	u, ok := w.read()
	if !ok {
		return
	}
	w.last = u
	if n := next(w.base, w.cur, u, w.thrash); n != w.cur {
		debug.SetMemoryLimit(n)
		w.cur = n
	}
}
