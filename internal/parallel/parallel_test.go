package parallel

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestForEachRunsEveryIndexWithinLimit(t *testing.T) {
	const n, limit = 50, 3
	var running, peak atomic.Int32
	seen := make([]atomic.Int32, n)
	err := ForEach(context.Background(), limit, n, func(ctx context.Context, i int) error {
		now := running.Add(1)
		for {
			p := peak.Load()
			if now <= p || peak.CompareAndSwap(p, now) {
				break
			}
		}
		time.Sleep(time.Millisecond)
		seen[i].Add(1)
		running.Add(-1)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range seen {
		if c := seen[i].Load(); c != 1 {
			t.Errorf("index %d ran %d times", i, c)
		}
	}
	if p := peak.Load(); p > limit || p < 2 {
		t.Errorf("peak concurrency %d, want 2..%d", p, limit)
	}
}

func TestForEachZero(t *testing.T) {
	called := false
	if err := ForEach(context.Background(), 4, 0, func(context.Context, int) error { called = true; return nil }); err != nil || called {
		t.Errorf("n=0: err %v, called %v", err, called)
	}
}

// With limit 1 a failure stops the run: nothing after it starts.
func TestForEachStopsAfterFailure(t *testing.T) {
	boom := errors.New("boom")
	var calls []int
	err := ForEach(context.Background(), 1, 10, func(ctx context.Context, i int) error {
		calls = append(calls, i)
		if i == 2 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) {
		t.Errorf("err = %v, want boom", err)
	}
	if fmt.Sprint(calls) != "[0 1 2]" {
		t.Errorf("calls %v, want [0 1 2]", calls)
	}
}

// The failure is returned, not the cancellations it caused in calls of a
// lower index, which see it as their ctx's cause.
func TestForEachReturnsTheFailureNotItsConsequences(t *testing.T) {
	boom := errors.New("index 3 failed")
	var cause error
	err := ForEach(context.Background(), 4, 4, func(ctx context.Context, i int) error {
		if i == 3 {
			return boom
		}
		<-ctx.Done()
		if i == 0 {
			cause = context.Cause(ctx)
			return fmt.Errorf("index 0 stopped: %w", context.Cause(ctx))
		}
		return fmt.Errorf("index %d: %w", i, ctx.Err())
	})
	if err != boom {
		t.Errorf("err = %v, want %v", err, boom)
	}
	if cause != boom {
		t.Errorf("context.Cause in a sibling = %v, want %v", cause, boom)
	}
}

// Independent failures: the lowest index wins, whatever the timing.
func TestForEachLowestIndependentFailure(t *testing.T) {
	for range 20 {
		var ready sync.WaitGroup
		ready.Add(3)
		err := ForEach(context.Background(), 3, 3, func(ctx context.Context, i int) error {
			ready.Done()
			ready.Wait()
			time.Sleep(time.Duration(3-i) * 100 * time.Microsecond)
			return fmt.Errorf("failure %d", i)
		})
		if err == nil || err.Error() != "failure 0" {
			t.Fatalf("err = %v, want failure 0", err)
		}
	}
}

func TestForEachParentCanceled(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	stop := errors.New("user interrupt")
	var started atomic.Int32
	err := ForEach(ctx, 2, 100, func(ctx context.Context, i int) error {
		if started.Add(1) == 2 {
			cancel(stop)
		}
		<-ctx.Done()
		return fmt.Errorf("index %d: %w", i, ctx.Err())
	})
	if err != stop {
		t.Errorf("err = %v, want the parent's cause %v", err, stop)
	}
	if s := started.Load(); s != 2 {
		t.Errorf("%d calls started, want 2 (none after the parent was canceled)", s)
	}
}

// listError is an error whose dynamic type cannot be compared with ==, as
// go-containerregistry's transport.multierrs cannot.
type listError []string

func (l listError) Error() string { return fmt.Sprint([]string(l)) }

func TestForEachUncomparableErrors(t *testing.T) {
	err := ForEach(context.Background(), 3, 3, func(ctx context.Context, i int) error {
		return listError{fmt.Sprint("failure ", i)}
	})
	var le listError
	if !errors.As(err, &le) || le[0] != "failure 0" {
		t.Errorf("err = %v, want failure 0", err)
	}
}
