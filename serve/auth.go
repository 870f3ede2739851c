package serve

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/crypto/bcrypt"
)

// maxAuthCache bounds the credentials remembered as checked, passed and
// failed each.
const maxAuthCache = 1024

// Htpasswd is a set of users and their bcrypt password hashes, read from
// an htpasswd file (`htpasswd -B`), the format distribution's htpasswd
// access controller reads.
//
// bcrypt costs tens of milliseconds per check by design, and a pull makes
// dozens of requests: credentials that passed once are remembered (by the
// sha256 of user and password, in memory, at most 1024 of them), so only
// the first request of a user pays for it. Credentials that failed are
// remembered the same way (the file is read once: an answer never
// changes), so a client retrying a wrong password pays once too.
//
// Credentials never seen cost a bcrypt check each, which anyone who can
// reach the port can send: at most half the CPUs (GOMAXPROCS/2, at least
// one) check at once, so that the rest keep serving the clients already
// authenticated. A request beyond that waits for a check to end, for as
// long as its context lasts, rather than being refused (429): clients
// rarely retry a refused login, and a wait costs a goroutine, which the
// connections' own limits bound.
type Htpasswd struct {
	users map[string][]byte
	// dummy is checked against when the user is unknown, so that an
	// unknown user costs the same time as a wrong password.
	dummy []byte

	// checks holds a token per bcrypt check under way; waiting counts
	// the requests waiting for one.
	checks  chan struct{}
	waiting atomic.Int64
	// compare is bcrypt.CompareHashAndPassword (a test's hook).
	compare func(hash, password []byte) error

	mu       sync.Mutex
	ok, fail map[[sha256.Size]byte]bool
}

// LoadHtpasswd reads path: lines "user:hash", blank lines and lines
// starting with # ignored. Only bcrypt hashes ($2a$, $2b$, $2y$) are
// accepted: the older MD5, SHA1 and crypt forms are refused, naming the
// line.
func LoadHtpasswd(path string) (*Htpasswd, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("htpasswd: %w", err)
	}
	defer f.Close()
	h := &Htpasswd{
		users:   map[string][]byte{},
		checks:  make(chan struct{}, max(1, runtime.GOMAXPROCS(0)/2)),
		compare: bcrypt.CompareHashAndPassword,
		ok:      map[[sha256.Size]byte]bool{},
		fail:    map[[sha256.Size]byte]bool{},
	}
	sc := bufio.NewScanner(f)
	cost := bcrypt.DefaultCost
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		if !ok || user == "" {
			return nil, fmt.Errorf("htpasswd %s, line %d: not user:hash", path, n)
		}
		c, err := bcrypt.Cost([]byte(hash))
		if err != nil || !strings.HasPrefix(hash, "$2") {
			return nil, fmt.Errorf("htpasswd %s, line %d: user %q: only bcrypt hashes are accepted (htpasswd -B)", path, n, user)
		}
		if _, dup := h.users[user]; dup {
			return nil, fmt.Errorf("htpasswd %s, line %d: user %q appears twice", path, n, user)
		}
		h.users[user] = []byte(hash)
		cost = c
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("htpasswd %s: %w", path, err)
	}
	if len(h.users) == 0 {
		return nil, fmt.Errorf("htpasswd %s: no users", path)
	}
	secret := make([]byte, 16)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	if h.dummy, err = bcrypt.GenerateFromPassword(secret, cost); err != nil {
		return nil, errors.Join(errors.New("htpasswd"), err)
	}
	return h, nil
}

// Authenticate reports whether password is user's. Waiting for a check
// (see Htpasswd) ends with ctx's error when ctx ends.
func (h *Htpasswd) Authenticate(ctx context.Context, user, password string) (bool, error) {
	key := sha256.Sum256([]byte(user + "\x00" + password))
	h.mu.Lock()
	ok, failed := h.ok[key], h.fail[key]
	h.mu.Unlock()
	if ok || failed {
		return ok, nil
	}
	h.waiting.Add(1)
	select {
	case h.checks <- struct{}{}:
		h.waiting.Add(-1)
	case <-ctx.Done():
		h.waiting.Add(-1)
		return false, ctx.Err()
	}
	hash, exists := h.users[user]
	if !exists {
		hash = h.dummy
	}
	ok = h.compare(hash, []byte(password)) == nil && exists
	<-h.checks
	remember := h.ok
	if !ok {
		remember = h.fail
	}
	h.mu.Lock()
	if len(remember) >= maxAuthCache {
		clear(remember)
	}
	remember[key] = true
	h.mu.Unlock()
	return ok, nil
}
