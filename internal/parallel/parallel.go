// Package parallel runs indexed work with bounded concurrency, stopping at
// the first failure.
package parallel

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
)

// ForEach calls fn(ctx, i) for every i in [0, n), at most limit at once
// (limit < 1 means 1), and waits for every call it started.
//
// The first failure cancels the ctx the other calls see, with that failure
// as its cause (context.Cause), and no further call is started. ForEach
// then returns, in this order of preference:
//   - the cause of the parent ctx, if it is done: the caller's
//     cancellation explains every failure it provoked;
//   - the failure of the lowest index that is not a consequence of the
//     cancellation (an error that is context.Canceled or wraps the failure
//     that caused it), so that a run with several independent failures
//     reports the same one each time it can;
//   - otherwise the failure of the lowest index.
//
// With n <= 0 it calls nothing and returns nil.
func ForEach(ctx context.Context, limit, n int, fn func(ctx context.Context, i int) error) error {
	if n <= 0 {
		return nil
	}
	parent := ctx
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		wg    sync.WaitGroup
		errs  = make([]error, n)
		first atomic.Int64 // index of the failure that canceled the rest
		sem   = make(chan struct{}, max(limit, 1))
	)
	first.Store(-1)
	for i := 0; i < n; i++ {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		// Checked after the slot is taken as well: with limit 1, the call
		// that failed has canceled ctx before freeing its slot, so nothing
		// starts after a failure.
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := fn(ctx, i); err != nil {
				errs[i] = err
				if first.CompareAndSwap(-1, int64(i)) {
					cancel(err)
				}
			}
		}()
	}
	wg.Wait()
	if err := parent.Err(); err != nil {
		return context.Cause(parent)
	}
	cause := first.Load()
	var fallback error
	for i, err := range errs {
		if err == nil {
			continue
		}
		if fallback == nil {
			fallback = err
		}
		// errors.Is, never ==: an error's dynamic type may not be
		// comparable (go-containerregistry's multierrs is a slice).
		consequence := errors.Is(err, context.Canceled) || (int64(i) != cause && errors.Is(err, errs[cause]))
		if !consequence {
			return err
		}
	}
	return fallback
}
