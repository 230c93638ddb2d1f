package conformance_test

import (
	"fmt"
	"strings"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// scenario is one row of the conformance table: server flags (given to both
// servers) and steps run in order on a fresh store. The .rev, .fails,
// .succeeded and .kvs annotations are what etcd answers, checked on the
// reference side; the subject must then answer exactly as etcd did.
type scenario struct {
	name  string
	args  []string
	steps []step
}

func TestConformance(t *testing.T) {
	for _, sc := range scenarios() {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			ref, sub := startPair(t, sc.args)
			runSteps(t, ref, sub, sc.steps)
		})
	}
}

func scenarios() []scenario {
	return []scenario{
		// Revision arithmetic.
		{name: "revision/first-write-overwrite-delete", steps: []step{
			get("a").rev(1).kvs(0),        // a fresh store is at revision 1
			put("a", "1").rev(2),          // the first write makes revision 2
			put("a", "2").rev(3),          // an overwrite: version 2, create 2, mod 3
			put("a", "2").rev(4),          // writing the same value is still a revision
			get("a").rev(4),               //
			del("missing").rev(4),         // deleting nothing makes no revision
			del("a").rev(5),               //
			get("a").rev(5).kvs(0),        //
			del("a").rev(5),               // nor does deleting a deleted key
			put("a", "3").rev(6),          // recreated: version 1, create_revision 6
			get("a").rev(6).kvs(1),        //
			get("a", clientv3.WithRev(4)), // the old generation at revision 4
		}},
		{name: "revision/delete-many-is-one-revision", steps: []step{
			put("a", "1").rev(2),
			put("b", "2").rev(3),
			put("c", "3").rev(4),
			put("d", "4").rev(5),
			del("a", clientv3.WithRange("d"), clientv3.WithPrevKV()).rev(6), // a, b, c in one revision
			get("", clientv3.WithFromKey()).rev(6).kvs(1),
			del("a", clientv3.WithRange("z")).rev(7), // d
			del("a", clientv3.WithRange("z")).rev(7), // nothing left
			put("b", "5").rev(8),                     // b's new generation
			get("b", clientv3.WithRev(5)),            // its old one, at revision 5
		}},
		{name: "revision/txn", steps: []step{
			put("a", "1").rev(2),
			txn(nil, nil, nil).rev(2).succeeded(true),                                        // empty txn: then-branch, no revision
			txn(nil, ops{getOp("a")}, nil).rev(2),                                            // read-only txn
			txn(nil, ops{putOp("b", "1"), putOp("c", "1")}, nil).rev(3),                      // all writes of a txn share one revision
			get("b", clientv3.WithRange("d")).rev(3).kvs(2),                                  //
			txn(nil, ops{delOp("zzz")}, nil).rev(3),                                          // a txn that deletes nothing makes no revision
			txn(ifs{value("a", "=", "x")}, ops{putOp("x", "1")}, ops{getOp("a")}).rev(3),     // write txn that took its read-only branch
			txn(nil, ops{putOp("d", "1"), getOp("d"), delOp("b"), getOp("b")}, nil).rev(4),   // ranges see the txn's earlier writes
			txn(nil, ops{getOp("a"), putOp("e", "1"), getOp("a")}, nil).rev(5),               // a range before the first write reports the old revision
			txn(nil, ops{delOp("zz"), getOp("a"), putOp("f", "1"), delOp("zz")}, nil).rev(6), // per-op header revisions
		}},
		{name: "revision/nested-txn", steps: []step{
			put("a", "1").rev(2),
			txn(nil, ops{txnOp(nil, ops{putOp("b", "1")}, nil)}, nil).rev(3), // a nested txn's own header carries revision 0
			// Every compare, nested ones included, is evaluated against the
			// store as it was before the txn: the nested compare does not see
			// a=2 and takes its else-branch, whose range does see a=2.
			txn(nil, ops{putOp("a", "2"), txnOp(ifs{value("a", "=", "2")}, ops{getOp("a")}, ops{getOp("a")})}, nil).rev(4),
			txn(ifs{value("a", "=", "2")},
				ops{txnOp(ifs{version("b", "=", 1)},
					ops{putOp("c", "1"), txnOp(nil, ops{delOp("b"), getOp("", clientv3.WithPrefix())}, nil)},
					nil)},
				ops{putOp("z", "1")}).rev(5), // three levels deep
			get("", clientv3.WithPrefix()).rev(5).kvs(2),
			txn(nil, ops{
				txnOp(ifs{value("missing", "=", "x")}, nil, ops{getOp("a")}),
				txnOp(nil, ops{putOp("d", "1")}, nil),
				txnOp(nil, nil, nil),
			}, nil).rev(6),
			txn(ifs{value("a", "=", "nope")}, nil, ops{txnOp(nil, ops{getOp("a")}, nil)}).rev(6).succeeded(false), // read-only nesting
		}},

		// Range.
		{name: "range/keys-and-intervals", steps: seq(rangeData(), []step{
			get("a").kvs(1),
			get("missing").kvs(0),
			get("a", clientv3.WithRange("c")).kvs(3),  // [a, c): a, ab, b
			get("a", clientv3.WithRange("a")).kvs(0),  // empty interval
			get("c", clientv3.WithRange("a")).kvs(0),  // inverted interval
			get("a", clientv3.WithPrefix()).kvs(2),    // a, ab
			get("", clientv3.WithPrefix()).kvs(6),     // empty prefix: key and range_end "\x00", all keys
			get("\x00", clientv3.WithRange("\x00")),   // the same, spelled out
			get("c", clientv3.WithFromKey()).kvs(3),   // range_end "\x00": c and after
			get("", clientv3.WithFromKey()).kvs(6),    // from the empty key: key "\x00"
			get("zz", clientv3.WithFromKey()).kvs(0),  //
			get("a", clientv3.WithRange("\x00")),      // range_end "\x00" is from-key
			get("b\x00", clientv3.WithRange("c\x00")), // keys with NUL bytes
			get("\xff", clientv3.WithPrefix()).kvs(0), // a prefix with no successor ranges to the end
			get("", clientv3.WithRange("b")).fails(errEmptyKey),
		})},
		{name: "range/limit-more-count", steps: seq(rangeData(), []step{
			get("", clientv3.WithPrefix(), clientv3.WithLimit(2)).kvs(2), // more, count is all keys
			get("", clientv3.WithPrefix(), clientv3.WithLimit(6)).kvs(6), // exactly all: more=false
			get("", clientv3.WithPrefix(), clientv3.WithLimit(7)).kvs(6),
			get("", clientv3.WithPrefix(), clientv3.WithLimit(-1)).kvs(6), // a negative limit is no limit
			get("a", clientv3.WithRange("c"), clientv3.WithLimit(1)).kvs(1),
			get("a", clientv3.WithLimit(1)).kvs(1),
			get("missing", clientv3.WithLimit(1)).kvs(0),
			get("", clientv3.WithPrefix(), clientv3.WithCountOnly()).kvs(0),
			get("", clientv3.WithPrefix(), clientv3.WithCountOnly(), clientv3.WithLimit(2)).kvs(0), // more stays false
			get("", clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithLimit(3)).kvs(3),
			get("", clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithCountOnly()),
			get("b", clientv3.WithKeysOnly()).kvs(1),
			get("", clientv3.WithPrefix(), clientv3.WithSerializable(), clientv3.WithLimit(2)),
			get("a", clientv3.WithSerializable()),
			get("", clientv3.WithPrefix(), clientv3.WithSerializable(), clientv3.WithRev(5)),
		})},
		{name: "range/revision", steps: seq(rangeData(), []step{
			get("a", clientv3.WithRev(2)).kvs(1).rev(10),               // the header carries the current revision, not the one read
			get("a", clientv3.WithRev(4)),                              //
			get("", clientv3.WithPrefix(), clientv3.WithRev(5)).kvs(3), // count is at revision 5 too
			get("", clientv3.WithPrefix(), clientv3.WithRev(1)).kvs(0), // the empty store
			get("", clientv3.WithPrefix(), clientv3.WithRev(6), clientv3.WithLimit(1)),
			get("a", clientv3.WithRev(10)).kvs(1),                // the current revision
			get("a", clientv3.WithRev(11)).fails(errFutureRev),   //
			get("a", clientv3.WithRev(1000)).fails(errFutureRev), //
			get("a", clientv3.WithRev(-1)).kvs(1),                // a negative revision reads the current one
			del("b").rev(11),                                     //
			get("b", clientv3.WithRev(10)).kvs(1),                // still there at 10
			get("b", clientv3.WithRev(11)).kvs(0),                //
			get("", clientv3.WithPrefix(), clientv3.WithRev(10), clientv3.WithCountOnly()),
		})},
		{name: "range/sort", steps: seq(rangeData(), sortSteps(0), sortSteps(2), sortSteps(4), []step{
			// clientv3 turns KEY/ASCEND into no sort; sent as is, the server
			// fetches everything, then cuts to the limit.
			rawRange(&pb.RangeRequest{Key: []byte("\x00"), RangeEnd: []byte("\x00"), SortOrder: pb.RangeRequest_ASCEND, SortTarget: pb.RangeRequest_KEY, Limit: 2}),
			rawRange(&pb.RangeRequest{Key: []byte("a"), SortOrder: 7}).fails(errSortOption),
			rawRange(&pb.RangeRequest{Key: []byte("a"), SortTarget: 9}).fails(errSortOption),
			get("", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByModRevision, clientv3.SortDescend), clientv3.WithMinModRev(5), clientv3.WithLimit(2)),
			get("", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByValue, clientv3.SortAscend), clientv3.WithKeysOnly()),
			get("", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByVersion, clientv3.SortDescend), clientv3.WithCountOnly()),
			get("", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend), clientv3.WithRev(6)),
			get("a", clientv3.WithSort(clientv3.SortByValue, clientv3.SortDescend)),
		})},
		{name: "range/mod-and-create-revision-filters", steps: seq(rangeData(), []step{
			get("", clientv3.WithPrefix(), clientv3.WithMinModRev(7)).kvs(3),
			get("", clientv3.WithPrefix(), clientv3.WithMaxModRev(6)).kvs(3),
			get("", clientv3.WithPrefix(), clientv3.WithMinCreateRev(4)).kvs(4),
			get("", clientv3.WithPrefix(), clientv3.WithMaxCreateRev(3)).kvs(2),
			get("", clientv3.WithPrefix(), clientv3.WithMinModRev(6), clientv3.WithMaxModRev(8)).kvs(2),
			get("", clientv3.WithPrefix(), clientv3.WithMinCreateRev(3), clientv3.WithMaxCreateRev(4)).kvs(2),
			get("", clientv3.WithPrefix(), clientv3.WithMinModRev(100)).kvs(0),
			// count is taken before the filters: it stays 6 here.
			get("", clientv3.WithPrefix(), clientv3.WithMinModRev(7), clientv3.WithLimit(1)).kvs(1),
			get("", clientv3.WithPrefix(), clientv3.WithMaxCreateRev(3), clientv3.WithLimit(5)).kvs(2),
			get("", clientv3.WithPrefix(), clientv3.WithMinModRev(7), clientv3.WithCountOnly()),
			get("", clientv3.WithPrefix(), clientv3.WithMinModRev(7), clientv3.WithKeysOnly()),
			get("", clientv3.WithPrefix(), clientv3.WithMaxModRev(4), clientv3.WithRev(6)),
			get("a", clientv3.WithMinModRev(6)).kvs(0),
			get("", clientv3.WithPrefix(), clientv3.WithMinCreateRev(-5), clientv3.WithMaxModRev(-1)), // negatives
		})},

		// Put and DeleteRange.
		{name: "put/options", steps: []step{
			put("a", "1", clientv3.WithPrevKV()).rev(2), // a new key has no prev_kv
			put("a", "2", clientv3.WithPrevKV()).rev(3),
			put("a", "", clientv3.WithIgnoreValue()).rev(4), // keeps "2", version 3
			get("a").rev(4),
			put("a", "x", clientv3.WithIgnoreValue()).fails(errValueProvided),
			put("missing", "", clientv3.WithIgnoreValue()).fails(errKeyNotFound),
			put("a", "3", clientv3.WithIgnoreLease()).rev(5),
			put("missing", "3", clientv3.WithIgnoreLease()).fails(errKeyNotFound),
			put("a", "3", clientv3.WithIgnoreLease(), clientv3.WithLease(1234)).fails(errLeaseProvided),
			put("a", "", clientv3.WithIgnoreValue(), clientv3.WithIgnoreLease(), clientv3.WithPrevKV()).rev(6),
			put("e", "").rev(7), // an empty value is a value
			get("e").kvs(1),
			put("\x00\xff", "\x00").rev(8), // binary key and value
			get("\x00", clientv3.WithFromKey()).kvs(3),
			put("", "v").fails(errEmptyKey),
			get("a").rev(8), // failed puts made no revision
		}},
		{name: "delete/options", steps: []step{
			put("a", "1"), put("ab", "2"), put("b", "3"), put("c", "4"), put("d", "5"),
			del("a", clientv3.WithPrevKV()).rev(7),
			del("missing", clientv3.WithPrevKV()).rev(7),
			del("a", clientv3.WithPrefix(), clientv3.WithPrevKV()).rev(8), // ab; a is already gone
			del("c", clientv3.WithFromKey(), clientv3.WithPrevKV()).rev(9),
			put("a", "6").rev(10),
			del("", clientv3.WithPrefix(), clientv3.WithPrevKV()).rev(11), // everything
			get("", clientv3.WithPrefix()).kvs(0),
			del("").fails(errEmptyKey),
			del("", clientv3.WithRange("z")).fails(errEmptyKey),
			del("", clientv3.WithFromKey()).rev(11), // key "\x00": everything, which is nothing
		}},

		// Txn.
		{name: "txn/compare-matrix", steps: seq(compareData(), compareMatrix())},
		{name: "txn/duplicate-keys", steps: []step{
			put("a", "0"),
			txn(nil, ops{putOp("a", "1"), putOp("a", "2")}, nil).fails(errDuplicateKey),
			txn(nil, ops{putOp("a", "1")}, ops{putOp("a", "2")}).rev(3), // then and else are separate
			txn(nil, ops{delOp("a"), putOp("a", "1")}, nil).fails(errDuplicateKey),
			txn(nil, ops{putOp("a", "1"), delOp("a")}, nil).fails(errDuplicateKey), // order does not matter
			txn(nil, ops{delOp("a", clientv3.WithRange("c")), putOp("b", "1")}, nil).fails(errDuplicateKey),
			txn(nil, ops{delOp("a", clientv3.WithPrefix()), putOp("ab", "1")}, nil).fails(errDuplicateKey),
			// A from-key delete has range_end "\x00", which the overlap check
			// takes literally (an interval ending before it starts), so etcd
			// accepts a put inside it; the put is then deleted by the delete
			// only if the delete comes after it.
			txn(nil, ops{delOp("a", clientv3.WithFromKey()), putOp("b", "1")}, nil).rev(4),
			get("", clientv3.WithPrefix()).kvs(1),
			txn(nil, ops{putOp("c", "1"), delOp("a", clientv3.WithFromKey())}, nil).rev(5),
			get("", clientv3.WithPrefix()).kvs(0),
			put("a", "0").rev(6),
			txn(nil, ops{delOp("", clientv3.WithPrefix()), putOp("b", "1")}, nil).rev(7),           // the same for delete-all
			txn(nil, ops{delOp("a"), delOp("a"), delOp("a", clientv3.WithRange("c"))}, nil).rev(8), // overlapping deletes are fine
			txn(nil, ops{putOp("a", "1"), getOp("a"), putOp("b", "2"), getOp("a", clientv3.WithRange("c"))}, nil).rev(9),
			// Duplicates are rejected in either branch, whichever runs.
			txn(ifs{value("a", "=", "nope")}, ops{putOp("x", "1"), putOp("x", "2")}, ops{getOp("a")}).fails(errDuplicateKey),
			txn(ifs{value("a", "=", "1")}, ops{getOp("a")}, ops{putOp("x", "1"), putOp("x", "2")}).fails(errDuplicateKey),
			get("a").rev(9),
		}},
		{name: "txn/duplicate-keys-nested", steps: []step{
			put("a", "0"),
			txn(nil, ops{putOp("a", "1"), txnOp(nil, ops{putOp("a", "2")}, nil)}, nil).fails(errDuplicateKey),
			txn(nil, ops{txnOp(nil, ops{putOp("a", "1")}, ops{putOp("a", "2")})}, nil).rev(3), // a child's then and else may share keys
			txn(nil, ops{txnOp(nil, ops{putOp("a", "1")}, nil), txnOp(nil, ops{putOp("a", "2")}, nil)}, nil).fails(errDuplicateKey),
			txn(nil, ops{txnOp(nil, ops{putOp("a", "1")}, nil), txnOp(nil, nil, ops{putOp("a", "2")})}, nil).fails(errDuplicateKey),
			txn(nil, ops{delOp("a"), txnOp(nil, ops{putOp("a", "1")}, nil)}, nil).fails(errDuplicateKey),
			txn(nil, ops{txnOp(nil, ops{delOp("a")}, nil), putOp("a", "1")}, nil).fails(errDuplicateKey),
			txn(nil, ops{txnOp(nil, nil, ops{delOp("a", clientv3.WithPrefix())}), putOp("ab", "1")}, nil).fails(errDuplicateKey),
			txn(nil, ops{txnOp(nil, ops{delOp("a")}, nil), txnOp(nil, ops{putOp("a", "1")}, nil)}, nil).fails(errDuplicateKey),
			// The reverse order passes: a child's puts are checked only against
			// deletes seen before it.
			txn(nil, ops{txnOp(nil, ops{putOp("a", "1")}, nil), txnOp(nil, ops{delOp("a")}, nil)}, nil).rev(4),
			get("a").kvs(0),
			txn(nil, ops{txnOp(nil, ops{putOp("a", "1"), txnOp(nil, ops{putOp("a", "2")}, nil)}, nil)}, nil).fails(errDuplicateKey),
			get("a").rev(4),
		}},
		{name: "txn/errors", steps: []step{
			put("a", "1"),
			txn(ifs{value("", "=", "x")}, nil, nil).fails(errEmptyKey),
			txn(nil, ops{putOp("", "1")}, nil).fails(errEmptyKey),
			txn(nil, nil, ops{getOp("")}).fails(errEmptyKey), // checked in the branch that does not run too
			txn(nil, ops{delOp("")}, nil).fails(errEmptyKey),
			txn(nil, ops{putOp("a", "x", clientv3.WithIgnoreValue())}, nil).fails(errValueProvided),
			txn(nil, ops{putOp("a", "x", clientv3.WithIgnoreLease(), clientv3.WithLease(7))}, nil).fails(errLeaseProvided),
			// Errors that depend on the store are found only in the branch
			// that runs, and fail the whole txn without a revision.
			txn(nil, ops{putOp("b", "1"), putOp("missing", "", clientv3.WithIgnoreValue())}, nil).fails(errKeyNotFound),
			txn(ifs{value("a", "=", "nope")}, ops{putOp("missing", "", clientv3.WithIgnoreValue())}, ops{putOp("b", "1")}).rev(3),
			txn(nil, ops{putOp("c", "1"), getOp("a", clientv3.WithRev(100))}, nil).fails(errFutureRev),
			txn(nil, ops{txnOp(nil, ops{putOp("missing", "", clientv3.WithIgnoreLease())}, nil)}, nil).fails(errKeyNotFound),
			rawTxn(&pb.TxnRequest{Success: []*pb.RequestOp{{}}}).fails(errKeyNotFound), // an empty RequestOp
			rawTxn(&pb.TxnRequest{Failure: []*pb.RequestOp{{}}}).fails(errKeyNotFound),
			rawTxn(&pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("a"), SortOrder: 5}}}}}).fails(errSortOption),
			get("", clientv3.WithPrefix()).rev(3).kvs(2),
		}},
		{name: "txn/max-ops", args: []string{"--max-txn-ops=4"}, steps: []step{
			put("a", "0"),
			txn(nil, ops{putOp("a", "1"), putOp("b", "1"), putOp("c", "1"), putOp("d", "1")}, nil).rev(3),
			txn(nil, ops{putOp("a", "1"), putOp("b", "1"), putOp("c", "1"), putOp("d", "1"), putOp("e", "1")}, nil).fails(errTooManyOps),
			txn(nil, ops{getOp("a"), getOp("a"), getOp("a"), getOp("a"), getOp("a")}, nil).fails(errTooManyOps),
			txn(nil, nil, ops{getOp("a"), getOp("a"), getOp("a"), getOp("a"), getOp("a")}).fails(errTooManyOps),
			txn(ifs{version("a", ">", 0), version("a", ">", 0), version("a", ">", 0), version("a", ">", 0), version("a", ">", 0)}, nil, nil).fails(errTooManyOps),
			txn(ifs{version("a", ">", 0), version("a", ">", 0), version("a", ">", 0), version("a", ">", 0)},
				ops{putOp("a", "2"), putOp("b", "2"), putOp("c", "2"), putOp("d", "2")},
				ops{getOp("a"), getOp("b"), getOp("c"), getOp("d")}).rev(4), // 4 compares, 4 then, 4 else: the limit applies to each list
			// A nested txn may use what its parent left: max minus the
			// parent's longest list.
			txn(nil, ops{getOp("a"), txnOp(nil, ops{putOp("x", "1"), putOp("y", "1")}, nil)}, nil).rev(5),
			txn(nil, ops{getOp("a"), txnOp(nil, ops{putOp("x", "1"), putOp("y", "1"), putOp("z", "1")}, nil)}, nil).fails(errTooManyOps),
			txn(ifs{version("a", ">", 0), version("a", ">", 0), version("a", ">", 0)}, ops{txnOp(nil, ops{putOp("x", "2"), putOp("y", "2")}, nil)}, nil).fails(errTooManyOps),
			txn(ifs{version("a", ">", 0), version("a", ">", 0), version("a", ">", 0)}, ops{txnOp(nil, ops{putOp("x", "2")}, nil)}, nil).rev(6),
			get("", clientv3.WithPrefix()).rev(6),
		}},
		{name: "txn/max-ops-default", steps: []step{
			txn(nil, manyPuts(128), nil).rev(2), // 128 by default
			txn(nil, manyPuts(129), nil).fails(errTooManyOps),
			get("", clientv3.WithPrefix(), clientv3.WithCountOnly()).rev(2),
		}},

		// Compaction.
		{name: "compact/physical", steps: []step{
			put("a", "1").rev(2),
			put("a", "2").rev(3),
			put("b", "1").rev(4),
			del("a").rev(5),
			put("c", "1").rev(6),
			compact(3).rev(6), // compaction makes no revision
			get("a", clientv3.WithRev(2)).fails(errCompacted),
			get("a", clientv3.WithRev(3)).kvs(1), // the compacted revision itself is still readable
			get("", clientv3.WithPrefix(), clientv3.WithRev(3)),
			get("", clientv3.WithPrefix(), clientv3.WithRev(4)),
			get("a", clientv3.WithRev(5)).kvs(0),
			get("a", clientv3.WithRev(7)).fails(errFutureRev),
			get("a", clientv3.WithRev(2), clientv3.WithSerializable()).fails(errCompacted),
			compact(3).fails(errCompacted), // again
			compact(2).fails(errCompacted), // below
			compact(7).fails(errFutureRev), // ahead
			txn(nil, ops{getOp("a", clientv3.WithRev(2))}, nil).fails(errCompacted),
			txn(nil, ops{putOp("d", "1"), getOp("a", clientv3.WithRev(1))}, nil).fails(errCompacted),
			get("a").rev(6),
			compact(6).rev(6), // up to the current revision
			get("", clientv3.WithPrefix(), clientv3.WithRev(6)).kvs(2),
			get("", clientv3.WithPrefix(), clientv3.WithRev(5)).fails(errCompacted),
			put("a", "3").rev(7), // revisions go on
			get("a").rev(7),
			compactLogical(7).rev(7),
			get("a", clientv3.WithRev(6)).fails(errCompacted),
		}},
		{name: "compact/edge-revisions", steps: []step{
			compact(0).rev(1), // a fresh store has compacted nothing, not even revision 0
			compact(0).fails(errCompacted),
			compact(-1).fails(errCompacted),
			compact(1).rev(1),
			get("a", clientv3.WithRev(1)).kvs(0),
			compact(2).fails(errFutureRev),
			put("a", "1").rev(2),
			compact(2).rev(2),
			get("a", clientv3.WithRev(1)).fails(errCompacted),
			get("a").kvs(1),
		}},

		// Limits.
		{name: "limits/request-too-large", args: []string{"--max-request-bytes=1024"}, steps: []step{
			put("a", strings.Repeat("v", 500)).rev(2),
			put("a", strings.Repeat("v", 2000)).fails(errTooLarge),
			put(strings.Repeat("k", 2000), "v").fails(errTooLarge),
			del(strings.Repeat("k", 2000)).fails(errTooLarge),
			txn(nil, ops{putOp("b", strings.Repeat("v", 600)), putOp("c", strings.Repeat("v", 600))}, nil).fails(errTooLarge),
			txn(ifs{value("a", "=", strings.Repeat("v", 2000))}, ops{putOp("x", "1")}, nil).fails(errTooLarge), // a txn with a write goes through raft...
			// ...reads do not, so the limit does not apply to them, read-only
			// txns included,
			get(strings.Repeat("k", 2000)).kvs(0),
			txn(nil, ops{getOp(strings.Repeat("k", 2000))}, nil).rev(2),
			txn(ifs{value("a", "=", strings.Repeat("v", 2000))}, nil, ops{getOp("a", clientv3.WithKeysOnly())}).rev(2).succeeded(false),
			// ...but gRPC refuses anything over the limit plus 512 KiB of
			// overhead before the server sees it.
			put("a", strings.Repeat("v", 600<<10)),
			get(strings.Repeat("k", 600<<10)),
			get("a").rev(2),
		}},
		{name: "limits/default-request-size", steps: []step{
			put("a", strings.Repeat("v", 1400<<10)).rev(2), // the default limit is 1.5 MiB
			put("a", strings.Repeat("v", 1600<<10)).fails(errTooLarge),
			get("a", clientv3.WithKeysOnly()).rev(2),
		}},
		{name: "empty-key", steps: []step{
			get("").fails(errEmptyKey),
			put("", "v").fails(errEmptyKey),
			del("").fails(errEmptyKey),
			get("", clientv3.WithRange("z")).fails(errEmptyKey),
			put("a", "1").rev(2),
			get("", clientv3.WithPrefix()).kvs(1),  // "" with a prefix or from-key is "\x00": every key
			get("", clientv3.WithFromKey()).kvs(1), //
			rawRange(&pb.RangeRequest{}).fails(errEmptyKey),
			rawRange(&pb.RangeRequest{RangeEnd: []byte("\x00")}).fails(errEmptyKey),
			get("\x00").kvs(0), // the key "\x00" itself is a key
			put("\x00", "nul").rev(3),
			get("\x00").kvs(1),
			get("", clientv3.WithPrefix()).kvs(2),
		}},
	}
}

// rangeData writes six keys with repeated values, versions and create
// revisions, so every sort target has ties. It ends at revision 10:
//
//	key  value  version  create  mod
//	a    "1"    2        2       5
//	ab   "2"    1        9       9
//	b    "1"    3        3       10
//	c    "2"    1        4       4
//	d    "2"    1        6       6
//	e    "1"    1        8       8
func rangeData() []step {
	return []step{
		put("a", "3").rev(2),
		put("b", "1").rev(3),
		put("c", "2").rev(4),
		put("a", "1").rev(5),
		put("d", "2").rev(6),
		put("b", "3").rev(7),
		put("e", "1").rev(8),
		put("ab", "2").rev(9),
		put("b", "1").rev(10),
	}
}

// sortSteps ranges over all keys in every sort order on every target, with
// the given limit (0: none).
func sortSteps(limit int64) []step {
	var steps []step
	for _, target := range []clientv3.SortTarget{clientv3.SortByKey, clientv3.SortByVersion, clientv3.SortByCreateRevision, clientv3.SortByModRevision, clientv3.SortByValue} {
		for _, order := range []clientv3.SortOrder{clientv3.SortNone, clientv3.SortAscend, clientv3.SortDescend} {
			steps = append(steps, get("", clientv3.WithPrefix(), clientv3.WithSort(target, order), clientv3.WithLimit(limit)))
		}
	}
	return steps
}

// compareData is the store the compare matrix runs on, at revision 5:
// a="m" (version 2, create 2, mod 3), b="x" (create 4), c="" (create 5).
func compareData() []step {
	return []step{
		put("a", "m").rev(2),
		put("a", "m").rev(3),
		put("b", "x").rev(4),
		put("c", "").rev(5),
	}
}

// compareMatrix is every compare target × result, on a present key, a
// missing key, a range holding keys, an empty range and a from-key range,
// each against an operand below, equal to and above the present key's
// field. The txns are read-only, so etcd's answer is the branch it took.
func compareMatrix() []step {
	type subject struct {
		name string
		key  string
		end  string // "" for a single key
	}
	subjects := []subject{
		{"present", "a", ""},
		{"missing", "zz", ""},
		{"range", "a", "c"}, // a and b
		{"empty-range", "x", "z"},
		{"from-key", "b", "\x00"}, // b and c
	}
	var steps []step
	for _, s := range subjects {
		for _, result := range []string{"=", "!=", ">", "<"} {
			mk := func(c clientv3.Cmp) clientv3.Cmp {
				if s.end != "" {
					c = c.WithRange(s.end)
				}
				return c
			}
			var cmps []clientv3.Cmp
			for _, v := range []string{"", "l", "m", "n", "x", "y"} {
				cmps = append(cmps, mk(value(s.key, result, v)))
			}
			for _, v := range []int64{0, 1, 2, 3} {
				cmps = append(cmps, mk(version(s.key, result, v)))
			}
			for _, v := range []int64{0, 1, 2, 3, 4, 5, 6} {
				cmps = append(cmps, mk(createRev(s.key, result, v)))
			}
			for _, v := range []int64{0, 2, 3, 4, 5, 6} {
				cmps = append(cmps, mk(modRev(s.key, result, v)))
			}
			for _, v := range []int64{-1, 0, 1} {
				cmps = append(cmps, mk(leaseID(s.key, result, v)))
			}
			for _, c := range cmps {
				steps = append(steps, txn(ifs{c}, ops{getOp("a")}, nil).rev(5))
			}
		}
	}
	// Compares are ANDed; an empty value compares equal to a present empty
	// value and never to a missing key.
	return append(steps,
		txn(ifs{value("a", "=", "m"), version("a", "=", 2)}, nil, nil).succeeded(true),
		txn(ifs{value("a", "=", "m"), version("a", "=", 3)}, nil, nil).succeeded(false),
		txn(ifs{value("c", "=", "")}, nil, nil).succeeded(true),
		txn(ifs{value("zz", "=", "")}, nil, nil).succeeded(false),
		txn(ifs{value("zz", "!=", "")}, nil, nil).succeeded(false),
		txn(ifs{version("zz", "=", 0), createRev("zz", "=", 0), modRev("zz", "=", 0), leaseID("zz", "=", 0)}, nil, nil).succeeded(true),
		// A compare with no operand set compares against the zero value.
		rawTxn(&pb.TxnRequest{Compare: []*pb.Compare{{Key: []byte("c"), Target: pb.Compare_VALUE, Result: pb.Compare_EQUAL}}}).succeeded(true),
		rawTxn(&pb.TxnRequest{Compare: []*pb.Compare{{Key: []byte("a"), Target: pb.Compare_MOD, Result: pb.Compare_GREATER}}}).succeeded(true),
		// A result or target outside the enum.
		rawTxn(&pb.TxnRequest{Compare: []*pb.Compare{{Key: []byte("a"), Target: pb.Compare_VERSION, Result: 9, TargetUnion: &pb.Compare_Version{Version: 1}}}}),
		rawTxn(&pb.TxnRequest{Compare: []*pb.Compare{{Key: []byte("a"), Target: 9, Result: pb.Compare_EQUAL}}}),
	)
}

func manyPuts(n int) []clientv3.Op {
	var puts []clientv3.Op
	for i := range n {
		puts = append(puts, putOp(fmt.Sprintf("k%03d", i), "v"))
	}
	return puts
}
