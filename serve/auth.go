package serve

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"
)

// maxAuthCache bounds the credentials remembered as checked.
const maxAuthCache = 1024

// Htpasswd is a set of users and their bcrypt password hashes, read from
// an htpasswd file (`htpasswd -B`), the format distribution's htpasswd
// access controller reads.
//
// bcrypt costs tens of milliseconds per check by design, and a pull makes
// dozens of requests: credentials that passed once are remembered (by the
// sha256 of user and password, in memory, at most 1024 of them), so only
// the first request of a user pays for it.
type Htpasswd struct {
	users map[string][]byte
	// dummy is checked against when the user is unknown, so that an
	// unknown user costs the same time as a wrong password.
	dummy []byte

	mu sync.Mutex
	ok map[[sha256.Size]byte]bool
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
	h := &Htpasswd{users: map[string][]byte{}, ok: map[[sha256.Size]byte]bool{}}
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

// Authenticate reports whether password is user's.
func (h *Htpasswd) Authenticate(user, password string) bool {
	key := sha256.Sum256([]byte(user + "\x00" + password))
	h.mu.Lock()
	known := h.ok[key]
	h.mu.Unlock()
	if known {
		return true
	}
	hash, exists := h.users[user]
	if !exists {
		hash = h.dummy
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(password)) != nil || !exists {
		return false
	}
	h.mu.Lock()
	if len(h.ok) >= maxAuthCache {
		clear(h.ok)
	}
	h.ok[key] = true
	h.mu.Unlock()
	return true
}
