package locksmith_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-io/cairn/internal/locksmith"
)

// fakeClock is a Clock that moves only when the test moves it.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []*waiter
}

type waiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock(now time.Time) *fakeClock { return &fakeClock{now: now} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := &waiter{at: c.now.Add(d), ch: make(chan time.Time, 1)}
	if d <= 0 {
		w.ch <- c.now
		return w.ch
	}
	c.waiters = append(c.waiters, w)
	return w.ch
}

// set moves the clock to t and fires every waiter due by then.
func (c *fakeClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(t) {
			w.ch <- t
		} else {
			kept = append(kept, w)
		}
	}
	c.waiters = kept
}

func (c *fakeClock) advance(d time.Duration) { c.set(c.Now().Add(d)) }

// next is the earliest pending deadline.
func (c *fakeClock) next() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.waiters) == 0 {
		return time.Time{}, false
	}
	earliest := c.waiters[0].at
	for _, w := range c.waiters[1:] {
		if w.at.Before(earliest) {
			earliest = w.at
		}
	}
	return earliest, true
}

// pending is the number of waiters.
func (c *fakeClock) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.waiters)
}

// drive runs the daemon's time forward until cond holds: whenever the
// daemon waits on the clock it jumps to the earliest deadline, never past
// limit (the zero time: no limit). It fails the test after 10s of real time.
func drive(t *testing.T, c *fakeClock, limit time.Time, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s (clock at %v, %d waiters)", what, c.Now(), c.pending())
		}
		if at, ok := c.next(); ok && (limit.IsZero() || !at.After(limit)) {
			c.set(at)
			continue
		}
		time.Sleep(time.Millisecond)
	}
}

// waitFor polls cond in real time for up to 10s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// fakeLocker is an in-memory semaphore recording every call with the fake
// clock's time.
type fakeLocker struct {
	mu      sync.Mutex
	clock   *fakeClock
	max     int
	holders map[string]clientv3.LeaseID
	calls   []lockCall
	// lockHook, if set, runs inside Lock before it decides; it may block.
	lockHook func()
}

type lockCall struct {
	op   string // "lock" or "unlock"
	id   string
	at   time.Time
	err  error
	held []string // the holders after the call
}

func newFakeLocker(c *fakeClock, max int) *fakeLocker {
	return &fakeLocker{clock: c, max: max, holders: map[string]clientv3.LeaseID{}}
}

func (l *fakeLocker) Lock(ctx context.Context, id string, lease clientv3.LeaseID) error {
	l.mu.Lock()
	hook := l.lockHook
	l.mu.Unlock()
	if hook != nil {
		hook()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var err error
	switch {
	case hasKey(l.holders, id):
		err = locksmith.ErrExist
	case len(l.holders) >= l.max:
		err = &locksmith.FullError{Group: "fake", Max: l.max, Holders: len(l.holders)}
	default:
		l.holders[id] = lease
	}
	l.calls = append(l.calls, lockCall{op: "lock", id: id, at: l.clock.Now(), err: err, held: l.heldLocked()})
	return err
}

func (l *fakeLocker) Unlock(ctx context.Context, id string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var err error
	switch {
	case !hasKey(l.holders, id):
		err = locksmith.ErrNotExist
	default:
		delete(l.holders, id)
	}
	l.calls = append(l.calls, lockCall{op: "unlock", id: id, at: l.clock.Now(), err: err, held: l.heldLocked()})
	return err
}

func hasKey(m map[string]clientv3.LeaseID, k string) bool { _, ok := m[k]; return ok }

func (l *fakeLocker) heldLocked() []string {
	var ids []string
	for id := range l.holders {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

func (l *fakeLocker) held() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.heldLocked()
}

func (l *fakeLocker) holds(id string) bool { return slices.Contains(l.held(), id) }

func (l *fakeLocker) setHolders(ids ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.holders = map[string]clientv3.LeaseID{}
	for _, id := range ids {
		l.holders[id] = 0
	}
}

func (l *fakeLocker) lease(id string) clientv3.LeaseID {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.holders[id]
}

func (l *fakeLocker) history() []lockCall {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.calls)
}

// actions is the history without the unlocks that found nothing to
// release (the daemon's release at start).
func (l *fakeLocker) actions() []lockCall {
	var out []lockCall
	for _, c := range l.history() {
		if c.op == "unlock" && errors.Is(c.err, locksmith.ErrNotExist) {
			continue
		}
		out = append(out, c)
	}
	return out
}

// lockCalls is the history of lock calls alone.
func (l *fakeLocker) lockCalls() []lockCall {
	var out []lockCall
	for _, c := range l.history() {
		if c.op == "lock" {
			out = append(out, c)
		}
	}
	return out
}

// successfulLocks are the times of the lock calls that took the lock.
func (l *fakeLocker) successfulLocks() []time.Time {
	var at []time.Time
	for _, c := range l.history() {
		if c.op == "lock" && c.err == nil {
			at = append(at, c.at)
		}
	}
	return at
}

// fakeLeases records the lease calls.
type fakeLeases struct {
	mu      sync.Mutex
	next    clientv3.LeaseID
	live    map[clientv3.LeaseID]bool
	renewed map[clientv3.LeaseID]int
	revoked []clientv3.LeaseID
}

func newFakeLeases() *fakeLeases {
	return &fakeLeases{next: 0x100, live: map[clientv3.LeaseID]bool{}, renewed: map[clientv3.LeaseID]int{}}
}

func (f *fakeLeases) Grant(ctx context.Context, ttl int64) (*clientv3.LeaseGrantResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next++
	f.live[f.next] = true
	return &clientv3.LeaseGrantResponse{ID: f.next, TTL: ttl}, nil
}

func (f *fakeLeases) Revoke(ctx context.Context, id clientv3.LeaseID) (*clientv3.LeaseRevokeResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.live[id] {
		return nil, rpctypes.ErrLeaseNotFound
	}
	delete(f.live, id)
	f.revoked = append(f.revoked, id)
	return &clientv3.LeaseRevokeResponse{}, nil
}

func (f *fakeLeases) KeepAliveOnce(ctx context.Context, id clientv3.LeaseID) (*clientv3.LeaseKeepAliveResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.live[id] {
		return nil, rpctypes.ErrLeaseNotFound
	}
	f.renewed[id]++
	return &clientv3.LeaseKeepAliveResponse{ID: id, TTL: 30}, nil
}

func (f *fakeLeases) renewals(id clientv3.LeaseID) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.renewed[id]
}

func (f *fakeLeases) wasRevoked(id clientv3.LeaseID) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Contains(f.revoked, id)
}

// flag is a need, health or failure switch shared with a daemon.
type flag struct {
	mu sync.Mutex
	on bool
	n  int // how often it was read
}

func (f *flag) set(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.on = on
}

func (f *flag) get() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	return f.on
}

func (f *flag) reads() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

func (f *flag) need() locksmith.NeedCheck {
	return func(context.Context) (bool, string, error) { return f.get(), "test", nil }
}

func (f *flag) healthy() func(context.Context) error {
	return func(context.Context) error {
		if f.get() {
			return nil
		}
		return errors.New("not healthy yet")
	}
}

// rebooter records reboot calls and can fail them.
type rebooter struct {
	mu    sync.Mutex
	clock *fakeClock
	at    []time.Time
	fail  []error // errors to return, in order, before succeeding
}

func (r *rebooter) reboot(context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.at = append(r.at, r.clock.Now())
	if len(r.fail) > 0 {
		err := r.fail[0]
		r.fail = r.fail[1:]
		return err
	}
	return nil
}

func (r *rebooter) calls() []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.at)
}

func (r *rebooter) count() int { return len(r.calls()) }

func (c lockCall) String() string {
	return fmt.Sprintf("%s %s at %s: %v -> %v", c.op, c.id, c.at.Format(time.RFC3339), c.err, c.held)
}
