package v3rpc

import (
	"bytes"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// Request validation, with etcd's rules and errors. Requests that pass are
// well formed; what is left to fail depends on the store's state.

func checkRange(r *pb.RangeRequest) error {
	if len(r.Key) == 0 {
		return rpctypes.ErrGRPCEmptyKey
	}
	if _, ok := pb.RangeRequest_SortOrder_name[int32(r.SortOrder)]; !ok {
		return rpctypes.ErrGRPCInvalidSortOption
	}
	if _, ok := pb.RangeRequest_SortTarget_name[int32(r.SortTarget)]; !ok {
		return rpctypes.ErrGRPCInvalidSortOption
	}
	return nil
}

func checkPut(r *pb.PutRequest) error {
	if len(r.Key) == 0 {
		return rpctypes.ErrGRPCEmptyKey
	}
	if r.IgnoreValue && len(r.Value) != 0 {
		return rpctypes.ErrGRPCValueProvided
	}
	if r.IgnoreLease && r.Lease != 0 {
		return rpctypes.ErrGRPCLeaseProvided
	}
	return nil
}

// checkTxn checks sizes and operations. Each of Compare, Success and
// Failure may hold up to maxTxnOps entries; nested txns are checked against
// what is left of the budget.
func checkTxn(r *pb.TxnRequest, maxTxnOps int) error {
	opc := max(len(r.Compare), len(r.Success), len(r.Failure))
	if opc > maxTxnOps {
		return rpctypes.ErrGRPCTooManyOps
	}
	for _, c := range r.Compare {
		if len(c.Key) == 0 {
			return rpctypes.ErrGRPCEmptyKey
		}
	}
	for _, ops := range [][]*pb.RequestOp{r.Success, r.Failure} {
		for _, op := range ops {
			if err := checkOp(op, maxTxnOps-opc); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkOp(op *pb.RequestOp, maxTxnOps int) error {
	switch v := op.Request.(type) {
	case *pb.RequestOp_RequestRange:
		if v.RequestRange == nil {
			return rpctypes.ErrGRPCEmptyKey
		}
		return checkRange(v.RequestRange)
	case *pb.RequestOp_RequestPut:
		if v.RequestPut == nil {
			return rpctypes.ErrGRPCEmptyKey
		}
		return checkPut(v.RequestPut)
	case *pb.RequestOp_RequestDeleteRange:
		if v.RequestDeleteRange == nil || len(v.RequestDeleteRange.Key) == 0 {
			return rpctypes.ErrGRPCEmptyKey
		}
		return nil
	case *pb.RequestOp_RequestTxn:
		if v.RequestTxn == nil {
			return nil
		}
		return checkTxn(v.RequestTxn, maxTxnOps)
	default:
		// An empty operation: etcd answers "key not found".
		return rpctypes.ErrGRPCKeyNotFound
	}
}

// interval is a key (end == nil) or a key range [key, end) for the overlap
// check. As in etcd, a range end is taken literally: a from-key delete
// (range end "\x00") covers no key here, so etcd accepts a put after it in
// the same txn, and so does cairn.
type interval struct{ key, end []byte }

func (iv interval) contains(k []byte) bool {
	if iv.end == nil {
		return bytes.Equal(iv.key, k)
	}
	return bytes.Compare(k, iv.key) >= 0 && bytes.Compare(k, iv.end) < 0
}

func delInterval(d *pb.DeleteRangeRequest) interval {
	if len(d.RangeEnd) == 0 {
		return interval{key: d.Key}
	}
	return interval{key: d.Key, end: d.RangeEnd}
}

func anyContains(ivs []interval, k []byte) bool {
	for _, iv := range ivs {
		if iv.contains(k) {
			return true
		}
	}
	return false
}

// checkOverlaps enforces etcd's rule that a txn may not write one key
// twice: no two puts of a key, and no put of a key a delete in the same txn
// covers. A key may be put in both branches of a nested txn, since only one
// of them runs. It returns the puts and deletes of ops for the level above.
func checkOverlaps(ops []*pb.RequestOp) (map[string]struct{}, []interval, error) {
	var dels []interval
	for _, op := range ops {
		if d := op.GetRequestDeleteRange(); d != nil {
			dels = append(dels, delInterval(d))
		}
	}
	puts := map[string]struct{}{}
	for _, op := range ops {
		t := op.GetRequestTxn()
		if t == nil {
			continue
		}
		putsThen, delsThen, err := checkOverlaps(t.Success)
		if err != nil {
			return nil, nil, err
		}
		putsElse, delsElse, err := checkOverlaps(t.Failure)
		if err != nil {
			return nil, nil, err
		}
		for k := range putsThen {
			if _, dup := puts[k]; dup || anyContains(dels, []byte(k)) {
				return nil, nil, rpctypes.ErrGRPCDuplicateKey
			}
			puts[k] = struct{}{}
		}
		for k := range putsElse {
			if _, dup := puts[k]; dup {
				if _, fromThen := putsThen[k]; !fromThen {
					return nil, nil, rpctypes.ErrGRPCDuplicateKey
				}
			}
			if anyContains(dels, []byte(k)) {
				return nil, nil, rpctypes.ErrGRPCDuplicateKey
			}
			puts[k] = struct{}{}
		}
		dels = append(dels, delsThen...)
		dels = append(dels, delsElse...)
	}
	for _, op := range ops {
		p := op.GetRequestPut()
		if p == nil {
			continue
		}
		k := string(p.Key)
		if _, dup := puts[k]; dup || anyContains(dels, p.Key) {
			return nil, nil, rpctypes.ErrGRPCDuplicateKey
		}
		puts[k] = struct{}{}
	}
	return puts, dels, nil
}
