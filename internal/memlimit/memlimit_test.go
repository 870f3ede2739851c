package memlimit

import (
	"math"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestNext(t *testing.T) {
	const base, mib = 64 << 20, 1 << 20
	for _, tc := range []struct {
		name string
		cur  int64
		u    Usage
		want int64
	}{
		{"resting at the base", base, Usage{Live: 20 * mib, InUse: 60 * mib, GCShare: 0.05}, base},
		{"busy but far from the limit: not the limit's doing", base, Usage{Live: 20 * mib, InUse: 40 * mib, GCShare: 0.6}, base},
		{"at the limit, the collector just under a quarter: kept", base, Usage{Live: 20 * mib, InUse: 62 * mib, GCShare: 0.24}, base},
		{"at the limit, the collector just over a quarter: lifted", base, Usage{Live: 20 * mib, InUse: 62 * mib, GCShare: 0.26}, 96 * mib},
		{"thrashing at the limit: half as much again", base, Usage{Live: 20 * mib, InUse: 62 * mib, GCShare: 0.6}, 96 * mib},
		{"and again", 96 * mib, Usage{Live: 20 * mib, InUse: 95 * mib, GCShare: 0.6}, 144 * mib},
		{"never above four times the live heap plus the base", 144 * mib, Usage{Live: 20 * mib, InUse: 140 * mib, GCShare: 0.6}, 144 * mib},
		{"in use well below: down by a quarter", 144 * mib, Usage{Live: 20 * mib, InUse: 50 * mib, GCShare: 0.1}, 108 * mib},
		{"in use near: kept", 144 * mib, Usage{Live: 40 * mib, InUse: 100 * mib, GCShare: 0.1}, 144 * mib},
		{"never below the base", 70 * mib, Usage{Live: 1 * mib, InUse: 10 * mib, GCShare: 0.1}, base},
	} {
		if got := Next(base, tc.cur, tc.u); got != tc.want {
			t.Errorf("%s: Next(64, %d, %+v) = %d MiB, want %d", tc.name, tc.cur/mib, tc.u, got/mib, tc.want/mib)
		}
	}
}

// However long the collector stays busy, the limit stays bounded by what
// is live: it neither grows for ever nor overflows.
func TestNextIsBounded(t *testing.T) {
	const base = 64 << 20
	cur := int64(base)
	for range 1000 {
		cur = Next(base, cur, Usage{Live: 30 << 20, InUse: cur, GCShare: 0.9})
	}
	if cur <= 0 || cur > 4*(30<<20)+base {
		t.Fatalf("after a thousand busy periods the limit is %d", cur)
	}
	if got := Next(base, math.MaxInt64/2, Usage{Live: math.MaxInt64 / 8, InUse: math.MaxInt64 / 2, GCShare: 0.9}); got <= 0 {
		t.Fatalf("Next near the top of int64: %d", got)
	}
}

// A program whose live heap fills its limit, allocating on: the watch
// lifts the limit while the collector thrashes, then lowers it once what
// was held is released.
func TestWatchLiftsTheLimitWhileTheCollectorThrashes(t *testing.T) {
	const base = 8 << 20
	old := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(old)
	debug.SetMemoryLimit(base)
	w := newWatch(base)
	// What this test proves is the watch: that it reads the runtime's
	// figures and moves the limit as Next says (TestNext holds the 0.25
	// threshold itself). How large a share the collector takes at the
	// limit is the runtime's (and the race detector's: from 0.18 up, seen
	// here), so the test takes any share above a twentieth as thrashing.
	w.thrash = 0.05

	held := make([][]byte, 0, 1024)
	for range 1024 {
		held = append(held, make([]byte, 8<<10)) // 8 MiB live, the whole limit
	}
	var sink []byte
	// A bound, not a timing: a machine busy with other tests (make test
	// runs packages in parallel) slows the loop, not what it shows.
	deadline := time.Now().Add(60 * time.Second)
	for w.cur <= base && time.Now().Before(deadline) {
		for range 2000 {
			sink = make([]byte, 4<<10)
		}
		w.tick()
	}
	_ = sink
	if w.cur <= base || debug.SetMemoryLimit(-1) != w.cur {
		t.Fatalf("with the live heap at the limit, the limit stayed at %d MiB (last period: %+v)", w.cur>>20, w.last)
	}
	runtime.KeepAlive(held)
	held = nil
	lifted := w.cur
	for range 20 {
		runtime.GC()
		debug.FreeOSMemory()
		time.Sleep(time.Millisecond)
		w.tick()
	}
	if w.cur >= lifted {
		t.Fatalf("after release the limit stayed at %d MiB (last period: %+v)", w.cur>>20, w.last)
	}
}
