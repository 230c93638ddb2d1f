package auth

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Password checks. bcrypt is deliberately slow (tens of milliseconds of
// CPU at the default cost), so a flood of logins with wrong passwords
// could take every CPU, or every turn at bcrypt from the logins that
// would succeed. Four rules keep the work bounded and shared:
//
//   - At most MaxConcurrentChecks comparisons run at once and at most
//     MaxWaitingChecks callers wait for a turn (in arrival order); a
//     further caller is refused at once with ErrTooManyRequests, so no
//     queue grows without bound and other requests keep their CPU share.
//   - One client address (Credentials.Source) holds at most
//     MaxChecksPerSource of the running and waiting checks, so one source
//     cannot take every turn from the others.
//   - The result of a check is remembered for passwordCacheTTL, keyed by
//     the user, a keyed hash of the password and the user's stored hash
//     (a password change forgets it): the same wrong password repeated,
//     or a client logging in again, or a v2 request with basic auth, costs
//     no bcrypt. The password itself is never kept.
//   - Concurrent checks of the same user and password share one
//     comparison.

// Cache bounds: failures are kept apart from successes, so that a flood
// of guesses cannot push out the passwords of the users who logged in.
const (
	passwordCacheTTL       = 10 * time.Minute
	passwordCacheSuccesses = 1024
	passwordCacheFailures  = 4096
)

// passwordChecker runs and remembers password checks.
type passwordChecker struct {
	slots        chan struct{} // one per running comparison
	maxWaiting   int
	maxPerSource int
	macKey       [32]byte
	now          func() time.Time

	mu       sync.Mutex
	waiting  int            // callers waiting for a slot
	sources  map[string]int // checks running or waiting, per source
	inflight map[pwKey]*pwCall
	ok, bad  pwCache
}

// pwKey names a (user, password) pair without holding the password.
type pwKey struct {
	user string
	mac  [sha256.Size]byte
}

// pwCall is a comparison under way; callers of the same pair wait for it.
type pwCall struct {
	hash []byte
	done chan struct{}
	ok   bool
	err  error
}

type pwEntry struct {
	hash    []byte
	expires time.Time
}

// pwCache is a bounded map of recent results of one kind.
type pwCache struct {
	max int
	m   map[pwKey]pwEntry
}

func newPasswordChecker(concurrent, waiting, perSource int) *passwordChecker {
	p := &passwordChecker{
		slots:        make(chan struct{}, concurrent),
		maxWaiting:   waiting,
		maxPerSource: perSource,
		now:          time.Now,
		sources:      map[string]int{},
		inflight:     map[pwKey]*pwCall{},
		ok:           pwCache{max: passwordCacheSuccesses, m: map[pwKey]pwEntry{}},
		bad:          pwCache{max: passwordCacheFailures, m: map[pwKey]pwEntry{}},
	}
	if _, err := rand.Read(p.macKey[:]); err != nil {
		panic("auth: no randomness for the password cache: " + err.Error())
	}
	return p
}

func (p *passwordChecker) key(user, password string) pwKey {
	m := hmac.New(sha256.New, p.macKey[:])
	m.Write([]byte(user))
	m.Write([]byte{0})
	m.Write([]byte(password))
	k := pwKey{user: user}
	m.Sum(k.mac[:0])
	return k
}

// cachedLocked reports a remembered result for k that is still valid for
// the stored hash.
func (p *passwordChecker) cachedLocked(k pwKey, hash []byte) (ok, hit bool) {
	now := p.now()
	if e, found := p.ok.m[k]; found && now.Before(e.expires) && bytes.Equal(e.hash, hash) {
		return true, true
	}
	if e, found := p.bad.m[k]; found && now.Before(e.expires) && bytes.Equal(e.hash, hash) {
		return false, true
	}
	return false, false
}

func (c *pwCache) put(k pwKey, hash []byte, now time.Time) {
	if _, found := c.m[k]; !found && len(c.m) >= c.max {
		for old, e := range c.m {
			if !now.Before(e.expires) {
				delete(c.m, old)
			}
		}
		for old := range c.m {
			if len(c.m) < c.max {
				break
			}
			delete(c.m, old)
		}
	}
	c.m[k] = pwEntry{hash: hash, expires: now.Add(passwordCacheTTL)}
}

// check compares password with the stored hash for a caller from source.
// compared reports whether this call ran the comparison (not a
// remembered or shared result).
func (p *passwordChecker) check(ctx context.Context, source, user, password string, hash []byte) (ok, compared bool, err error) {
	k := p.key(user, password)
	for {
		p.mu.Lock()
		if ok, hit := p.cachedLocked(k, hash); hit {
			p.mu.Unlock()
			return ok, false, nil
		}
		if c := p.inflight[k]; c != nil && bytes.Equal(c.hash, hash) {
			p.mu.Unlock()
			select {
			case <-c.done:
				if c.err == nil {
					return c.ok, false, nil
				}
				// The first caller gave up (refused, or its context
				// ended); check for ourselves.
				continue
			case <-ctx.Done():
				return false, false, ctx.Err()
			}
		}
		if p.sources[source] >= p.maxPerSource {
			p.mu.Unlock()
			return false, false, ErrTooManyRequests
		}
		c := &pwCall{hash: hash, done: make(chan struct{})}
		p.inflight[k] = c
		p.sources[source]++
		p.mu.Unlock()

		err := p.acquire(ctx)
		if err == nil {
			c.ok = bcrypt.CompareHashAndPassword(hash, []byte(password)) == nil
			<-p.slots
		}
		p.mu.Lock()
		if p.sources[source]--; p.sources[source] == 0 {
			delete(p.sources, source)
		}
		if p.inflight[k] == c {
			delete(p.inflight, k)
		}
		if err == nil {
			cache := &p.bad
			if c.ok {
				cache = &p.ok
			}
			cache.put(k, hash, p.now())
		}
		c.err = err
		close(c.done)
		p.mu.Unlock()
		return c.ok, err == nil, err
	}
}

// precheck answers a check of (user, password) from source without
// making it, when it can: ErrAuthFailed when the password is remembered
// as wrong, ErrTooManyRequests when a check would be refused now (not
// remembered, not under way, and the source has its share or every slot
// runs and the line is full).
func (p *passwordChecker) precheck(source, user, password string, hash []byte) error {
	k := p.key(user, password)
	p.mu.Lock()
	defer p.mu.Unlock()
	if ok, hit := p.cachedLocked(k, hash); hit {
		if !ok {
			return ErrAuthFailed
		}
		return nil
	}
	if c := p.inflight[k]; c != nil && bytes.Equal(c.hash, hash) {
		return nil
	}
	if p.sources[source] >= p.maxPerSource || (len(p.slots) == cap(p.slots) && p.waiting >= p.maxWaiting) {
		return ErrTooManyRequests
	}
	return nil
}

// acquire takes a slot, waiting in line if the line has room.
func (p *passwordChecker) acquire(ctx context.Context) error {
	select {
	case p.slots <- struct{}{}:
		return nil
	default:
	}
	p.mu.Lock()
	if p.waiting >= p.maxWaiting {
		p.mu.Unlock()
		return ErrTooManyRequests
	}
	p.waiting++
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.waiting--
		p.mu.Unlock()
	}()
	select {
	case p.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// hash makes a bcrypt hash in a slot.
func (p *passwordChecker) hash(ctx context.Context, password string, cost int) ([]byte, error) {
	if err := p.acquire(ctx); err != nil {
		return nil, err
	}
	defer func() { <-p.slots }()
	return bcrypt.GenerateFromPassword([]byte(password), cost)
}

// sourceOf is the client address of the request in ctx ("" if unknown).
func sourceOf(ctx context.Context) string {
	c, _ := CredentialsFromContext(ctx)
	return c.Source
}

// PasswordCheck is a successful check: the auth revision it was made at
// and the hash it matched.
type PasswordCheck struct {
	Revision uint64
	hash     []byte
}

// CheckPassword checks name's password, waiting for a bcrypt slot until
// ctx ends. The client's address is taken from the credentials in ctx.
func (s *Store) CheckPassword(ctx context.Context, name, password string) (PasswordCheck, error) {
	s.mu.RLock()
	enabled, u, rev := s.enabled, s.users[name], s.revision
	s.mu.RUnlock()
	if !enabled {
		return PasswordCheck{}, ErrAuthNotEnabled
	}
	if u == nil {
		return PasswordCheck{}, ErrAuthFailed
	}
	if u.Options != nil && u.Options.NoPassword {
		return PasswordCheck{}, ErrNoPasswordUser
	}
	ok, compared, err := s.pw.check(ctx, sourceOf(ctx), name, password, u.Password)
	if err != nil {
		return PasswordCheck{}, err
	}
	if !ok {
		if compared {
			// Once per wrong password, not per repetition.
			s.lg.Info("invalid password", "user-name", name)
		}
		return PasswordCheck{}, ErrAuthFailed
	}
	return PasswordCheck{Revision: rev, hash: u.Password}, nil
}

// Recheck confirms a successful check after the auth revision moved: if
// the user still has the password hash that matched, the check stands at
// the current revision without running bcrypt again.
func (s *Store) Recheck(name string, c PasswordCheck) (PasswordCheck, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if !s.enabled {
		return PasswordCheck{}, ErrAuthNotEnabled
	}
	u := s.users[name]
	if u == nil || !bytes.Equal(u.Password, c.hash) {
		return PasswordCheck{}, ErrAuthFailed
	}
	return PasswordCheck{Revision: s.revision, hash: c.hash}, nil
}

// Precheck answers a login without checking the password when it can:
// ErrTooManyRequests if the check would be refused now, ErrAuthFailed if
// the password is remembered as wrong for the user's current one. It
// lets a member refuse a login before spending anything else on it (the
// read index a login waits for, to see the latest users). A password
// changed on another member a moment ago may be refused here until this
// member applies the change, if it was tried, and was wrong, just before.
func (s *Store) Precheck(ctx context.Context, name, password string) error {
	s.mu.RLock()
	enabled, u := s.enabled, s.users[name]
	s.mu.RUnlock()
	if !enabled || u == nil || (u.Options != nil && u.Options.NoPassword) {
		return nil
	}
	return s.pw.precheck(sourceOf(ctx), name, password, u.Password)
}
