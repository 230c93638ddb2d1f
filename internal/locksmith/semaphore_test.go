package locksmith_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-io/cairn/internal/locksmith"
	"github.com/cairn-io/cairn/tests/framework"
)

// The semaphore tests run against a real cairn member and against etcd
// 3.6, which proves the semaphore uses nothing but the public v3 API.
var backends = []struct {
	name   string
	binary func(testing.TB) string
}{
	{"cairn", framework.CairnBinary},
	{"etcd", framework.EtcdBinary},
}

func TestSemaphore(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			cli := framework.Start(t, framework.Config{Binary: b.binary(t)}).Client(t)
			t.Run("Basics", func(t *testing.T) { testBasics(t, cli) })
			t.Run("KeyLayout", func(t *testing.T) { testKeyLayout(t, cli) })
			t.Run("LocksmithDocument", func(t *testing.T) { testLocksmithDocument(t, cli) })
			t.Run("LeaseExpiry", func(t *testing.T) { testLeaseExpiry(t, cli) })
			t.Run("LeaseRevokeAndMissing", func(t *testing.T) { testLeaseRevokeAndMissing(t, cli) })
			t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, cli) })
			t.Run("ConcurrentRevoke", func(t *testing.T) { testConcurrentRevoke(t, cli) })
			t.Run("StatusAllAndMetrics", func(t *testing.T) { testStatusAllAndMetrics(t, cli) })
		})
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// stored returns the raw value of key, "" if absent.
func stored(t *testing.T, cli *clientv3.Client, key string) string {
	t.Helper()
	resp, err := cli.Get(ctxT(t), key)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) == 0 {
		return ""
	}
	return string(resp.Kvs[0].Value)
}

func mustStatus(t *testing.T, s *locksmith.Semaphore) locksmith.Status {
	t.Helper()
	st, err := s.Status(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func ids(hs []locksmith.Holder) []string {
	out := []string{}
	for _, h := range hs {
		out = append(out, h.ID)
	}
	return out
}

func testBasics(t *testing.T, cli *clientv3.Client) {
	ctx := ctxT(t)
	s := locksmith.NewSemaphore(cli, "basics")
	if st := mustStatus(t, s); st.Max != 1 || st.Available != 1 || len(st.Holders) != 0 {
		t.Fatalf("fresh group: %+v", st)
	}
	if stored(t, cli, s.Keys().Semaphore) != "" {
		t.Fatal("reading a group wrote it")
	}
	if err := s.Lock(ctx, "a", 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Lock(ctx, "a", 0); !errors.Is(err, locksmith.ErrExist) {
		t.Fatalf("second lock by a: %v, want ErrExist", err)
	}
	if err := s.RecursiveLock(ctx, "a", 0); err != nil {
		t.Fatalf("recursive lock: %v", err)
	}
	err := s.Lock(ctx, "b", 0)
	var full *locksmith.FullError
	if !errors.Is(err, locksmith.ErrFull) || !errors.As(err, &full) || full.Max != 1 || full.Holders != 1 {
		t.Fatalf("lock of a full semaphore: %v", err)
	}
	if got, want := err.Error(), `semaphore is at 0: group "basics" has 1 of 1 slots held`; got != want {
		t.Fatalf("error = %q, want %q", got, want)
	}
	old, err := s.SetMax(ctx, 2)
	if err != nil || old != 1 {
		t.Fatalf("SetMax = %d, %v", old, err)
	}
	if err := s.Lock(ctx, "b", 0); err != nil {
		t.Fatal(err)
	}
	if got, want := stored(t, cli, s.Keys().Semaphore), `{"semaphore":0,"max":2,"holders":["a","b"]}`; got != want {
		t.Fatalf("stored %s, want %s", got, want)
	}
	// Lowering max below the holders keeps them and goes negative, as
	// locksmith's set-max did.
	if old, err := s.SetMax(ctx, 1); err != nil || old != 2 {
		t.Fatalf("SetMax = %d, %v", old, err)
	}
	if st := mustStatus(t, s); st.Available != -1 || !slices.Equal(ids(st.Holders), []string{"a", "b"}) {
		t.Fatalf("after set-max 1: %+v", st)
	}
	if err := s.Unlock(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := s.Unlock(ctx, "a"); !errors.Is(err, locksmith.ErrNotExist) {
		t.Fatalf("second unlock: %v, want ErrNotExist", err)
	}
	if err := s.UnlockIfHeld(ctx, "a"); err != nil {
		t.Fatalf("UnlockIfHeld of nothing: %v", err)
	}
	if err := s.Lock(ctx, "", 0); !errors.Is(err, locksmith.ErrEmptyID) {
		t.Fatalf("empty id: %v", err)
	}
	if _, err := s.SetMax(ctx, -1); !errors.Is(err, locksmith.ErrNegativeMax) {
		t.Fatalf("negative max: %v", err)
	}
	if got, want := stored(t, cli, s.Keys().Semaphore), `{"semaphore":0,"max":1,"holders":["b"]}`; got != want {
		t.Fatalf("stored %s, want %s", got, want)
	}
}

func testKeyLayout(t *testing.T, cli *clientv3.Client) {
	ctx := ctxT(t)
	for group, key := range map[string]string{
		"":        "coreos.com/updateengine/rebootlock/semaphore",
		"default": "coreos.com/updateengine/rebootlock/semaphore",
		"workers": "coreos.com/updateengine/rebootlock/groups/workers/semaphore",
		"a b/c":   "coreos.com/updateengine/rebootlock/groups/a+b%2Fc/semaphore",
	} {
		if got := locksmith.GroupKeys(group).Semaphore; got != key {
			t.Errorf("group %q: key %s, want %s", group, got, key)
		}
	}
	// "" and "default" are one semaphore.
	if err := locksmith.NewSemaphore(cli, "").Lock(ctx, "layout", 0); err != nil {
		t.Fatal(err)
	}
	if err := locksmith.NewSemaphore(cli, "default").Lock(ctx, "layout", 0); !errors.Is(err, locksmith.ErrExist) {
		t.Fatalf("lock in default after lock in \"\": %v", err)
	}
	if err := locksmith.NewSemaphore(cli, "default").Unlock(ctx, "layout"); err != nil {
		t.Fatal(err)
	}
	s := locksmith.NewSemaphore(cli, "a b/c")
	lease, err := cli.Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Lock(ctx, "node/1", lease.ID); err != nil {
		t.Fatal(err)
	}
	resp, err := cli.Get(ctx, "coreos.com/updateengine/rebootlock/groups/a+b%2Fc/holders/node%2F1")
	if err != nil || len(resp.Kvs) != 1 || resp.Kvs[0].Lease != int64(lease.ID) {
		t.Fatalf("holder key: %v %v", resp, err)
	}
	want := fmt.Sprintf(`{"semaphore":0,"max":1,"holders":["node/1"],"leases":{"node/1":"%016x"}}`, lease.ID)
	if got := stored(t, cli, s.Keys().Semaphore); got != want {
		t.Fatalf("stored %s, want %s", got, want)
	}
}

// testLocksmithDocument starts from documents as locksmith wrote them.
func testLocksmithDocument(t *testing.T, cli *clientv3.Client) {
	ctx := ctxT(t)
	s := locksmith.NewSemaphore(cli, "legacy")
	if _, err := cli.Put(ctx, s.Keys().Semaphore, `{"semaphore":1,"max":1,"holders":null}`); err != nil {
		t.Fatal(err)
	}
	if err := s.Lock(ctx, "69d27b356a94476da859461d3a3bc6fd", 0); err != nil {
		t.Fatal(err)
	}
	// A hand-edited document whose counts disagree: max and the holders
	// are the truth.
	if _, err := cli.Put(ctx, s.Keys().Semaphore, `{"semaphore":5,"max":3,"holders":["z","a","a"]}`); err != nil {
		t.Fatal(err)
	}
	st := mustStatus(t, s)
	if st.Available != 1 || !slices.Equal(ids(st.Holders), []string{"a", "z"}) {
		t.Fatalf("status of a hand-edited document: %+v", st)
	}
	if err := s.Lock(ctx, "m", 0); err != nil {
		t.Fatal(err)
	}
	if got, want := stored(t, cli, s.Keys().Semaphore), `{"semaphore":0,"max":3,"holders":["a","m","z"]}`; got != want {
		t.Fatalf("stored %s, want %s", got, want)
	}
	if _, err := cli.Put(ctx, s.Keys().Semaphore, `not json`); err != nil {
		t.Fatal(err)
	}
	if err := s.Lock(ctx, "n", 0); err == nil || !strings.Contains(err.Error(), "no valid document") {
		t.Fatalf("lock over garbage: %v", err)
	}
	if got := stored(t, cli, s.Keys().Semaphore); got != "not json" {
		t.Fatalf("garbage overwritten with %s", got)
	}
}

// testLeaseExpiry: a holder bound to a lease nobody renews frees its slot
// once the lease expires; a holder bound to none keeps its slot.
func testLeaseExpiry(t *testing.T, cli *clientv3.Client) {
	ctx := ctxT(t)
	s := locksmith.NewSemaphore(cli, "expiry")
	if _, err := s.SetMax(ctx, 2); err != nil {
		t.Fatal(err)
	}
	lease, err := cli.Grant(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Lock(ctx, "dies", lease.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.Lock(ctx, "stays", 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Lock(ctx, "third", 0); !errors.Is(err, locksmith.ErrFull) {
		t.Fatalf("third lock: %v, want full", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	var st locksmith.Status
	for {
		st = mustStatus(t, s)
		if len(st.Expired) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the lease-bound holder never expired: %+v", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !slices.Equal(ids(st.Holders), []string{"stays"}) || !slices.Equal(ids(st.Expired), []string{"dies"}) || st.Available != 1 {
		t.Fatalf("after the lease expired: %+v", st)
	}
	// The stored document still names the dead holder until a change.
	if got := stored(t, cli, s.Keys().Semaphore); !strings.Contains(got, `"dies"`) {
		t.Fatalf("stored %s", got)
	}
	// That change is the next lock, which takes the freed slot.
	if err := s.Lock(ctx, "third", 0); err != nil {
		t.Fatal(err)
	}
	if got, want := stored(t, cli, s.Keys().Semaphore), `{"semaphore":0,"max":2,"holders":["stays","third"]}`; got != want {
		t.Fatalf("stored %s, want %s", got, want)
	}
	if st := mustStatus(t, s); len(st.Expired) != 0 || !slices.Equal(ids(st.Holders), []string{"stays", "third"}) {
		t.Fatalf("status %+v", st)
	}
	// The holder key went with the lease.
	if got := stored(t, cli, s.Keys().Holder("dies")); got != "" {
		t.Fatalf("holder key of the expired holder: %s", got)
	}
}

func testLeaseRevokeAndMissing(t *testing.T, cli *clientv3.Client) {
	ctx := ctxT(t)
	s := locksmith.NewSemaphore(cli, "revoke")
	lease, err := cli.Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Lock(ctx, "a", lease.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.Lock(ctx, "b", 0); !errors.Is(err, locksmith.ErrFull) {
		t.Fatalf("lock b: %v", err)
	}
	if _, err := cli.Revoke(ctx, lease.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.Lock(ctx, "b", 0); err != nil {
		t.Fatalf("lock b after revoking a's lease: %v", err)
	}
	// Binding to a lease that does not exist fails and changes nothing.
	before := stored(t, cli, s.Keys().Semaphore)
	if _, err := s.SetMax(ctx, 2); err != nil {
		t.Fatal(err)
	}
	before = stored(t, cli, s.Keys().Semaphore)
	if err := s.Lock(ctx, "c", lease.ID); err == nil {
		t.Fatal("lock bound to a revoked lease succeeded")
	}
	if got := stored(t, cli, s.Keys().Semaphore); got != before {
		t.Fatalf("a failed lock changed the document: %s -> %s", before, got)
	}
	// A holder that locks again after its lease died gets a new binding.
	lease2, err := cli.Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Lock(ctx, "c", lease2.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Revoke(ctx, lease2.ID); err != nil {
		t.Fatal(err)
	}
	lease3, err := cli.Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Lock(ctx, "c", lease3.ID); err != nil {
		t.Fatalf("relock after the lease died: %v", err)
	}
	st := mustStatus(t, s)
	if len(st.Holders) != 2 || st.Holders[1].ID != "c" || st.Holders[1].Lease != lease3.ID {
		t.Fatalf("status %+v", st)
	}
	if err := s.Unlock(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	if got := stored(t, cli, s.Keys().Holder("c")); got != "" {
		t.Fatalf("holder key after unlock: %s", got)
	}
}

// testConcurrent hammers one group with max 2 from many goroutines, half of
// them bound to leases, and checks every revision of the semaphore key: it
// never lists more than 2 holders, and each successful Lock and Unlock is
// exactly one write (no update is lost or doubled).
func testConcurrent(t *testing.T, cli *clientv3.Client) {
	ctx := ctxT(t)
	const workers, rounds, slots = 8, 10, 2
	s, start, watch := watchedSemaphore(t, ctx, cli, "concurrent", slots)

	var inside, peak atomic.Int32
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("node-%d", w)
			sem := locksmith.NewSemaphore(cli, "concurrent")
			var lease clientv3.LeaseID
			if w%2 == 1 {
				resp, err := cli.Grant(ctx, 120)
				if err != nil {
					t.Error(err)
					return
				}
				lease = resp.ID
			}
			for range rounds {
				for {
					err := sem.Lock(ctx, id, lease)
					if err == nil {
						break
					}
					if !errors.Is(err, locksmith.ErrFull) {
						t.Errorf("%s: lock: %v", id, err)
						return
					}
					time.Sleep(time.Millisecond) // backoff between retries
				}
				n := inside.Add(1)
				for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
				}
				if n > slots {
					t.Errorf("%d holders at once", n)
				}
				// The work done under the lock: a read that must list
				// this holder among at most two.
				st, err := sem.Status(ctx)
				if err != nil || !slices.Contains(ids(st.Holders), id) || len(st.Holders) > slots {
					t.Errorf("%s: status under the lock: %+v, %v", id, st, err)
				}
				inside.Add(-1)
				if err := sem.Unlock(ctx, id); err != nil {
					t.Errorf("%s: unlock: %v", id, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	end, err := cli.Get(ctx, s.Keys().Semaphore)
	if err != nil {
		t.Fatal(err)
	}
	writes := semaphoreWrites(t, watch, 2*workers*rounds)
	puts, most := len(writes), 0
	for _, w := range writes {
		if len(w.Holders) > slots || w.Semaphore != slots-len(w.Holders) || w.Max != slots {
			t.Fatalf("revision %d: %s", w.rev, w.raw)
		}
		most = max(most, len(w.Holders))
	}
	if puts != 2*workers*rounds || end.Kvs[0].Version != start.Kvs[0].Version+int64(puts) {
		t.Fatalf("%d writes (version %d -> %d) for %d locks and unlocks", puts, start.Kvs[0].Version, end.Kvs[0].Version, workers*rounds)
	}
	if most != slots {
		t.Fatalf("never more than %d holders at once: the test did not contend", most)
	}
	t.Logf("%d writes, peak %d holders in the document, %d in the critical section", puts, most, peak.Load())
	if got, want := string(end.Kvs[0].Value), `{"semaphore":2,"max":2,"holders":[]}`; got != want {
		t.Fatalf("final %s, want %s", got, want)
	}
}

// testConcurrentRevoke is testConcurrent with holders dying while they
// hold a slot, which is what DESIGN.md's safety argument is about: a
// revoker goroutine revokes the leases of workers inside the critical
// section while the others contend for their slots. The ground truth is who
// is really inside: a worker enters after its Lock returned and leaves
// before it calls Unlock, or, if its lease is revoked, before Revoke is
// called. Both are inside the span in which the store counts it as a
// holder, so with a correct semaphore the count never exceeds max. Every
// revision of the semaphore key is checked as well.
func testConcurrentRevoke(t *testing.T, cli *clientv3.Client) {
	ctx := ctxT(t)
	const workers, rounds, slots = 8, 12, 2
	const group = "concurrent-revoke"
	s, start, watch := watchedSemaphore(t, ctx, cli, group, slots)

	// worker is what the revoker and a worker share: whether the worker
	// is inside and the lease it holds with.
	type worker struct {
		id     string
		mu     sync.Mutex
		inside bool
		lease  clientv3.LeaseID
	}
	ws := make([]*worker, workers)
	for i := range ws {
		ws[i] = &worker{id: fmt.Sprintf("node-%d", i)}
	}
	// revoked records each revocation of a held slot with the revision
	// at which the store deleted the holder's key.
	type revocation struct {
		id  string
		rev int64
	}
	var revokedMu sync.Mutex
	var revoked []revocation
	var inside, peak, locks, unlocks, revokes, deadUnlocks atomic.Int32
	enter := func(id string) {
		n := inside.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		if n > slots {
			t.Errorf("%s entered with %d inside, max %d", id, n, slots)
		}
	}

	stopRevoker := make(chan struct{})
	revokerDone := make(chan struct{})
	go func() {
		defer close(revokerDone)
		for i := 0; ; i++ {
			select {
			case <-stopRevoker:
				return
			default:
			}
			w := ws[(i*5)%workers] // every worker in turn, in an odd order
			w.mu.Lock()
			if w.inside && w.lease != 0 {
				w.inside = false
				inside.Add(-1) // it leaves now: Revoke is still to come
				resp, err := cli.Revoke(ctx, w.lease)
				if err != nil {
					t.Errorf("revoke: %v", err)
				} else {
					revokedMu.Lock()
					revoked = append(revoked, revocation{id: w.id, rev: resp.Header.Revision})
					revokedMu.Unlock()
				}
				w.lease = 0
				revokes.Add(1)
			}
			w.mu.Unlock()
			time.Sleep(200 * time.Microsecond) // pace the revoker
		}
	}()

	var wg sync.WaitGroup
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := ws[i]
			id := w.id
			bound := i%4 != 0 // two workers hold without a lease
			sem := locksmith.NewSemaphore(cli, group)
			for range rounds {
				w.mu.Lock()
				if bound && w.lease == 0 {
					resp, err := cli.Grant(ctx, 120)
					if err != nil {
						w.mu.Unlock()
						t.Error(err)
						return
					}
					w.lease = resp.ID
				}
				lease := w.lease
				w.mu.Unlock()
				for {
					err := sem.Lock(ctx, id, lease)
					if err == nil {
						break
					}
					if !errors.Is(err, locksmith.ErrFull) {
						t.Errorf("%s: lock: %v", id, err)
						return
					}
					time.Sleep(time.Millisecond) // backoff between retries
				}
				locks.Add(1)
				w.mu.Lock()
				w.inside = true
				enter(id)
				w.mu.Unlock()
				// The work done under the lock: a read that lists at
				// most max live holders.
				st, err := sem.Status(ctx)
				if err != nil || len(st.Holders) > slots {
					t.Errorf("%s: status under the lock: %+v, %v", id, st, err)
				}
				w.mu.Lock()
				held := w.inside
				if held {
					w.inside = false
					inside.Add(-1)
				}
				w.mu.Unlock()
				err = sem.Unlock(ctx, id)
				switch {
				case held && err != nil:
					t.Errorf("%s: unlock: %v", id, err)
					return
				case held:
					unlocks.Add(1)
				case !errors.Is(err, locksmith.ErrNotExist):
					t.Errorf("%s: unlock after its lease was revoked: %v, want ErrNotExist", id, err)
					return
				default:
					deadUnlocks.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	close(stopRevoker)
	<-revokerDone
	if t.Failed() {
		return
	}
	if revokes.Load() < 5 {
		t.Fatalf("only %d leases revoked while held: the test did not exercise dying holders", revokes.Load())
	}
	// Each successful Lock and Unlock is one write; an Unlock of a dead
	// holder writes nothing.
	want := int(locks.Load() + unlocks.Load())
	most, dropped := 0, 0
	prev := []string{}
	// holds are the spans, in revisions, in which the store counted a
	// worker as a holder: from the write that added it to the one that
	// removed it or, if its lease was revoked meanwhile, the revocation.
	type hold struct {
		id         string
		start, end int64 // end 0: still open
		dropped    bool  // removed by another's Lock, not by its Unlock
		revoked    bool
	}
	var holds []*hold
	open := map[string]*hold{}
	writes := semaphoreWrites(t, watch, want)
	for _, w := range writes {
		if len(w.Holders) > slots || w.Max != slots {
			t.Fatalf("revision %d: %s", w.rev, w.raw)
		}
		most = max(most, len(w.Holders))
		// A write that adds a holder is a Lock; if it also
		// removes one, it dropped a dead holder.
		added := slices.ContainsFunc(w.Holders, func(h string) bool { return !slices.Contains(prev, h) })
		if added && slices.ContainsFunc(prev, func(h string) bool { return !slices.Contains(w.Holders, h) }) {
			dropped++
		}
		for _, h := range prev {
			if !slices.Contains(w.Holders, h) {
				open[h].end, open[h].dropped = w.rev, added
				delete(open, h)
			}
		}
		for _, h := range w.Holders {
			if open[h] == nil {
				open[h] = &hold{id: h, start: w.rev}
				holds = append(holds, open[h])
			}
		}
		prev = w.Holders
	}
	if dropped == 0 {
		t.Fatal("no lock took the slot of a dead holder still in the document: the test did not exercise it")
	}
	// A revocation ends the hold of its worker that it falls in. Then at
	// no revision may more than max workers hold.
	for _, r := range revoked {
		found := false
		for _, h := range holds {
			if h.id == r.id && h.start < r.rev && (h.end == 0 || r.rev <= h.end) {
				h.end, h.revoked, found = r.rev, true, true
			}
		}
		if !found {
			t.Fatalf("%s's lease was revoked at revision %d, outside its holds", r.id, r.rev)
		}
	}
	for _, h := range holds {
		if h.dropped && !h.revoked {
			t.Fatalf("%s was dropped from the semaphore at revision %d while its lease was alive", h.id, h.end)
		}
	}
	for _, w := range writes {
		rev := w.rev
		var in []string
		for _, h := range holds {
			if h.start <= rev && (h.end == 0 || rev < h.end) {
				in = append(in, h.id)
			}
		}
		if len(in) > slots {
			t.Fatalf("at revision %d, %d workers hold a slot: %v", rev, len(in), in)
		}
	}
	end, err := cli.Get(ctx, s.Keys().Semaphore)
	if err != nil {
		t.Fatal(err)
	}
	if got := end.Kvs[0].Version - start.Kvs[0].Version; got != int64(want) {
		t.Fatalf("%d writes for %d locks and %d unlocks", got, locks.Load(), unlocks.Load())
	}
	if st := mustStatus(t, s); len(st.Holders) != 0 || st.Available != slots {
		t.Fatalf("at the end: %+v", st)
	}
	t.Logf("%d locks (%d dropping a dead holder), %d unlocks, %d revoked while held (%d unlocks found them gone), peak %d inside, %d in the document",
		locks.Load(), dropped, unlocks.Load(), revokes.Load(), deadUnlocks.Load(), peak.Load(), most)
}

func testStatusAllAndMetrics(t *testing.T, cli *clientv3.Client) {
	ctx := ctxT(t)
	// Earlier subtests wrote other groups; this one adds two of its own
	// and checks them in the full list.
	a := locksmith.NewSemaphore(cli, "zz-metrics-a")
	b := locksmith.NewSemaphore(cli, "zz-metrics-b")
	if _, err := a.SetMax(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if err := a.Lock(ctx, "x", 0); err != nil {
		t.Fatal(err)
	}
	lease, err := cli.Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Lock(ctx, "y", lease.ID); err != nil {
		t.Fatal(err)
	}
	all, err := locksmith.StatusAll(ctx, cli)
	if err != nil {
		t.Fatal(err)
	}
	// testLocksmithDocument left garbage in group legacy: it is reported,
	// not fatal to the others.
	var groups []string
	byGroup := map[string]locksmith.Status{}
	for _, st := range all {
		groups = append(groups, st.Group)
		byGroup[st.Group] = st
	}
	if len(groups) < 3 || groups[0] != "default" || !slices.IsSorted(groups[1:]) {
		t.Fatalf("groups %v: want default first, then sorted", groups)
	}
	if st := byGroup["legacy"]; !strings.Contains(st.Error, "no valid document") {
		t.Fatalf("legacy: %+v", st)
	}
	if st := byGroup["zz-metrics-a"]; st.Max != 3 || st.Available != 2 || !slices.Equal(ids(st.Holders), []string{"x"}) {
		t.Fatalf("zz-metrics-a: %+v", st)
	}
	if st := byGroup["zz-metrics-b"]; st.Max != 1 || len(st.Holders) != 1 || st.Holders[0].Lease != lease.ID {
		t.Fatalf("zz-metrics-b: %+v", st)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(locksmith.NewCollector(cli, 0, nil))
	if _, err := cli.Revoke(ctx, lease.ID); err != nil {
		t.Fatal(err)
	}
	got, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	values := map[string]float64{}
	for _, mf := range got {
		for _, m := range mf.Metric {
			name := mf.GetName()
			for _, l := range m.Label {
				name += "{" + l.GetName() + "=" + l.GetValue() + "}"
			}
			values[name] = m.GetGauge().GetValue()
		}
	}
	for name, want := range map[string]float64{
		"cairn_locksmith_store_up":                            1,
		"cairn_locksmith_holders{group=zz-metrics-a}":         1,
		"cairn_locksmith_slots{group=zz-metrics-a}":           3,
		"cairn_locksmith_expired_holders{group=zz-metrics-a}": 0,
		"cairn_locksmith_holders{group=zz-metrics-b}":         0,
		"cairn_locksmith_slots{group=zz-metrics-b}":           1,
		"cairn_locksmith_expired_holders{group=zz-metrics-b}": 1,
	} {
		if v, ok := values[name]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", name, v, ok, want)
		}
	}
}

// watchedSemaphore sets group's semaphore to slots and returns it, its
// key as it is then, and a watch of every later revision of the key.
func watchedSemaphore(t *testing.T, ctx context.Context, cli *clientv3.Client, group string, slots int) (*locksmith.Semaphore, *clientv3.GetResponse, clientv3.WatchChan) {
	t.Helper()
	s := locksmith.NewSemaphore(cli, group)
	if _, err := s.SetMax(ctx, slots); err != nil {
		t.Fatal(err)
	}
	start, err := cli.Get(ctx, s.Keys().Semaphore)
	if err != nil {
		t.Fatal(err)
	}
	wctx, stopWatch := context.WithCancel(ctx)
	t.Cleanup(stopWatch)
	return s, start, cli.Watch(wctx, s.Keys().Semaphore, clientv3.WithRev(start.Header.Revision+1))
}

// semaphoreWrite is one write of the semaphore key, decoded.
type semaphoreWrite struct {
	locksmith.Value
	rev int64
	raw []byte
}

// semaphoreWrites reads the next n writes of the semaphore key from watch;
// each must be a put of a valid document.
func semaphoreWrites(t *testing.T, watch clientv3.WatchChan, n int) []semaphoreWrite {
	t.Helper()
	var writes []semaphoreWrite
	for len(writes) < n {
		select {
		case resp := <-watch:
			if err := resp.Err(); err != nil {
				t.Fatal(err)
			}
			for _, ev := range resp.Events {
				if ev.Type != mvccpb.PUT {
					t.Fatalf("semaphore key %v", ev.Type)
				}
				w := semaphoreWrite{rev: ev.Kv.ModRevision, raw: ev.Kv.Value}
				if err := json.Unmarshal(ev.Kv.Value, &w.Value); err != nil {
					t.Fatal(err)
				}
				writes = append(writes, w)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("watch delivered %d of %d writes", len(writes), n)
		}
	}
	return writes
}
