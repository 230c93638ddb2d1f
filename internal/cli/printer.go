package cli

import (
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"strings"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// outputKind says what a command prints, since not every --write-out format
// can print everything (as in etcdctl: table is only for the endpoint
// commands and member list, protobuf only for responses).
type outputKind int

const (
	kvOutput       outputKind = iota // get, put, del, txn, watch, lease, alarm: responses
	endpointOutput                   // endpoint health, status, hashkv
	noOutput                         // compaction, defrag, snapshot save: the same line in every format
	snapshotOutput                   // snapshot status (etcdutl's formats)
	membersOutput                    // member list: every format, table included
	changeOutput                     // member add, remove, update, promote, move-leader: not table or fields
)

// printer writes command results in one --write-out format. The formats
// reproduce etcdctl 3.6's output byte for byte.
type printer interface {
	supports(outputKind) bool

	get(*clientv3.GetResponse)
	put(*clientv3.PutResponse)
	del(*clientv3.DeleteResponse)
	txn(*clientv3.TxnResponse)

	watch(clientv3.WatchResponse)

	leaseGrant(*clientv3.LeaseGrantResponse)
	leaseRevoke(clientv3.LeaseID, *clientv3.LeaseRevokeResponse)
	leaseKeepAlive(*clientv3.LeaseKeepAliveResponse)
	leaseTimeToLive(r *clientv3.LeaseTimeToLiveResponse, keys bool)
	leaseList(*clientv3.LeaseLeasesResponse)
	alarms(*clientv3.AlarmResponse)

	endpointHealth([]epHealth)
	endpointStatus([]epStatus)
	endpointHashKV([]epHashKV)

	memberAdd(*clientv3.MemberAddResponse)
	memberRemove(id uint64, r *clientv3.MemberRemoveResponse)
	memberUpdate(id uint64, r *clientv3.MemberUpdateResponse)
	memberPromote(id uint64, r *clientv3.MemberPromoteResponse)
	memberList(*clientv3.MemberListResponse)
	moveLeader(leader, target uint64, r *clientv3.MoveLeaderResponse)

	snapshotStatus(snapshotStatus)
}

// newPrinter returns the printer for a --write-out value.
func newPrinter(format string, isHex bool, out, errOut io.Writer) (printer, error) {
	switch format {
	case "simple":
		return &simplePrinter{out: out, errOut: errOut, hex: isHex}, nil
	case "json":
		return &jsonPrinter{out: out, errOut: errOut, hex: isHex}, nil
	case "fields":
		return &fieldsPrinter{out: out, hex: isHex}, nil
	case "table":
		return &tablePrinter{out: out}, nil
	case "protobuf":
		return &protobufPrinter{out: out, errOut: errOut}, nil
	}
	return nil, ctlErrorf(exitBadFeature, "unsupported output format")
}

// hexEscape writes b as etcdctl's --hex does: every byte as \xNN.
func hexEscape(b []byte) string {
	var sb strings.Builder
	sb.Grow(4 * len(b))
	for _, c := range b {
		sb.WriteString(`\x`)
		sb.WriteString(hex.EncodeToString([]byte{c}))
	}
	return sb.String()
}

// statusRow is one endpoint's line of the status table, shared by the simple
// and table printers.
func statusRow(st epStatus) []string {
	r := st.Resp
	hdr := r.Header
	if hdr == nil {
		hdr = &pb.ResponseHeader{}
	}
	notInUse := 0
	if r.DbSize != 0 {
		notInUse = int(100 - r.DbSizeInUse*100/r.DbSize)
	}
	return []string{
		st.Ep,
		fmt.Sprintf("%x", hdr.MemberId),
		r.Version,
		r.StorageVersion,
		humanBytes(uint64(r.DbSize)),
		humanBytes(uint64(r.DbSizeInUse)),
		fmt.Sprintf("%d%%", notInUse),
		humanBytes(uint64(r.DbSizeQuota)),
		fmt.Sprint(r.Leader == hdr.MemberId),
		fmt.Sprint(r.IsLearner),
		fmt.Sprint(r.RaftTerm),
		fmt.Sprint(r.RaftIndex),
		fmt.Sprint(r.RaftAppliedIndex),
		strings.Join(r.Errors, ", "),
		r.DowngradeInfo.GetTargetVersion(),
		fmt.Sprint(r.DowngradeInfo.GetEnabled()),
	}
}

var statusHeader = []string{
	"endpoint", "ID", "version", "storage version", "db size", "in use",
	"percentage not in use", "quota", "is leader", "is learner", "raft term",
	"raft index", "raft applied index", "errors", "downgrade target version",
	"downgrade enabled",
}

func healthRow(h epHealth) []string {
	return []string{h.Ep, fmt.Sprint(h.Health), h.Took, h.Error}
}

var healthHeader = []string{"endpoint", "health", "took", "error"}

func hashKVRow(h epHashKV) []string {
	return []string{h.Ep, fmt.Sprint(h.Resp.Hash), fmt.Sprint(h.Resp.HashRevision)}
}

var hashKVHeader = []string{"endpoint", "hash", "hash_revision"}

// snapshotRow is a snapshot file's line in the simple and table formats of
// snapshot status, as etcdutl prints it: the hash in hex and the size in SI
// units.
func snapshotRow(st snapshotStatus) []string {
	return []string{
		fmt.Sprintf("%x", st.Hash),
		fmt.Sprint(st.Revision),
		fmt.Sprint(st.TotalKey),
		humanBytes(uint64(st.TotalSize)),
		st.Version,
	}
}

// memberRow is a member's line in the simple and table formats of member
// list. A member that was added but never started has no name yet.
func memberRow(m *pb.Member) []string {
	status := "started"
	if m.Name == "" {
		status = "unstarted"
	}
	return []string{
		strconv.FormatUint(m.ID, 16),
		status,
		m.Name,
		strings.Join(m.PeerURLs, ","),
		strings.Join(m.ClientURLs, ","),
		strconv.FormatBool(m.IsLearner),
	}
}

var memberHeader = []string{"ID", "Status", "Name", "Peer Addrs", "Client Addrs", "Is Learner"}

// headerOrEmpty guards the printers against a response without a header.
func headerOrEmpty(h *pb.ResponseHeader) *pb.ResponseHeader {
	if h == nil {
		return &pb.ResponseHeader{}
	}
	return h
}

var snapshotHeader = []string{"hash", "revision", "total keys", "total size", "version"}

// subResponses yields the typed responses of a txn in order; other is called
// for a response kind the printers do not know (a nested txn).
func subResponses(r *clientv3.TxnResponse, get func(*clientv3.GetResponse), put func(*clientv3.PutResponse), del func(*clientv3.DeleteResponse), other func(*pb.ResponseOp)) {
	for _, op := range r.Responses {
		switch v := op.Response.(type) {
		case *pb.ResponseOp_ResponseRange:
			get((*clientv3.GetResponse)(v.ResponseRange))
		case *pb.ResponseOp_ResponsePut:
			put((*clientv3.PutResponse)(v.ResponsePut))
		case *pb.ResponseOp_ResponseDeleteRange:
			del((*clientv3.DeleteResponse)(v.ResponseDeleteRange))
		default:
			other(op)
		}
	}
}

// kvOrEmpty guards the printers against a nil key-value.
func kvOrEmpty(kv *mvccpb.KeyValue) *mvccpb.KeyValue {
	if kv == nil {
		return &mvccpb.KeyValue{}
	}
	return kv
}
