// Package gateway serves etcd's v3 JSON gateway (/v3/kv/range, /v3/watch,
// /v3/lease/grant, ...) on the client port, as etcd does: HTTP requests with
// protojson bodies (proto field names, base64 bytes, int64s as strings) are
// turned into gRPC calls to the member's own gRPC server over a loopback
// connection, using etcd's published gateway routes.
package gateway

import (
	"context"
	"fmt"
	"math"
	"net/http"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	gw "go.etcd.io/etcd/api/v3/etcdserverpb/gw"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/cairn-io/cairn/internal/auth"
)

// Handler is the gateway: an http.Handler for "/v3/" and the loopback
// connection it uses.
type Handler struct {
	http.Handler
	conn *grpc.ClientConn
}

// New returns a gateway that calls the gRPC server at target (host:port of
// one of the member's own client URLs). It passes requests of any size on:
// the server refuses those over its limit, with etcd's error.
//
// On a TLS port, pass grpc.WithTransportCredentials with the member's TLS
// client configuration in opts; they replace the plain-text default.
func New(ctx context.Context, target string, opts ...grpc.DialOption) (*Handler, error) {
	conn, err := grpc.NewClient(target, append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(math.MaxInt32), grpc.MaxCallSendMsgSize(math.MaxInt32)),
	}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("gateway: dial %s: %w", target, err)
	}
	mux := runtime.NewServeMux(
		// The gateway's connection carries the member's own certificate:
		// the edge must not take a user from it.
		runtime.WithMetadata(func(context.Context, *http.Request) metadata.MD {
			return metadata.Pairs(auth.GatewayMetadataKey, "1")
		}),
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.HTTPBodyMarshaler{
			Marshaler: &runtime.JSONPb{
				MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: false},
				UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: true},
			},
		}),
	)
	for _, register := range []func(context.Context, *runtime.ServeMux, *grpc.ClientConn) error{
		gw.RegisterKVHandler,
		gw.RegisterWatchHandler,
		gw.RegisterLeaseHandler,
		gw.RegisterClusterHandler,
		gw.RegisterMaintenanceHandler,
		gw.RegisterAuthHandler,
	} {
		if err := register(ctx, mux, conn); err != nil {
			conn.Close()
			return nil, fmt.Errorf("gateway: %w", err)
		}
	}
	return &Handler{Handler: mux, conn: conn}, nil
}

// Close closes the loopback connection.
func (h *Handler) Close() error { return h.conn.Close() }
