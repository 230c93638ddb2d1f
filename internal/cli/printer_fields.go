package cli

import (
	"fmt"
	"io"
	"strconv"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// fieldsPrinter prints every field of a response as a `"Name" : value` line.
type fieldsPrinter struct {
	out io.Writer
	hex bool
}

// supports is false for the member changes and move-leader, for which
// etcdctl has no fields format.
func (*fieldsPrinter) supports(k outputKind) bool { return k != changeOutput }

func (p *fieldsPrinter) line(name string, v any) {
	fmt.Fprintf(p.out, "%q : %v\n", name, v)
}

func (p *fieldsPrinter) quoted(name, v string) {
	fmt.Fprintf(p.out, "%q : %q\n", name, v)
}

// id prints a member or cluster ID, in hex (unpadded) under --hex.
func (p *fieldsPrinter) id(name string, id uint64) {
	if p.hex {
		p.line(name, strconv.FormatUint(id, 16))
		return
	}
	p.line(name, id)
}

func (p *fieldsPrinter) header(h *pb.ResponseHeader) {
	if h == nil {
		h = &pb.ResponseHeader{}
	}
	p.id("ClusterID", h.ClusterId)
	p.id("MemberID", h.MemberId)
	// Only key-value responses carry a revision; hide it when unset.
	if h.Revision > 0 {
		p.line("Revision", h.Revision)
	}
	p.line("RaftTerm", h.RaftTerm)
}

func (p *fieldsPrinter) kv(prefix string, kv *mvccpb.KeyValue) {
	kv = kvOrEmpty(kv)
	p.quoted(prefix+"Key", string(kv.Key))
	p.line(prefix+"CreateRevision", kv.CreateRevision)
	p.line(prefix+"ModRevision", kv.ModRevision)
	p.line(prefix+"Version", kv.Version)
	p.quoted(prefix+"Value", string(kv.Value))
	if p.hex {
		p.line(prefix+"Lease", fmt.Sprintf("%016x", kv.Lease))
	} else {
		p.line(prefix+"Lease", kv.Lease)
	}
}

func (p *fieldsPrinter) get(r *clientv3.GetResponse) {
	p.header(r.Header)
	for _, kv := range r.Kvs {
		p.kv("", kv)
	}
	p.line("More", r.More)
	p.line("Count", r.Count)
}

func (p *fieldsPrinter) put(r *clientv3.PutResponse) {
	p.header(r.Header)
	if r.PrevKv != nil {
		p.kv("Prev", r.PrevKv)
	}
}

func (p *fieldsPrinter) del(r *clientv3.DeleteResponse) {
	p.header(r.Header)
	p.line("Deleted", r.Deleted)
	for _, kv := range r.PrevKvs {
		p.kv("Prev", kv)
	}
}

func (p *fieldsPrinter) txn(r *clientv3.TxnResponse) {
	p.header(r.Header)
	p.line("Succeeded", r.Succeeded)
	subResponses(r, p.get, p.put, p.del, func(op *pb.ResponseOp) {
		p.quoted("Unknown", fmt.Sprintf("%+v", op.Response))
	})
}

func (p *fieldsPrinter) endpointHealth(hs []epHealth) {
	for _, h := range hs {
		p.quoted("Endpoint", h.Ep)
		p.line("Health", h.Health)
		p.line("Took", h.Took)
		p.line("Error", h.Error)
		fmt.Fprintln(p.out)
	}
}

func (p *fieldsPrinter) endpointStatus(sts []epStatus) {
	for _, st := range sts {
		r := st.Resp
		p.header(r.Header)
		p.quoted("Version", r.Version)
		p.quoted("StorageVersion", r.StorageVersion)
		p.line("DBSize", r.DbSize)
		p.line("DBSizeInUse", r.DbSizeInUse)
		p.line("DBSizeQuota", r.DbSizeQuota)
		p.line("Leader", r.Leader)
		p.line("IsLearner", r.IsLearner)
		p.line("RaftIndex", r.RaftIndex)
		p.line("RaftAppliedIndex", r.RaftAppliedIndex)
		p.line("Errors", r.Errors)
		p.quoted("Endpoint", st.Ep)
		p.quoted("DowngradeTargetVersion", r.DowngradeInfo.GetTargetVersion())
		p.line("DowngradeEnabled", r.DowngradeInfo.GetEnabled())
		fmt.Fprintln(p.out)
	}
}

// leaseID prints a lease ID: zero-padded hex under --hex, else decimal.
func (p *fieldsPrinter) leaseID(id clientv3.LeaseID) {
	if p.hex {
		p.line("ID", fmt.Sprintf("%016x", int64(id)))
		return
	}
	p.line("ID", int64(id))
}

func (p *fieldsPrinter) watch(r clientv3.WatchResponse) {
	p.header(&r.Header)
	for _, ev := range r.Events {
		p.line("Type", ev.Type)
		if ev.PrevKv != nil {
			p.kv("Prev", ev.PrevKv)
		}
		p.kv("", ev.Kv)
	}
}

func (p *fieldsPrinter) leaseGrant(r *clientv3.LeaseGrantResponse) {
	p.header(r.ResponseHeader)
	p.leaseID(r.ID)
	p.line("TTL", r.TTL)
}

func (p *fieldsPrinter) leaseRevoke(_ clientv3.LeaseID, r *clientv3.LeaseRevokeResponse) {
	p.header(r.Header)
}

func (p *fieldsPrinter) leaseKeepAlive(r *clientv3.LeaseKeepAliveResponse) {
	p.header(r.ResponseHeader)
	p.leaseID(r.ID)
	p.line("TTL", r.TTL)
}

func (p *fieldsPrinter) leaseTimeToLive(r *clientv3.LeaseTimeToLiveResponse, _ bool) {
	p.header(r.ResponseHeader)
	p.leaseID(r.ID)
	p.line("TTL", r.TTL)
	p.line("GrantedTTL", r.GrantedTTL)
	for _, k := range r.Keys {
		p.quoted("Key", string(k))
	}
}

func (p *fieldsPrinter) leaseList(r *clientv3.LeaseLeasesResponse) {
	p.header(r.ResponseHeader)
	for _, l := range r.Leases {
		p.leaseID(l.ID)
	}
}

func (p *fieldsPrinter) alarms(r *clientv3.AlarmResponse) {
	p.header(r.Header)
	for _, a := range r.Alarms {
		p.id("MemberID", a.MemberID)
		p.line("AlarmType", a.Alarm)
		fmt.Fprintln(p.out)
	}
}

func (p *fieldsPrinter) endpointHashKV(hs []epHashKV) {
	for _, h := range hs {
		p.header(h.Resp.Header)
		p.quoted("Endpoint", h.Ep)
		p.line("Hash", h.Resp.Hash)
		p.line("HashRevision", h.Resp.HashRevision)
		fmt.Fprintln(p.out)
	}
}

// snapshotStatus prints etcdutl's field names, which differ from the
// JSON ones.
func (p *fieldsPrinter) snapshotStatus(st snapshotStatus) {
	p.line("Hash", st.Hash)
	p.line("Revision", st.Revision)
	p.line("Keys", st.TotalKey)
	p.line("Size", st.TotalSize)
	p.line("Version", st.Version)
}

func (p *fieldsPrinter) memberList(r *clientv3.MemberListResponse) {
	p.header(r.Header)
	for _, m := range r.Members {
		p.id("ID", m.ID)
		p.quoted("Name", m.Name)
		for _, u := range m.PeerURLs {
			p.quoted("PeerURL", u)
		}
		for _, u := range m.ClientURLs {
			p.quoted("ClientURL", u)
		}
		p.line("IsLearner", m.IsLearner)
		fmt.Fprintln(p.out)
	}
}

// The member changes and move-leader are never printed as fields (see
// supports).
func (*fieldsPrinter) memberAdd(*clientv3.MemberAddResponse)                  {}
func (*fieldsPrinter) memberRemove(uint64, *clientv3.MemberRemoveResponse)    {}
func (*fieldsPrinter) memberUpdate(uint64, *clientv3.MemberUpdateResponse)    {}
func (*fieldsPrinter) memberPromote(uint64, *clientv3.MemberPromoteResponse)  {}
func (*fieldsPrinter) moveLeader(_, _ uint64, _ *clientv3.MoveLeaderResponse) {}
