package v3rpc

import (
	"sync"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
)

// The gRPC server metrics are go-grpc-middleware's Prometheus provider, as
// etcd's: grpc_server_started_total, grpc_server_handled_total (by code),
// grpc_server_msg_received_total and grpc_server_msg_sent_total, for every
// method from the start; with --metrics=extensive also the
// grpc_server_handling_seconds histogram. They are registered once per
// process, and the first server decides whether the histogram is kept, as
// in etcd.
var (
	grpcMetricsOnce sync.Once
	grpcMetrics     *grpcprom.ServerMetrics
)

func serverMetrics(extensive bool) *grpcprom.ServerMetrics {
	grpcMetricsOnce.Do(func() {
		var opts []grpcprom.ServerMetricsOption
		if extensive {
			opts = append(opts, grpcprom.WithServerHandlingTimeHistogram())
		}
		grpcMetrics = grpcprom.NewServerMetrics(opts...)
		prometheus.MustRegister(grpcMetrics)
	})
	return grpcMetrics
}
