package conformance_test

import (
	"fmt"
	"strings"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/grpc/codes"
)

// The comparison decides every verdict of this suite, and self-test mode
// only shows that it accepts equal answers; these cases show what it
// rejects and what it lets through, without starting any server.

func kv(key string, create, mod, ver int64, val string) *mvccpb.KeyValue {
	return &mvccpb.KeyValue{Key: []byte(key), CreateRevision: create, ModRevision: mod, Version: ver, Value: []byte(val)}
}

func hdr(rev int64, ids uint64) *pb.ResponseHeader {
	return &pb.ResponseHeader{Revision: rev, ClusterId: ids, MemberId: ids + 1, RaftTerm: ids + 2}
}

func rangeOutcome(req *pb.RangeRequest, resp *pb.RangeResponse) outcome {
	return outcome{method: "Range", req: req, resp: resp}
}

func TestCompareOutcomes(t *testing.T) {
	all := &pb.RangeRequest{Key: []byte("\x00"), RangeEnd: []byte("\x00")}
	byVersion := &pb.RangeRequest{Key: []byte("\x00"), RangeEnd: []byte("\x00"), SortTarget: pb.RangeRequest_VERSION, SortOrder: pb.RangeRequest_DESCEND}
	byVersionLimit := &pb.RangeRequest{Key: []byte("\x00"), RangeEnd: []byte("\x00"), SortTarget: pb.RangeRequest_VERSION, SortOrder: pb.RangeRequest_ASCEND, Limit: 2}
	txnReq := &pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("a")}}}}}
	txnResp := func(nested *pb.ResponseHeader) *pb.TxnResponse {
		return &pb.TxnResponse{Header: hdr(3, 7), Succeeded: true, Responses: []*pb.ResponseOp{
			{Response: &pb.ResponseOp_ResponsePut{ResponsePut: &pb.PutResponse{Header: nested}}},
		}}
	}

	tests := []struct {
		name      string
		want, got outcome
		same      bool
		mentions  string // a line the report must contain
	}{
		{
			name: "top-level IDs are normalised",
			want: rangeOutcome(all, &pb.RangeResponse{Header: hdr(5, 1), Kvs: []*mvccpb.KeyValue{kv("a", 2, 2, 1, "x")}, Count: 1}),
			got:  rangeOutcome(all, &pb.RangeResponse{Header: hdr(5, 100), Kvs: []*mvccpb.KeyValue{kv("a", 2, 2, 1, "x")}, Count: 1}),
			same: true,
		},
		{
			name:     "revision differs",
			want:     rangeOutcome(all, &pb.RangeResponse{Header: hdr(5, 1), Count: 0}),
			got:      rangeOutcome(all, &pb.RangeResponse{Header: hdr(6, 1), Count: 0}),
			mentions: "+   header: revision=6",
		},
		{
			name:     "a kv field differs",
			want:     rangeOutcome(all, &pb.RangeResponse{Header: hdr(5, 1), Kvs: []*mvccpb.KeyValue{kv("a", 2, 3, 2, "x")}, Count: 1}),
			got:      rangeOutcome(all, &pb.RangeResponse{Header: hdr(5, 1), Kvs: []*mvccpb.KeyValue{kv("a", 2, 3, 1, "x")}, Count: 1}),
			mentions: `-   kvs[0]: key="a" create=2 mod=3 version=2`,
		},
		{
			name:     "more and count",
			want:     rangeOutcome(all, &pb.RangeResponse{Header: hdr(5, 1), More: true, Count: 3}),
			got:      rangeOutcome(all, &pb.RangeResponse{Header: hdr(5, 1), More: false, Count: 3}),
			mentions: "+   more: false",
		},
		{
			name:     "key order matters without a sort",
			want:     rangeOutcome(all, &pb.RangeResponse{Header: hdr(5, 1), Kvs: []*mvccpb.KeyValue{kv("a", 2, 2, 1, ""), kv("b", 3, 3, 1, "")}, Count: 2}),
			got:      rangeOutcome(all, &pb.RangeResponse{Header: hdr(5, 1), Kvs: []*mvccpb.KeyValue{kv("b", 3, 3, 1, ""), kv("a", 2, 2, 1, "")}, Count: 2}),
			mentions: "kvs[1]",
		},
		{
			name: "keys tied on the sort target compare as a set",
			want: rangeOutcome(byVersion, &pb.RangeResponse{Header: hdr(5, 1), Kvs: []*mvccpb.KeyValue{kv("c", 4, 5, 2, ""), kv("a", 2, 2, 1, ""), kv("b", 3, 3, 1, "")}, Count: 3}),
			got:  rangeOutcome(byVersion, &pb.RangeResponse{Header: hdr(5, 1), Kvs: []*mvccpb.KeyValue{kv("c", 4, 5, 2, ""), kv("b", 3, 3, 1, ""), kv("a", 2, 2, 1, "")}, Count: 3}),
			same: true,
		},
		{
			name:     "but the sort order itself is checked",
			want:     rangeOutcome(byVersion, &pb.RangeResponse{Header: hdr(5, 1), Kvs: []*mvccpb.KeyValue{kv("c", 4, 5, 2, ""), kv("a", 2, 2, 1, "")}, Count: 2}),
			got:      rangeOutcome(byVersion, &pb.RangeResponse{Header: hdr(5, 1), Kvs: []*mvccpb.KeyValue{kv("a", 2, 2, 1, ""), kv("c", 4, 5, 2, "")}, Count: 2}),
			mentions: "kvs[0]",
		},
		{
			name: "which tied key made the limit is unspecified",
			want: rangeOutcome(byVersionLimit, &pb.RangeResponse{Header: hdr(5, 1), Kvs: []*mvccpb.KeyValue{kv("a", 2, 2, 1, ""), kv("b", 3, 3, 1, "")}, More: true, Count: 3}),
			got:  rangeOutcome(byVersionLimit, &pb.RangeResponse{Header: hdr(5, 1), Kvs: []*mvccpb.KeyValue{kv("c", 4, 4, 1, ""), kv("a", 2, 2, 1, "")}, More: true, Count: 3}),
			same: true,
		},
		{
			name:     "but its sort target is checked",
			want:     rangeOutcome(byVersionLimit, &pb.RangeResponse{Header: hdr(5, 1), Kvs: []*mvccpb.KeyValue{kv("a", 2, 2, 1, ""), kv("b", 3, 3, 1, "")}, More: true, Count: 3}),
			got:      rangeOutcome(byVersionLimit, &pb.RangeResponse{Header: hdr(5, 1), Kvs: []*mvccpb.KeyValue{kv("a", 2, 2, 1, ""), kv("c", 4, 4, 2, "")}, More: true, Count: 3}),
			mentions: "version=2",
		},
		{
			name: "an uncut sorted response keeps every key",
			want: rangeOutcome(byVersionLimit, &pb.RangeResponse{Header: hdr(5, 1), Kvs: []*mvccpb.KeyValue{kv("a", 2, 2, 1, ""), kv("b", 3, 3, 1, "")}, Count: 2}),
			got:  rangeOutcome(byVersionLimit, &pb.RangeResponse{Header: hdr(5, 1), Kvs: []*mvccpb.KeyValue{kv("a", 2, 2, 1, ""), kv("c", 3, 3, 1, "")}, Count: 2}),
			// "b" against "c" is a real difference here.
			mentions: `key="c"`,
		},
		{
			name:     "nested headers are compared as sent",
			want:     outcome{method: "Txn", req: txnReq, resp: txnResp(&pb.ResponseHeader{Revision: 3})},
			got:      outcome{method: "Txn", req: txnReq, resp: txnResp(&pb.ResponseHeader{Revision: 3, MemberId: 9})},
			mentions: "member_id=9",
		},
		{
			name: "equal txns",
			want: outcome{method: "Txn", req: txnReq, resp: txnResp(&pb.ResponseHeader{Revision: 3})},
			got:  outcome{method: "Txn", req: txnReq, resp: txnResp(&pb.ResponseHeader{Revision: 3})},
			same: true,
		},
		{
			name:     "error against success",
			want:     outcome{method: "Put", resp: &pb.PutResponse{Header: hdr(2, 1)}},
			got:      outcome{method: "Put", err: &errEmptyKey},
			mentions: `+ error code=InvalidArgument message="etcdserver: key is not provided"`,
		},
		{
			name:     "same message, other code",
			want:     outcome{method: "Range", err: &errCompacted},
			got:      outcome{method: "Range", err: &rpcErr{codes.InvalidArgument, errCompacted.msg}},
			mentions: "code=InvalidArgument",
		},
		{
			name:     "same code, other message",
			want:     outcome{method: "Range", err: &errCompacted},
			got:      outcome{method: "Range", err: &rpcErr{codes.OutOfRange, "compacted"}},
			mentions: `message="compacted"`,
		},
		{
			name: "equal errors",
			want: outcome{method: "Range", err: &errFutureRev},
			got:  outcome{method: "Range", err: &rpcErr{codes.OutOfRange, errFutureRev.msg}},
			same: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			diff := compareOutcomes(tt.want, tt.got, "cairn")
			if tt.same {
				if diff != "" {
					t.Fatalf("reported a difference:\n%s", diff)
				}
				return
			}
			if diff == "" {
				t.Fatal("reported no difference")
			}
			if !strings.Contains(diff, tt.mentions) {
				t.Fatalf("report does not mention %q:\n%s", tt.mentions, diff)
			}
		})
	}
}

// TestNormaliseDoesNotMutate: the reference outcome is checked and reported
// after comparison, so normalising must work on copies.
func TestNormaliseDoesNotMutate(t *testing.T) {
	resp := &pb.RangeResponse{Header: hdr(5, 1), Kvs: []*mvccpb.KeyValue{kv("b", 3, 3, 1, ""), kv("a", 2, 2, 1, "")}, More: true, Count: 3}
	req := &pb.RangeRequest{Key: []byte("a"), SortTarget: pb.RangeRequest_VERSION, Limit: 2}
	normalise(rangeOutcome(req, resp))
	if resp.Header.ClusterId != 1 || string(resp.Kvs[0].Key) != "b" || string(resp.Kvs[1].Key) != "a" {
		t.Fatalf("normalise changed its input: %v", resp)
	}
}

func TestLineDiff(t *testing.T) {
	got := lineDiff("a\nb\nc", "a\nx\nc")
	want := "      a\n    - b\n    + x\n      c"
	if got != want {
		t.Fatalf("lineDiff:\n%s\nwant:\n%s", got, want)
	}
}

// The normalisation of the Lease, Maintenance and Watch services.

func TestCompareServices(t *testing.T) {
	ev := func(key string, rev int64) *mvccpb.Event {
		return &mvccpb.Event{Type: mvccpb.PUT, Kv: kv(key, rev, rev, 1, "v")}
	}
	wr := func(id, rev int64, evs ...*mvccpb.Event) *pb.WatchResponse {
		return &pb.WatchResponse{Header: hdr(rev, uint64(id)+7), WatchId: id, Events: evs}
	}
	batch := func(rs ...*pb.WatchResponse) outcome {
		return outcome{method: "Watch", resp: &watchBatch{resps: rs}}
	}
	grant := func(id int64, leases ...int64) outcome {
		return outcome{method: "LeaseGrant", resp: &pb.LeaseGrantResponse{Header: hdr(1, 3), ID: id, TTL: 60}, leases: leases}
	}
	status := func(self uint64, size, quota int64) outcome {
		return outcome{method: "Status", self: self, resp: &pb.StatusResponse{
			Header: hdr(1, self), Version: "3.6.16", Leader: self, RaftIndex: 9, RaftAppliedIndex: 9, RaftTerm: 2,
			DbSize: size, DbSizeInUse: size, DbSizeQuota: quota, StorageVersion: "3.6.0",
			Errors: []string{fmt.Sprintf("memberID:%d alarm:NOSPACE ", self)},
		}}
	}
	tests := []struct {
		name      string
		want, got outcome
		same      bool
		mentions  string
	}{
		{
			name: "server-chosen lease IDs are renamed by grant order",
			want: grant(555, 555),
			got:  grant(777, 777),
			same: true,
		},
		{
			name:     "client-chosen lease IDs are compared",
			want:     grant(1000),
			got:      grant(1001),
			mentions: "id=1001",
		},
		{
			name:     "a server-chosen ID where etcd kept the client's",
			want:     grant(1000, 555),
			got:      grant(777, 777),
			mentions: "id=granted#1",
		},
		{
			name: "watchers of one stream interleave freely",
			want: batch(wr(0, 5, ev("a", 5)), wr(1, 5, ev("a", 5)), wr(0, 6, ev("a", 6))),
			got:  batch(wr(1, 5, ev("a", 5)), wr(0, 5, ev("a", 5)), wr(0, 6, ev("a", 6))),
			same: true,
		},
		{
			name:     "but each watcher's order is kept",
			want:     batch(wr(0, 5, ev("a", 5)), wr(0, 6, ev("a", 6))),
			got:      batch(wr(0, 6, ev("a", 6)), wr(0, 5, ev("a", 5))),
			mentions: "[0] watch_id=0 header_revision=6",
		},
		{
			name:     "a missing response",
			want:     batch(wr(0, 5, ev("a", 5))),
			got:      outcome{method: "Watch", resp: &watchBatch{missing: "1 responses on s did not arrive within 10s"}},
			mentions: "missing: 1 responses",
		},
		{
			name:     "violations are part of the answer",
			want:     batch(wr(0, 5, ev("a", 5))),
			got:      outcome{method: "Watch", resp: &watchBatch{resps: []*pb.WatchResponse{wr(0, 5, ev("a", 5))}}, violations: []string{"watch 0: events before its created response"}},
			mentions: "violation: watch 0",
		},
		{
			name: "status: sizes, indexes, IDs and patch version",
			want: status(11, 20000, 1<<31),
			got:  status(22, 90000, 1<<31),
			same: true,
		},
		{
			name:     "status: the quota is compared",
			want:     status(11, 20000, 1<<31),
			got:      status(22, 20000, 1<<30),
			mentions: "db_size_quota=1073741824",
		},
		{
			name:     "status: an empty database is not a size",
			want:     status(11, 20000, 1<<31),
			got:      status(22, 0, 1<<31),
			mentions: "db_size=0",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			diff := compareOutcomes(tt.want, tt.got, "cairn")
			if tt.same {
				if diff != "" {
					t.Fatalf("reported a difference:\n%s", diff)
				}
				return
			}
			if diff == "" {
				t.Fatal("reported no difference")
			}
			if !strings.Contains(diff, tt.mentions) {
				t.Fatalf("report does not mention %q:\n%s", tt.mentions, diff)
			}
		})
	}
}

// TestWatchGuarantees checks the per-stream checks of watch responses.
func TestWatchGuarantees(t *testing.T) {
	ev := func(rev int64) *mvccpb.Event { return &mvccpb.Event{Kv: kv("a", rev, rev, 1, "")} }
	created := func(id, rev int64) *pb.WatchResponse {
		return &pb.WatchResponse{Header: hdr(rev, 0), WatchId: id, Created: true}
	}
	events := func(id, rev int64, frag bool, evs ...*mvccpb.Event) *pb.WatchResponse {
		return &pb.WatchResponse{Header: hdr(rev, 0), WatchId: id, Events: evs, Fragment: frag}
	}
	progress := func(id, rev int64) *pb.WatchResponse { return &pb.WatchResponse{Header: hdr(rev, 0), WatchId: id} }
	tests := []struct {
		name      string
		resps     []*pb.WatchResponse
		violation string // "" for none
	}{
		{"in order", []*pb.WatchResponse{created(0, 1), events(0, 2, false, ev(2)), events(0, 4, false, ev(3), ev(4)), progress(-1, 4)}, ""},
		{"events before created", []*pb.WatchResponse{events(0, 2, false, ev(2))}, "before its created response"},
		{"a revision twice", []*pb.WatchResponse{created(0, 1), events(0, 2, false, ev(2)), events(0, 2, false, ev(2))}, "repeated or out of order"},
		{"going back", []*pb.WatchResponse{created(0, 1), events(0, 3, false, ev(3)), events(0, 3, false, ev(2))}, "repeated or out of order"},
		{"a revision across fragments", []*pb.WatchResponse{created(0, 1), events(0, 2, true, ev(2)), events(0, 2, false, ev(2))}, ""},
		{"an event after its progress", []*pb.WatchResponse{created(0, 1), progress(-1, 3), events(0, 3, false, ev(3))}, "after a progress notification at 3"},
		{"progress behind an event", []*pb.WatchResponse{created(0, 1), events(0, 3, false, ev(3)), progress(0, 2)}, "progress notification at revision 2 after an event at 3"},
		{"an event newer than its header", []*pb.WatchResponse{created(0, 1), events(0, 2, false, ev(3))}, "header revision 2"},
		{"an ID used again after a cancel", []*pb.WatchResponse{created(5, 1), events(5, 3, false, ev(3)), {Header: hdr(3, 0), WatchId: 5, Canceled: true}, created(5, 3), events(5, 3, false, ev(2), ev(3))}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := &rawStream{created: map[int64]bool{}, lastRev: map[int64]int64{}, lastFrag: map[int64]bool{}, progress: map[int64]int64{}}
			var v []string
			for _, r := range tt.resps {
				v = append(v, rs.check(r)...)
			}
			switch {
			case tt.violation == "" && len(v) > 0:
				t.Fatalf("violations reported: %q", v)
			case tt.violation != "" && (len(v) == 0 || !strings.Contains(strings.Join(v, "; "), tt.violation)):
				t.Fatalf("want a violation mentioning %q, got %q", tt.violation, v)
			}
		})
	}
}
