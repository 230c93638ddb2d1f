package v2store

import (
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// Apply applies a replicated v2 request, choosing the operation as etcd's
// apply_v2 does:
//
//   - POST: create an in-order key under r.Path.
//   - PUT with prevExist=true: update, or compareAndSwap when prevValue
//     or prevIndex is also given; with prevExist=false: create; with
//     prevValue or prevIndex: compareAndSwap; otherwise set.
//   - DELETE with prevValue or prevIndex: compareAndDelete; otherwise
//     delete.
//   - QGET: a read through the log.
//   - SYNC: expire the nodes whose time has come by r.Time.
//
// r.Time is the proposer's clock when it proposed the request: TTLs in the
// result are shown relative to it, and SYNC expires up to it. Nothing here
// reads the applying member's clock. A returned *Error is the client's
// answer; any other error means storage failed.
func (s *Store) Apply(b Batch, r *pb.Request) (*Event, error) {
	now := time.Unix(0, r.Time)
	opts := TTLOptions{Refresh: r.Refresh != nil && *r.Refresh}
	if r.Expiration != 0 {
		opts.ExpireTime = time.Unix(0, r.Expiration)
	}
	switch r.Method {
	case "POST":
		return s.Create(b, r.Path, r.Dir, r.Val, true, opts, now)
	case "PUT":
		switch {
		case r.PrevExist != nil && *r.PrevExist:
			if r.PrevIndex == 0 && r.PrevValue == "" {
				return s.Update(b, r.Path, r.Val, opts, now)
			}
			return s.CompareAndSwap(b, r.Path, r.PrevValue, r.PrevIndex, r.Val, opts, now)
		case r.PrevExist != nil:
			return s.Create(b, r.Path, r.Dir, r.Val, false, opts, now)
		case r.PrevIndex > 0 || r.PrevValue != "":
			return s.CompareAndSwap(b, r.Path, r.PrevValue, r.PrevIndex, r.Val, opts, now)
		default:
			return s.Set(b, r.Path, r.Dir, r.Val, opts, now)
		}
	case "DELETE":
		if r.PrevIndex > 0 || r.PrevValue != "" {
			return s.CompareAndDelete(b, r.Path, r.PrevValue, r.PrevIndex, now)
		}
		return s.Delete(b, r.Path, r.Dir, r.Recursive, now)
	case "QGET":
		return s.Get(r.Path, r.Recursive, r.Sorted, now)
	case "SYNC":
		return nil, s.DeleteExpiredKeys(b, now)
	}
	// etcd answers an unknown method with its "unknown method" error,
	// which the keys API turns into error 300.
	return nil, NewError(EcodeRaftInternal, "etcdserver: unknown method", 0)
}
