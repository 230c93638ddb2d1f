package v3rpc

import (
	"log/slog"
	"math"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
)

// Services is everything a member offers the v3 API.
type Services interface {
	KV
	Maintenance
	Cluster
	Leases
	Watches
	Auth
	Leadership
}

// Config configures the gRPC server.
type Config struct {
	// MaxRequestBytes is --max-request-bytes; gRPC accepts messages up to
	// it plus 512 KiB of overhead, so that a slightly oversized request
	// reaches the store and gets etcd's "request is too large".
	MaxRequestBytes int
	// MaxTxnOps is --max-txn-ops.
	MaxTxnOps int
	// WatchProgressInterval is how often quiet watchers that asked for
	// progress notifications get one.
	WatchProgressInterval time.Duration
	// ElectionTimeout is the member's election timeout: a stream that asked
	// for a leader is cancelled after three of them without one. Default 1s.
	ElectionTimeout time.Duration
	// KeepaliveMinTime is the shortest client keepalive ping interval
	// accepted. Default 5s.
	KeepaliveMinTime time.Duration
	// KeepaliveInterval and KeepaliveTimeout govern server-to-client
	// pings. Defaults 2h and 20s.
	KeepaliveInterval time.Duration
	KeepaliveTimeout  time.Duration
	// ExtensiveMetrics is --metrics=extensive: the gRPC handling-time
	// histogram is kept too (metrics.go).
	ExtensiveMetrics bool
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

const grpcOverheadBytes = 512 * 1024

// streamWorkers is the number of goroutines kept to serve requests.
const streamWorkers = 256

// NewServer returns a gRPC server with etcd's v3 services registered.
func NewServer(s Services, cfg Config, opts ...grpc.ServerOption) *grpc.Server {
	if cfg.KeepaliveMinTime <= 0 {
		cfg.KeepaliveMinTime = 5 * time.Second
	}
	if cfg.KeepaliveInterval <= 0 {
		cfg.KeepaliveInterval = 2 * time.Hour
	}
	if cfg.KeepaliveTimeout <= 0 {
		cfg.KeepaliveTimeout = 20 * time.Second
	}
	if cfg.ElectionTimeout <= 0 {
		cfg.ElectionTimeout = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	// The monitor stops with the member.
	monitor := newLeaderMonitor(s, cfg.ElectionTimeout)
	metrics := serverMetrics(cfg.ExtensiveMetrics)
	opts = append([]grpc.ServerOption{
		grpc.ChainUnaryInterceptor(recoverUnary(cfg.Logger), learnerUnary(s), requireLeaderUnary(s), authUnary(s), metrics.UnaryServerInterceptor()),
		grpc.ChainStreamInterceptor(recoverStream(cfg.Logger), learnerStream(s), monitor.stream(), authStream(s), metrics.StreamServerInterceptor()),
		grpc.ForceServerCodecV2(Codec()),
		grpc.MaxRecvMsgSize(cfg.MaxRequestBytes + grpcOverheadBytes),
		grpc.MaxSendMsgSize(math.MaxInt32),
		grpc.MaxConcurrentStreams(math.MaxUint32),
		// Reused worker goroutines keep the stacks they grew serving earlier
		// requests; a fresh goroutine per request spends a tenth of the CPU
		// of a put growing its stack. Excess requests still get their own
		// goroutine.
		grpc.NumStreamWorkers(streamWorkers),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: cfg.KeepaliveMinTime, PermitWithoutStream: false}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: cfg.KeepaliveInterval, Timeout: cfg.KeepaliveTimeout}),
	}, opts...)
	gs := grpc.NewServer(opts...)
	pb.RegisterKVServer(gs, NewKVServer(s, s, cfg.MaxTxnOps))
	pb.RegisterMaintenanceServer(gs, NewMaintenanceServer(s))
	pb.RegisterClusterServer(gs, NewClusterServer(s))
	pb.RegisterWatchServer(gs, NewWatchServer(s, WatchConfig{MaxRequestBytes: cfg.MaxRequestBytes, ProgressInterval: cfg.WatchProgressInterval}))
	pb.RegisterLeaseServer(gs, NewLeaseServer(s))
	pb.RegisterAuthServer(gs, NewAuthServer(s))
	hs := health.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	metrics.InitializeMetrics(gs)
	return gs
}
