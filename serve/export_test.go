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

// HookChecks makes h check passwords with compare instead of bcrypt's.
func (h *Htpasswd) HookChecks(compare func(hash, password []byte) error) { h.compare = compare }

// ChecksWaiting is how many requests wait for a password check.
func (h *Htpasswd) ChecksWaiting() int { return int(h.waiting.Load()) }
