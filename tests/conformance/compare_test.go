package conformance_test

import (
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
