package v3rpc

import (
	"strings"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// Builders of request operations.

func putOp(k string) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(k), Value: []byte("v")}}}
}

func delOp(k, end string) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: []byte(k), RangeEnd: []byte(end)}}}
}

func rangeOp(k string) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte(k)}}}
}

func txnOp(then, els []*pb.RequestOp) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestTxn{RequestTxn: &pb.TxnRequest{Success: then, Failure: els}}}
}

func cmp(k string) *pb.Compare {
	return &pb.Compare{Key: []byte(k), Target: pb.Compare_VERSION, Result: pb.Compare_EQUAL}
}

func ops(rs ...*pb.RequestOp) []*pb.RequestOp { return rs }

// puts returns n puts of distinct keys.
func puts(n int) []*pb.RequestOp {
	out := make([]*pb.RequestOp, n)
	for i := range out {
		out[i] = putOp("k" + strings.Repeat("x", i))
	}
	return out
}

func cmps(n int) []*pb.Compare {
	out := make([]*pb.Compare, n)
	for i := range out {
		out[i] = cmp("c")
	}
	return out
}

func TestCheckRange(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    *pb.RangeRequest
		want error
	}{
		{"key", &pb.RangeRequest{Key: []byte("a")}, nil},
		{"range", &pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("b"), SortOrder: pb.RangeRequest_DESCEND, SortTarget: pb.RangeRequest_VALUE}, nil},
		{"every sort option", &pb.RangeRequest{Key: []byte("a"), SortOrder: pb.RangeRequest_ASCEND, SortTarget: pb.RangeRequest_MOD}, nil},
		{"empty key", &pb.RangeRequest{RangeEnd: []byte("b")}, rpctypes.ErrGRPCEmptyKey},
		{"bad sort order", &pb.RangeRequest{Key: []byte("a"), SortOrder: 3}, rpctypes.ErrGRPCInvalidSortOption},
		{"negative sort order", &pb.RangeRequest{Key: []byte("a"), SortOrder: -1}, rpctypes.ErrGRPCInvalidSortOption},
		{"bad sort target", &pb.RangeRequest{Key: []byte("a"), SortTarget: 5}, rpctypes.ErrGRPCInvalidSortOption},
		{"empty key before sort", &pb.RangeRequest{SortOrder: 9}, rpctypes.ErrGRPCEmptyKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := checkRange(tc.r); got != tc.want {
				t.Fatalf("checkRange = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestCheckPut(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    *pb.PutRequest
		want error
	}{
		{"put", &pb.PutRequest{Key: []byte("a"), Value: []byte("v"), Lease: 5}, nil},
		{"empty value", &pb.PutRequest{Key: []byte("a")}, nil},
		{"ignore value", &pb.PutRequest{Key: []byte("a"), IgnoreValue: true}, nil},
		{"ignore lease", &pb.PutRequest{Key: []byte("a"), IgnoreLease: true}, nil},
		{"empty key", &pb.PutRequest{Value: []byte("v")}, rpctypes.ErrGRPCEmptyKey},
		{"value with ignore value", &pb.PutRequest{Key: []byte("a"), Value: []byte("v"), IgnoreValue: true}, rpctypes.ErrGRPCValueProvided},
		{"lease with ignore lease", &pb.PutRequest{Key: []byte("a"), Lease: 5, IgnoreLease: true}, rpctypes.ErrGRPCLeaseProvided},
		{"empty key first", &pb.PutRequest{Value: []byte("v"), IgnoreValue: true}, rpctypes.ErrGRPCEmptyKey},
		{"value before lease", &pb.PutRequest{Key: []byte("a"), Value: []byte("v"), IgnoreValue: true, Lease: 5, IgnoreLease: true}, rpctypes.ErrGRPCValueProvided},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := checkPut(tc.r); got != tc.want {
				t.Fatalf("checkPut = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestCheckTxn(t *testing.T) {
	for _, tc := range []struct {
		name  string
		limit int
		r     *pb.TxnRequest
		want  error
	}{
		{"empty", 0, &pb.TxnRequest{}, nil},
		{"every list at the limit", 3, &pb.TxnRequest{Compare: cmps(3), Success: puts(3), Failure: puts(3)}, nil},
		{"compares over", 3, &pb.TxnRequest{Compare: cmps(4)}, rpctypes.ErrGRPCTooManyOps},
		{"success over", 3, &pb.TxnRequest{Success: puts(4)}, rpctypes.ErrGRPCTooManyOps},
		{"failure over", 3, &pb.TxnRequest{Failure: puts(4)}, rpctypes.ErrGRPCTooManyOps},
		{"size checked before keys", 3, &pb.TxnRequest{Compare: []*pb.Compare{{}, {}, {}, {}}}, rpctypes.ErrGRPCTooManyOps},

		// A nested txn gets the limit minus the parent's longest list.
		{"nested within budget", 4, &pb.TxnRequest{Success: ops(txnOp(puts(2), nil), putOp("p"))}, nil},
		{"nested over budget", 4, &pb.TxnRequest{Success: ops(txnOp(puts(3), nil), putOp("p"))}, rpctypes.ErrGRPCTooManyOps},
		{"nested else over budget", 4, &pb.TxnRequest{Success: ops(txnOp(nil, puts(3)), putOp("p"))}, rpctypes.ErrGRPCTooManyOps},
		{"nested in failure over budget", 4, &pb.TxnRequest{Failure: ops(txnOp(puts(3), nil), putOp("p"))}, rpctypes.ErrGRPCTooManyOps},
		{"parent compares count", 5, &pb.TxnRequest{Compare: cmps(3), Success: ops(txnOp(puts(2), nil))}, nil},
		{"parent compares count over", 5, &pb.TxnRequest{Compare: cmps(3), Success: ops(txnOp(puts(3), nil))}, rpctypes.ErrGRPCTooManyOps},
		{"parent failure counts", 5, &pb.TxnRequest{Success: ops(txnOp(puts(3), nil)), Failure: puts(3)}, rpctypes.ErrGRPCTooManyOps},
		{"nested compares count", 4, &pb.TxnRequest{Success: ops(
			&pb.RequestOp{Request: &pb.RequestOp_RequestTxn{RequestTxn: &pb.TxnRequest{Compare: cmps(3)}}}, putOp("p"))}, rpctypes.ErrGRPCTooManyOps},
		{"two levels within budget", 6, &pb.TxnRequest{Success: ops(
			txnOp(ops(txnOp(puts(1), nil), putOp("a"), putOp("b")), nil), putOp("p"))}, nil},
		{"two levels over budget", 6, &pb.TxnRequest{Success: ops(
			txnOp(ops(txnOp(puts(2), nil), putOp("a"), putOp("b")), nil), putOp("p"))}, rpctypes.ErrGRPCTooManyOps},
		{"nested with no budget left", 2, &pb.TxnRequest{Success: ops(txnOp(puts(1), nil), putOp("p"))}, rpctypes.ErrGRPCTooManyOps},
		{"empty nested with no budget left", 2, &pb.TxnRequest{Success: ops(txnOp(nil, nil), putOp("p"))}, nil},

		// Empty keys, wherever they are.
		{"empty compare key", 8, &pb.TxnRequest{Compare: []*pb.Compare{cmp("a"), cmp("")}}, rpctypes.ErrGRPCEmptyKey},
		{"empty put key", 8, &pb.TxnRequest{Success: ops(putOp("a"), putOp(""))}, rpctypes.ErrGRPCEmptyKey},
		{"empty delete key", 8, &pb.TxnRequest{Failure: ops(delOp("", "z"))}, rpctypes.ErrGRPCEmptyKey},
		{"empty range key", 8, &pb.TxnRequest{Success: ops(rangeOp(""))}, rpctypes.ErrGRPCEmptyKey},
		{"empty key nested", 8, &pb.TxnRequest{Success: ops(txnOp(nil, ops(txnOp(ops(putOp("")), nil))))}, rpctypes.ErrGRPCEmptyKey},
		{"empty compare key nested", 8, &pb.TxnRequest{Failure: ops(
			&pb.RequestOp{Request: &pb.RequestOp_RequestTxn{RequestTxn: &pb.TxnRequest{Compare: []*pb.Compare{cmp("")}}}})}, rpctypes.ErrGRPCEmptyKey},
		// Operations whose payload is nil cannot come off the wire (the
		// decoder always allocates one); they are refused, not followed.
		{"nil put", 8, &pb.TxnRequest{Success: ops(&pb.RequestOp{Request: &pb.RequestOp_RequestPut{}})}, rpctypes.ErrGRPCEmptyKey},
		{"nil range", 8, &pb.TxnRequest{Success: ops(&pb.RequestOp{Request: &pb.RequestOp_RequestRange{}})}, rpctypes.ErrGRPCEmptyKey},
		{"nil delete", 8, &pb.TxnRequest{Success: ops(&pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{}})}, rpctypes.ErrGRPCEmptyKey},
		{"nil nested txn", 8, &pb.TxnRequest{Success: ops(&pb.RequestOp{Request: &pb.RequestOp_RequestTxn{}})}, nil},

		// An operation with nothing in it is "key not found", as in etcd.
		{"empty op", 8, &pb.TxnRequest{Success: ops(putOp("a"), &pb.RequestOp{})}, rpctypes.ErrGRPCKeyNotFound},
		{"empty op in failure", 8, &pb.TxnRequest{Failure: ops(&pb.RequestOp{})}, rpctypes.ErrGRPCKeyNotFound},
		{"empty op nested", 8, &pb.TxnRequest{Success: ops(txnOp(ops(&pb.RequestOp{}), nil))}, rpctypes.ErrGRPCKeyNotFound},

		// The checks of the single requests apply inside a txn.
		{"bad sort inside", 8, &pb.TxnRequest{Success: ops(&pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("a"), SortTarget: 7}}})}, rpctypes.ErrGRPCInvalidSortOption},
		{"value provided inside", 8, &pb.TxnRequest{Success: ops(&pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("a"), Value: []byte("v"), IgnoreValue: true}}})}, rpctypes.ErrGRPCValueProvided},
		{"lease provided nested", 8, &pb.TxnRequest{Success: ops(txnOp(nil, ops(&pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("a"), Lease: 1, IgnoreLease: true}}})))}, rpctypes.ErrGRPCLeaseProvided},

		// Success is checked before Failure, in order.
		{"first error wins", 8, &pb.TxnRequest{Success: ops(&pb.RequestOp{}), Failure: ops(putOp(""))}, rpctypes.ErrGRPCKeyNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := checkTxn(tc.r, tc.limit); got != tc.want {
				t.Fatalf("checkTxn(limit %d) = %v, want %v", tc.limit, got, tc.want)
			}
		})
	}
}

// The overlap rules are those of etcd's checkIntervals: a txn may not put
// a key twice, nor put a key that a delete in the same or an enclosing
// level covers; the two branches of one nested txn are exclusive.
func TestCheckOverlaps(t *testing.T) {
	dup := rpctypes.ErrGRPCDuplicateKey
	for _, tc := range []struct {
		name string
		ops  []*pb.RequestOp
		want error
	}{
		{"nothing", nil, nil},
		{"distinct puts", ops(putOp("a"), putOp("b")), nil},
		{"duplicate puts", ops(putOp("a"), putOp("b"), putOp("a")), dup},
		{"ranges do not count", ops(rangeOp("a"), putOp("a"), rangeOp("a")), nil},
		{"duplicate deletes", ops(delOp("a", ""), delOp("a", "")), nil},
		{"overlapping deletes", ops(delOp("a", "c"), delOp("b", "d")), nil},

		// Puts under deletes at the same level, in either order.
		{"put then delete of it", ops(putOp("a"), delOp("a", "")), dup},
		{"delete then put of it", ops(delOp("a", ""), putOp("a")), dup},
		{"put inside a deleted range", ops(delOp("a", "c"), putOp("b")), dup},
		{"put at a deleted range's start", ops(putOp("a"), delOp("a", "c")), dup},
		{"put at a deleted range's end", ops(delOp("a", "c"), putOp("c")), nil},
		{"put before a deleted range", ops(delOp("b", "c"), putOp("a")), nil},
		{"put beside a deleted key", ops(delOp("a", ""), putOp("a\x00")), nil},
		{"empty deleted range", ops(delOp("b", "b"), putOp("b")), nil},
		{"inverted deleted range", ops(delOp("c", "a"), putOp("b")), nil},

		// A range end of "\x00" is taken literally, as etcd does: a
		// from-key delete covers no key here.
		{"from-key delete covers nothing", ops(delOp("a", "\x00"), putOp("b"), putOp("a"), putOp("zzz")), nil},
		{"from-key delete nested covers nothing", ops(txnOp(ops(delOp("a", "\x00")), nil), putOp("b")), nil},
		{"delete of key \\x00", ops(delOp("\x00", ""), putOp("\x00")), dup},

		// Nested txns.
		{"then and else share a key", ops(txnOp(ops(putOp("a")), ops(putOp("a")))), nil},
		{"nested put and parent put", ops(txnOp(ops(putOp("a")), nil), putOp("a")), dup},
		{"nested else put and parent put", ops(txnOp(nil, ops(putOp("a"))), putOp("a")), dup},
		{"then and else shared, then parent put", ops(txnOp(ops(putOp("a")), ops(putOp("a"))), putOp("a")), dup},
		{"parent delete covers nested put", ops(delOp("a", "c"), txnOp(ops(putOp("b")), nil)), dup},
		{"parent delete covers nested else put", ops(txnOp(nil, ops(putOp("b"))), delOp("a", "c")), dup},
		{"nested delete covers parent put", ops(putOp("b"), txnOp(ops(delOp("a", "c")), nil)), dup},
		{"nested else delete covers parent put", ops(txnOp(nil, ops(delOp("b", ""))), putOp("b")), dup},
		{"grandchild put under top delete", ops(delOp("k", ""), txnOp(nil, ops(txnOp(ops(putOp("k")), nil)))), dup},
		{"grandchild delete over top put", ops(putOp("k"), txnOp(nil, ops(txnOp(ops(delOp("a", "z")), nil)))), dup},
		{"put and delete in one nested branch", ops(txnOp(ops(putOp("a"), delOp("a", "")), nil)), dup},
		{"then puts what else deletes", ops(txnOp(ops(putOp("a")), ops(delOp("a", "")))), nil},
		{"then deletes what else puts", ops(txnOp(ops(delOp("a", "")), ops(putOp("a")))), nil},

		// Sibling nested txns: a later sibling's puts are checked against
		// the puts and deletes of earlier ones, not the other way round.
		{"siblings put one key", ops(txnOp(ops(putOp("a")), nil), txnOp(ops(putOp("a")), nil)), dup},
		{"siblings put one key in then and else", ops(txnOp(ops(putOp("a")), nil), txnOp(nil, ops(putOp("a")))), dup},
		{"sibling put then sibling delete", ops(txnOp(ops(putOp("a")), nil), txnOp(ops(delOp("a", "")), nil)), nil},
		{"sibling delete then sibling put", ops(txnOp(ops(delOp("a", "")), nil), txnOp(ops(putOp("a")), nil)), dup},
		{"sibling range delete then sibling else put", ops(txnOp(nil, ops(delOp("a", "c"))), txnOp(nil, ops(putOp("b")))), dup},
		{"sibling put then sibling range delete", ops(txnOp(nil, ops(putOp("b"))), txnOp(ops(delOp("a", "c")), nil)), nil},
		{"siblings put different keys", ops(txnOp(ops(putOp("a")), ops(putOp("b"))), txnOp(ops(putOp("c")), ops(putOp("d")))), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, got := checkOverlaps(tc.ops); got != tc.want {
				t.Fatalf("checkOverlaps = %v, want %v", got, tc.want)
			}
		})
	}
}
