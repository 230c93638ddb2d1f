package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// jsonPrinter prints the response protos with encoding/json on one line, as
// etcdctl does: the field names are the protos' JSON tags, byte strings are
// base64 and --hex changes nothing but member list (see memberList).
type jsonPrinter struct {
	out, errOut io.Writer
	hex         bool
}

func (*jsonPrinter) supports(outputKind) bool { return true }

func (p *jsonPrinter) print(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		fmt.Fprintln(p.errOut, err)
		return
	}
	fmt.Fprintln(p.out, string(b))
}

func (p *jsonPrinter) get(r *clientv3.GetResponse)    { p.print((*pb.RangeResponse)(r)) }
func (p *jsonPrinter) put(r *clientv3.PutResponse)    { p.print((*pb.PutResponse)(r)) }
func (p *jsonPrinter) del(r *clientv3.DeleteResponse) { p.print((*pb.DeleteRangeResponse)(r)) }
func (p *jsonPrinter) txn(r *clientv3.TxnResponse)    { p.print((*pb.TxnResponse)(r)) }
func (p *jsonPrinter) endpointHealth(hs []epHealth)   { p.print(hs) }
func (p *jsonPrinter) endpointStatus(sts []epStatus)  { p.print(sts) }

// The lease, watch and alarm responses are printed as clientv3 types, as
// etcdctl does: the lease ones carry the header's fields at the top level.
func (p *jsonPrinter) watch(r clientv3.WatchResponse)            { p.print(&r) }
func (p *jsonPrinter) leaseGrant(r *clientv3.LeaseGrantResponse) { p.print(r) }
func (p *jsonPrinter) leaseRevoke(_ clientv3.LeaseID, r *clientv3.LeaseRevokeResponse) {
	p.print(r)
}
func (p *jsonPrinter) leaseKeepAlive(r *clientv3.LeaseKeepAliveResponse)           { p.print(r) }
func (p *jsonPrinter) leaseTimeToLive(r *clientv3.LeaseTimeToLiveResponse, _ bool) { p.print(r) }
func (p *jsonPrinter) leaseList(r *clientv3.LeaseLeasesResponse)                   { p.print(r) }
func (p *jsonPrinter) alarms(r *clientv3.AlarmResponse)                            { p.print((*pb.AlarmResponse)(r)) }
func (p *jsonPrinter) endpointHashKV(hs []epHashKV)                                { p.print(hs) }
func (p *jsonPrinter) snapshotStatus(st snapshotStatus)                            { p.print(st) }

func (p *jsonPrinter) memberAdd(r *clientv3.MemberAddResponse) { p.print((*pb.MemberAddResponse)(r)) }
func (p *jsonPrinter) memberRemove(_ uint64, r *clientv3.MemberRemoveResponse) {
	p.print((*pb.MemberRemoveResponse)(r))
}
func (p *jsonPrinter) memberUpdate(_ uint64, r *clientv3.MemberUpdateResponse) {
	p.print((*pb.MemberUpdateResponse)(r))
}
func (p *jsonPrinter) memberPromote(_ uint64, r *clientv3.MemberPromoteResponse) {
	p.print((*pb.MemberPromoteResponse)(r))
}
func (p *jsonPrinter) moveLeader(_, _ uint64, r *clientv3.MoveLeaderResponse) {
	p.print((*pb.MoveLeaderResponse)(r))
}

// memberList prints the response; with --hex, etcdctl's hand-built variant
// instead: the IDs as hex strings, the header without its revision, each
// member without isLearner, and the name written as it is, unescaped.
func (p *jsonPrinter) memberList(r *clientv3.MemberListResponse) {
	if !p.hex {
		p.print((*pb.MemberListResponse)(r))
		return
	}
	h := headerOrEmpty(r.Header)
	var b strings.Builder
	fmt.Fprintf(&b, `{"header":{"cluster_id":"%x","member_id":"%x","raft_term":%d}`, h.ClusterId, h.MemberId, h.RaftTerm)
	for i, m := range r.Members {
		if i == 0 {
			b.WriteString(`,"members":[`)
		} else {
			b.WriteString(",")
		}
		peers, err := json.Marshal(m.PeerURLs)
		if err != nil {
			return
		}
		clients, err := json.Marshal(m.ClientURLs)
		if err != nil {
			return
		}
		fmt.Fprintf(&b, `{"ID":"%x","name":"%s","peerURLs":%s,"clientURLs":%s}`, m.ID, m.Name, peers, clients)
	}
	if len(r.Members) > 0 {
		b.WriteString("]")
	}
	b.WriteString("}")
	fmt.Fprintln(p.out, b.String())
}

// protobufPrinter writes the binary encoding of key-value response protos.
type protobufPrinter struct {
	out, errOut io.Writer
}

func (*protobufPrinter) supports(k outputKind) bool { return k != endpointOutput }

func (p *protobufPrinter) print(m interface{ Marshal() ([]byte, error) }) {
	b, err := m.Marshal()
	if err != nil {
		fmt.Fprintln(p.errOut, err)
		return
	}
	p.out.Write(b)
}

func (p *protobufPrinter) get(r *clientv3.GetResponse)    { p.print((*pb.RangeResponse)(r)) }
func (p *protobufPrinter) put(r *clientv3.PutResponse)    { p.print((*pb.PutResponse)(r)) }
func (p *protobufPrinter) del(r *clientv3.DeleteResponse) { p.print((*pb.DeleteRangeResponse)(r)) }
func (p *protobufPrinter) txn(r *clientv3.TxnResponse)    { p.print((*pb.TxnResponse)(r)) }
func (p *protobufPrinter) endpointHealth([]epHealth)      {}
func (p *protobufPrinter) endpointStatus([]epStatus)      {}
func (p *protobufPrinter) endpointHashKV([]epHashKV)      {}

func (p *protobufPrinter) memberAdd(r *clientv3.MemberAddResponse) {
	p.print((*pb.MemberAddResponse)(r))
}
func (p *protobufPrinter) memberRemove(_ uint64, r *clientv3.MemberRemoveResponse) {
	p.print((*pb.MemberRemoveResponse)(r))
}
func (p *protobufPrinter) memberUpdate(_ uint64, r *clientv3.MemberUpdateResponse) {
	p.print((*pb.MemberUpdateResponse)(r))
}
func (p *protobufPrinter) memberPromote(_ uint64, r *clientv3.MemberPromoteResponse) {
	p.print((*pb.MemberPromoteResponse)(r))
}
func (p *protobufPrinter) memberList(r *clientv3.MemberListResponse) {
	p.print((*pb.MemberListResponse)(r))
}
func (p *protobufPrinter) moveLeader(_, _ uint64, r *clientv3.MoveLeaderResponse) {
	p.print((*pb.MoveLeaderResponse)(r))
}

// snapshotStatus is never called: etcdutl has no encoding for a snapshot's
// status, and the command reports that (see marshalError).
func (p *protobufPrinter) snapshotStatus(snapshotStatus) {}

// watch writes the etcdserverpb.WatchResponse the events came in, as far
// as clientv3 keeps it.
func (p *protobufPrinter) watch(r clientv3.WatchResponse) {
	evs := make([]*mvccpb.Event, len(r.Events))
	for i, ev := range r.Events {
		evs[i] = (*mvccpb.Event)(ev)
	}
	p.print(&pb.WatchResponse{
		Header:          &r.Header,
		Events:          evs,
		CompactRevision: r.CompactRevision,
		Canceled:        r.Canceled,
		Created:         r.Created,
	})
}

// The clientv3 lease responses embed the response header, and etcdctl
// writes just that: these print the header's encoding, as it does.
func (p *protobufPrinter) leaseGrant(r *clientv3.LeaseGrantResponse)         { p.print(r) }
func (p *protobufPrinter) leaseKeepAlive(r *clientv3.LeaseKeepAliveResponse) { p.print(r) }
func (p *protobufPrinter) leaseTimeToLive(r *clientv3.LeaseTimeToLiveResponse, _ bool) {
	p.print(r)
}
func (p *protobufPrinter) leaseList(r *clientv3.LeaseLeasesResponse) { p.print(r) }
func (p *protobufPrinter) alarms(r *clientv3.AlarmResponse)          { p.print((*pb.AlarmResponse)(r)) }

// leaseRevoke is never called: etcdctl has no encoding for the revoke
// response, and the command reports that (see marshalError).
func (p *protobufPrinter) leaseRevoke(clientv3.LeaseID, *clientv3.LeaseRevokeResponse) {}

// marshalError is the error etcdctl's protobuf output ends with, after the
// request was made, when the response has no binary encoding; nil for the
// other formats.
func (c *ctlSession) marshalError(v any) error {
	if _, ok := c.printer.(*protobufPrinter); !ok {
		return nil
	}
	return ctlErrorf(exitBadFeature, "marshal unsupported for type %T (%v)", v, v)
}
