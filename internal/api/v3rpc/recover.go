package v3rpc

import (
	"context"
	"log/slog"
	"runtime/debug"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// A panic while serving one request is a bug, but it must not take the
// member down with everyone else's requests: these interceptors log it with
// its stack and fail only that request. (A panic in the apply loop still
// stops the member: there, carrying on could diverge the replicas.)

func recoverUnary(lg *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if r := recover(); r != nil {
				lg.Error("panic serving a request", "method", info.FullMethod, "panic", r, "stack", string(debug.Stack()))
				err = status.Errorf(codes.Internal, "internal error serving %s", info.FullMethod)
			}
		}()
		return handler(ctx, req)
	}
}

func recoverStream(lg *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
		defer func() {
			if r := recover(); r != nil {
				lg.Error("panic serving a stream", "method", info.FullMethod, "panic", r, "stack", string(debug.Stack()))
				err = status.Errorf(codes.Internal, "internal error serving %s", info.FullMethod)
			}
		}()
		return handler(srv, ss)
	}
}

// Learners serve only Status, serializable Range and the Snapshot stream,
// as in etcd: they are not in the quorum, so anything that needs it would
// be wrong or slow there.
type learnerChecker interface{ IsLearner() bool }

func learnerUnary(m learnerChecker) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if m.IsLearner() {
			switch r := req.(type) {
			case *pb.StatusRequest:
			case *pb.RangeRequest:
				if !r.Serializable {
					return nil, rpctypes.ErrGRPCNotSupportedForLearner
				}
			default:
				return nil, rpctypes.ErrGRPCNotSupportedForLearner
			}
		}
		return handler(ctx, req)
	}
}

func learnerStream(m learnerChecker) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if m.IsLearner() && info.FullMethod != "/etcdserverpb.Maintenance/Snapshot" {
			return rpctypes.ErrGRPCNotSupportedForLearner
		}
		return handler(srv, ss)
	}
}
