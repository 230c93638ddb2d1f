package locksmith

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Errors of the semaphore operations. A full semaphore is reported as a
// *FullError, which matches ErrFull with errors.Is.
var (
	// ErrExist is returned by Lock when the id already holds the semaphore.
	ErrExist = errors.New("holder exists")
	// ErrNotExist is returned by Unlock when the id does not hold it.
	ErrNotExist = errors.New("holder does not exist")
	// ErrFull is returned by Lock when every slot is held.
	ErrFull = errors.New("semaphore is full")
	// ErrEmptyID is returned for an empty holder id.
	ErrEmptyID = errors.New("empty holder id")
	// ErrNegativeMax is returned by SetMax for a negative maximum.
	ErrNegativeMax = errors.New("max must not be negative")
)

// FullError is a Lock refused because every slot of the group is held.
type FullError struct {
	Group   string
	Max     int
	Holders int
}

func (e *FullError) Error() string {
	return fmt.Sprintf("semaphore is at %d: group %q has %d of %d slots held", e.Max-e.Holders, e.Group, e.Holders, e.Max)
}

// Is makes errors.Is(err, ErrFull) true for a *FullError.
func (e *FullError) Is(target error) bool { return target == ErrFull }

// KV is what the semaphore needs from the store: transactions, which also
// carry its reads so that a read sees one revision. *clientv3.Client and
// clientv3.KV satisfy it.
type KV interface {
	Txn(ctx context.Context) clientv3.Txn
}

// Value is the JSON document at a group's semaphore key. The first three
// fields are locksmith's, with its meaning: Semaphore is the number of free
// slots (Max minus the holders; negative after set-max lowered Max below
// the holders), Holders the sorted holder ids. Leases is cairn's: the
// lease, in hex, of each holder bound to one.
type Value struct {
	Semaphore int               `json:"semaphore"`
	Max       int               `json:"max"`
	Holders   []string          `json:"holders"`
	Leases    map[string]string `json:"leases,omitempty"`
}

// newValue is the document of a group nobody has written yet: locksmith's
// initial one slot.
func newValue() Value { return Value{Semaphore: 1, Max: 1, Holders: []string{}} }

// normalize sorts and de-duplicates the holders, drops lease entries of ids
// that hold nothing and recomputes the free count from Max and Holders, so a
// document edited by hand cannot leave the three inconsistent.
func (v *Value) normalize() {
	if v.Holders == nil {
		v.Holders = []string{}
	}
	slices.Sort(v.Holders)
	v.Holders = slices.Compact(v.Holders)
	for id := range v.Leases {
		if _, ok := slices.BinarySearch(v.Holders, id); !ok {
			delete(v.Leases, id)
		}
	}
	if len(v.Leases) == 0 {
		v.Leases = nil
	}
	v.Semaphore = v.Max - len(v.Holders)
}

func (v *Value) holds(id string) bool {
	_, ok := slices.BinarySearch(v.Holders, id)
	return ok
}

// lease returns the lease holder id is bound to, or 0.
func (v *Value) lease(id string) (clientv3.LeaseID, bool) {
	s, ok := v.Leases[id]
	if !ok {
		return 0, false
	}
	l, err := parseLease(s)
	if err != nil {
		// An unreadable lease binds the holder to no lease that can be
		// alive: the holder counts as expired.
		return -1, true
	}
	return l, true
}

func (v *Value) add(id string, lease clientv3.LeaseID) {
	i, _ := slices.BinarySearch(v.Holders, id)
	v.Holders = slices.Insert(v.Holders, i, id)
	if lease != 0 {
		if v.Leases == nil {
			v.Leases = map[string]string{}
		}
		v.Leases[id] = formatLease(lease)
	}
	v.normalize()
}

func (v *Value) remove(id string) {
	if i, ok := slices.BinarySearch(v.Holders, id); ok {
		v.Holders = slices.Delete(v.Holders, i, i+1)
	}
	delete(v.Leases, id)
	v.normalize()
}

func (v Value) clone() Value {
	c := v
	c.Holders = slices.Clone(v.Holders)
	if v.Leases != nil {
		c.Leases = make(map[string]string, len(v.Leases))
		for k, l := range v.Leases {
			c.Leases[k] = l
		}
	}
	return c
}

// formatLease writes a lease ID as etcdctl prints it.
func formatLease(l clientv3.LeaseID) string { return fmt.Sprintf("%016x", uint64(l)) }

func parseLease(s string) (clientv3.LeaseID, error) {
	u, err := strconv.ParseUint(s, 16, 64)
	if err != nil {
		return 0, fmt.Errorf("bad lease %q: %w", s, err)
	}
	return clientv3.LeaseID(u), nil
}

// Holder is one holder of a semaphore.
type Holder struct {
	ID string `json:"id"`
	// Lease is the lease the holder is bound to; 0 for a holder that holds
	// until it is unlocked.
	Lease clientv3.LeaseID `json:"lease,omitempty"`
}

// Status is a group's semaphore as a reader sees it: lease-bound holders
// whose lease is gone no longer count.
type Status struct {
	Group string `json:"group"`
	// Max is the number of slots.
	Max int `json:"max"`
	// Available is Max minus the live holders; negative when Max was
	// lowered below them.
	Available int `json:"available"`
	// Holders are the live holders, sorted by id.
	Holders []Holder `json:"holders"`
	// Expired are holders whose lease is gone: they hold nothing, and the
	// next change of the semaphore drops them from the stored document.
	Expired []Holder `json:"expired,omitempty"`
	// Revision is the store revision the status was read at.
	Revision int64 `json:"revision"`
	// Error, from StatusAll only, says why the group's document could not
	// be read; the other fields are then zero.
	Error string `json:"error,omitempty"`
}

// snapshot is one group's keys read at one revision.
type snapshot struct {
	exists     bool  // the semaphore key exists
	modRev     int64 // its ModRevision, the CAS condition of a write
	rev        int64 // the store revision of the read
	stored     Value
	holderKeys map[string]clientv3.LeaseID // holder id -> lease of its key
}

// live returns the stored document without the holders whose lease is gone,
// and those holders. A holder bound to lease L is alive while its holder key
// exists and is attached to L: the store deletes the key when L expires or
// is revoked, and only a write that also changes the semaphore key creates
// it, so a dead holder can never come back under the same revision (see
// DESIGN.md).
func (s *snapshot) live() (Value, []Holder) {
	v := s.stored.clone()
	var expired []Holder
	for _, id := range s.stored.Holders {
		l, bound := v.lease(id)
		if !bound {
			continue
		}
		if kl, ok := s.holderKeys[id]; ok && kl == l && l > 0 {
			continue
		}
		expired = append(expired, Holder{ID: id, Lease: l})
		v.remove(id)
	}
	return v, expired
}

func (s *snapshot) status(group string) Status {
	v, expired := s.live()
	st := Status{Group: group, Max: v.Max, Available: v.Semaphore, Holders: []Holder{}, Expired: expired, Revision: s.rev}
	for _, id := range v.Holders {
		l, _ := v.lease(id)
		st.Holders = append(st.Holders, Holder{ID: id, Lease: l})
	}
	return st
}

// Semaphore is one group's reboot semaphore. Its methods are safe for
// concurrent use, and any number of Semaphores in any number of processes
// may work on the same group: every change is a compare-and-swap on the
// semaphore key, retried on conflict.
type Semaphore struct {
	kv   KV
	keys Keys
}

// NewSemaphore returns the semaphore of group ("" is DefaultGroup).
func NewSemaphore(kv KV, group string) *Semaphore {
	return &Semaphore{kv: kv, keys: GroupKeys(group)}
}

// Group is the semaphore's normalised group name.
func (s *Semaphore) Group() string { return s.keys.Group }

// Keys is the semaphore's key layout.
func (s *Semaphore) Keys() Keys { return s.keys }

// Status reads the semaphore. A group never written reads as locksmith's
// initial document: one slot, no holders.
func (s *Semaphore) Status(ctx context.Context) (Status, error) {
	snap, err := s.read(ctx)
	if err != nil {
		return Status{}, err
	}
	return snap.status(s.keys.Group), nil
}

// Lock makes id a holder. With lease non-zero the holder is bound to that
// lease and stops holding when the lease expires or is revoked; the lease
// must exist. Lock returns ErrExist if id already holds the semaphore (its
// binding is left as it was) and a *FullError if no slot is free.
func (s *Semaphore) Lock(ctx context.Context, id string, lease clientv3.LeaseID) error {
	if id == "" {
		return ErrEmptyID
	}
	_, err := s.update(ctx, func(v *Value) error {
		if v.holds(id) {
			return ErrExist
		}
		if v.Semaphore <= 0 {
			return &FullError{Group: s.keys.Group, Max: v.Max, Holders: len(v.Holders)}
		}
		v.add(id, lease)
		return nil
	})
	return err
}

// Unlock removes id from the holders; ErrNotExist if it holds nothing.
func (s *Semaphore) Unlock(ctx context.Context, id string) error {
	if id == "" {
		return ErrEmptyID
	}
	_, err := s.update(ctx, func(v *Value) error {
		if !v.holds(id) {
			return ErrNotExist
		}
		v.remove(id)
		return nil
	})
	return err
}

// RecursiveLock is FleetLock's lock: Lock, where holding already is success.
func (s *Semaphore) RecursiveLock(ctx context.Context, id string, lease clientv3.LeaseID) error {
	if err := s.Lock(ctx, id, lease); err != nil && !errors.Is(err, ErrExist) {
		return err
	}
	return nil
}

// UnlockIfHeld is FleetLock's unlock: Unlock, where not holding is success.
func (s *Semaphore) UnlockIfHeld(ctx context.Context, id string) error {
	if err := s.Unlock(ctx, id); err != nil && !errors.Is(err, ErrNotExist) {
		return err
	}
	return nil
}

// SetMax sets the number of slots and returns the previous one. The
// holders are kept: lowering Max below them only stops new holders.
func (s *Semaphore) SetMax(ctx context.Context, max int) (old int, err error) {
	if max < 0 {
		return 0, ErrNegativeMax
	}
	before, err := s.update(ctx, func(v *Value) error {
		v.Max = max
		v.normalize()
		return nil
	})
	return before.Max, err
}

// read fetches the semaphore key and the group's holder keys in one
// transaction, so both are from the same revision.
func (s *Semaphore) read(ctx context.Context) (*snapshot, error) {
	resp, err := s.kv.Txn(ctx).Then(
		clientv3.OpGet(s.keys.Semaphore),
		clientv3.OpGet(s.keys.Holders, clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return nil, fmt.Errorf("read semaphore %s: %w", s.keys.Semaphore, err)
	}
	if len(resp.Responses) != 2 {
		return nil, fmt.Errorf("read semaphore %s: %d responses to 2 reads", s.keys.Semaphore, len(resp.Responses))
	}
	snap := &snapshot{rev: resp.Header.GetRevision(), stored: newValue(), holderKeys: map[string]clientv3.LeaseID{}}
	if kvs := resp.Responses[0].GetResponseRange().GetKvs(); len(kvs) > 0 {
		snap.exists = true
		snap.modRev = kvs[0].ModRevision
		var v Value
		if err := json.Unmarshal(kvs[0].Value, &v); err != nil {
			return nil, fmt.Errorf("semaphore %s holds no valid document: %w", s.keys.Semaphore, err)
		}
		v.normalize()
		snap.stored = v
	}
	for _, kv := range resp.Responses[1].GetResponseRange().GetKvs() {
		group, kind, id := parseKey(string(kv.Key))
		if kind != holderKey || group != s.keys.Group {
			continue
		}
		snap.holderKeys[id] = clientv3.LeaseID(kv.Lease)
	}
	return snap, nil
}

// holderDoc is the value of a holder key; only its existence and lease
// matter, the document is for people browsing the keys.
type holderDoc struct {
	ID    string `json:"id"`
	Lease string `json:"lease"`
}

// update applies change to the live document (expired holders already
// dropped) and writes the result if the semaphore key is unchanged since it
// was read, retrying from a fresh read otherwise. It returns the live
// document change saw. An error from change ends it without a write.
func (s *Semaphore) update(ctx context.Context, change func(v *Value) error) (Value, error) {
	for {
		snap, err := s.read(ctx)
		if err != nil {
			return Value{}, err
		}
		before, _ := snap.live()
		after := before.clone()
		if err := change(&after); err != nil {
			return before, err
		}
		after.normalize()
		doc, err := json.Marshal(after)
		if err != nil {
			return before, err
		}
		cmp := clientv3.Compare(clientv3.ModRevision(s.keys.Semaphore), "=", snap.modRev)
		if !snap.exists {
			cmp = clientv3.Compare(clientv3.CreateRevision(s.keys.Semaphore), "=", 0)
		}
		ops := []clientv3.Op{clientv3.OpPut(s.keys.Semaphore, string(doc))}
		ops = append(ops, s.holderOps(snap, after)...)
		resp, err := s.kv.Txn(ctx).If(cmp).Then(ops...).Commit()
		if err != nil {
			return before, fmt.Errorf("write semaphore %s: %w", s.keys.Semaphore, err)
		}
		if resp.Succeeded {
			return before, nil
		}
		if err := ctx.Err(); err != nil {
			return before, err
		}
	}
}

// holderOps brings the holder keys in line with after: a key, attached to
// its lease, for each lease-bound holder, and no other.
func (s *Semaphore) holderOps(snap *snapshot, after Value) []clientv3.Op {
	var ops []clientv3.Op
	want := map[string]clientv3.LeaseID{}
	for _, id := range after.Holders {
		if l, bound := after.lease(id); bound && l > 0 {
			want[id] = l
		}
	}
	for _, id := range sortedKeys(want) {
		l := want[id]
		if have, ok := snap.holderKeys[id]; ok && have == l {
			continue
		}
		doc, _ := json.Marshal(holderDoc{ID: id, Lease: formatLease(l)})
		ops = append(ops, clientv3.OpPut(s.keys.Holder(id), string(doc), clientv3.WithLease(l)))
	}
	for _, id := range sortedKeys(snap.holderKeys) {
		if _, ok := want[id]; !ok {
			ops = append(ops, clientv3.OpDelete(s.keys.Holder(id)))
		}
	}
	return ops
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// StatusAll reads every group's semaphore at one revision, sorted by group
// with the default group first. Groups are those with a semaphore key.
func StatusAll(ctx context.Context, kv KV) ([]Status, error) {
	resp, err := kv.Txn(ctx).Then(clientv3.OpGet(KeyPrefix+"/", clientv3.WithPrefix())).Commit()
	if err != nil {
		return nil, fmt.Errorf("read semaphores: %w", err)
	}
	if len(resp.Responses) != 1 {
		return nil, fmt.Errorf("read semaphores: %d responses to 1 read", len(resp.Responses))
	}
	snaps := map[string]*snapshot{}
	invalid := map[string]error{}
	get := func(group string) *snapshot {
		if snaps[group] == nil {
			snaps[group] = &snapshot{rev: resp.Header.GetRevision(), stored: newValue(), holderKeys: map[string]clientv3.LeaseID{}}
		}
		return snaps[group]
	}
	for _, kv := range resp.Responses[0].GetResponseRange().GetKvs() {
		group, kind, id := parseKey(string(kv.Key))
		switch kind {
		case semaphoreKey:
			var v Value
			if err := json.Unmarshal(kv.Value, &v); err != nil {
				invalid[group] = fmt.Errorf("semaphore %s holds no valid document: %w", kv.Key, err)
			}
			v.normalize()
			snap := get(group)
			snap.exists, snap.modRev, snap.stored = true, kv.ModRevision, v
		case holderKey:
			get(group).holderKeys[id] = clientv3.LeaseID(kv.Lease)
		}
	}
	var out []Status
	for _, group := range sortedKeys(snaps) {
		switch {
		case invalid[group] != nil:
			out = append(out, Status{Group: group, Holders: []Holder{}, Revision: resp.Header.GetRevision(), Error: invalid[group].Error()})
		case snaps[group].exists:
			out = append(out, snaps[group].status(group))
		}
	}
	slices.SortStableFunc(out, func(a, b Status) int {
		switch {
		case a.Group == b.Group:
			return 0
		case a.Group == DefaultGroup:
			return -1
		case b.Group == DefaultGroup:
			return 1
		}
		return 0
	})
	return out, nil
}
