package conformance_test

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// Normalising and rendering the responses of the Lease, Maintenance and
// Watch services. Only what legitimately differs between two servers is
// touched:
//
//   - the cluster_id, member_id and raft_term of every header;
//   - lease IDs the server chose (renamed granted#1, granted#2, ... after
//     the order they were granted in on that side);
//   - the member's own ID where a response names it (alarms, the leader),
//     shown as "self";
//   - a lease's remaining TTL, which depends on when the call was made:
//     within 2s of the granted TTL it is shown as the granted TTL;
//   - the keys of a lease, the leases of LeaseLeases and the alarms, which
//     etcd lists in map, expiry and map order respectively: all are sorted;
//   - hash values (TestHashKVSameHistory compares them between members of
//     one kind), database sizes (only "set" or "zero" is compared), the raft
//     indexes (only their order), and the server's patch version.
//
// Watch responses of one step are grouped by watch ID, each watcher's in
// the order they arrived: etcd interleaves the responses of the watchers of
// one stream in no fixed order (Go map order), so only each watcher's own
// sequence is compared. What the interleaving does guarantee (a progress
// notification comes after every event it covers) is checked on the stream
// as responses arrive (rawStream.check) and reported as violations.

// grantedBase marks a lease ID the server chose: the k-th granted lease of
// a side (k from 1) is renamed grantedBase-k+1.
const grantedBase = -1 << 40

// selfMember stands for the answering member's own ID.
const selfMember = math.MaxUint64

func leaseName(id int64) string {
	if id <= grantedBase {
		return fmt.Sprintf("granted#%d", grantedBase-id+1)
	}
	return strconv.FormatInt(id, 10)
}

// protoMsg is what every generated message implements.
type protoMsg interface {
	Marshal() ([]byte, error)
	Unmarshal([]byte) error
}

// deepCopy copies a generated message through its encoding.
func deepCopy[T protoMsg](m T) T {
	b, err := m.Marshal()
	if err != nil {
		panic(err)
	}
	c := reflect.New(reflect.TypeOf(m).Elem()).Interface().(T)
	if err := c.Unmarshal(b); err != nil {
		panic(err)
	}
	return c
}

// renameLeases returns a copy of resp with every lease ID in leases (the
// IDs the side's server chose) renamed after its grant order.
func renameLeases(resp any, leases []int64) any {
	rename := func(id *int64) {
		if i := slices.Index(leases, *id); i >= 0 && *id != 0 {
			*id = grantedBase - int64(i)
		}
	}
	renameKV := func(kv *mvccpb.KeyValue) {
		if kv != nil {
			rename(&kv.Lease)
		}
	}
	renameEvents := func(evs []*mvccpb.Event) {
		for _, ev := range evs {
			renameKV(ev.Kv)
			renameKV(ev.PrevKv)
		}
	}
	var walk func(m any)
	walk = func(m any) {
		switch r := m.(type) {
		case *pb.RangeResponse:
			for _, kv := range r.Kvs {
				renameKV(kv)
			}
		case *pb.PutResponse:
			renameKV(r.PrevKv)
		case *pb.DeleteRangeResponse:
			for _, kv := range r.PrevKvs {
				renameKV(kv)
			}
		case *pb.TxnResponse:
			for _, op := range r.Responses {
				switch v := op.Response.(type) {
				case *pb.ResponseOp_ResponseRange:
					walk(v.ResponseRange)
				case *pb.ResponseOp_ResponsePut:
					walk(v.ResponsePut)
				case *pb.ResponseOp_ResponseDeleteRange:
					walk(v.ResponseDeleteRange)
				case *pb.ResponseOp_ResponseTxn:
					walk(v.ResponseTxn)
				}
			}
		case *pb.LeaseGrantResponse:
			rename(&r.ID)
		case *pb.LeaseTimeToLiveResponse:
			rename(&r.ID)
		case *pb.LeaseKeepAliveResponse:
			rename(&r.ID)
		case *pb.LeaseLeasesResponse:
			for _, l := range r.Leases {
				rename(&l.ID)
			}
		case *pb.WatchResponse:
			renameEvents(r.Events)
		case *watchBatch:
			for _, wr := range r.resps {
				walk(wr)
			}
		case *clientBatch:
			for _, cr := range r.resps {
				walk(cr.resp)
			}
		}
	}
	switch r := resp.(type) {
	case *watchBatch:
		c := &watchBatch{missing: r.missing}
		for _, wr := range r.resps {
			c.resps = append(c.resps, deepCopy(wr))
		}
		resp = c
	case *clientBatch:
		c := &clientBatch{missing: r.missing}
		for _, cr := range r.resps {
			c.resps = append(c.resps, clientResp{resp: deepCopy(cr.resp), progress: cr.progress, err: cr.err})
		}
		resp = c
	case protoMsg:
		resp = deepCopy(r)
	default:
		return resp
	}
	walk(resp)
	return resp
}

// normaliseService returns a normalised copy of a response of the Lease,
// Maintenance or Watch service; other responses are returned as they are.
func normaliseService(o outcome) any {
	switch r := o.resp.(type) {
	case *pb.LeaseGrantResponse:
		c := deepCopy(r)
		clearIDs(c.Header)
		return c
	case *pb.LeaseRevokeResponse:
		c := deepCopy(r)
		clearIDs(c.Header)
		return c
	case *pb.LeaseKeepAliveResponse:
		c := deepCopy(r)
		clearIDs(c.Header)
		return c
	case *pb.LeaseTimeToLiveResponse:
		c := deepCopy(r)
		clearIDs(c.Header)
		if c.TTL > 0 && c.TTL <= c.GrantedTTL && c.TTL >= c.GrantedTTL-2 {
			c.TTL = c.GrantedTTL
		}
		slices.SortFunc(c.Keys, bytes.Compare)
		return c
	case *pb.LeaseLeasesResponse:
		c := deepCopy(r)
		clearIDs(c.Header)
		slices.SortFunc(c.Leases, func(a, b *pb.LeaseStatus) int { return cmp.Compare(a.ID, b.ID) })
		return c
	case *pb.AlarmResponse:
		c := deepCopy(r)
		clearIDs(c.Header)
		for _, a := range c.Alarms {
			if a.MemberID == o.self {
				a.MemberID = selfMember
			}
		}
		slices.SortFunc(c.Alarms, func(a, b *pb.AlarmMember) int {
			return cmp.Or(cmp.Compare(a.MemberID, b.MemberID), cmp.Compare(a.Alarm, b.Alarm))
		})
		return c
	case *pb.StatusResponse:
		return normaliseStatus(r, o.self)
	case *pb.HashResponse:
		c := deepCopy(r)
		clearIDs(c.Header)
		c.Hash = 0
		return c
	case *pb.HashKVResponse:
		c := deepCopy(r)
		clearIDs(c.Header)
		c.Hash = 0
		return c
	case *pb.DefragmentResponse:
		c := deepCopy(r)
		clearIDs(c.Header)
		return c
	case *watchBatch:
		c := &watchBatch{missing: r.missing}
		for _, wr := range r.resps {
			wr = deepCopy(wr)
			clearIDs(wr.Header)
			c.resps = append(c.resps, wr)
		}
		// Stable: each watcher's responses keep their order of arrival;
		// -1 (the stream's progress notifications and failed creates) last.
		slices.SortStableFunc(c.resps, func(a, b *pb.WatchResponse) int {
			return cmp.Compare(uint64(a.WatchId), uint64(b.WatchId))
		})
		return c
	case *clientBatch:
		c := &clientBatch{missing: r.missing}
		for _, cr := range r.resps {
			cr.resp = deepCopy(cr.resp)
			clearIDs(cr.resp.Header)
			c.resps = append(c.resps, cr)
		}
		return c
	}
	return o.resp
}

// normaliseStatus keeps what two healthy single-member clusters must agree
// on: the API version (major.minor), the storage version, the quota, the
// errors (alarms), learner and downgrade state, and that the member is the
// leader, has a database, and has applied what it committed.
func normaliseStatus(r *pb.StatusResponse, self uint64) *pb.StatusResponse {
	c := deepCopy(r)
	clearIDs(c.Header)
	if parts := strings.Split(c.Version, "."); len(parts) == 3 {
		c.Version = parts[0] + "." + parts[1] + ".x"
	}
	if c.Leader == self {
		c.Leader = selfMember
	}
	c.RaftTerm = min(c.RaftTerm, 1)
	if c.RaftAppliedIndex > 0 && c.RaftAppliedIndex <= c.RaftIndex {
		c.RaftAppliedIndex, c.RaftIndex = 1, 1
	}
	if c.DbSizeInUse > 0 && c.DbSizeInUse <= c.DbSize {
		c.DbSizeInUse = 1
	}
	c.DbSize = min(c.DbSize, 1)
	selfID := "memberID:" + strconv.FormatUint(self, 10)
	for i, e := range c.Errors {
		c.Errors[i] = strings.ReplaceAll(e, selfID, "memberID:self")
	}
	return c
}

// sent is the outcome of a step that only sends on a stream: nothing comes
// back but the error, if the send fails.
type sent struct{ what string }

func (s *sent) Marshal() ([]byte, error) { return []byte(s.what), nil }

// watchBatch is what a raw watch stream received during one step.
type watchBatch struct {
	resps []*pb.WatchResponse
	// missing says what did not arrive before the step gave up.
	missing string
}

func (w *watchBatch) Marshal() ([]byte, error) {
	var out []byte
	for _, r := range w.resps {
		b, err := r.Marshal()
		if err != nil {
			return nil, err
		}
		out = binary.AppendUvarint(out, uint64(len(b)))
		out = append(out, b...)
	}
	return append(out, w.missing...), nil
}

// clientBatch is what a clientv3 watch channel delivered during one step.
type clientBatch struct {
	resps   []clientResp
	missing string
}

// clientResp is one clientv3.WatchResponse, as far as a client sees it.
type clientResp struct {
	resp     *pb.WatchResponse // header, events, compact revision, created, canceled
	progress bool              // IsProgressNotify()
	err      string            // Err()
}

func (c *clientBatch) Marshal() ([]byte, error) {
	var out []byte
	for _, r := range c.resps {
		b, err := r.resp.Marshal()
		if err != nil {
			return nil, err
		}
		out = binary.AppendUvarint(out, uint64(len(b)))
		out = append(out, b...)
		out = append(out, fmt.Sprintf("%v|%s|", r.progress, r.err)...)
	}
	return append(out, c.missing...), nil
}

// renderService prints the messages of this file; it reports false for any
// other type.
func renderService(b *strings.Builder, ind string, m any) bool {
	p := func(format string, args ...any) { fmt.Fprintf(b, ind+format+"\n", args...) }
	switch r := m.(type) {
	case *pb.LeaseGrantResponse:
		p("LeaseGrant")
		renderHeader(b, ind+"  ", r.Header)
		p("  id=%s ttl=%d error=%q", leaseName(r.ID), r.TTL, r.Error)
	case *pb.LeaseRevokeResponse:
		p("LeaseRevoke")
		renderHeader(b, ind+"  ", r.Header)
	case *pb.LeaseKeepAliveResponse:
		p("LeaseKeepAlive")
		renderHeader(b, ind+"  ", r.Header)
		p("  id=%s ttl=%d", leaseName(r.ID), r.TTL)
	case *pb.LeaseTimeToLiveResponse:
		p("LeaseTimeToLive")
		renderHeader(b, ind+"  ", r.Header)
		p("  id=%s ttl=%d granted_ttl=%d", leaseName(r.ID), r.TTL, r.GrantedTTL)
		for i, k := range r.Keys {
			p("  keys[%d]: %s", i, quote(k))
		}
	case *pb.LeaseLeasesResponse:
		p("LeaseLeases")
		renderHeader(b, ind+"  ", r.Header)
		for i, l := range r.Leases {
			p("  leases[%d]: %s", i, leaseName(l.ID))
		}
	case *pb.AlarmResponse:
		p("Alarm")
		renderHeader(b, ind+"  ", r.Header)
		for i, a := range r.Alarms {
			p("  alarms[%d]: member=%s alarm=%s", i, memberName(a.MemberID), a.Alarm)
		}
	case *pb.StatusResponse:
		p("Status")
		renderHeader(b, ind+"  ", r.Header)
		p("  version=%q storage_version=%q leader=%s raft_term=%d", r.Version, r.StorageVersion, memberName(r.Leader), r.RaftTerm)
		p("  raft_index=%d raft_applied_index=%d db_size=%d db_size_in_use=%d db_size_quota=%d",
			r.RaftIndex, r.RaftAppliedIndex, r.DbSize, r.DbSizeInUse, r.DbSizeQuota)
		p("  is_learner=%v downgrade_info=%v errors=%q", r.IsLearner, r.DowngradeInfo, r.Errors)
	case *pb.HashResponse:
		p("Hash")
		renderHeader(b, ind+"  ", r.Header)
		p("  hash=%d", r.Hash)
	case *pb.HashKVResponse:
		p("HashKV")
		renderHeader(b, ind+"  ", r.Header)
		p("  hash=%d hash_revision=%d compact_revision=%d", r.Hash, r.HashRevision, r.CompactRevision)
	case *pb.DefragmentResponse:
		p("Defragment")
		renderHeader(b, ind+"  ", r.Header)
	case *sent:
		p("sent %s", r.what)
	case *watchBatch:
		p("Watch (%d responses)", len(r.resps))
		for i, wr := range r.resps {
			renderWatchResponse(b, ind+"  ", fmt.Sprintf("[%d]", i), wr, "")
		}
		if r.missing != "" {
			p("  missing: %s", r.missing)
		}
	case *clientBatch:
		p("clientv3 Watch (%d responses)", len(r.resps))
		for i, cr := range r.resps {
			renderWatchResponse(b, ind+"  ", fmt.Sprintf("[%d]", i), cr.resp, fmt.Sprintf(" progress_notify=%v err=%q", cr.progress, cr.err))
		}
		if r.missing != "" {
			p("  missing: %s", r.missing)
		}
	default:
		return false
	}
	return true
}

func renderWatchResponse(b *strings.Builder, ind, label string, r *pb.WatchResponse, extra string) {
	rev := int64(-1)
	if r.Header != nil {
		rev = r.Header.Revision
	}
	fmt.Fprintf(b, "%s%s watch_id=%d header_revision=%d created=%v canceled=%v compact_revision=%d fragment=%v cancel_reason=%q%s\n",
		ind, label, r.WatchId, rev, r.Created, r.Canceled, r.CompactRevision, r.Fragment, r.CancelReason, extra)
	if r.Header != nil && (r.Header.ClusterId != 0 || r.Header.MemberId != 0 || r.Header.RaftTerm != 0) {
		fmt.Fprintf(b, "%s    header ids: cluster_id=%d member_id=%d raft_term=%d\n", ind, r.Header.ClusterId, r.Header.MemberId, r.Header.RaftTerm)
	}
	for _, ev := range r.Events {
		fmt.Fprintf(b, "%s    %s %s\n", ind, ev.Type, renderKV(ev.Kv))
		if ev.PrevKv != nil {
			fmt.Fprintf(b, "%s      prev %s\n", ind, renderKV(ev.PrevKv))
		}
	}
}

func memberName(id uint64) string {
	if id == selfMember {
		return "self"
	}
	return strconv.FormatUint(id, 10)
}
