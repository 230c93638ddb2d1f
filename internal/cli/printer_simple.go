package cli

import (
	"fmt"
	"io"
	"strings"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// simplePrinter is the default format: keys and values one per line.
type simplePrinter struct {
	out, errOut io.Writer
	hex         bool
	valueOnly   bool // get --print-value-only
}

func (*simplePrinter) supports(outputKind) bool { return true }

func (p *simplePrinter) kv(kv *mvccpb.KeyValue) {
	kv = kvOrEmpty(kv)
	key, val := string(kv.Key), string(kv.Value)
	if p.hex {
		key, val = hexEscape(kv.Key), hexEscape(kv.Value)
	}
	if !p.valueOnly {
		fmt.Fprintln(p.out, key)
	}
	fmt.Fprintln(p.out, val)
}

func (p *simplePrinter) get(r *clientv3.GetResponse) {
	for _, kv := range r.Kvs {
		p.kv(kv)
	}
}

func (p *simplePrinter) put(r *clientv3.PutResponse) {
	fmt.Fprintln(p.out, "OK")
	if r.PrevKv != nil {
		p.kv(r.PrevKv)
	}
}

func (p *simplePrinter) del(r *clientv3.DeleteResponse) {
	fmt.Fprintln(p.out, r.Deleted)
	for _, kv := range r.PrevKvs {
		p.kv(kv)
	}
}

func (p *simplePrinter) txn(r *clientv3.TxnResponse) {
	if r.Succeeded {
		fmt.Fprintln(p.out, "SUCCESS")
	} else {
		fmt.Fprintln(p.out, "FAILURE")
	}
	blank := func() { fmt.Fprintln(p.out) }
	subResponses(r,
		func(g *clientv3.GetResponse) { blank(); p.get(g) },
		func(u *clientv3.PutResponse) { blank(); p.put(u) },
		func(d *clientv3.DeleteResponse) { blank(); p.del(d) },
		func(op *pb.ResponseOp) { blank(); fmt.Fprintf(p.out, "unexpected response %+v\n", op) },
	)
}

func (p *simplePrinter) endpointHealth(hs []epHealth) {
	for _, h := range hs {
		if h.Error == "" {
			fmt.Fprintf(p.out, "%s is healthy: successfully committed proposal: took = %v\n", h.Ep, h.Took)
		} else {
			fmt.Fprintf(p.errOut, "%s is unhealthy: failed to commit proposal: %v\n", h.Ep, h.Error)
		}
	}
}

func (p *simplePrinter) endpointStatus(sts []epStatus) {
	for _, st := range sts {
		fmt.Fprintln(p.out, strings.Join(statusRow(st), ", "))
	}
}

func (p *simplePrinter) watch(r clientv3.WatchResponse) {
	for _, ev := range r.Events {
		fmt.Fprintln(p.out, ev.Type)
		if ev.PrevKv != nil {
			p.kv(ev.PrevKv)
		}
		p.kv(ev.Kv)
	}
}

func (p *simplePrinter) leaseGrant(r *clientv3.LeaseGrantResponse) {
	fmt.Fprintf(p.out, "lease %016x granted with TTL(%ds)\n", r.ID, r.TTL)
}

func (p *simplePrinter) leaseRevoke(id clientv3.LeaseID, _ *clientv3.LeaseRevokeResponse) {
	fmt.Fprintf(p.out, "lease %016x revoked\n", id)
}

func (p *simplePrinter) leaseKeepAlive(r *clientv3.LeaseKeepAliveResponse) {
	fmt.Fprintf(p.out, "lease %016x keepalived with TTL(%d)\n", r.ID, r.TTL)
}

func (p *simplePrinter) leaseTimeToLive(r *clientv3.LeaseTimeToLiveResponse, keys bool) {
	// A lease the server does not know is reported with TTL -1.
	if r.GrantedTTL == 0 && r.TTL == -1 {
		fmt.Fprintf(p.out, "lease %016x already expired\n", r.ID)
		return
	}
	line := fmt.Sprintf("lease %016x granted with TTL(%ds), remaining(%ds)", r.ID, r.GrantedTTL, r.TTL)
	if keys {
		names := make([]string, len(r.Keys))
		for i, k := range r.Keys {
			names[i] = string(k)
		}
		line += fmt.Sprintf(", attached keys(%v)", names)
	}
	fmt.Fprintln(p.out, line)
}

func (p *simplePrinter) leaseList(r *clientv3.LeaseLeasesResponse) {
	fmt.Fprintf(p.out, "found %d leases\n", len(r.Leases))
	for _, l := range r.Leases {
		fmt.Fprintf(p.out, "%016x\n", l.ID)
	}
}

func (p *simplePrinter) alarms(r *clientv3.AlarmResponse) {
	for _, a := range r.Alarms {
		fmt.Fprintf(p.out, "%+v\n", a)
	}
}

func (p *simplePrinter) endpointHashKV(hs []epHashKV) {
	for _, h := range hs {
		fmt.Fprintln(p.out, strings.Join(hashKVRow(h), ", "))
	}
}

func (p *simplePrinter) snapshotStatus(st snapshotStatus) {
	fmt.Fprintln(p.out, strings.Join(snapshotRow(st), ", "))
}

func (p *simplePrinter) memberAdd(r *clientv3.MemberAddResponse) {
	m := r.Member
	if m == nil {
		m = &pb.Member{}
	}
	as := " "
	if m.IsLearner {
		as = " as learner "
	}
	fmt.Fprintf(p.out, "Member %16x added%sto cluster %16x\n", m.ID, as, headerOrEmpty(r.Header).ClusterId)
}

func (p *simplePrinter) memberRemove(id uint64, r *clientv3.MemberRemoveResponse) {
	fmt.Fprintf(p.out, "Member %16x removed from cluster %16x\n", id, headerOrEmpty(r.Header).ClusterId)
}

func (p *simplePrinter) memberUpdate(id uint64, r *clientv3.MemberUpdateResponse) {
	fmt.Fprintf(p.out, "Member %16x updated in cluster %16x\n", id, headerOrEmpty(r.Header).ClusterId)
}

func (p *simplePrinter) memberPromote(id uint64, r *clientv3.MemberPromoteResponse) {
	fmt.Fprintf(p.out, "Member %16x promoted in cluster %16x\n", id, headerOrEmpty(r.Header).ClusterId)
}

func (p *simplePrinter) memberList(r *clientv3.MemberListResponse) {
	for _, m := range r.Members {
		fmt.Fprintln(p.out, strings.Join(memberRow(m), ", "))
	}
}

func (p *simplePrinter) moveLeader(leader, target uint64, _ *clientv3.MoveLeaderResponse) {
	fmt.Fprintf(p.out, "Leadership transferred from %x to %x\n", leader, target)
}
