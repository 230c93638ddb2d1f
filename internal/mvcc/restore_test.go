package mvcc_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/cairn-io/cairn/internal/mvcc"
	"github.com/cairn-io/cairn/internal/storage"
)

// state renders everything readers can observe: the revisions, and every
// key at every readable revision.
func (e *env) state() string {
	e.t.Helper()
	var b strings.Builder
	rev, crev := e.s.Rev(), e.s.CompactRev()
	fmt.Fprintf(&b, "rev %d compact %d keys %d\n", rev, crev, e.s.Keys())
	from := crev
	if from < 1 {
		from = 1
	}
	for r := from; r <= rev; r++ {
		resp := e.all(r)
		fmt.Fprintf(&b, "@%d count %d %s\n", r, resp.Count, fmtKVs(resp.Kvs))
	}
	return b.String()
}

func checkSame(t *testing.T, what, got, want string) {
	t.Helper()
	if got != want {
		t.Fatalf("%s:\n got %s\nwant %s", what, got, want)
	}
}

// writeHistory writes a history with every kind of write.
func writeHistory(e *env) {
	e.put("a", "1")                                                                                       // 2
	e.put("b", "1")                                                                                       // 3
	e.put("a", "2")                                                                                       // 4
	e.mustTxn(&pb.TxnRequest{Success: []*pb.RequestOp{opPut("c", "1"), opPut("d", "1"), opDel("b", "")}}) // 5
	e.put("b", "2")                                                                                       // 6
	bt := e.batch()
	bt.put("e", "1") // 7
	bt.del("a", "c") // 8
	bt.put("a", "3") // 9
	bt.put("c", "2") // 10
	bt.del("zz", "") // nothing
	bt.commit()
	e.del("d", "")  // 11
	e.put("c", "3") // 12
}

func TestRestartRebuildsIndex(t *testing.T) {
	e := newEnv(t)
	writeHistory(e)
	before := e.state()
	stored := e.storedRevs()
	e.reopen()
	checkSame(t, "after reopen", e.state(), before)
	if fmt.Sprint(e.storedRevs()) != fmt.Sprint(stored) {
		t.Fatalf("reopen changed storage")
	}
	// Writes continue the same generations.
	checkRev(t, "next put", e.put("c", "4").Header.Revision, 13)
	checkKVs(t, "c", e.get("c").Kvs, kv("c", "4", 5, 13, 4))
	checkRev(t, "new key", e.put("d", "2").Header.Revision, 14)
	checkKVs(t, "d", e.get("d").Kvs, kv("d", "2", 14, 14, 1))

	// With a compaction: the compaction revision survives too.
	if err := e.compact(9); err != nil {
		t.Fatal(err)
	}
	before = e.state()
	e.reopen()
	checkSame(t, "after compaction and reopen", e.state(), before)
	if _, err := e.s.Range(&pb.RangeRequest{Key: []byte("a"), Revision: 8}); !errors.Is(err, mvcc.ErrCompacted) {
		t.Fatalf("range below the compaction after reopen: %v", err)
	}
	if err := e.compact(9); !errors.Is(err, mvcc.ErrCompacted) {
		t.Fatalf("compact at 9 again after reopen: %v", err)
	}
}

// TestRestartAfterCompactingTheNewestRevision: when the newest revision was
// a deletion that compaction removed, the store still restarts at that
// revision.
func TestRestartAfterCompactingTheNewestRevision(t *testing.T) {
	e := newEnv(t)
	e.put("a", "1") // 2
	e.del("a", "")  // 3
	if err := e.compact(3); err != nil {
		t.Fatal(err)
	}
	// The deletion at the compaction revision stays for watchers that
	// start there.
	e.checkStored(storedRev{3, 0, true})
	e.reopen()
	checkRev(t, "rev", e.s.Rev(), 3)
	checkRev(t, "compact rev", e.s.CompactRev(), 3)
	checkRev(t, "next put", e.put("a", "2").Header.Revision, 4)
	checkKVs(t, "a", e.get("a").Kvs, kv("a", "2", 4, 4, 1))
}

// TestRestartWithUnpublishedBatch: a committed batch is durable even if
// the store never published it.
func TestRestartWithUnpublishedBatch(t *testing.T) {
	e := newEnv(t)
	e.put("a", "1") // 2
	bt := e.batch()
	bt.put("a", "2") // 3
	bt.put("b", "1") // 4
	if err := e.db.Commit(bt.b, false); err != nil {
		t.Fatal(err)
	}
	checkRev(t, "unpublished", e.s.Rev(), 2)
	e.reopen()
	checkRev(t, "after reopen", e.s.Rev(), 4)
	checkKVs(t, "all", e.all(0).Kvs, kv("a", "2", 2, 3, 2), kv("b", "1", 4, 4, 1))
}

// scheduleCompaction records a compaction at rev in a committed batch but
// never publishes it, so that its deletion never starts: what a crash right
// after the commit leaves behind.
func (e *env) scheduleCompaction(rev int64) {
	e.t.Helper()
	b := e.db.NewBatch()
	if _, err := e.s.Compact(b, rev); err != nil {
		e.t.Fatal(err)
	}
	if err := e.db.Commit(b, false); err != nil {
		e.t.Fatal(err)
	}
}

func TestRestartFinishesScheduledCompaction(t *testing.T) {
	for _, tc := range []struct {
		name    string
		earlier int64 // an earlier, finished compaction; 0 for none
		partial bool  // part of the deletion had already happened
	}{
		{"first compaction", 0, false},
		{"after a finished one", 4, false},
		{"interrupted deletion", 4, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			writeHistory(e)
			if tc.earlier > 0 {
				if err := e.compact(tc.earlier); err != nil {
					t.Fatal(err)
				}
			}
			// The reads that must survive, and what storage must keep,
			// from a reference store compacted normally.
			ref := newEnv(t)
			writeHistory(ref)
			if err := ref.compact(10); err != nil {
				t.Fatal(err)
			}
			want := ref.state()
			kept := map[storedRev]bool{}
			for _, r := range ref.storedRevs() {
				kept[r] = true
			}
			wantStored := fmt.Sprint(ref.storedRevs())

			full := e.storedRevs()
			e.scheduleCompaction(10)
			if fmt.Sprint(e.storedRevs()) != fmt.Sprint(full) {
				t.Fatal("deletion started before Publish")
			}
			if v, _ := e.meta(storage.MetaScheduledCompact); v != 10 {
				t.Fatalf("scheduled %d", v)
			}
			if v, ok := e.meta(storage.MetaFinishedCompact); ok != (tc.earlier > 0) || v != tc.earlier {
				t.Fatalf("finished %d, %v", v, ok)
			}
			if tc.partial {
				// Some of the doomed revisions are gone already.
				b := e.db.Pebble().NewBatch()
				n := 0
				for _, r := range full {
					if r.Main <= 6 && !kept[r] {
						b.Delete(storage.RevKey(nil, storage.Revision{Main: r.Main, Sub: r.Sub}, r.Tomb), nil)
						n++
					}
				}
				if n == 0 {
					t.Fatal("nothing to delete")
				}
				if err := b.Commit(pebble.Sync); err != nil {
					t.Fatal(err)
				}
				b.Close()
			}
			e.reopen()
			checkSame(t, "after reopen", e.state(), want)
			if got := fmt.Sprint(e.storedRevs()); got != wantStored {
				t.Fatalf("storage after reopen:\n got %s\nwant %s", got, wantStored)
			}
			if v, _ := e.meta(storage.MetaFinishedCompact); v != 10 {
				t.Fatalf("finished %d after reopen", v)
			}
			checkRev(t, "compact rev", e.s.CompactRev(), 10)
			if _, err := e.s.Range(&pb.RangeRequest{Key: []byte("a"), Revision: 9}); !errors.Is(err, mvcc.ErrCompacted) {
				t.Fatalf("range at 9: %v", err)
			}
			// And a second restart changes nothing.
			e.reopen()
			checkSame(t, "after second reopen", e.state(), want)
		})
	}
}

// TestRestartScheduledCompactionOfNewestTombstone: the compaction that
// would remove the newest revision (a deletion) was scheduled but not
// carried out; the store restarts at that revision, not below it.
func TestRestartScheduledCompactionOfNewestTombstone(t *testing.T) {
	e := newEnv(t)
	e.put("a", "1") // 2
	e.del("a", "")  // 3
	e.scheduleCompaction(3)
	e.reopen()
	e.checkStored(storedRev{3, 0, true})
	checkRev(t, "rev", e.s.Rev(), 3)
	checkRev(t, "compact rev", e.s.CompactRev(), 3)
	checkRev(t, "next put", e.put("b", "1").Header.Revision, 4)
}

func TestRestoreRejectsCorruptStorage(t *testing.T) {
	good := func(t *testing.T) *env {
		e := newEnv(t)
		e.put("a", "1")
		e.put("b", "1")
		return e
	}
	cases := []struct {
		name string
		key  []byte
		val  []byte
		want error
	}{
		{"undecodable value", storage.RevKey(nil, storage.Revision{Main: 2}, false), []byte{0xff, 0xff, 0xff}, storage.ErrCorrupt},
		{"truncated value", storage.RevKey(nil, storage.Revision{Main: 3}, false), []byte{0x0a, 0x05, 'a'}, storage.ErrCorrupt},
		{"malformed revision key", []byte{storage.PrefixKV, 1, 2, 3}, []byte{}, storage.ErrBadKey},
		{"tombstone beside a put of the same revision", storage.RevKey(nil, storage.Revision{Main: 2}, true), mustMarshal(t, kv("a", "", 0, 2, 0)), storage.ErrCorrupt},
		// The index keeps sub-revisions in 32 bits: c would be indexed
		// at 3.0, which is b's revision, and read b's value.
		{"sub-revision out of range", storage.RevKey(nil, storage.Revision{Main: 3, Sub: 1 << 32}, false), mustMarshal(t, kv("c", "1", 3, 3, 1)), storage.ErrCorrupt},
		{"scheduled compaction of the wrong size", storage.MetaKey(storage.MetaScheduledCompact), []byte{1, 2}, storage.ErrCorrupt},
		{"finished compaction of the wrong size", storage.MetaKey(storage.MetaFinishedCompact), []byte{1, 2, 3, 4, 5, 6, 7, 8, 9}, storage.ErrCorrupt},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := good(t)
			if err := e.db.Pebble().Set(tc.key, tc.val, pebble.Sync); err != nil {
				t.Fatal(err)
			}
			e.s.Close()
			e.s = nil
			s, err := mvcc.New(mvcc.Config{Backend: e.db.Pebble(), Logger: quiet})
			if err == nil {
				s.Close()
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("New: %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := mvcc.New(mvcc.Config{}); err == nil {
		t.Fatal("New without a backend succeeded")
	}
}

func mustMarshal(t *testing.T, m interface{ Marshal() ([]byte, error) }) []byte {
	t.Helper()
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
