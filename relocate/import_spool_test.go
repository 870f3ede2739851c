package relocate

import (
	"context"
	"errors"
	"testing"
	"time"
)

// importAcquired runs acquire in the background and reports when it
// returns.
func importAcquired(b *importBudget, ctx context.Context, disk int64) <-chan error {
	return importAcquiredMem(b, ctx, 0, disk)
}

// importAcquiredMem is importAcquired for a blob held in memory too.
func importAcquiredMem(b *importBudget, ctx context.Context, mem, disk int64) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- b.acquire(ctx, mem, disk) }()
	return ch
}

func importExpectBlocked(t *testing.T, ch <-chan error, what string) {
	t.Helper()
	select {
	case err := <-ch:
		t.Fatalf("%s went through (err %v); the budget should hold it", what, err)
	case <-time.After(50 * time.Millisecond):
	}
}

func importExpectAdmitted(t *testing.T, ch <-chan error, what string) {
	t.Helper()
	select {
	case err := <-ch:
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("%s still blocked", what)
	}
}

func TestImportBudgetBoundsSpooledBlobsByCount(t *testing.T) {
	ctx := context.Background()
	b := newImportBudget(2, 100, 1<<30)
	// Memory spools use no disk but still take a slot.
	importExpectAdmitted(t, importAcquired(b, ctx, 0), "first memory spool")
	importExpectAdmitted(t, importAcquired(b, ctx, 10), "a small file")
	third := importAcquired(b, ctx, 0)
	importExpectBlocked(t, third, "a third spool with two slots")
	b.release(0, 10)
	importExpectAdmitted(t, third, "the third spool after a release")
	if slots, _ := b.peaks(); slots != 2 {
		t.Errorf("peak %d slots, want 2", slots)
	}
}

func TestImportBudgetBoundsSpooledBlobsByBytes(t *testing.T) {
	ctx := context.Background()
	b := newImportBudget(4, 100, 1<<30)
	importExpectAdmitted(t, importAcquired(b, ctx, 60), "first file of 60 bytes")
	more := importAcquired(b, ctx, 60)
	importExpectBlocked(t, more, "a second 60 bytes over a 100-byte budget")
	importExpectAdmitted(t, importAcquired(b, ctx, 40), "40 more bytes, exactly the budget")
	b.release(0, 60)
	importExpectAdmitted(t, more, "60 bytes after the release")
	if _, bytes := b.peaks(); bytes != 100 {
		t.Errorf("peak %d bytes, want 100", bytes)
	}
}

func TestImportBudgetAdmitsAnOversizedBlobAlone(t *testing.T) {
	ctx := context.Background()
	b := newImportBudget(4, 100, 1<<30)
	importExpectAdmitted(t, importAcquired(b, ctx, 1000), "a blob bigger than the budget, with nothing spooled")
	second := importAcquired(b, ctx, 10)
	importExpectBlocked(t, second, "another file while the oversized one is spooled")
	b.release(0, 1000)
	importExpectAdmitted(t, second, "the next file once the oversized one is gone")
}

func TestImportBudgetWaitEndsWithTheContext(t *testing.T) {
	b := newImportBudget(1, 100, 1<<30)
	importExpectAdmitted(t, importAcquired(b, context.Background(), 0), "first")
	cause := errors.New("upload failed")
	ctx, cancel := context.WithCancelCause(context.Background())
	ch := importAcquired(b, ctx, 0)
	importExpectBlocked(t, ch, "second with one slot")
	cancel(cause)
	select {
	case err := <-ch:
		if !errors.Is(err, cause) {
			t.Fatalf("acquire returned %v, want the cancellation cause", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("acquire did not return after cancellation")
	}
}

func TestImportBudgetBoundsMemory(t *testing.T) {
	ctx := context.Background()
	b := newImportBudget(8, 1<<30, 100)
	importExpectAdmitted(t, importAcquiredMem(b, ctx, 70, 0), "70 bytes of memory")
	more := importAcquiredMem(b, ctx, 40, 0)
	importExpectBlocked(t, more, "40 more bytes over a 100-byte memory budget")
	importExpectAdmitted(t, importAcquiredMem(b, ctx, 30, 0), "30 more bytes, exactly the budget")
	b.release(70, 0)
	importExpectAdmitted(t, more, "40 bytes after the release")
}
