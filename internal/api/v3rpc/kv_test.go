package v3rpc

import (
	"bytes"
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/test/bufconn"

	"github.com/cairn-io/cairn/internal/mvcc"
	"github.com/cairn-io/cairn/internal/server"
)

// fakeKV answers with function fields and counts the calls that reach it.
type fakeKV struct {
	calls atomic.Int32
	put   func(*pb.PutRequest) (*pb.PutResponse, error)
	rng   func(*pb.RangeRequest) (*pb.RangeResponse, error)
	txn   func(*pb.TxnRequest) (*pb.TxnResponse, error)
}

func (f *fakeKV) Range(_ context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	f.calls.Add(1)
	return f.rng(r)
}

func (f *fakeKV) Put(_ context.Context, r *pb.PutRequest) (*pb.PutResponse, error) {
	f.calls.Add(1)
	return f.put(r)
}

func (f *fakeKV) DeleteRange(context.Context, *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	f.calls.Add(1)
	return &pb.DeleteRangeResponse{Header: &pb.ResponseHeader{}}, nil
}

func (f *fakeKV) Txn(_ context.Context, r *pb.TxnRequest) (*pb.TxnResponse, error) {
	f.calls.Add(1)
	return f.txn(r)
}

func (f *fakeKV) Compact(context.Context, *pb.CompactionRequest) (*pb.CompactionResponse, error) {
	f.calls.Add(1)
	return nil, mvcc.ErrCompacted
}

type fakeMember struct{}

func (fakeMember) ID() uint64        { return 0x8e9e05c52164694d }
func (fakeMember) ClusterID() uint64 { return 0xcdf818194e3a8c32 }
func (fakeMember) Term() uint64      { return 7 }
func (fakeMember) Rev() int64        { return 100 }

// dialKV serves kv as the KV service, with the server codec, over an
// in-memory connection, and returns a client of it.
func dialKV(t *testing.T, kv KV, maxTxnOps int) (pb.KVClient, healthpb.HealthClient) {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	gs := grpc.NewServer(grpc.ForceServerCodecV2(Codec()), grpc.MaxRecvMsgSize(8<<20))
	pb.RegisterKVServer(gs, NewKVServer(kv, fakeMember{}, maxTxnOps))
	healthpb.RegisterHealthServer(gs, health.NewServer())
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	cc, err := grpc.NewClient("passthrough:///bufconn",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(8<<20), grpc.MaxCallSendMsgSize(8<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return pb.NewKVClient(cc), healthpb.NewHealthClient(cc)
}

// The KV service over a real gRPC connection: requests that fail
// validation never reach the store and arrive as clientv3's typed errors,
// store errors are translated, headers are filled, and messages over 1 MiB
// cross in both directions.
func TestKVOverGRPC(t *testing.T) {
	kv := &fakeKV{
		put: func(r *pb.PutRequest) (*pb.PutResponse, error) {
			return &pb.PutResponse{Header: &pb.ResponseHeader{Revision: 101}, PrevKv: &mvccpb.KeyValue{Key: r.Key, Value: r.Value}}, nil
		},
		rng: func(r *pb.RangeRequest) (*pb.RangeResponse, error) {
			if r.Revision == 1 {
				return nil, mvcc.ErrCompacted
			}
			return &pb.RangeResponse{Header: &pb.ResponseHeader{}}, nil
		},
		txn: func(*pb.TxnRequest) (*pb.TxnResponse, error) { return nil, server.ErrNoLeader },
	}
	client, health := dialKV(t, kv, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	big := bytes.Repeat([]byte("v"), 3<<20)
	resp, err := client.Put(ctx, &pb.PutRequest{Key: []byte("k"), Value: big})
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if resp.PrevKv == nil || !bytes.Equal(resp.PrevKv.Value, big) {
		t.Fatal("the 3 MiB value did not come back")
	}
	h := resp.Header
	if h.ClusterId != 0xcdf818194e3a8c32 || h.MemberId != 0x8e9e05c52164694d || h.RaftTerm != 7 || h.Revision != 101 {
		t.Fatalf("header %+v", h)
	}
	rresp, err := client.Range(ctx, &pb.RangeRequest{Key: []byte("k")})
	if err != nil {
		t.Fatalf("Range: %v", err)
	}
	if rresp.Header.Revision != 100 {
		t.Fatalf("Range header revision %d, want the member's 100", rresp.Header.Revision)
	}

	reached := kv.calls.Load()
	for _, tc := range []struct {
		name string
		call func() error
		want error
	}{
		{"range empty key", func() error { _, err := client.Range(ctx, &pb.RangeRequest{}); return err }, rpctypes.ErrEmptyKey},
		{"put value with ignore value", func() error {
			_, err := client.Put(ctx, &pb.PutRequest{Key: []byte("k"), Value: []byte("v"), IgnoreValue: true})
			return err
		}, rpctypes.ErrValueProvided},
		{"delete empty key", func() error { _, err := client.DeleteRange(ctx, &pb.DeleteRangeRequest{}); return err }, rpctypes.ErrEmptyKey},
		{"txn too many ops", func() error { _, err := client.Txn(ctx, &pb.TxnRequest{Success: puts(5)}); return err }, rpctypes.ErrTooManyOps},
		{"txn duplicate key in success", func() error {
			_, err := client.Txn(ctx, &pb.TxnRequest{Success: ops(putOp("a"), putOp("a"))})
			return err
		}, rpctypes.ErrDuplicateKey},
		{"txn duplicate key in failure", func() error {
			_, err := client.Txn(ctx, &pb.TxnRequest{Success: ops(putOp("a")), Failure: ops(delOp("a", "b"), putOp("a"))})
			return err
		}, rpctypes.ErrDuplicateKey},
		{"txn empty op", func() error { _, err := client.Txn(ctx, &pb.TxnRequest{Success: ops(&pb.RequestOp{})}); return err }, rpctypes.ErrKeyNotFound},
	} {
		if err := tc.call(); rpctypes.Error(err) != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if n := kv.calls.Load(); n != reached {
		t.Fatalf("%d invalid requests reached the store", n-reached)
	}

	// A key put in both branches is fine; the store's error is translated.
	_, err = client.Txn(ctx, &pb.TxnRequest{Success: ops(putOp("a")), Failure: ops(putOp("a"))})
	if rpctypes.Error(err) != rpctypes.ErrNoLeader {
		t.Fatalf("Txn: %v, want %v", err, rpctypes.ErrNoLeader)
	}
	_, err = client.Range(ctx, &pb.RangeRequest{Key: []byte("k"), Revision: 1})
	if rpctypes.Error(err) != rpctypes.ErrCompacted {
		t.Fatalf("Range: %v, want %v", err, rpctypes.ErrCompacted)
	}
	_, err = client.Compact(ctx, &pb.CompactionRequest{Revision: 1})
	if rpctypes.Error(err) != rpctypes.ErrCompacted {
		t.Fatalf("Compact: %v, want %v", err, rpctypes.ErrCompacted)
	}

	// gRPC health goes through the codec's fallback.
	hr, err := health.Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || hr.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health: %v, %v", hr, err)
	}
}
