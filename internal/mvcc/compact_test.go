package mvcc_test

import (
	"errors"
	"fmt"
	"math/rand"
	"sort"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/cairn-io/cairn/internal/mvcc"
	"github.com/cairn-io/cairn/internal/storage"
)

func TestCompactBoundaries(t *testing.T) {
	e := newEnv(t)
	for _, v := range []string{"1", "2", "3", "4"} {
		e.put("a", v) // 2..5
	}
	if err := e.compact(6); !errors.Is(err, mvcc.ErrFutureRev) {
		t.Fatalf("compact above the current revision: %v, want ErrFutureRev", err)
	}
	if _, ok := e.meta(storage.MetaScheduledCompact); ok {
		t.Fatal("a refused compaction was recorded")
	}
	checkRev(t, "compact rev before", e.s.CompactRev(), -1)
	if err := e.compact(3); err != nil {
		t.Fatal(err)
	}
	checkRev(t, "compact rev", e.s.CompactRev(), 3)
	checkRev(t, "store rev", e.s.Rev(), 5)

	// Reading exactly at the compaction revision works, one below fails.
	checkKVs(t, "at 3", e.getAt("a", 3).Kvs, kv("a", "2", 2, 3, 2))
	for _, rev := range []int64{2, 1} {
		if _, err := e.s.Range(&pb.RangeRequest{Key: []byte("a"), Revision: rev}); !errors.Is(err, mvcc.ErrCompacted) {
			t.Fatalf("range at %d: %v, want ErrCompacted", rev, err)
		}
	}
	checkKVs(t, "newest", e.get("a").Kvs, kv("a", "4", 2, 5, 4))
	tr := e.s.Read()
	if tr.FirstRev() != 3 {
		t.Fatalf("read txn first rev %d", tr.FirstRev())
	}
	tr.End()

	// Compacting at or below the last compaction fails, above the current
	// revision too; at the current revision works.
	for _, rev := range []int64{3, 2, 1, 0, -1} {
		if err := e.compact(rev); !errors.Is(err, mvcc.ErrCompacted) {
			t.Fatalf("compact at %d after 3: %v, want ErrCompacted", rev, err)
		}
	}
	if err := e.compact(6); !errors.Is(err, mvcc.ErrFutureRev) {
		t.Fatalf("compact at 6: %v", err)
	}
	if v, _ := e.meta(storage.MetaScheduledCompact); v != 3 {
		t.Fatalf("scheduled compact %d after refused compactions", v)
	}
	if err := e.compact(5); err != nil {
		t.Fatal(err)
	}
	checkKVs(t, "at 5", e.getAt("a", 5).Kvs, kv("a", "4", 2, 5, 4))
	if _, err := e.s.Range(&pb.RangeRequest{Key: []byte("a"), Revision: 4}); !errors.Is(err, mvcc.ErrCompacted) {
		t.Fatalf("range at 4: %v", err)
	}
	if err := e.compact(5); !errors.Is(err, mvcc.ErrCompacted) {
		t.Fatalf("compact at 5 twice: %v", err)
	}
	for _, name := range []string{storage.MetaScheduledCompact, storage.MetaFinishedCompact} {
		if v, ok := e.meta(name); !ok || v != 5 {
			t.Fatalf("%s = %d, %v", name, v, ok)
		}
	}
	// Writes go on after compacting at the current revision.
	checkRev(t, "put", e.put("a", "5").Header.Revision, 6)
	checkKVs(t, "a", e.get("a").Kvs, kv("a", "5", 2, 6, 5))
}

func TestCompactFreshStore(t *testing.T) {
	e := newEnv(t)
	if err := e.compact(2); !errors.Is(err, mvcc.ErrFutureRev) {
		t.Fatalf("compact at 2: %v", err)
	}
	if err := e.compact(1); err != nil {
		t.Fatalf("compact at 1: %v", err)
	}
	checkRev(t, "compact rev", e.s.CompactRev(), 1)
	checkRev(t, "put", e.put("a", "1").Header.Revision, 2)
}

// TestCompactDeletesUnreachableRevisions checks exactly which revisions
// physical compaction removes from storage.
func TestCompactDeletesUnreachableRevisions(t *testing.T) {
	e := newEnv(t)
	e.put("a", "1")                                                                       // 2
	e.put("a", "2")                                                                       // 3
	e.put("b", "1")                                                                       // 4
	e.del("a", "")                                                                        // 5
	e.put("c", "1")                                                                       // 6
	e.put("a", "3")                                                                       // 7
	e.put("b", "2")                                                                       // 8
	e.del("c", "")                                                                        // 9
	e.mustTxn(&pb.TxnRequest{Success: []*pb.RequestOp{opPut("d", "1"), opPut("e", "1")}}) // 10
	before := map[int64]*pb.RangeResponse{}
	for rev := int64(6); rev <= 10; rev++ {
		before[rev] = e.all(rev)
	}

	if err := e.compact(6); err != nil {
		t.Fatal(err)
	}
	// a: 2, 3 and the tombstone 5 go (the newest at or before 6 is a
	// deletion); b keeps 4, which reads at 6 and 7 need; c keeps 6.
	e.checkStored(storedRev{4, 0, false}, storedRev{6, 0, false}, storedRev{7, 0, false}, storedRev{8, 0, false},
		storedRev{9, 0, true}, storedRev{10, 0, false}, storedRev{10, 1, false})
	for rev := int64(6); rev <= 10; rev++ {
		checkKVs(t, fmt.Sprintf("all at %d", rev), e.all(rev).Kvs, before[rev].Kvs...)
	}
	checkRev(t, "keys", int64(e.s.Keys()), 5)

	if err := e.compact(9); err != nil {
		t.Fatal(err)
	}
	// c's history goes but for its deletion at exactly 9, which a watcher
	// starting at 9 must still see; b's 4 goes.
	e.checkStored(storedRev{7, 0, false}, storedRev{8, 0, false}, storedRev{9, 0, true}, storedRev{10, 0, false}, storedRev{10, 1, false})
	checkRev(t, "keys", int64(e.s.Keys()), 5)
	if err := e.compact(10); err != nil {
		t.Fatal(err)
	}
	// A later compaction takes the deletion and c's index entry.
	e.checkStored(storedRev{7, 0, false}, storedRev{8, 0, false}, storedRev{10, 0, false}, storedRev{10, 1, false})
	checkRev(t, "keys", int64(e.s.Keys()), 4)
	checkKVs(t, "all at 10", e.all(10).Kvs, before[10].Kvs...)
	checkKVs(t, "a", e.getAt("a", 10).Kvs, kv("a", "3", 7, 7, 1))
	checkKVs(t, "c", e.getAt("c", 10).Kvs)
	for _, name := range []string{storage.MetaScheduledCompact, storage.MetaFinishedCompact} {
		if v, ok := e.meta(name); !ok || v != 10 {
			t.Fatalf("%s = %d, %v", name, v, ok)
		}
	}

	// A key whose history was compacted away starts afresh.
	checkRev(t, "re-put c", e.put("c", "2").Header.Revision, 11)
	checkKVs(t, "c", e.get("c").Kvs, kv("c", "2", 11, 11, 1))
	// And one that kept its newest revision continues its generation.
	e.put("b", "3")
	checkKVs(t, "b", e.get("b").Kvs, kv("b", "3", 4, 12, 3))
}

// TestCompactSmallBatches deletes with a tiny storage batch so that the
// deletion spans many batches.
func TestCompactSmallBatches(t *testing.T) {
	e := &env{t: t, fs: vfs.NewMem(), batchN: 3}
	e.open()
	t.Cleanup(e.close)
	for i := 0; i < 20; i++ {
		e.put(fmt.Sprintf("k%d", i%4), fmt.Sprint(i)) // 2..21
	}
	if err := e.compact(19); err != nil {
		t.Fatal(err)
	}
	// Each key keeps its newest revision at or before 19 and the later ones.
	e.checkStored(storedRev{16, 0, false}, storedRev{17, 0, false}, storedRev{18, 0, false}, storedRev{19, 0, false},
		storedRev{20, 0, false}, storedRev{21, 0, false})
	if v, _ := e.meta(storage.MetaFinishedCompact); v != 19 {
		t.Fatalf("finished compact %d", v)
	}
}

// TestCompactTwiceInOneBatch: two compactions applied in one batch (with no
// writes between them, so nothing is unpublished) are both finished only
// when the deletion has run.
func TestCompactTwiceInOneBatch(t *testing.T) {
	e := newEnv(t)
	for _, v := range []string{"1", "2", "3", "4"} {
		e.put("a", v) // 2..5
	}
	b := e.db.NewBatch()
	done1, err := e.s.Compact(b, 3)
	if err != nil {
		t.Fatal(err)
	}
	done2, err := e.s.Compact(b, 4)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.Compact(b, 4); !errors.Is(err, mvcc.ErrCompacted) {
		t.Fatalf("third compaction at 4: %v", err)
	}
	for i, ch := range []<-chan struct{}{done1, done2} {
		select {
		case <-ch:
			t.Fatalf("compaction %d reported finished before its batch was committed", i+1)
		default:
		}
	}
	e.checkStored(storedRev{2, 0, false}, storedRev{3, 0, false}, storedRev{4, 0, false}, storedRev{5, 0, false})
	if err := e.db.Commit(b, false); err != nil {
		t.Fatal(err)
	}
	e.s.Publish()
	<-done1
	e.checkStored(storedRev{4, 0, false}, storedRev{5, 0, false})
	<-done2
	if v, _ := e.meta(storage.MetaFinishedCompact); v != 4 {
		t.Fatalf("finished compact %d", v)
	}
	checkRev(t, "compact rev", e.s.CompactRev(), 4)
}

// TestCompactKeepsReads is a property test: over random histories, every
// read at or above a compaction revision returns after the compaction
// exactly what it returned before, and storage keeps exactly the revisions
// such reads need.
func TestCompactKeepsReads(t *testing.T) {
	for seed := int64(1); seed <= 4; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewSource(seed))
			e := newEnv(t)
			h := &history{}
			keys := []string{"a", "b", "c", "d", "e", "f", "g", "h"}
			key := func() string { return keys[rng.Intn(len(keys))] }
			compactRev := int64(-1)
			for step := 0; step < 400; step++ {
				switch r := rng.Intn(100); {
				case r < 55:
					h.record(e.write(func(tw *mvcc.TxnWrite) {
						mvcc.ApplyPut(tw, nil, &pb.PutRequest{Key: []byte(key()), Value: []byte(fmt.Sprint(step))})
					}))
				case r < 70:
					h.record(e.write(func(tw *mvcc.TxnWrite) {
						mvcc.ApplyDeleteRange(tw, &pb.DeleteRangeRequest{Key: []byte(key())})
					}))
				case r < 78:
					lo, hi := key(), key()
					h.record(e.write(func(tw *mvcc.TxnWrite) {
						mvcc.ApplyDeleteRange(tw, &pb.DeleteRangeRequest{Key: []byte(lo), RangeEnd: []byte(hi)})
					}))
				case r < 90:
					// Several writes at one revision, over distinct keys.
					perm := rng.Perm(len(keys))[:1+rng.Intn(4)]
					var ops []*pb.RequestOp
					for _, i := range perm {
						if rng.Intn(4) == 0 {
							ops = append(ops, opDel(keys[i], ""))
						} else {
							ops = append(ops, opPut(keys[i], fmt.Sprint(step)))
						}
					}
					h.record(e.write(func(tw *mvcc.TxnWrite) {
						if _, err := mvcc.ApplyTxn(tw, nil, &pb.TxnRequest{Success: ops}); err != nil {
							t.Fatal(err)
						}
					}))
				case r < 95:
					// Several transactions in one batch.
					bt := e.batch()
					for i := rng.Intn(4); i >= 0; i-- {
						k := key()
						if rng.Intn(3) == 0 {
							bt.del(k, "")
						} else {
							bt.put(k, fmt.Sprint(step))
						}
					}
					h.record(bt.commit())
				default:
					cur := e.s.Rev()
					if compactRev >= cur {
						continue
					}
					c := compactRev + 1 + rng.Int63n(cur-compactRev)
					if compactRev < 1 {
						c = 1 + rng.Int63n(cur)
					}
					// Everything readable at or above c, before.
					before := map[int64]string{}
					for rev := c; rev <= cur; rev++ {
						before[rev] = fmtKVs(e.all(rev).Kvs)
					}
					if err := e.compact(c); err != nil {
						t.Fatalf("compact %d (rev %d, last %d): %v", c, cur, compactRev, err)
					}
					compactRev = c
					for rev := c; rev <= cur; rev++ {
						if got := fmtKVs(e.all(rev).Kvs); got != before[rev] {
							t.Fatalf("read at %d after compacting at %d:\n got %s\nwant %s", rev, c, got, before[rev])
						}
					}
					if c > 1 {
						if _, err := e.s.Range(&pb.RangeRequest{Key: []byte("a"), Revision: c - 1}); !errors.Is(err, mvcc.ErrCompacted) {
							t.Fatalf("read at %d after compacting at %d: %v", c-1, c, err)
						}
					}
					h.checkStorage(t, e, c)
					if rng.Intn(3) == 0 {
						e.reopen()
						checkRev(t, "rev after reopen", e.s.Rev(), cur)
						checkRev(t, "compact rev after reopen", e.s.CompactRev(), c)
						for rev := c; rev <= cur; rev++ {
							if got := fmtKVs(e.all(rev).Kvs); got != before[rev] {
								t.Fatalf("read at %d after reopen:\n got %s\nwant %s", rev, got, before[rev])
							}
						}
					}
				}
			}
		})
	}
}

// history records every revision ever written, from the changes Publish
// returns.
type history struct {
	revs map[string][]storedRev
}

func (h *history) record(changes []mvcc.Change) {
	if h.revs == nil {
		h.revs = map[string][]storedRev{}
	}
	var main, sub int64
	for _, c := range changes {
		if c.KV.ModRevision != main {
			main, sub = c.KV.ModRevision, 0
		}
		k := string(c.KV.Key)
		h.revs[k] = append(h.revs[k], storedRev{main, sub, c.Delete})
		sub++
	}
}

// checkStorage checks that storage holds exactly the revisions reads and
// watches at or after compaction revision c can see: each key's revisions
// after c, and its newest at or before c unless that is a deletion below c
// (a deletion at c itself stays, for watchers starting at c).
func (h *history) checkStorage(t *testing.T, e *env, c int64) {
	t.Helper()
	var want []storedRev
	for _, revs := range h.revs {
		last := -1
		for i, r := range revs {
			if r.Main <= c {
				last = i
			} else {
				want = append(want, r)
			}
		}
		if last >= 0 && (!revs[last].Tomb || revs[last].Main == c) {
			want = append(want, revs[last])
		}
	}
	sort.Slice(want, func(i, j int) bool {
		a, b := want[i], want[j]
		return a.Main < b.Main || (a.Main == b.Main && a.Sub < b.Sub)
	})
	got := e.storedRevs()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after compacting at %d, storage holds\n %v\nwant\n %v", c, got, want)
	}
}
