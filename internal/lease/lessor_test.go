package lease

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func openDB(t *testing.T, fs vfs.FS) *pebble.DB {
	t.Helper()
	db, err := pebble.Open("db", &pebble.Options{FS: fs, FormatMajorVersion: pebble.FormatNewest, Logger: quietLogger{}})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func apply(t *testing.T, db *pebble.DB, fn func(b *pebble.Batch) error) {
	t.Helper()
	b := db.NewBatch()
	if err := fn(b); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		t.Fatal(err)
	}
}

func TestGrantRevokeAndPersistence(t *testing.T) {
	fs := vfs.NewMem()
	db := openDB(t, fs)
	le := New(Config{MinTTL: 2})
	apply(t, db, func(b *pebble.Batch) error {
		l, err := le.Grant(b, 7, 1)
		if err != nil {
			return err
		}
		if l.TTL != 2 {
			t.Errorf("TTL below the minimum: got %d, want it raised to 2", l.TTL)
		}
		if _, err := le.Grant(b, 7, 10); !errors.Is(err, ErrExists) {
			t.Errorf("duplicate grant: %v, want ErrExists", err)
		}
		if _, err := le.Grant(b, 8, MaxTTL+1); !errors.Is(err, ErrTTLTooLarge) {
			t.Errorf("huge TTL: %v, want ErrTTLTooLarge", err)
		}
		_, err = le.Grant(b, 9, 100)
		return err
	})
	le.Attach(9, []byte("b"))
	le.Attach(9, []byte("a"))
	le.Attach(12345, []byte("ignored")) // no such lease
	if !le.LeaseExists(9) || le.LeaseExists(8) {
		t.Fatalf("LeaseExists wrong")
	}
	if got := le.IDs(); !reflect.DeepEqual(got, []int64{7, 9}) {
		t.Fatalf("IDs %v", got)
	}
	apply(t, db, func(b *pebble.Batch) error { return le.Checkpoint(b, 9, 40) })

	// A new lessor over the same storage has the same leases (keys are
	// re-attached by the MVCC restore, not stored here).
	le2 := New(Config{MinTTL: 2})
	if err := le2.Load(db); err != nil {
		t.Fatal(err)
	}
	info, err := le2.Get(9, false)
	if err != nil || info.GrantedTTL != 100 || info.Remaining != 40 {
		t.Fatalf("reloaded lease 9: %+v, %v", info, err)
	}

	var keys []string
	apply(t, db, func(b *pebble.Batch) error {
		var err error
		keys, err = le.Revoke(b, 9)
		return err
	})
	if !reflect.DeepEqual(keys, []string{"a", "b"}) {
		t.Fatalf("revoke returned keys %v, want [a b] sorted", keys)
	}
	apply(t, db, func(b *pebble.Batch) error {
		if _, err := le.Revoke(b, 9); !errors.Is(err, ErrNotFound) {
			t.Errorf("second revoke: %v", err)
		}
		return nil
	})
	le3 := New(Config{})
	if err := le3.Load(db); err != nil {
		t.Fatal(err)
	}
	if got := le3.IDs(); !reflect.DeepEqual(got, []int64{7}) {
		t.Fatalf("after revoke and reload: %v", got)
	}
}

func TestExpiryOnlyOnPrimary(t *testing.T) {
	db := openDB(t, vfs.NewMem())
	clk := &fakeClock{now: time.Unix(1000, 0)}
	le := New(Config{MinTTL: 1, Clock: clk})
	apply(t, db, func(b *pebble.Batch) error {
		_, err := le.Grant(b, 1, 10)
		return err
	})
	clk.advance(time.Hour)
	if got := le.Expired(10, time.Second); got != nil {
		t.Fatalf("a secondary expired leases: %v", got)
	}
	if _, err := le.Renew(context.Background(), 1); !errors.Is(err, ErrNotPrimary) {
		t.Fatalf("renew on a secondary: %v", err)
	}

	le.Promote(2 * time.Second)
	clk.advance(11 * time.Second)
	if got := le.Expired(10, time.Second); len(got) != 0 {
		t.Fatalf("expired within TTL plus the promotion extension: %v", got)
	}
	clk.advance(2 * time.Second)
	if got := le.Expired(10, 3*time.Second); !reflect.DeepEqual(got, []int64{1}) {
		t.Fatalf("expired: %v, want [1]", got)
	}
	// Reported once, then again only after the retry interval.
	if got := le.Expired(10, 3*time.Second); len(got) != 0 {
		t.Fatalf("reported again before the retry: %v", got)
	}
	if _, err := le.Renew(context.Background(), 1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("renewing an expired lease: %v, want ErrNotFound", err)
	}
	clk.advance(3 * time.Second)
	if got := le.Expired(10, 3*time.Second); !reflect.DeepEqual(got, []int64{1}) {
		t.Fatalf("after the retry interval: %v", got)
	}
}

func TestRenewAndPromoteKeepAliveLeases(t *testing.T) {
	db := openDB(t, vfs.NewMem())
	clk := &fakeClock{now: time.Unix(1000, 0)}
	le := New(Config{MinTTL: 1, Clock: clk})
	le.Promote(0)
	apply(t, db, func(b *pebble.Batch) error {
		_, err := le.Grant(b, 1, 10)
		return err
	})
	for i := 0; i < 5; i++ {
		clk.advance(8 * time.Second)
		if ttl, err := le.Renew(context.Background(), 1); err != nil || ttl != 10 {
			t.Fatalf("renew %d: ttl %d err %v", i, ttl, err)
		}
		if got := le.Expired(10, time.Second); len(got) != 0 {
			t.Fatalf("a renewed lease expired: %v", got)
		}
	}
	_, remaining, err := le.TimeToLive(1, false)
	if err != nil || remaining != 10*time.Second {
		t.Fatalf("time to live after renew: %v %v", remaining, err)
	}
	// Leadership moves away and back: the lease gets its TTL afresh.
	le.Demote()
	clk.advance(9 * time.Second)
	le.Promote(time.Second)
	clk.advance(10 * time.Second)
	if got := le.Expired(10, time.Second); len(got) != 0 {
		t.Fatalf("expired right after promotion: %v", got)
	}
	clk.advance(2 * time.Second)
	if got := le.Expired(10, time.Second); !reflect.DeepEqual(got, []int64{1}) {
		t.Fatalf("not expired after TTL+extension: %v", got)
	}
}

func TestCheckpointShortensTheNextLeadersTTL(t *testing.T) {
	db := openDB(t, vfs.NewMem())
	clk := &fakeClock{now: time.Unix(1000, 0)}
	le := New(Config{MinTTL: 1, Clock: clk})
	le.Promote(0)
	apply(t, db, func(b *pebble.Batch) error {
		_, err := le.Grant(b, 1, 600)
		if err != nil {
			return err
		}
		_, err = le.Grant(b, 2, 60)
		return err
	})
	clk.advance(400 * time.Second)
	cps := le.Checkpoints(5 * time.Minute)
	if !reflect.DeepEqual(cps, map[int64]int64{1: 200}) {
		t.Fatalf("checkpoints %v, want only the long lease at 200s", cps)
	}
	apply(t, db, func(b *pebble.Batch) error { return le.Checkpoint(b, 1, cps[1]) })
	// A new leader starts from the checkpoint, not the full TTL.
	le.Demote()
	le.Promote(0)
	clk.advance(201 * time.Second)
	if got := le.Expired(10, time.Second); !reflect.DeepEqual(got, []int64{2, 1}) {
		t.Fatalf("expired %v, want both, the earlier expiry first", got)
	}
	// A renewal clears the checkpoint.
	if _, err := le.Renew(context.Background(), 1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("renew of an expired lease: %v", err)
	}
}

// TestRenewClearsTheCheckpointEverywhere renews a lease that has a
// checkpointed remaining TTL. The renewal must clear the checkpoint through
// raft (Config.Checkpoint), so that a lessor loaded afterwards from storage
// (a follower's, or the leader's own after a restart) gives the lease its
// full TTL when it becomes primary, not what was left at the checkpoint.
func TestRenewClearsTheCheckpointEverywhere(t *testing.T) {
	db := openDB(t, vfs.NewMem())
	clk := &fakeClock{now: time.Unix(1000, 0)}
	var le *Lessor
	var proposed []int64 // remaining TTLs sent through "raft"
	var failWith error
	le = New(Config{MinTTL: 1, Clock: clk, Checkpoint: func(ctx context.Context, id, remaining int64) error {
		if failWith != nil {
			return failWith
		}
		proposed = append(proposed, remaining)
		apply(t, db, func(b *pebble.Batch) error { return le.Checkpoint(b, id, remaining) })
		return nil
	}})
	le.Promote(0)
	apply(t, db, func(b *pebble.Batch) error {
		_, err := le.Grant(b, 1, 600)
		return err
	})
	clk.advance(400 * time.Second)
	cps := le.Checkpoints(5 * time.Minute)
	if !reflect.DeepEqual(cps, map[int64]int64{1: 200}) {
		t.Fatalf("checkpoints %v, want lease 1 at 200s", cps)
	}
	apply(t, db, func(b *pebble.Batch) error { return le.Checkpoint(b, 1, cps[1]) })

	// A renewal whose checkpoint cannot be cleared fails and renews nothing.
	failWith = errors.New("no leader")
	if _, err := le.Renew(context.Background(), 1); !errors.Is(err, failWith) {
		t.Fatalf("renew with the checkpoint proposal failing: %v, want it to wrap %v", err, failWith)
	}
	if _, left, _ := le.TimeToLive(1, false); left != 200*time.Second {
		t.Fatalf("a failed renewal left %v to live, want the 200s from before", left)
	}
	failWith = nil

	if ttl, err := le.Renew(context.Background(), 1); err != nil || ttl != 600 {
		t.Fatalf("renew: ttl %d, err %v", ttl, err)
	}
	if !reflect.DeepEqual(proposed, []int64{0}) {
		t.Fatalf("renewal proposed checkpoints %v, want one clearing it (0)", proposed)
	}
	// Nothing left to clear: the next renewal stays off raft.
	clk.advance(10 * time.Second)
	if _, err := le.Renew(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	if len(proposed) != 1 {
		t.Fatalf("a renewal without a checkpoint to clear went through raft: proposed %v in all", proposed)
	}

	// Another lessor loads the table from the same storage and becomes
	// primary, as a follower does when the leader dies.
	next := New(Config{MinTTL: 1, Clock: clk})
	if err := next.Load(db); err != nil {
		t.Fatal(err)
	}
	next.Promote(0)
	clk.advance(599 * time.Second)
	if got := next.Expired(10, time.Second); len(got) != 0 {
		t.Fatalf("the new primary expired %v 599s into a renewed 600s TTL: the old checkpoint survived the renewal", got)
	}
	clk.advance(2 * time.Second)
	if got := next.Expired(10, time.Second); !reflect.DeepEqual(got, []int64{1}) {
		t.Fatalf("expired %v after the full TTL, want [1]", got)
	}
}

type quietLogger struct{}

func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Fatalf(format string, args ...any) {
	panic(format)
}
