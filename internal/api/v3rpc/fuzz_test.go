package v3rpc

import (
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// Seed corpora live in testdata/fuzz/<FuzzName>; plain `go test` runs them.

// FuzzCheckRequests decodes arbitrary bytes as the requests a client may
// send and validates them as the KV service does. Validation never panics,
// answers only with etcd's errors, and what it accepts is well formed.
func FuzzCheckRequests(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte, maxTxnOps uint8) {
		var txn pb.TxnRequest
		if txn.Unmarshal(data) == nil {
			err := checkTxn(&txn, int(maxTxnOps))
			switch err {
			case nil:
				if why := malformedTxn(&txn, int(maxTxnOps)); why != "" {
					t.Fatalf("checkTxn accepted a txn with %s: %v", why, &txn)
				}
			case rpctypes.ErrGRPCTooManyOps, rpctypes.ErrGRPCEmptyKey, rpctypes.ErrGRPCKeyNotFound,
				rpctypes.ErrGRPCInvalidSortOption, rpctypes.ErrGRPCValueProvided, rpctypes.ErrGRPCLeaseProvided:
			default:
				t.Fatalf("checkTxn: unexpected error %v", err)
			}
			// The overlap check only ever sees txns that passed, but it
			// must hold up on anything.
			for _, list := range [][]*pb.RequestOp{txn.Success, txn.Failure} {
				if _, _, err := checkOverlaps(list); err != nil && err != rpctypes.ErrGRPCDuplicateKey {
					t.Fatalf("checkOverlaps: unexpected error %v", err)
				}
			}
		}

		var rr pb.RangeRequest
		if rr.Unmarshal(data) == nil {
			err := checkRange(&rr)
			switch err {
			case nil:
				if len(rr.Key) == 0 || !validSort(&rr) {
					t.Fatalf("checkRange accepted %v", &rr)
				}
			case rpctypes.ErrGRPCEmptyKey, rpctypes.ErrGRPCInvalidSortOption:
			default:
				t.Fatalf("checkRange: unexpected error %v", err)
			}
		}

		var pr pb.PutRequest
		if pr.Unmarshal(data) == nil {
			err := checkPut(&pr)
			switch err {
			case nil:
				if len(pr.Key) == 0 || pr.IgnoreValue && len(pr.Value) > 0 || pr.IgnoreLease && pr.Lease != 0 {
					t.Fatalf("checkPut accepted %v", &pr)
				}
			case rpctypes.ErrGRPCEmptyKey, rpctypes.ErrGRPCValueProvided, rpctypes.ErrGRPCLeaseProvided:
			default:
				t.Fatalf("checkPut: unexpected error %v", err)
			}
		}
	})
}

func validSort(r *pb.RangeRequest) bool {
	return r.SortOrder >= pb.RangeRequest_NONE && r.SortOrder <= pb.RangeRequest_DESCEND &&
		r.SortTarget >= pb.RangeRequest_KEY && r.SortTarget <= pb.RangeRequest_VALUE
}

// malformedTxn says what is wrong with a txn that validation should have
// refused, or "" if nothing is: every list within the budget (a nested
// txn's budget is its parent's minus the parent's longest list), every key
// present, every operation set.
func malformedTxn(r *pb.TxnRequest, budget int) string {
	longest := max(len(r.Compare), len(r.Success), len(r.Failure))
	if longest > budget {
		return "too many operations"
	}
	for _, c := range r.Compare {
		if len(c.Key) == 0 {
			return "an empty compare key"
		}
	}
	for _, op := range append(append([]*pb.RequestOp(nil), r.Success...), r.Failure...) {
		switch {
		case op.Request == nil:
			return "an empty operation"
		case op.GetRequestRange() != nil:
			if rr := op.GetRequestRange(); len(rr.Key) == 0 || !validSort(rr) {
				return "a bad range"
			}
		case op.GetRequestPut() != nil:
			if p := op.GetRequestPut(); len(p.Key) == 0 || p.IgnoreValue && len(p.Value) > 0 || p.IgnoreLease && p.Lease != 0 {
				return "a bad put"
			}
		case op.GetRequestDeleteRange() != nil:
			if len(op.GetRequestDeleteRange().Key) == 0 {
				return "an empty delete key"
			}
		case op.GetRequestTxn() != nil:
			if why := malformedTxn(op.GetRequestTxn(), budget-longest); why != "" {
				return why + " (nested)"
			}
		}
	}
	return ""
}
