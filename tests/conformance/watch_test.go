package conformance_test

import (
	"fmt"
	"strings"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func TestWatchConformance(t *testing.T) {
	for _, sc := range watchScenarios() {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			ref, sub := startPair(t, sc.args)
			runSteps(t, ref, sub, sc.steps)
		})
	}
}

// Predicates for where.

// created: the responses are n successful created responses.
func created(n int) (string, func([]*pb.WatchResponse) bool) {
	return fmt.Sprintf("%d created responses", n), func(rs []*pb.WatchResponse) bool {
		if len(rs) != n {
			return false
		}
		for _, r := range rs {
			if !r.Created || r.Canceled {
				return false
			}
		}
		return true
	}
}

// onePerRevision: no watcher gets the events of one revision in two
// responses (fragments aside), and no response mixes revisions.
func onePerRevision() (string, func([]*pb.WatchResponse) bool) {
	return "the events of each revision in one response per watcher", func(rs []*pb.WatchResponse) bool {
		seen := map[[2]int64]bool{}
		for _, r := range rs {
			if len(r.Events) == 0 {
				continue
			}
			rev := r.Events[0].Kv.ModRevision
			for _, ev := range r.Events {
				if ev.Kv.ModRevision != rev {
					return false
				}
			}
			k := [2]int64{r.WatchId, rev}
			if seen[k] && !r.Fragment {
				return false
			}
			seen[k] = true
		}
		return true
	}
}

// failedCreate: one created-and-canceled response with watch ID -1 and the
// reason.
func failedCreate(reason string) (string, func([]*pb.WatchResponse) bool) {
	return fmt.Sprintf("a failed create (watch ID -1, %q)", reason), func(rs []*pb.WatchResponse) bool {
		return len(rs) == 1 && rs[0].Created && rs[0].Canceled && rs[0].WatchId == -1 && rs[0].CancelReason == reason
	}
}

// progressAt: one progress notification for watch ID id at revision rev.
func progressAt(id, rev int64) (string, func([]*pb.WatchResponse) bool) {
	return fmt.Sprintf("a progress notification for watch %d at revision %d", id, rev), func(rs []*pb.WatchResponse) bool {
		return len(rs) == 1 && isProgress(rs[0]) && rs[0].WatchId == id && rs[0].Header.Revision == rev
	}
}

func watchScenarios() []scenario {
	const (
		noPut    = pb.WatchCreateRequest_NOPUT
		noDelete = pb.WatchCreateRequest_NODELETE
	)
	return []scenario{
		{name: "watch/key-prefix-range-from-key", steps: []step{
			wopen("s"),
			wcreate("s", watchKey("a")),           // 0
			wcreate("s", watchPrefix("b")),        // 1
			wcreate("s", watchRange("c", "e")),    // 2
			wcreate("s", watchRange("", "\x00")),  // 3: from the empty key: every key
			wcreate("s", watchKey("")),            // 4: the empty key alone is the key "\x00"
			wcreate("s", watchRange("d", "\x00")), // 5: from d on
			wrecv("s", 6).where(created(6)),
			put("a", "1").rev(2), // 0, 3
			wrecv("s", 2).events(2, 2),
			put("b1", "1").rev(3), // 1, 3
			put("c", "1").rev(4),  // 2, 3
			put("d", "1").rev(5),  // 2, 3, 5
			put("e", "1").rev(6),  // 3, 5
			wrecv("s", 9).events(9, 9),
			del("a").rev(7), // 0, 3
			txn(nil, ops{putOp("a", "2"), putOp("b2", "1"), putOp("c", "2"), delOp("d")}, nil).rev(8), // 0:1 1:1 2:2 3:4 5:1
			wrecv("s", 7).events(7, 11).where(onePerRevision()),
			del("b", clientv3.WithPrefix()).rev(9), // b1 and b2: 1:2 3:2
			wrecv("s", 2).events(2, 4).where(onePerRevision()),
			del("missing").rev(9),      // no revision, no event
			put("\x00", "nul").rev(10), // 3, 4
			wrecv("s", 2).events(2, 2),
			wfence("s"),
		}},
		{name: "watch/client-closes-send-side", steps: []step{
			wopen("s"),
			wcreate("s", watchPrefix("k")),
			wcreate("s", watchKey("k1")),
			wclosesend("s"),
			wrecv("s", 2).where(created(2)),
			put("k1", "1").rev(2),
			put("k2", "1").rev(3),
			del("k1").rev(4),
			wrecv("s", 5).events(5, 5),
		}},
		{name: "watch/history", steps: []step{
			put("a", "1").rev(2),
			put("b", "1").rev(3),
			put("a", "2").rev(4),
			del("b").rev(5),
			txn(nil, ops{putOp("c", "1"), putOp("a", "3")}, nil).rev(6),
			put("d", "1").rev(7),
			del("a", clientv3.WithRange("d")).rev(8), // a and c
			put("b", "2").rev(9),
			wopen("s"),
			wcreate("s", from(watchRange("", "\x00"), 2)), // 0: every event since 2
			wcreate("s", from(watchKey("a"), 3)),          // 1: 4, 6, 8
			wcreate("s", from(watchRange("b", "d"), 5)),   // 2: 5, 6, 8, 9
			wcreate("s", from(watchKey("zz"), 2)),         // 3: nothing
			wcreate("s", from(watchKey("b"), 9)),          // 4: the current revision
			wcreate("s", from(watchKey("a"), 10)),         // 5: the next revision
			wrecv("s", 10).events(4, 10+3+4+1),
			put("a", "4").rev(10), // 0, 1, 5
			wrecv("s", 3).events(3, 3),
			wfence("s"),
		}},
		{name: "watch/prev-kv", steps: []step{
			put("a", "1").rev(2),
			wopen("s"),
			wcreate("s", withPrev(watchPrefix(""))), // 0
			wrecv("s", 1),
			put("a", "2").rev(3), // prev a=1
			put("b", "1").rev(4), // a creation: no prev
			del("a").rev(5),      // prev a=2
			txn(nil, ops{putOp("a", "3"), putOp("b", "2")}, nil).rev(6), // a created again (no prev), b (prev b=1)
			wrecv("s", 4).events(4, 5),
			wcreate("s", withPrev(from(watchPrefix(""), 2))), // 1: the same from history
			wrecv("s", 2).events(1, 6),
			compact(4).rev(6),
			wcreate("s", withPrev(from(watchPrefix(""), 4))), // 2: from the compaction revision
			wrecv("s", 2).events(1, 4),
			put("b", "3").rev(7), // 0, 1, 2 with prev b=2
			wrecv("s", 3).events(3, 3),
			wfence("s"),
		}},
		{name: "watch/prev-kv-compacted", steps: []step{
			put("a", "1").rev(2),
			put("a", "2").rev(3),
			put("b", "1").rev(4),
			compact(3).rev(4),
			wopen("s"),
			wcreate("s", withPrev(from(watchPrefix(""), 3))), // a@3's previous value is compacted
			wrecv("s", 2).events(1, 2),
			wfence("s"),
		}},
		{name: "watch/filters", steps: []step{
			wopen("s"),
			wcreate("s", withFilters(watchPrefix(""), noPut)),           // 0
			wcreate("s", withFilters(watchPrefix(""), noDelete)),        // 1
			wcreate("s", withFilters(watchPrefix(""), noPut, noDelete)), // 2: nothing at all
			wrecv("s", 3),
			put("a", "1").rev(2), // 1
			del("a").rev(3),      // 0
			txn(nil, ops{putOp("b", "1"), putOp("c", "1")}, nil).rev(4), // 1
			txn(nil, ops{putOp("d", "1"), delOp("b")}, nil).rev(5),      // 0: del b, 1: put d
			wrecv("s", 5).events(5, 6),
			wcreate("s", withFilters(from(watchPrefix(""), 2), noPut)),    // 3: del a, del b
			wcreate("s", withFilters(from(watchPrefix(""), 2), noDelete)), // 4: a, b, c, d
			wcreate("s", withFilters(from(watchKey("a"), 3), noDelete)),   // 5: nothing
			wrecv("s", 5).events(2, 6),
			wfence("s"),
		}},
		{name: "watch/ids", steps: []step{
			wopen("s"),
			wcreate("s", withID(watchKey("a"), 7)), // 7
			wcreate("s", watchKey("a")),            // 0
			wcreate("s", withID(watchKey("a"), 1)), // 1
			wcreate("s", watchKey("a")),            // 2: 1 is taken
			wcreate("s", withID(watchKey("a"), 3)), // 3
			wcreate("s", watchKey("a")),            // 4
			wrecv("s", 6).where(created(6)),
			put("a", "1").rev(2),
			wrecv("s", 6).events(6, 6),
			wopen("t"),                             // IDs belong to a stream
			wcreate("t", watchKey("a")),            // 0
			wcreate("t", withID(watchKey("a"), 7)), // 7
			wrecv("t", 2).where(created(2)),
			put("a", "2").rev(3),
			wrecv("s", 6).events(6, 6),
			wrecv("t", 2).events(2, 2),
			wfence("s"),
			wfence("t"),
		}},
		{name: "watch/duplicate-id", steps: []step{
			wopen("s"),
			wcreate("s", withID(watchKey("a"), 5)),
			wrecv("s", 1),
			wcreate("s", withID(watchKey("b"), 5)),
			wrecv("s", 1).where(failedCreate("mvcc: duplicate watch ID provided on the WatchStream")),
			put("a", "1").rev(2),
			put("b", "1").rev(3),
			wrecv("s", 1).events(1, 1),
			wfence("s"),
		}},
		{name: "watch/cancel", steps: []step{
			wopen("s"),
			wcreate("s", watchKey("a")),            // 0
			wcreate("s", watchKey("a")),            // 1
			wcreate("s", withID(watchKey("a"), 9)), // 9
			wrecv("s", 3),
			put("a", "1").rev(2),
			wrecv("s", 3),
			wcancel("s", 0),
			wrecv("s", 1).where("a canceled response for watch 0", func(rs []*pb.WatchResponse) bool {
				return len(rs) == 1 && rs[0].Canceled && !rs[0].Created && rs[0].WatchId == 0
			}),
			put("a", "2").rev(3),
			wrecv("s", 2).events(2, 2), // 1 and 9 only
			wcancel("s", 0),            // again: no answer
			wcancel("s", 99),           // never existed: no answer
			wcancel("s", 9),
			wrecv("s", 1),
			wcreate("s", withID(watchKey("a"), 9)), // 9 may be used again
			wcreate("s", watchKey("a")),            // 2
			wrecv("s", 2).where(created(2)),
			put("a", "3").rev(4),
			wrecv("s", 3).events(3, 3),
			wfence("s"),
		}},
		{name: "watch/invalid-range", steps: []step{
			wopen("s"),
			wcreate("s", watchRange("b", "a")),
			wrecv("s", 1).where(failedCreate("mvcc: watcher range is empty")),
			wcreate("s", watchRange("b", "b")),
			wrecv("s", 1).where(failedCreate("mvcc: watcher range is empty")),
			wcreate("s", watchKey("a")), // 0: failed creates took no ID
			wrecv("s", 1).where(created(1)),
			put("a", "1").rev(2),
			wrecv("s", 1),
			wfence("s"),
		}},
		{name: "watch/start-at-compaction-revision", steps: []step{
			put("a", "1").rev(2),
			put("a", "2").rev(3),
			put("b", "1").rev(4),
			del("a").rev(5),
			put("c", "1").rev(6),
			compact(4).rev(6),
			wopen("s"),
			wcreate("s", from(watchPrefix(""), 4)), // b@4, a deleted at 5, c@6
			wrecv("s", 2).events(1, 3),
			wfence("s"),
		}},
		{name: "watch/start-at-compaction-revision-that-deleted", steps: []step{
			put("a", "1").rev(2),
			put("b", "1").rev(3),
			del("a").rev(4),
			put("c", "1").rev(5),
			compact(4).rev(5),
			wopen("s"),
			wcreate("s", from(watchPrefix(""), 4)),
			wrecv("s", 2),
			wfence("s"),
		}},
		{name: "watch/start-below-compaction", steps: []step{
			put("a", "1").rev(2),
			put("a", "2").rev(3),
			put("b", "1").rev(4),
			compact(3).rev(4),
			wopen("s"),
			wcreate("s", watchKey("z")), // 0, to keep the stream fenceable
			wrecv("s", 1),
			wcreate("s", from(watchPrefix(""), 2)), // 1: created, then canceled with compact_revision 3
			wrecv("s", 2).where("created, then canceled with compact_revision 3", func(rs []*pb.WatchResponse) bool {
				for _, r := range rs {
					if !r.Created && (!r.Canceled || r.CompactRevision != 3) {
						return false
					}
				}
				return len(rs) == 2
			}),
			wcreate("s", from(watchKey("a"), 1)), // 2: the same
			wrecv("s", 2),
			put("a", "3").rev(5), // neither gets it
			put("z", "1").rev(6),
			wrecv("s", 1).events(1, 1),
			wfence("s"),
		}},
		{name: "watch/negative-start", steps: []step{
			put("a", "1").rev(2),
			wopen("s"),
			wcreate("s", watchKey("z")), // 0
			wrecv("s", 1),
			wcreate("s", from(watchKey("a"), -1)),
			wrecv("s", 1).where(failedCreate(rpctypes.ErrCompacted.Error())),
			wcreate("s", watchKey("a")), // 1
			wrecv("s", 1).where(created(1)),
			put("a", "2").rev(3),
			wrecv("s", 1).events(1, 1),
			wfence("s"),
		}},
		{name: "watch/future-start", steps: []step{
			put("a", "1").rev(2),
			wopen("s"),
			wcreate("s", from(watchKey("a"), 5)), // 0
			wcreate("s", watchKey("a")),          // 1
			wrecv("s", 2),
			put("a", "2").rev(3), // 1
			put("a", "3").rev(4), // 1
			put("a", "4").rev(5), // 0, 1
			put("a", "5").rev(6), // 0, 1
			wrecv("s", 6).events(6, 6),
			wfence("s"),
		}},
		{name: "watch/request-progress", steps: []step{
			wopen("s"),
			wcreate("s", watchKey("a")),    // 0
			wcreate("s", watchPrefix("b")), // 1
			wrecv("s", 2),
			wprogress("s"),
			wrecv("s", 1).where(progressAt(-1, 1)),
			put("a", "1").rev(2),
			put("b1", "1").rev(3),
			put("c", "1").rev(4), // nobody's
			wprogress("s"),       // before the events were read: they come first
			wrecv("s", 3).events(2, 2),
			put("b2", "1").rev(5),
			wrecv("s", 1),
			wfence("s"),
		}},
		{name: "watch/request-progress-empty-stream", steps: []step{
			wopen("s"),
			wprogress("s"), // no watchers: etcd does not answer
			put("a", "1").rev(2),
			wcreate("s", watchKey("a")),
			wrecv("s", 1).where(created(1)),
			put("a", "2").rev(3),
			wrecv("s", 1),
			wfence("s"),
		}},
		{name: "watch/request-progress-future-watcher", steps: []step{
			wopen("s"),
			wcreate("s", from(watchKey("a"), 4)), // 0
			wrecv("s", 1),
			wprogress("s"), // a watcher waits for revision 4: etcd does not answer
			put("b", "1").rev(2),
			wcreate("s", watchKey("b")), // 1
			wrecv("s", 1).where(created(1)),
			put("b", "2").rev(3),
			wrecv("s", 1),
			put("a", "1").rev(4),
			wrecv("s", 1),
			wfence("s"),
		}},
		{name: "watch/clientv3-request-progress", steps: []step{
			cwatch("a", "a", clientv3.WithCreatedNotify()),
			crecv("a", 1),
			cwatch("b", "b", clientv3.WithPrefix(), clientv3.WithCreatedNotify()),
			crecv("b", 1),
			put("a", "1").rev(2),
			crecv("a", 1),
			cprogress(), // every watcher is synced
			crecv("a", 1),
			crecv("b", 1), // clientv3 hands the stream's notification to each watcher
			put("b1", "1").rev(3),
			crecv("b", 1),
			cprogress(),
			crecv("a", 1),
			crecv("b", 1),
		}},
		{name: "watch/clientv3", steps: []step{
			put("a", "1").rev(2),
			put("a", "2").rev(3),
			del("a").rev(4),
			put("b", "1").rev(5),
			compact(3).rev(5),
			cwatch("h", "", clientv3.WithPrefix(), clientv3.WithRev(3), clientv3.WithPrevKV(), clientv3.WithCreatedNotify()),
			crecv("h", 2).events(1, 3),
			cwatch("f", "", clientv3.WithFromKey(), clientv3.WithFilterPut(), clientv3.WithCreatedNotify()),
			crecv("f", 1),
			put("c", "1").rev(6),
			del("c").rev(7),
			crecv("h", 2).events(2, 2),
			crecv("f", 1).events(1, 1),
			cwatch("c", "a", clientv3.WithRev(2), clientv3.WithCreatedNotify()),
			crecv("c", 2), // created, then the compaction error
		}},
		{name: "watch/progress-notify", args: []string{"--watch-progress-notify-interval=500ms"}, steps: []step{
			wopen("s"),
			wcreate("s", withProgressNotify(watchKey("a"))), // 0
			wcreate("s", watchKey("b")),                     // 1: did not ask
			wrecv("s", 2),
			wrecv("s", 1).where(progressAt(0, 1)),
			put("a", "1").rev(2),
			wrecv("s", 2).where("the event, then a progress notification at 2", func(rs []*pb.WatchResponse) bool {
				return len(rs) == 2 && len(rs[0].Events) == 1 && isProgress(rs[1]) && rs[1].WatchId == 0 && rs[1].Header.Revision == 2
			}),
			wfence("s"),
		}},
		{name: "watch/fragment", args: []string{"--max-request-bytes=600000"}, steps: seq(bigValues(6, 200_000), []step{
			wopen("s"),
			// About 1.2 MB of events: etcd fragments a response at
			// --max-request-bytes plus 512 KiB of gRPC overhead.
			wcreate("s", withFragment(from(watchPrefix("v"), 2))),
			wrecv("s", 3).where("created, then two fragments of 5 and 1 events", func(rs []*pb.WatchResponse) bool {
				return len(rs) == 3 && rs[0].Created && len(rs[1].Events) == 5 && rs[1].Fragment && len(rs[2].Events) == 1 && !rs[2].Fragment
			}),
			wcreate("s", from(watchPrefix("v"), 2)), // no fragment: one response
			wrecv("s", 2).events(1, 6),
			wfence("s"),
		})},
		{name: "watch/large-history", steps: seq(manyRevisions(1050), []step{
			wopen("s"),
			wcreate("s", from(watchPrefix(""), 2)),
			// etcd sends at most 1000 revisions per response to a watcher
			// catching up, each with the header revision of the store.
			wrecv("s", 3).events(2, 1050).where("1000 revisions, then 50, both at header revision 1051", func(rs []*pb.WatchResponse) bool {
				return len(rs) == 3 && len(rs[1].Events) == 1000 && rs[1].Header.Revision == 1051 && rs[2].Header.Revision == 1051
			}),
			wfence("s"),
		})},
	}
}

// bigValues puts n values of size bytes under v0, v1, ...
func bigValues(n, size int) []step {
	var steps []step
	for i := range n {
		steps = append(steps, put(fmt.Sprintf("v%d", i), strings.Repeat(string(rune('a'+i)), size)).rev(int64(i+2)))
	}
	return steps
}

// manyRevisions writes n revisions, one put each, ending at revision n+1.
func manyRevisions(n int) []step {
	var steps []step
	for i := range n {
		steps = append(steps, put(fmt.Sprintf("k%02d", i%50), fmt.Sprint(i)))
	}
	steps[n-1] = steps[n-1].rev(int64(n + 1))
	return steps
}
