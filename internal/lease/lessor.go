// Package lease keeps the lease table: which leases exist, their TTLs, the
// keys attached to them, and, on the leader only, when each expires.
//
// The table itself (grant, revoke, checkpoint, attach, detach) changes only
// by applying raft entries, so every member holds the same leases. Time is
// the leader's alone: it renews leases on keep-alives, notices expiry and
// proposes the revocation through raft, so all members revoke together.
// A member that becomes leader gives every lease its remaining TTL afresh
// (plus an election timeout), so a leader change or a restart never expires
// a lease that clients kept alive; remaining TTLs are checkpointed through
// raft so that a lease nobody keeps alive does not get a whole new TTL
// either, and a renewal clears its lease's checkpoint through raft so that a
// lease kept alive is not cut short by an old one.
package lease

import (
	"container/heap"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/cairn-io/cairn/internal/mvcc"
	"github.com/cairn-io/cairn/internal/storage"
)

// MaxTTL is the largest TTL a lease may have, in seconds (etcd's).
const MaxTTL = 9000000000

// Sentinel errors. ErrNotFound is the store's, so that a put naming a
// missing lease and a keep-alive of one are the same error.
var (
	ErrNotFound    = mvcc.ErrLeaseNotFound
	ErrExists      = errors.New("lease already exists")
	ErrTTLTooLarge = errors.New("too large lease TTL")
	// ErrNotPrimary: the operation needs the leader's clock.
	ErrNotPrimary = errors.New("not a primary lessor")
)

// Clock is the lessor's time source; tests inject a fake one.
type Clock interface{ Now() time.Time }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// Config configures a Lessor.
type Config struct {
	// MinTTL is the smallest TTL granted, in seconds; shorter requests are
	// raised to it. etcd uses 1.5 election timeouts, rounded up.
	MinTTL int64
	// Clock defaults to the real clock.
	Clock Clock
	// Checkpoint records a remaining TTL of lease id through raft and
	// returns once this member applied it (which calls Lessor.Checkpoint).
	// Renew uses it to clear a checkpointed remaining TTL on every member,
	// as etcd does. When nil, Renew clears it on this member only.
	Checkpoint func(ctx context.Context, id, remaining int64) error
}

// Lease is one lease as the table holds it.
type Lease struct {
	ID int64
	// TTL is the granted TTL in seconds.
	TTL int64
	// RemainingTTL is the last checkpointed remaining TTL in seconds, 0 if
	// none: a new leader starts the lease from it instead of from TTL.
	RemainingTTL int64

	expiry  time.Time // zero: never (not primary)
	checkAt time.Time // when to look at the lease next: its expiry, or a retry after it
	keys    map[string]struct{}
	heapIdx int
}

// Keys returns the keys attached to the lease, sorted.
func (l *Lease) Keys() []string {
	out := make([]string, 0, len(l.keys))
	for k := range l.keys {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Lessor is the lease table.
type Lessor struct {
	mu      sync.RWMutex
	cfg     Config
	leases  map[int64]*Lease
	primary bool
	// expiries orders the leases by expiry while primary.
	expiries expiryHeap
}

// New returns an empty lessor. Load fills it from storage.
func New(cfg Config) *Lessor {
	if cfg.Clock == nil {
		cfg.Clock = realClock{}
	}
	if cfg.MinTTL <= 0 {
		cfg.MinTTL = 1
	}
	return &Lessor{cfg: cfg, leases: map[int64]*Lease{}}
}

// Load reads the leases persisted in db (keyspace 'l'). Key attachments are
// rebuilt by the MVCC store's restore through Attach.
func (le *Lessor) Load(db *pebble.DB) error {
	lo, hi := storage.PrefixBounds(storage.PrefixLease)
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return fmt.Errorf("lease: load: %w", err)
	}
	defer it.Close()
	le.mu.Lock()
	defer le.mu.Unlock()
	for it.First(); it.Valid(); it.Next() {
		id, err := storage.ParseIDKey(storage.PrefixLease, it.Key())
		if err != nil {
			return fmt.Errorf("lease: load: %w", err)
		}
		v := it.Value()
		if len(v) != 16 {
			return fmt.Errorf("lease: lease %x has a %d-byte record: %w", id, len(v), storage.ErrCorrupt)
		}
		l := &Lease{
			ID:           int64(id),
			TTL:          int64(binary.BigEndian.Uint64(v[0:8])),
			RemainingTTL: int64(binary.BigEndian.Uint64(v[8:16])),
			keys:         map[string]struct{}{},
			heapIdx:      -1,
		}
		le.leases[l.ID] = l
	}
	return it.Error()
}

func persist(b *pebble.Batch, l *Lease) error {
	var v [16]byte
	binary.BigEndian.PutUint64(v[0:8], uint64(l.TTL))
	binary.BigEndian.PutUint64(v[8:16], uint64(l.RemainingTTL))
	return b.Set(storage.IDKey(storage.PrefixLease, uint64(l.ID)), v[:], nil)
}

// Grant creates lease id with ttl seconds (raised to MinTTL), recording it
// in batch b, and returns it. Applied from raft.
func (le *Lessor) Grant(b *pebble.Batch, id, ttl int64) (*Lease, error) {
	if id == 0 {
		return nil, errors.New("lease: ID 0 is reserved")
	}
	if ttl > MaxTTL {
		return nil, ErrTTLTooLarge
	}
	le.mu.Lock()
	defer le.mu.Unlock()
	if _, ok := le.leases[id]; ok {
		return nil, ErrExists
	}
	ttl = max(ttl, le.cfg.MinTTL)
	l := &Lease{ID: id, TTL: ttl, keys: map[string]struct{}{}, heapIdx: -1}
	if err := persist(b, l); err != nil {
		return nil, fmt.Errorf("lease: grant: %w", err)
	}
	le.leases[id] = l
	if le.primary {
		le.refreshLocked(l, 0)
	}
	return l, nil
}

// Revoke removes lease id, recording it in batch b, and returns the keys
// that were attached to it: the caller deletes them in the same batch.
// Applied from raft.
func (le *Lessor) Revoke(b *pebble.Batch, id int64) ([]string, error) {
	le.mu.Lock()
	defer le.mu.Unlock()
	l, ok := le.leases[id]
	if !ok {
		return nil, ErrNotFound
	}
	keys := l.Keys()
	if err := b.Delete(storage.IDKey(storage.PrefixLease, uint64(id)), nil); err != nil {
		return nil, fmt.Errorf("lease: revoke: %w", err)
	}
	delete(le.leases, id)
	if l.heapIdx >= 0 {
		heap.Remove(&le.expiries, l.heapIdx)
	}
	return keys, nil
}

// Checkpoint records the remaining TTL of lease id. Applied from raft.
func (le *Lessor) Checkpoint(b *pebble.Batch, id, remaining int64) error {
	le.mu.Lock()
	defer le.mu.Unlock()
	l, ok := le.leases[id]
	if !ok {
		return nil
	}
	l.RemainingTTL = remaining
	if err := persist(b, l); err != nil {
		return fmt.Errorf("lease: checkpoint: %w", err)
	}
	if le.primary {
		le.refreshLocked(l, 0)
	}
	return nil
}

// LeaseExists implements mvcc.LeaseLookup.
func (le *Lessor) LeaseExists(id int64) bool {
	le.mu.RLock()
	defer le.mu.RUnlock()
	_, ok := le.leases[id]
	return ok
}

// Attach implements mvcc.LeaseIndex.
func (le *Lessor) Attach(id int64, key []byte) {
	le.mu.Lock()
	defer le.mu.Unlock()
	if l, ok := le.leases[id]; ok {
		l.keys[string(key)] = struct{}{}
	}
}

// Detach implements mvcc.LeaseIndex.
func (le *Lessor) Detach(id int64, key []byte) {
	le.mu.Lock()
	defer le.mu.Unlock()
	if l, ok := le.leases[id]; ok {
		delete(l.keys, string(key))
	}
}

// Info is a snapshot of one lease for TimeToLive.
type Info struct {
	ID         int64
	GrantedTTL int64
	// Remaining is the remaining TTL in seconds; on a member that is not
	// the leader it is the granted (or checkpointed) TTL.
	Remaining int64
	Keys      []string
}

// Get returns what is known about lease id.
func (le *Lessor) Get(id int64, withKeys bool) (Info, error) {
	le.mu.RLock()
	defer le.mu.RUnlock()
	l, ok := le.leases[id]
	if !ok {
		return Info{}, ErrNotFound
	}
	info := Info{ID: id, GrantedTTL: l.TTL, Remaining: le.remainingLocked(l)}
	if withKeys {
		info.Keys = l.Keys()
	}
	return info, nil
}

// IDs returns every lease ID, sorted.
func (le *Lessor) IDs() []int64 {
	le.mu.RLock()
	defer le.mu.RUnlock()
	out := make([]int64, 0, len(le.leases))
	for id := range le.leases {
		out = append(out, id)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func (le *Lessor) remainingLocked(l *Lease) int64 {
	if !le.primary || l.expiry.IsZero() {
		if l.RemainingTTL > 0 {
			return l.RemainingTTL
		}
		return l.TTL
	}
	d := l.expiry.Sub(le.cfg.Clock.Now())
	if d <= 0 {
		return 0
	}
	return int64(math.Ceil(d.Seconds()))
}

// Renew restarts lease id's TTL and returns it. Only the leader renews.
//
// A lease with a checkpointed remaining TTL has that checkpoint cleared
// through Config.Checkpoint first, before the renewal counts: otherwise
// the other members, and this one after a restart, would still hold the
// old remaining TTL, and a new leader would expire the lease early. Only
// leases with a checkpoint pay for a raft round, so a lease costs at most
// two entries per checkpoint interval.
func (le *Lessor) Renew(ctx context.Context, id int64) (int64, error) {
	le.mu.RLock()
	l, err := le.renewableLocked(id)
	clear := err == nil && le.cfg.Checkpoint != nil && l.RemainingTTL > 0
	le.mu.RUnlock()
	if err != nil {
		return 0, err
	}
	if clear {
		if err := le.cfg.Checkpoint(ctx, id, 0); err != nil {
			return 0, fmt.Errorf("lease: clear the checkpointed TTL of %x: %w", id, err)
		}
	}
	le.mu.Lock()
	defer le.mu.Unlock()
	// Leadership or the lease may have gone while the checkpoint was in
	// raft.
	if l, err = le.renewableLocked(id); err != nil {
		return 0, err
	}
	l.RemainingTTL = 0
	le.refreshLocked(l, 0)
	return l.TTL, nil
}

// renewableLocked returns lease id if this lessor may renew it.
func (le *Lessor) renewableLocked(id int64) (*Lease, error) {
	if !le.primary {
		return nil, ErrNotPrimary
	}
	l, ok := le.leases[id]
	if !ok {
		return nil, ErrNotFound
	}
	// A lease already past its expiry is being revoked; renewing it now
	// would resurrect it on this member only.
	if !l.expiry.IsZero() && !l.expiry.After(le.cfg.Clock.Now()) {
		return nil, ErrNotFound
	}
	return l, nil
}

// refreshLocked gives l a full remaining TTL from now, plus extend.
func (le *Lessor) refreshLocked(l *Lease, extend time.Duration) {
	ttl := l.TTL
	if l.RemainingTTL > 0 {
		ttl = l.RemainingTTL
	}
	l.expiry = le.cfg.Clock.Now().Add(extend + time.Duration(ttl)*time.Second)
	l.checkAt = l.expiry
	if l.heapIdx >= 0 {
		heap.Fix(&le.expiries, l.heapIdx)
	} else {
		heap.Push(&le.expiries, l)
	}
}

// Promote makes this lessor the primary (the member became leader): every
// lease starts its remaining TTL afresh, extended by extend (the time the
// election took, at most).
func (le *Lessor) Promote(extend time.Duration) {
	le.mu.Lock()
	defer le.mu.Unlock()
	le.primary = true
	le.expiries = le.expiries[:0]
	for _, l := range le.leases {
		l.heapIdx = -1
		le.refreshLocked(l, extend)
	}
}

// Demote makes this lessor a secondary: leases never expire here.
func (le *Lessor) Demote() {
	le.mu.Lock()
	defer le.mu.Unlock()
	le.primary = false
	for _, l := range le.leases {
		l.expiry = time.Time{}
		l.heapIdx = -1
	}
	le.expiries = le.expiries[:0]
}

// IsPrimary reports whether this lessor keeps time.
func (le *Lessor) IsPrimary() bool {
	le.mu.RLock()
	defer le.mu.RUnlock()
	return le.primary
}

// Expired returns up to limit leases whose TTL has run out, oldest first,
// and pushes their expiry retry later so that they are not reported again
// until the revocation had time to apply.
func (le *Lessor) Expired(limit int, retry time.Duration) []int64 {
	le.mu.Lock()
	defer le.mu.Unlock()
	if !le.primary {
		return nil
	}
	now := le.cfg.Clock.Now()
	var out []int64
	for len(out) < limit && len(le.expiries) > 0 {
		l := le.expiries[0]
		if l.checkAt.After(now) {
			break
		}
		out = append(out, l.ID)
		// It stays expired (Renew refuses it); look again only after
		// retry, in case the revocation is lost.
		l.checkAt = now.Add(retry)
		heap.Fix(&le.expiries, 0)
	}
	return out
}

// Checkpoints returns the remaining TTLs worth recording: leases with a TTL
// longer than interval whose remaining TTL has fallen below it.
func (le *Lessor) Checkpoints(interval time.Duration) map[int64]int64 {
	le.mu.RLock()
	defer le.mu.RUnlock()
	if !le.primary {
		return nil
	}
	out := map[int64]int64{}
	for id, l := range le.leases {
		if time.Duration(l.TTL)*time.Second <= interval {
			continue
		}
		rem := le.remainingLocked(l)
		if rem < l.TTL && rem != l.RemainingTTL {
			out[id] = rem
		}
	}
	return out
}

// expiryHeap is a min-heap of leases by expiry.
type expiryHeap []*Lease

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].checkAt.Before(h[j].checkAt) }
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx, h[j].heapIdx = i, j
}
func (h *expiryHeap) Push(x any) {
	l := x.(*Lease)
	l.heapIdx = len(*h)
	*h = append(*h, l)
}
func (h *expiryHeap) Pop() any {
	old := *h
	l := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	l.heapIdx = -1
	return l
}

// TimeToLive returns what is known about lease id and, on the primary, the
// time left before it expires (negative once expired).
func (le *Lessor) TimeToLive(id int64, withKeys bool) (Info, time.Duration, error) {
	le.mu.RLock()
	defer le.mu.RUnlock()
	l, ok := le.leases[id]
	if !ok {
		return Info{}, 0, ErrNotFound
	}
	info := Info{ID: id, GrantedTTL: l.TTL, Remaining: le.remainingLocked(l)}
	if withKeys {
		info.Keys = l.Keys()
	}
	if !le.primary || l.expiry.IsZero() {
		return info, time.Duration(info.Remaining) * time.Second, nil
	}
	return info, l.expiry.Sub(le.cfg.Clock.Now()), nil
}

// Reload replaces the table with the leases in db (after the member
// installed a snapshot from the leader). Keys are re-attached by the MVCC
// store's rebuild; on the primary every lease starts its TTL afresh.
func (le *Lessor) Reload(db *pebble.DB) error {
	le.mu.Lock()
	le.leases = map[int64]*Lease{}
	le.expiries = le.expiries[:0]
	primary := le.primary
	le.mu.Unlock()
	if err := le.Load(db); err != nil {
		return err
	}
	if primary {
		le.Promote(0)
	}
	return nil
}
