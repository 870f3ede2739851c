package memlimit

import (
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestNext(t *testing.T) {
	const base, mib = 64 << 20, 1 << 20
	for _, tc := range []struct {
		cur, live int64
		share     float64
		want      int64
	}{
		{base, 20 * mib, 0.05, base},          // resting at the base
		{base, 20 * mib, 0.6, 96 * mib},       // thrashing: half as much again
		{96 * mib, 20 * mib, 0.6, 144 * mib},  // and again
		{144 * mib, 40 * mib, 0.1, 144 * mib}, // resting, the heap not much smaller: kept
		{144 * mib, 20 * mib, 0.1, 108 * mib}, // resting, the heap shrunk: down by a quarter
		{70 * mib, 1 * mib, 0.1, base},        // never below the base
	} {
		if got := Next(base, tc.cur, tc.live, tc.share); got != tc.want {
			t.Errorf("Next(64, %d, %d, %.2f) = %d MiB, want %d", tc.cur/mib, tc.live/mib, tc.share, got/mib, tc.want/mib)
		}
	}
}

// A program whose live heap fills its limit, allocating on: the watch
// lifts the limit until the collector rests, then lowers it once what was
// held is released.
func TestWatchLiftsTheLimitWhileTheCollectorThrashes(t *testing.T) {
	const base = 8 << 20
	old := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(old)
	debug.SetMemoryLimit(base)
	w := newWatch(base)

	held := make([][]byte, 0, 1024)
	for range 1024 {
		held = append(held, make([]byte, 8<<10)) // 8 MiB live, the whole limit
	}
	var sink []byte
	deadline := time.Now().Add(10 * time.Second)
	for w.cur <= base && time.Now().Before(deadline) {
		for range 2000 {
			sink = make([]byte, 4<<10)
		}
		w.tick()
	}
	_ = sink
	if w.cur <= base || debug.SetMemoryLimit(-1) != w.cur {
		t.Fatalf("with the live heap at the limit, the limit stayed at %d MiB", w.cur>>20)
	}
	runtime.KeepAlive(held)
	held = nil
	lifted := w.cur
	for range 20 {
		runtime.GC()
		time.Sleep(time.Millisecond)
		w.tick()
	}
	if w.cur >= lifted {
		t.Fatalf("after release the limit stayed at %d MiB", w.cur>>20)
	}
}
