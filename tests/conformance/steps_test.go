package conformance_test

import (
	"context"
	"fmt"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
)

// step is one client call, made identically on both sides. checks state what
// the reference etcd must answer; they keep the scenario tables honest (a
// step meant to hit an error really does) and document the facts.
type step struct {
	call func(ctx context.Context, c *clientv3.Client) error
	// exec, if set, replaces call: it performs the step on the side and
	// returns what the server answered. Steps that use what the side's
	// server chose earlier (a lease ID) or that talk over a stream (watch,
	// keep-alive), which the unary recorder does not see, are built on it.
	exec   func(ctx context.Context, s *side) outcome
	checks []func(outcome) error
}

// The errors etcd v3.6 sends for the KV API, as (code, message).
var (
	errEmptyKey      = rpcErr{codes.InvalidArgument, "etcdserver: key is not provided"}
	errKeyNotFound   = rpcErr{codes.InvalidArgument, "etcdserver: key not found"}
	errValueProvided = rpcErr{codes.InvalidArgument, "etcdserver: value is provided"}
	errLeaseProvided = rpcErr{codes.InvalidArgument, "etcdserver: lease is provided"}
	errTooManyOps    = rpcErr{codes.InvalidArgument, "etcdserver: too many operations in txn request"}
	errDuplicateKey  = rpcErr{codes.InvalidArgument, "etcdserver: duplicate key given in txn request"}
	errSortOption    = rpcErr{codes.InvalidArgument, "etcdserver: invalid sort option"}
	errTooLarge      = rpcErr{codes.InvalidArgument, "etcdserver: request is too large"}
	errCompacted     = rpcErr{codes.OutOfRange, "etcdserver: mvcc: required revision has been compacted"}
	errFutureRev     = rpcErr{codes.OutOfRange, "etcdserver: mvcc: required revision is a future revision"}
)

// Steps built from clientv3 operations.

func do(op clientv3.Op) step {
	return step{call: func(ctx context.Context, c *clientv3.Client) error {
		_, err := c.Do(ctx, op)
		return err
	}}
}

func get(key string, opts ...clientv3.OpOption) step { return do(clientv3.OpGet(key, opts...)) }

func put(key, val string, opts ...clientv3.OpOption) step {
	return do(clientv3.OpPut(key, val, opts...))
}

func del(key string, opts ...clientv3.OpOption) step { return do(clientv3.OpDelete(key, opts...)) }

// ifs and ops keep the Txn rows of the tables short.
type (
	ifs = []clientv3.Cmp
	ops = []clientv3.Op
)

func txn(cmps ifs, then, els ops) step {
	return step{call: func(ctx context.Context, c *clientv3.Client) error {
		_, err := c.Txn(ctx).If(cmps...).Then(then...).Else(els...).Commit()
		return err
	}}
}

// compact compacts physically, so the step returns only once the old
// revisions are gone and later steps see a settled store.
func compact(rev int64) step {
	return step{call: func(ctx context.Context, c *clientv3.Client) error {
		_, err := c.Compact(ctx, rev, clientv3.WithCompactPhysical())
		return err
	}}
}

// compactLogical compacts without waiting for the physical deletion.
func compactLogical(rev int64) step {
	return step{call: func(ctx context.Context, c *clientv3.Client) error {
		_, err := c.Compact(ctx, rev)
		return err
	}}
}

// Steps that send a hand-built request, for what clientv3 cannot express
// (it rewrites KEY/ASCEND sorts to none, validates sort enums itself and
// cannot build an empty RequestOp). They still go through the client's
// connection and interceptors.

func rawRange(r *pb.RangeRequest) step {
	return step{call: func(ctx context.Context, c *clientv3.Client) error {
		_, err := pb.NewKVClient(c.ActiveConnection()).Range(ctx, r)
		return err
	}}
}

func rawTxn(r *pb.TxnRequest) step {
	return step{call: func(ctx context.Context, c *clientv3.Client) error {
		_, err := pb.NewKVClient(c.ActiveConnection()).Txn(ctx, r)
		return err
	}}
}

// Short names for the ops and compares used inside transactions.

var (
	getOp = clientv3.OpGet
	putOp = clientv3.OpPut
	delOp = clientv3.OpDelete
	txnOp = clientv3.OpTxn
)

func value(key, result, v string) clientv3.Cmp {
	return clientv3.Compare(clientv3.Value(key), result, v)
}

func version(key, result string, v int64) clientv3.Cmp {
	return clientv3.Compare(clientv3.Version(key), result, v)
}

func createRev(key, result string, v int64) clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(key), result, v)
}

func modRev(key, result string, v int64) clientv3.Cmp {
	return clientv3.Compare(clientv3.ModRevision(key), result, v)
}

func leaseID(key, result string, v int64) clientv3.Cmp {
	return clientv3.Compare(clientv3.LeaseValue(key), result, v)
}

// Checks against the reference.

func (s step) with(check func(outcome) error) step {
	s.checks = append(append([]func(outcome) error(nil), s.checks...), check)
	return s
}

// rev states the header revision etcd answers with.
func (s step) rev(n int64) step {
	return s.with(func(o outcome) error {
		if o.err != nil {
			return fmt.Errorf("want revision %d, got %s", n, o.err)
		}
		if got := headerRev(o.resp); got != n {
			return fmt.Errorf("want revision %d, got %d", n, got)
		}
		return nil
	})
}

// fails states the error etcd answers with.
func (s step) fails(e rpcErr) step {
	return s.with(func(o outcome) error {
		if o.err == nil || *o.err != e {
			got := "success"
			if o.err != nil {
				got = o.err.String()
			}
			return fmt.Errorf("want %s, got %s", e.String(), got)
		}
		return nil
	})
}

// succeeded states which branch of a Txn etcd takes.
func (s step) succeeded(want bool) step {
	return s.with(func(o outcome) error {
		r, ok := o.resp.(*pb.TxnResponse)
		if !ok {
			return fmt.Errorf("want a Txn response, got %s", render(o))
		}
		if r.Succeeded != want {
			return fmt.Errorf("want succeeded=%v", want)
		}
		return nil
	})
}

// count states the number of keys a Range returns.
func (s step) kvs(n int) step {
	return s.with(func(o outcome) error {
		r, ok := o.resp.(*pb.RangeResponse)
		if !ok {
			return fmt.Errorf("want a Range response, got %s", render(o))
		}
		if len(r.Kvs) != n {
			return fmt.Errorf("want %d kvs, got %d", n, len(r.Kvs))
		}
		return nil
	})
}

func headerRev(resp any) int64 {
	r, ok := resp.(interface{ GetHeader() *pb.ResponseHeader })
	if !ok || r.GetHeader() == nil {
		return -1
	}
	return r.GetHeader().Revision
}

// seq concatenates groups of steps, so shared setups read as one table row.
func seq(groups ...[]step) []step {
	var all []step
	for _, g := range groups {
		all = append(all, g...)
	}
	return all
}
