package v3rpc

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/test/bufconn"
)

// fakeLeadership is a member whose leader the test sets.
type fakeLeadership struct {
	leader atomic.Uint64
	done   chan struct{}
}

func (f *fakeLeadership) Leader() uint64        { return f.leader.Load() }
func (f *fakeLeadership) Done() <-chan struct{} { return f.done }

// fakeLeases renews every lease for 10s.
type fakeLeases struct{ fakeMember }

func (fakeLeases) LeaseGrant(context.Context, *pb.LeaseGrantRequest) (*pb.LeaseGrantResponse, error) {
	return &pb.LeaseGrantResponse{Header: &pb.ResponseHeader{}}, nil
}

func (fakeLeases) LeaseRevoke(context.Context, *pb.LeaseRevokeRequest) (*pb.LeaseRevokeResponse, error) {
	return &pb.LeaseRevokeResponse{Header: &pb.ResponseHeader{}}, nil
}
func (fakeLeases) LeaseRenew(context.Context, int64) (int64, error) { return 10, nil }
func (fakeLeases) LeaseTimeToLive(context.Context, *pb.LeaseTimeToLiveRequest) (*pb.LeaseTimeToLiveResponse, error) {
	return &pb.LeaseTimeToLiveResponse{Header: &pb.ResponseHeader{}}, nil
}

func (fakeLeases) LeaseLeases(context.Context, *pb.LeaseLeasesRequest) (*pb.LeaseLeasesResponse, error) {
	return &pb.LeaseLeasesResponse{Header: &pb.ResponseHeader{}}, nil
}

// dialLeaderChecked serves the KV and Lease services behind the
// require-leader interceptors, and returns clients of them and a function
// that makes the leader monitor check l once.
func dialLeaderChecked(t *testing.T, l *fakeLeadership) (pb.KVClient, pb.LeaseClient, func()) {
	t.Helper()
	mon := &leaderMonitor{l: l, streams: map[*leaderStream]struct{}{}}
	ticks := make(chan time.Time)
	checked := make(chan struct{})
	go mon.run(ticks, func() { checked <- struct{}{} })
	check := func() {
		ticks <- time.Now()
		<-checked
	}
	lis := bufconn.Listen(1 << 20)
	gs := grpc.NewServer(grpc.ForceServerCodecV2(Codec()),
		grpc.ChainUnaryInterceptor(requireLeaderUnary(l)), grpc.ChainStreamInterceptor(mon.stream()))
	kv := &fakeKV{rng: func(*pb.RangeRequest) (*pb.RangeResponse, error) {
		return &pb.RangeResponse{Header: &pb.ResponseHeader{}}, nil
	}}
	pb.RegisterKVServer(gs, NewKVServer(kv, fakeMember{}, 128))
	pb.RegisterLeaseServer(gs, NewLeaseServer(fakeLeases{}))
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	cc, err := grpc.NewClient("passthrough:///bufconn",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return pb.NewKVClient(cc), pb.NewLeaseClient(cc), check
}

// requireLeader adds clientv3.WithRequireLeader's metadata to ctx.
func requireLeader(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, rpctypes.MetadataRequireLeaderKey, rpctypes.MetadataHasLeader)
}

// With the require-leader metadata, a unary call on a member without a
// leader fails at once with "no leader", as does opening a stream; an open
// stream is cancelled with "no leader" on the third check in a row that
// finds none, not before; requests without the metadata are served.
func TestRequireLeader(t *testing.T) {
	l := &fakeLeadership{done: make(chan struct{})}
	t.Cleanup(func() { close(l.done) })
	l.leader.Store(1)
	kv, lease, check := dialLeaderChecked(t, l)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rl := requireLeader(ctx)

	if _, err := kv.Range(rl, &pb.RangeRequest{Key: []byte("k")}); err != nil {
		t.Fatalf("range with a leader: %v", err)
	}
	keepAlive := func(s pb.Lease_LeaseKeepAliveClient) error {
		if err := s.Send(&pb.LeaseKeepAliveRequest{ID: 7}); err != nil {
			return err
		}
		resp, err := s.Recv()
		if err == nil && resp.TTL != 10 {
			t.Fatalf("keepalive answered TTL %d", resp.TTL)
		}
		return err
	}
	required, err := lease.LeaseKeepAlive(rl)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := lease.LeaseKeepAlive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []pb.Lease_LeaseKeepAliveClient{required, plain} {
		if err := keepAlive(s); err != nil {
			t.Fatalf("keepalive with a leader: %v", err)
		}
	}

	l.leader.Store(0)
	if _, err := kv.Range(rl, &pb.RangeRequest{Key: []byte("k")}); rpctypes.Error(err) != rpctypes.ErrNoLeader {
		t.Fatalf("range requiring a leader without one: %v, want %v", err, rpctypes.ErrNoLeader)
	}
	if _, err := kv.Range(ctx, &pb.RangeRequest{Key: []byte("k")}); err != nil {
		t.Fatalf("range not requiring a leader, without one: %v", err)
	}
	s, err := lease.LeaseKeepAlive(rl)
	if err == nil {
		_, err = s.Recv()
	}
	if rpctypes.Error(err) != rpctypes.ErrNoLeader {
		t.Fatalf("stream requiring a leader opened without one: %v, want %v", err, rpctypes.ErrNoLeader)
	}

	// Two checks without a leader leave the open stream alone.
	check()
	check()
	if err := keepAlive(required); err != nil {
		t.Fatalf("keepalive after two checks without a leader: %v", err)
	}
	// A leader seen in between starts the count again.
	l.leader.Store(1)
	check()
	l.leader.Store(0)
	check()
	check()
	if err := keepAlive(required); err != nil {
		t.Fatalf("keepalive after a leader came and went: %v", err)
	}
	// The third check in a row ends the stream blocked in its receive.
	recvErr := make(chan error, 1)
	go func() {
		_, err := required.Recv()
		recvErr <- err
	}()
	check()
	if err := <-recvErr; rpctypes.Error(err) != rpctypes.ErrNoLeader {
		t.Fatalf("stream requiring a leader after three checks without one: %v, want %v", err, rpctypes.ErrNoLeader)
	}
	if err := keepAlive(plain); err != nil {
		t.Fatalf("stream not requiring a leader after three checks without one: %v", err)
	}
}
