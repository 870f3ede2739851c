package serve_test

import (
	"fmt"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/ferry-dev/ferry/internal/testregistry"
	"github.com/ferry-dev/ferry/serve"
)

// Every failed login costs a bcrypt check (tens of milliseconds of CPU):
// many clients sending wrong passwords at once never run more than half
// the CPUs' worth (GOMAXPROCS/2, at least one) of checks at once; the
// others wait for one to end, and all get 401. A wrong password sent again
// is answered without a second check, and the right one still passes.
func TestFailedLoginsNeverRunMoreBcryptChecksThanTheBound(t *testing.T) {
	s := newSource(t)
	users, err := serve.LoadHtpasswd(testregistry.WriteHtpasswd(t, "alice", "s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	bound := max(1, runtime.GOMAXPROCS(0)/2)
	var running, most, calls atomic.Int64
	gate := make(chan struct{})
	users.HookChecks(func(hash, password []byte) error {
		calls.Add(1)
		n := running.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		<-gate
		defer running.Add(-1)
		return bcrypt.CompareHashAndPassword(hash, password)
	})
	srv := startServer(t, s.archive, serve.Options{Users: users})

	get := func(user, pass string) int {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.url+"/v2/", nil)
		req.SetBasicAuth(user, pass)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	clients := 4*bound + 4
	var wg sync.WaitGroup
	for i := range clients {
		user := "alice"
		if i%2 == 1 {
			user = "mallory" // unknown: checked against a dummy hash all the same
		}
		wg.Go(func() {
			if status := get(user, fmt.Sprintf("guess-%d", i)); status != http.StatusUnauthorized {
				t.Errorf("%s with a wrong password: %d, want 401", user, status)
			}
		})
	}
	// Every client is either checked or waiting for a check: none more
	// than the bound is under way.
	deadline := time.Now().Add(20 * time.Second)
	for running.Load()+int64(users.ChecksWaiting()) < int64(clients) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if r, w := running.Load(), users.ChecksWaiting(); r+int64(w) != int64(clients) || r != int64(bound) {
		t.Errorf("%d checks under way and %d waiting, want %d and %d", r, w, bound, clients-bound)
	}
	close(gate)
	wg.Wait()
	if m := most.Load(); m > int64(bound) {
		t.Errorf("%d bcrypt checks ran at once, want at most %d", m, bound)
	}
	if n := calls.Load(); n != int64(clients) {
		t.Errorf("%d checks for %d clients", n, clients)
	}

	// The same wrong password again: remembered, not checked again.
	if status := get("alice", "guess-0"); status != http.StatusUnauthorized {
		t.Errorf("a wrong password again: %d, want 401", status)
	}
	if n := calls.Load(); n != int64(clients) {
		t.Errorf("a wrong password sent again was checked again (%d checks)", n)
	}
	if status := get("alice", "s3cret"); status != http.StatusOK {
		t.Errorf("the right password: %d, want 200", status)
	}
}
