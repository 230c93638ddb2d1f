package mvcc

import (
	"bytes"
	"fmt"
	"sort"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// This file gives the etcd v3 KV requests (Range, Put, DeleteRange, Txn)
// their exact etcd meaning on top of the store's transactions: which
// revision each response header carries, how limits, sorting and filters
// combine, how compares treat missing keys. Request validation (empty keys,
// txn size, duplicate keys) happens at the API edge before a request is
// proposed; what remains here can only fail on the state it reads.

// LeaseLookup answers whether a lease exists; the lease table implements it.
// A nil LeaseLookup means no lease exists.
type LeaseLookup interface {
	LeaseExists(id int64) bool
}

// view is what request execution reads through: a read or write transaction.
type view interface {
	Range(key, end []byte, ro RangeOptions) (*RangeResult, error)
	Rev() int64
	FirstRev() int64
}

var (
	_ view = (*TxnRead)(nil)
	_ view = (*TxnWrite)(nil)
)

// gteRange maps etcd's "\x00" range end (every key >= key) to an empty
// non-nil slice, the store's spelling of it.
func gteRange(end []byte) []byte {
	if len(end) == 1 && end[0] == 0 {
		return []byte{}
	}
	return end
}

// Range serves a Range request at the newest revision (or r.Revision).
func (s *Store) Range(r *pb.RangeRequest) (*pb.RangeResponse, error) {
	tr := s.Read()
	defer tr.End()
	return execRange(tr, r)
}

// ReadTxn serves a Txn request that contains no writes, at one revision.
func (s *Store) ReadTxn(rt *pb.TxnRequest) (*pb.TxnResponse, error) {
	tr := s.Read()
	defer tr.End()
	path := comparePath(tr, rt)
	if err := checkTxn(tr, nil, rt, path); err != nil {
		return nil, err
	}
	resp, _ := newTxnResp(rt, path)
	if _, err := execTxn(tr, nil, nil, rt, path, resp); err != nil {
		return nil, err
	}
	resp.Header.Revision = tr.Rev()
	return resp, nil
}

// IsReadOnlyTxn reports whether a Txn has only Range operations in both
// branches (nested txns count as writes, as in etcd).
func IsReadOnlyTxn(rt *pb.TxnRequest) bool {
	for _, ops := range [][]*pb.RequestOp{rt.Success, rt.Failure} {
		for _, op := range ops {
			if op.GetRequestRange() == nil {
				return false
			}
		}
	}
	return true
}

// IsSerializableTxn reports whether every operation of a Txn is a
// serializable Range.
func IsSerializableTxn(rt *pb.TxnRequest) bool {
	for _, ops := range [][]*pb.RequestOp{rt.Success, rt.Failure} {
		for _, op := range ops {
			if r := op.GetRequestRange(); r == nil || !r.Serializable {
				return false
			}
		}
	}
	return true
}

func execRange(v view, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	resp := &pb.RangeResponse{Header: &pb.ResponseHeader{}}
	limit := r.Limit
	filtered := r.MinModRevision != 0 || r.MaxModRevision != 0 ||
		r.MinCreateRevision != 0 || r.MaxCreateRevision != 0
	if r.SortOrder != pb.RangeRequest_NONE || filtered {
		// Sorting and filtering need every key; truncate afterwards.
		limit = 0
	}
	if limit > 0 {
		// One more than asked tells whether there are more.
		limit++
	}
	rr, err := v.Range(r.Key, gteRange(r.RangeEnd), RangeOptions{Limit: limit, Rev: r.Revision, Count: r.CountOnly})
	if err != nil {
		return nil, err
	}
	kvs := rr.KVs
	if filtered {
		kvs = filterKVs(kvs, r)
	}
	order := r.SortOrder
	switch {
	case r.SortTarget != pb.RangeRequest_KEY && order == pb.RangeRequest_NONE:
		// Keys come in key order; another target defaults to ascending.
		order = pb.RangeRequest_ASCEND
	case r.SortTarget == pb.RangeRequest_KEY && order == pb.RangeRequest_ASCEND:
		// Already in that order.
		order = pb.RangeRequest_NONE
	}
	if order != pb.RangeRequest_NONE {
		sortKVs(kvs, r.SortTarget, order == pb.RangeRequest_DESCEND)
	}
	if r.Limit > 0 && int64(len(kvs)) > r.Limit {
		kvs = kvs[:r.Limit]
		resp.More = true
	}
	resp.Header.Revision = rr.Rev
	resp.Count = int64(rr.Count)
	if len(kvs) > 0 {
		resp.Kvs = make([]*mvccpb.KeyValue, len(kvs))
		for i := range kvs {
			if r.KeysOnly {
				kvs[i].Value = nil
			}
			resp.Kvs[i] = &kvs[i]
		}
	}
	return resp, nil
}

func filterKVs(kvs []mvccpb.KeyValue, r *pb.RangeRequest) []mvccpb.KeyValue {
	out := kvs[:0]
	for _, kv := range kvs {
		switch {
		case r.MaxModRevision != 0 && kv.ModRevision > r.MaxModRevision,
			r.MinModRevision != 0 && kv.ModRevision < r.MinModRevision,
			r.MaxCreateRevision != 0 && kv.CreateRevision > r.MaxCreateRevision,
			r.MinCreateRevision != 0 && kv.CreateRevision < r.MinCreateRevision:
			continue
		}
		out = append(out, kv)
	}
	return out
}

// sortKVs sorts by target. Keys that tie keep no particular order, but the
// same one as in etcd: like etcd, it runs sort.Sort (which is not stable
// beyond a dozen elements) over the key-ordered list, reversed for
// descending order.
func sortKVs(kvs []mvccpb.KeyValue, target pb.RangeRequest_SortTarget, desc bool) {
	var cmp func(a, b *mvccpb.KeyValue) int
	switch target {
	case pb.RangeRequest_KEY:
		cmp = func(a, b *mvccpb.KeyValue) int { return bytes.Compare(a.Key, b.Key) }
	case pb.RangeRequest_VERSION:
		cmp = func(a, b *mvccpb.KeyValue) int { return cmpInt64(a.Version, b.Version) }
	case pb.RangeRequest_CREATE:
		cmp = func(a, b *mvccpb.KeyValue) int { return cmpInt64(a.CreateRevision, b.CreateRevision) }
	case pb.RangeRequest_MOD:
		cmp = func(a, b *mvccpb.KeyValue) int { return cmpInt64(a.ModRevision, b.ModRevision) }
	case pb.RangeRequest_VALUE:
		cmp = func(a, b *mvccpb.KeyValue) int { return bytes.Compare(a.Value, b.Value) }
	default:
		// Rejected at the API edge.
		return
	}
	var data sort.Interface = kvSorter{kvs: kvs, cmp: cmp}
	if desc {
		data = sort.Reverse(data)
	}
	sort.Sort(data)
}

type kvSorter struct {
	kvs []mvccpb.KeyValue
	cmp func(a, b *mvccpb.KeyValue) int
}

func (s kvSorter) Len() int           { return len(s.kvs) }
func (s kvSorter) Less(i, j int) bool { return s.cmp(&s.kvs[i], &s.kvs[j]) < 0 }
func (s kvSorter) Swap(i, j int)      { s.kvs[i], s.kvs[j] = s.kvs[j], s.kvs[i] }

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// ApplyPut applies a Put request in write transaction tw.
func ApplyPut(tw *TxnWrite, leases LeaseLookup, p *pb.PutRequest) (*pb.PutResponse, error) {
	if p.Lease != 0 && (leases == nil || !leases.LeaseExists(p.Lease)) {
		return nil, ErrLeaseNotFound
	}
	return put(tw, p)
}

func put(tw *TxnWrite, p *pb.PutRequest) (*pb.PutResponse, error) {
	resp := &pb.PutResponse{Header: &pb.ResponseHeader{}}
	val, lease := p.Value, p.Lease
	var prev *mvccpb.KeyValue
	if p.IgnoreValue || p.IgnoreLease || p.PrevKv {
		rr, err := tw.Range(p.Key, nil, RangeOptions{})
		if err != nil {
			return nil, err
		}
		if len(rr.KVs) > 0 {
			prev = &rr.KVs[0]
		}
	}
	if (p.IgnoreValue || p.IgnoreLease) && prev == nil {
		return nil, ErrKeyNotFound
	}
	if p.IgnoreValue {
		val = prev.Value
	}
	if p.IgnoreLease {
		lease = prev.Lease
	}
	if p.PrevKv {
		resp.PrevKv = prev
	}
	resp.Header.Revision = tw.Put(p.Key, val, lease)
	return resp, nil
}

// ApplyDeleteRange applies a DeleteRange request in write transaction tw.
func ApplyDeleteRange(tw *TxnWrite, dr *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	resp := &pb.DeleteRangeResponse{Header: &pb.ResponseHeader{}}
	end := gteRange(dr.RangeEnd)
	if dr.PrevKv {
		rr, err := tw.Range(dr.Key, end, RangeOptions{})
		if err != nil {
			return nil, err
		}
		if len(rr.KVs) > 0 {
			resp.PrevKvs = make([]*mvccpb.KeyValue, len(rr.KVs))
			for i := range rr.KVs {
				resp.PrevKvs[i] = &rr.KVs[i]
			}
		}
	}
	resp.Deleted, resp.Header.Revision = tw.DeleteRange(dr.Key, end)
	return resp, nil
}

// ApplyTxn applies a Txn request in write transaction tw: the compares are
// evaluated first, every operation of the chosen branches is checked against
// the state before any is executed, then they execute in order, each seeing
// the ones before it.
func ApplyTxn(tw *TxnWrite, leases LeaseLookup, rt *pb.TxnRequest) (*pb.TxnResponse, error) {
	path := comparePath(tw, rt)
	if err := checkTxn(tw, leases, rt, path); err != nil {
		return nil, err
	}
	resp, _ := newTxnResp(rt, path)
	if _, err := execTxn(tw, tw, leases, rt, path, resp); err != nil {
		// Every operation was checked above; a failure now would leave
		// the transaction half applied on this member only.
		panic(fmt.Sprintf("mvcc: txn failed after its checks passed: %v", err))
	}
	rev := tw.Rev()
	if len(tw.Changes()) > 0 {
		rev++
	}
	resp.Header.Revision = rev
	return resp, nil
}

// comparePath evaluates the compares of rt and of every nested txn on the
// chosen branches, depth first: path[0] is rt's outcome.
func comparePath(v view, rt *pb.TxnRequest) []bool {
	ok := compareAll(v, rt.Compare)
	path := []bool{ok}
	for _, op := range branch(rt, ok) {
		if nested := op.GetRequestTxn(); nested != nil {
			path = append(path, comparePath(v, nested)...)
		}
	}
	return path
}

func branch(rt *pb.TxnRequest, ok bool) []*pb.RequestOp {
	if ok {
		return rt.Success
	}
	return rt.Failure
}

func compareAll(v view, cmps []*pb.Compare) bool {
	for _, c := range cmps {
		if !compare(v, c) {
			return false
		}
	}
	return true
}

// compare evaluates one compare over the key or range it names: it holds
// when it holds for every key. On no keys, a VALUE compare fails and the
// others compare against zero.
func compare(v view, c *pb.Compare) bool {
	rr, err := v.Range(c.Key, gteRange(c.RangeEnd), RangeOptions{})
	if err != nil {
		return false
	}
	if len(rr.KVs) == 0 {
		if c.Target == pb.Compare_VALUE {
			return false
		}
		return compareKV(c, &mvccpb.KeyValue{})
	}
	for i := range rr.KVs {
		if !compareKV(c, &rr.KVs[i]) {
			return false
		}
	}
	return true
}

func compareKV(c *pb.Compare, kv *mvccpb.KeyValue) bool {
	var r int
	switch c.Target {
	case pb.Compare_VALUE:
		var want []byte
		if tv, ok := c.TargetUnion.(*pb.Compare_Value); ok && tv != nil {
			want = tv.Value
		}
		r = bytes.Compare(kv.Value, want)
	case pb.Compare_CREATE:
		r = cmpInt64(kv.CreateRevision, c.GetCreateRevision())
	case pb.Compare_MOD:
		r = cmpInt64(kv.ModRevision, c.GetModRevision())
	case pb.Compare_VERSION:
		r = cmpInt64(kv.Version, c.GetVersion())
	case pb.Compare_LEASE:
		r = cmpInt64(kv.Lease, c.GetLease())
	}
	switch c.Result {
	case pb.Compare_EQUAL:
		return r == 0
	case pb.Compare_NOT_EQUAL:
		return r != 0
	case pb.Compare_GREATER:
		return r > 0
	case pb.Compare_LESS:
		return r < 0
	}
	return true
}

// checkTxn checks the operations of the chosen branches against the state
// before the txn: range revisions, and puts that need an existing key or
// lease. A put with ignore_value or ignore_lease also needs its key not to
// be deleted by an earlier operation of the same txn: the API edge forbids
// most such overlaps, but, as in etcd, not one with a from-key delete
// (range end "\x00"). etcd 3.6 fails such a txn halfway through applying it
// and then crashes on every restart; cairn refuses it whole, before any of
// it is applied.
func checkTxn(v view, leases LeaseLookup, rt *pb.TxnRequest, path []bool) error {
	var deleted []deletion
	_, err := checkOps(v, leases, rt, path, &deleted)
	return err
}

// deletion is a delete executed earlier in a txn, as [key, end) with the
// store's end conventions.
type deletion struct{ key, end []byte }

func (d deletion) covers(k []byte) bool {
	switch {
	case d.end == nil:
		return bytes.Equal(k, d.key)
	case len(d.end) == 0:
		return bytes.Compare(k, d.key) >= 0
	default:
		return bytes.Compare(k, d.key) >= 0 && bytes.Compare(k, d.end) < 0
	}
}

func checkOps(v view, leases LeaseLookup, rt *pb.TxnRequest, path []bool, deleted *[]deletion) (int, error) {
	nested := 0
	for _, op := range branch(rt, path[0]) {
		switch tv := op.Request.(type) {
		case *pb.RequestOp_RequestRange:
			if r := tv.RequestRange; r != nil && r.Revision != 0 {
				if r.Revision > v.Rev() {
					return 0, ErrFutureRev
				}
				if r.Revision < v.FirstRev() {
					return 0, ErrCompacted
				}
			}
		case *pb.RequestOp_RequestDeleteRange:
			if d := tv.RequestDeleteRange; d != nil {
				*deleted = append(*deleted, deletion{key: d.Key, end: gteRange(d.RangeEnd)})
			}
		case *pb.RequestOp_RequestPut:
			p := tv.RequestPut
			if p == nil {
				continue
			}
			if p.IgnoreValue || p.IgnoreLease {
				rr, err := v.Range(p.Key, nil, RangeOptions{})
				if err != nil {
					return 0, err
				}
				if len(rr.KVs) == 0 {
					return 0, ErrKeyNotFound
				}
				for _, d := range *deleted {
					if d.covers(p.Key) {
						return 0, ErrKeyNotFound
					}
				}
			}
			if p.Lease != 0 && (leases == nil || !leases.LeaseExists(p.Lease)) {
				return 0, ErrLeaseNotFound
			}
		case *pb.RequestOp_RequestTxn:
			if tv.RequestTxn == nil {
				continue
			}
			n, err := checkOps(v, leases, tv.RequestTxn, path[1:], deleted)
			if err != nil {
				return 0, err
			}
			nested += n + 1
			path = path[n+1:]
		}
	}
	return nested, nil
}

// newTxnResp allocates the response skeleton for the chosen path.
func newTxnResp(rt *pb.TxnRequest, path []bool) (*pb.TxnResponse, int) {
	ops := branch(rt, path[0])
	resp := &pb.TxnResponse{
		Succeeded: path[0],
		Header:    &pb.ResponseHeader{},
		Responses: make([]*pb.ResponseOp, len(ops)),
	}
	nested := 0
	for i, op := range ops {
		switch tv := op.Request.(type) {
		case *pb.RequestOp_RequestRange:
			resp.Responses[i] = &pb.ResponseOp{Response: &pb.ResponseOp_ResponseRange{}}
		case *pb.RequestOp_RequestPut:
			resp.Responses[i] = &pb.ResponseOp{Response: &pb.ResponseOp_ResponsePut{}}
		case *pb.RequestOp_RequestDeleteRange:
			resp.Responses[i] = &pb.ResponseOp{Response: &pb.ResponseOp_ResponseDeleteRange{}}
		case *pb.RequestOp_RequestTxn:
			if tv.RequestTxn == nil {
				resp.Responses[i] = &pb.ResponseOp{}
				continue
			}
			sub, n := newTxnResp(tv.RequestTxn, path[1:])
			resp.Responses[i] = &pb.ResponseOp{Response: &pb.ResponseOp_ResponseTxn{ResponseTxn: sub}}
			path = path[n+1:]
			nested += n + 1
		default:
			resp.Responses[i] = &pb.ResponseOp{}
		}
	}
	return resp, nested
}

// execTxn executes the chosen branches. tw is nil for a read-only txn.
func execTxn(v view, tw *TxnWrite, leases LeaseLookup, rt *pb.TxnRequest, path []bool, resp *pb.TxnResponse) (int, error) {
	nested := 0
	for i, op := range branch(rt, path[0]) {
		out := resp.Responses[i].Response
		switch tv := op.Request.(type) {
		case *pb.RequestOp_RequestRange:
			r, err := execRange(v, tv.RequestRange)
			if err != nil {
				return 0, fmt.Errorf("txn range: %w", err)
			}
			out.(*pb.ResponseOp_ResponseRange).ResponseRange = r
		case *pb.RequestOp_RequestPut:
			r, err := put(tw, tv.RequestPut)
			if err != nil {
				return 0, fmt.Errorf("txn put: %w", err)
			}
			out.(*pb.ResponseOp_ResponsePut).ResponsePut = r
		case *pb.RequestOp_RequestDeleteRange:
			r, err := ApplyDeleteRange(tw, tv.RequestDeleteRange)
			if err != nil {
				return 0, fmt.Errorf("txn delete: %w", err)
			}
			out.(*pb.ResponseOp_ResponseDeleteRange).ResponseDeleteRange = r
		case *pb.RequestOp_RequestTxn:
			if tv.RequestTxn == nil {
				continue
			}
			sub := out.(*pb.ResponseOp_ResponseTxn).ResponseTxn
			n, err := execTxn(v, tw, leases, tv.RequestTxn, path[1:], sub)
			if err != nil {
				return 0, err
			}
			nested += n + 1
			path = path[n+1:]
		}
	}
	return nested, nil
}
