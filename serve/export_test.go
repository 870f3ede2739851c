package serve

import (
	"context"
	"time"
)

// TakeStream takes one of r's streams as a download does, waiting for one
// while ctx lasts, for a test to hold and release.
func (r *Registry) TakeStream(ctx context.Context) (func(), error) {
	return r.acquire(ctx, time.Time{})
}
