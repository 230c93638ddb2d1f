package conformance_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
)

// The errors etcd v3.6 sends for the Lease API and the quota.
var (
	errLeaseNotFound = rpcErr{codes.NotFound, "etcdserver: requested lease not found"}
	errLeaseExist    = rpcErr{codes.FailedPrecondition, "etcdserver: lease already exists"}
	errLeaseTooLarge = rpcErr{codes.OutOfRange, "etcdserver: too large lease TTL"}
	errNoSpace       = rpcErr{codes.ResourceExhausted, "etcdserver: mvcc: database space exceeded"}
)

// lref names a lease in a step: a literal ID, or the n-th lease the side's
// server chose (from 1), which differs between the two sides.
type lref struct {
	id  int64
	nth int
}

func lit(id int64) lref  { return lref{id: id} }
func granted(n int) lref { return lref{nth: n} }

// lease resolves r on the side; a lease that was never granted resolves to
// an ID no scenario uses.
func (s *side) lease(r lref) int64 {
	if r.nth == 0 {
		return r.id
	}
	if r.nth <= len(s.leases) {
		return s.leases[r.nth-1]
	}
	return 0x7eadbeef
}

// grant grants a lease with the ID left to the server (clientv3's Grant).
func grant(ttl int64) step {
	return step{exec: func(ctx context.Context, s *side) outcome {
		o := s.capture(func() error {
			_, err := s.cli.Grant(ctx, ttl)
			return err
		})
		if r, ok := o.resp.(*pb.LeaseGrantResponse); ok {
			s.leases = append(s.leases, r.ID)
		}
		return o
	}}
}

// grantID grants a lease with the ID the client chose.
func grantID(id, ttl int64) step {
	return step{exec: func(ctx context.Context, s *side) outcome {
		return s.capture(func() error {
			_, err := pb.NewLeaseClient(s.cli.ActiveConnection()).LeaseGrant(ctx, &pb.LeaseGrantRequest{ID: id, TTL: ttl})
			return err
		})
	}}
}

func revoke(r lref) step {
	return step{exec: func(ctx context.Context, s *side) outcome {
		return s.capture(func() error {
			_, err := s.cli.Revoke(ctx, clientv3.LeaseID(s.lease(r)))
			return err
		})
	}}
}

func timeToLive(r lref, keys bool) step {
	return step{exec: func(ctx context.Context, s *side) outcome {
		var opts []clientv3.LeaseOption
		if keys {
			opts = append(opts, clientv3.WithAttachedKeys())
		}
		return s.capture(func() error {
			_, err := s.cli.TimeToLive(ctx, clientv3.LeaseID(s.lease(r)), opts...)
			return err
		})
	}}
}

func leaseList() step {
	return step{exec: func(ctx context.Context, s *side) outcome {
		return s.capture(func() error {
			_, err := s.cli.Leases(ctx)
			return err
		})
	}}
}

// keepAliveOnce sends one keep-alive on a LeaseKeepAlive stream of its own
// and returns the answer as sent (clientv3 turns a TTL of 0 into an error).
func keepAliveOnce(r lref) step {
	return step{exec: func(ctx context.Context, s *side) outcome {
		req := &pb.LeaseKeepAliveRequest{ID: s.lease(r)}
		o := outcome{method: "LeaseKeepAlive", req: req}
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		st, err := pb.NewLeaseClient(s.cli.ActiveConnection()).LeaseKeepAlive(ctx)
		if err == nil {
			err = st.Send(req)
		}
		var resp *pb.LeaseKeepAliveResponse
		if err == nil {
			resp, err = st.Recv()
		}
		if err != nil {
			o.err = toRPCErr(err)
			return o
		}
		o.resp = resp
		return o
	}}
}

// putL puts with a lease.
func putL(key, val string, r lref, opts ...clientv3.OpOption) step {
	return step{exec: func(ctx context.Context, s *side) outcome {
		return s.capture(func() error {
			_, err := s.cli.Put(ctx, key, val, append(opts, clientv3.WithLease(clientv3.LeaseID(s.lease(r))))...)
			return err
		})
	}}
}

// txnPutL puts with a lease inside a txn.
func txnPutL(key, val string, r lref) step {
	return step{exec: func(ctx context.Context, s *side) outcome {
		return s.capture(func() error {
			_, err := s.cli.Txn(ctx).Then(clientv3.OpPut(key, val, clientv3.WithLease(clientv3.LeaseID(s.lease(r))))).Commit()
			return err
		})
	}}
}

// txnLease runs a Txn whose one compare is the LEASE of key (over
// [key, end) if end is set) against lease r's ID plus delta, and which
// reads the same keys in either branch, so the response also shows the
// leases they hold.
func txnLease(key, end, result string, r lref, delta int64) step {
	return step{exec: func(ctx context.Context, s *side) outcome {
		return s.capture(func() error {
			c := clientv3.Compare(clientv3.LeaseValue(key), result, s.lease(r)+delta)
			var opts []clientv3.OpOption
			if end != "" {
				c = c.WithRange(end)
				opts = append(opts, clientv3.WithRange(end))
			}
			_, err := s.cli.Txn(ctx).If(c).Then(getOp(key, opts...)).Else(getOp(key, opts...)).Commit()
			return err
		})
	}}
}

// leaseCompareSteps compare the LEASE of a key that holds lease r against
// r's ID, its neighbours, and IDs that differ from it only above the low
// 32 bits, with each operator, with the outcome etcd gives.
func leaseCompareSteps(key string, r lref) []step {
	deltas := []int64{-1 << 32, -1, 0, 1, 1 << 32}
	want := map[string][]bool{ // by delta
		"=":  {false, false, true, false, false},
		"!=": {true, true, false, true, true},
		">":  {true, true, false, false, false},
		"<":  {false, false, false, true, true},
	}
	var steps []step
	for _, result := range []string{"=", "!=", ">", "<"} {
		for i, delta := range deltas {
			steps = append(steps, txnLease(key, "", result, r, delta).succeeded(want[result][i]))
		}
	}
	return steps
}

// ttl states the TTL etcd grants or reports.
func (s step) ttl(want int64) step {
	return s.with(func(o outcome) error {
		var got int64
		switch r := o.resp.(type) {
		case *pb.LeaseGrantResponse:
			got = r.TTL
		case *pb.LeaseTimeToLiveResponse:
			got = r.TTL
		case *pb.LeaseKeepAliveResponse:
			got = r.TTL
		default:
			return fmt.Errorf("want a lease response with TTL %d, got %s", want, render(o))
		}
		if got != want {
			return fmt.Errorf("want TTL %d, got %d", want, got)
		}
		return nil
	})
}

func TestLeaseConformance(t *testing.T) {
	for _, sc := range leaseScenarios() {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			ref, sub := startPair(t, sc.args)
			runSteps(t, ref, sub, sc.steps)
		})
	}
}

func leaseScenarios() []scenario {
	return []scenario{
		{name: "lease/grant", steps: []step{
			grant(60).ttl(60),                                    // granted#1, ID chosen by the server
			grantID(1000, 60).ttl(60),                            // the client's ID
			grantID(1000, 30).fails(errLeaseExist),               // a duplicate
			grantID(1001, 1).ttl(2),                              // raised to 1.5 election timeouts, rounded up
			revoke(lit(1001)),                                    // (before it can expire)
			grantID(1002, 0).ttl(2),                              //
			revoke(lit(1002)),                                    //
			grantID(1003, -5).ttl(2),                             // a negative TTL too
			revoke(lit(1003)),                                    //
			grantID(1004, 9_000_000_001).fails(errLeaseTooLarge), // above etcd's maximum
			grantID(1005, 9_000_000_000).ttl(9_000_000_000),      // the maximum itself
			revoke(lit(1005)),
			grant(5).ttl(5), // granted#2
			revoke(granted(2)),
			leaseList(),
			get("a").rev(1), // no lease operation made a revision
		}},
		{name: "lease/attach-and-revoke", steps: []step{
			grant(60),         // granted#1
			grantID(1000, 60), //
			putL("k1", "v", granted(1)).rev(2),
			putL("k2", "v", lit(1000)).rev(3),
			putL("k3", "v", granted(1)).rev(4),
			putL("k4", "v", lit(4242)).fails(errLeaseNotFound),
			txnPutL("k5", "v", granted(1)).rev(5),
			txnPutL("k6", "v", lit(4242)).fails(errLeaseNotFound),
			get("k", clientv3.WithPrefix()).kvs(4),
			timeToLive(granted(1), true), // k1, k3, k5
			timeToLive(lit(1000), false),
			leaseList(),
			keepAliveOnce(granted(1)).ttl(60),
			keepAliveOnce(lit(4242)).ttl(0), // a missing lease is kept alive with TTL 0
			revoke(granted(1)).rev(6),       // k1, k3 and k5 go in one revision
			get("k", clientv3.WithPrefix()).kvs(1),
			get("k", clientv3.WithPrefix(), clientv3.WithRev(5)).kvs(4),
			get("k", clientv3.WithPrefix(), clientv3.WithRev(6)).kvs(1),
			revoke(granted(1)).fails(errLeaseNotFound),
			keepAliveOnce(granted(1)).ttl(0),
			leaseList(),
			put("k2", "v2", clientv3.WithIgnoreLease()).rev(7), // keeps lease 1000
			put("k2", "v3").rev(8),                             // detaches it
			timeToLive(lit(1000), true),
			revoke(lit(1000)).rev(8), // nothing attached: no revision
			get("k2").kvs(1),
			putL("k2", "v4", lit(1000)).fails(errLeaseNotFound),
			leaseList(),
		}},
		{name: "lease/time-to-live-of-missing-lease", steps: []step{
			timeToLive(lit(4242), true).ttl(-1), // not an error: TTL -1
			timeToLive(lit(4242), false).ttl(-1),
			grant(60),
			revoke(granted(1)),
			timeToLive(granted(1), true).ttl(-1),
		}},
		{name: "lease/move-between-leases", steps: []step{
			grantID(1, 60),
			grantID(2, 60),
			putL("a", "1", lit(1)).rev(2),
			putL("a", "2", lit(2)).rev(3), // moves a to lease 2
			timeToLive(lit(1), true),
			timeToLive(lit(2), true),
			revoke(lit(1)).rev(3), // a is no longer on it
			get("a").kvs(1),
			del("a").rev(4),
			timeToLive(lit(2), true), // deleting a key detaches it
			revoke(lit(2)).rev(4),
		}},
		{name: "lease/minimum-ttl-follows-election-timeout", args: []string{"--election-timeout=3000"}, steps: []step{
			grantID(1, 1).ttl(5), // 1.5 election timeouts: 4.5s, rounded up
			revoke(lit(1)),
			grantID(2, 5).ttl(5),
			revoke(lit(2)),
			grantID(3, 6).ttl(6),
			revoke(lit(3)),
		}},
		{name: "lease/txn-compares-the-lease-of-a-key", steps: slices.Concat(
			[]step{
				grant(60), // granted#1, an ID the server chose
				grantID(5, 60),
				putL("k", "v", granted(1)).rev(2),
				putL("m", "v", lit(5)).rev(3),
				put("plain", "v").rev(4),
			},
			leaseCompareSteps("k", granted(1)),
			leaseCompareSteps("m", lit(5)),
			[]step{
				// A key without a lease holds lease 0; so does a missing key.
				txnLease("plain", "", "=", lit(0), 0).succeeded(true),
				txnLease("plain", "", "=", granted(1), 0).succeeded(false),
				txnLease("plain", "", "<", granted(1), 0).succeeded(true),
				txnLease("zz", "", "=", lit(0), 0).succeeded(true),
				txnLease("zz", "", "!=", granted(1), 0).succeeded(true),
				// Over a range every key must match: k, m and plain.
				txnLease("k", "q", "=", granted(1), 0).succeeded(false),
				txnLease("k", "q", "!=", lit(0), 0).succeeded(false),
				txnLease("k", "q", ">", lit(0), -1).succeeded(true),
				txnLease("k", "l", "=", granted(1), 0).succeeded(true),
				// The compare follows the key's lease as it changes.
				put("k", "v2", clientv3.WithIgnoreLease()).rev(5),
				txnLease("k", "", "=", granted(1), 0).succeeded(true),
				putL("k", "v3", lit(5)).rev(6),
				txnLease("k", "", "=", lit(5), 0).succeeded(true),
				txnLease("k", "", "=", granted(1), 0).succeeded(false),
				putL("k", "v4", granted(1)).rev(7),
				revoke(granted(1)).rev(8), // deletes k
				txnLease("k", "", "=", granted(1), 0).succeeded(false),
				txnLease("k", "", "=", lit(0), 0).succeeded(true),
				put("k", "v5").rev(9),
				txnLease("k", "", "<", lit(5), 0).succeeded(true),
			},
		)},
		{name: "lease/watch-events-carry-the-lease", steps: []step{
			grant(60),
			wopen("s"),
			wcreate("s", withPrev(watchPrefix("k"))),
			wrecv("s", 1),
			putL("k", "1", granted(1)).rev(2),
			put("k", "", clientv3.WithIgnoreValue()).rev(3),  // keeps value and lease
			put("k", "2", clientv3.WithIgnoreLease()).rev(4), // keeps the lease
			put("k", "3").rev(5),                             // detaches it
			putL("k", "4", granted(1)).rev(6),
			wrecv("s", 5).events(5, 5),
			revoke(granted(1)).rev(7),
			wrecv("s", 1).events(1, 1),
			get("k", clientv3.WithRev(6)).kvs(1),
			wfence("s"),
		}},
		{name: "lease/revoke-is-one-watch-response", steps: []step{
			grant(60),
			putL("p/a", "1", granted(1)).rev(2),
			putL("p/b", "1", granted(1)).rev(3),
			put("p/c", "1").rev(4),
			putL("q", "1", granted(1)).rev(5),
			wopen("s"),
			wcreate("s", watchPrefix("p/")),
			wcreate("s", withPrev(watchRange("", "\x00"))),
			wrecv("s", 2),
			revoke(granted(1)).rev(6),
			wrecv("s", 2).events(2, 5).where("all DELETE events of revision 6", func(rs []*pb.WatchResponse) bool {
				for _, r := range rs {
					for _, ev := range r.Events {
						if ev.Type != mvccpb.DELETE || ev.Kv.ModRevision != 6 {
							return false
						}
					}
				}
				return true
			}),
			wfence("s"),
		}},
	}
}
