package v3rpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cairn-io/cairn/internal/membership"
	"github.com/cairn-io/cairn/internal/mvcc"
	"github.com/cairn-io/cairn/internal/server"
)

// clientErrors maps each gRPC error a member may send to the typed error
// clientv3 makes of it (rpctypes.Error looks the message up).
var clientErrors = map[error]error{
	rpctypes.ErrGRPCEmptyKey:                   rpctypes.ErrEmptyKey,
	rpctypes.ErrGRPCKeyNotFound:                rpctypes.ErrKeyNotFound,
	rpctypes.ErrGRPCValueProvided:              rpctypes.ErrValueProvided,
	rpctypes.ErrGRPCLeaseProvided:              rpctypes.ErrLeaseProvided,
	rpctypes.ErrGRPCTooManyOps:                 rpctypes.ErrTooManyOps,
	rpctypes.ErrGRPCDuplicateKey:               rpctypes.ErrDuplicateKey,
	rpctypes.ErrGRPCInvalidSortOption:          rpctypes.ErrInvalidSortOption,
	rpctypes.ErrGRPCCompacted:                  rpctypes.ErrCompacted,
	rpctypes.ErrGRPCFutureRev:                  rpctypes.ErrFutureRev,
	rpctypes.ErrGRPCNoSpace:                    rpctypes.ErrNoSpace,
	rpctypes.ErrGRPCLeaseNotFound:              rpctypes.ErrLeaseNotFound,
	rpctypes.ErrGRPCLeaseExist:                 rpctypes.ErrLeaseExist,
	rpctypes.ErrGRPCLeaseTTLTooLarge:           rpctypes.ErrLeaseTTLTooLarge,
	rpctypes.ErrGRPCMemberExist:                rpctypes.ErrMemberExist,
	rpctypes.ErrGRPCPeerURLExist:               rpctypes.ErrPeerURLExist,
	rpctypes.ErrGRPCMemberNotEnoughStarted:     rpctypes.ErrMemberNotEnoughStarted,
	rpctypes.ErrGRPCMemberBadURLs:              rpctypes.ErrMemberBadURLs,
	rpctypes.ErrGRPCMemberNotFound:             rpctypes.ErrMemberNotFound,
	rpctypes.ErrGRPCMemberNotLearner:           rpctypes.ErrMemberNotLearner,
	rpctypes.ErrGRPCLearnerNotReady:            rpctypes.ErrMemberLearnerNotReady,
	rpctypes.ErrGRPCTooManyLearners:            rpctypes.ErrTooManyLearners,
	rpctypes.ErrGRPCClusterIDMismatch:          rpctypes.ErrClusterIDMismatch,
	rpctypes.ErrGRPCRequestTooLarge:            rpctypes.ErrRequestTooLarge,
	rpctypes.ErrGRPCRequestTooManyRequests:     rpctypes.ErrTooManyRequests,
	rpctypes.ErrTooManyRequests:                rpctypes.ErrTooManyRequests,
	rpctypes.ErrGRPCNoLeader:                   rpctypes.ErrNoLeader,
	rpctypes.ErrGRPCNotLeader:                  rpctypes.ErrNotLeader,
	rpctypes.ErrGRPCLeaderChanged:              rpctypes.ErrLeaderChanged,
	rpctypes.ErrGRPCNotCapable:                 rpctypes.ErrNotCapable,
	rpctypes.ErrGRPCStopped:                    rpctypes.ErrStopped,
	rpctypes.ErrGRPCTimeout:                    rpctypes.ErrTimeout,
	rpctypes.ErrGRPCTimeoutDueToLeaderFail:     rpctypes.ErrTimeoutDueToLeaderFail,
	rpctypes.ErrGRPCTimeoutDueToConnectionLost: rpctypes.ErrTimeoutDueToConnectionLost,
	rpctypes.ErrGRPCUnhealthy:                  rpctypes.ErrUnhealthy,
	rpctypes.ErrGRPCCorrupt:                    rpctypes.ErrCorrupt,
	rpctypes.ErrGRPCBadLeaderTransferee:        rpctypes.ErrBadLeaderTransferee,
	rpctypes.ErrGRPCAuthNotEnabled:             rpctypes.ErrAuthNotEnabled,
	rpctypes.ErrGRPCInvalidAuthToken:           rpctypes.ErrInvalidAuthToken,
	rpctypes.ErrGRPCPermissionDenied:           rpctypes.ErrPermissionDenied,
}

// untypedErrors have no typed client error: clientv3 hands them on as
// gRPC statuses. For cancellation it goes by the code and answers with its
// own context's error; rpctypes does not register the applied-index
// timeout's text, so clients see that status as it is (so they do with
// etcd).
var untypedErrors = map[error]codes.Code{
	rpctypes.ErrGRPCCanceled:                codes.Canceled,
	rpctypes.ErrGRPCDeadlineExceeded:        codes.DeadlineExceeded,
	rpctypes.ErrGRPCTimeoutWaitAppliedIndex: codes.Unavailable,
}

// overTheWire is what a client receives when a handler returns err, as
// grpc-go's server decides it: err's status if it has one, otherwise the
// code of a context error or Unknown, with err's text.
func overTheWire(err error) error {
	if st, ok := status.FromError(err); ok {
		return st.Err()
	}
	return status.FromContextError(err).Err()
}

// checkReachesClient fails unless the wire form of grpcErr comes back as
// what clientv3 expects of it.
func checkReachesClient(t *testing.T, grpcErr error) {
	t.Helper()
	if code, ok := untypedErrors[grpcErr]; ok {
		got := rpctypes.Error(overTheWire(grpcErr))
		if status.Code(got) != code || rpctypes.ErrorDesc(got) != rpctypes.ErrorDesc(grpcErr) {
			t.Errorf("%v arrives as %v, want code %v and the same text", grpcErr, got, code)
		}
		return
	}
	want, ok := clientErrors[grpcErr]
	if !ok {
		t.Errorf("%v: no client-side error known for it; add it to clientErrors", grpcErr)
		return
	}
	if got := rpctypes.Error(overTheWire(grpcErr)); got != want {
		t.Errorf("%v arrives as %#v, want %#v", grpcErr, got, want)
	}
}

// Every translation in the table reaches clientv3 as a typed error (or,
// for the untyped ones, with the right code and text), directly and when
// wrapped.
func TestErrorTableReachesClient(t *testing.T) {
	if len(errorTable) == 0 {
		t.Fatal("empty error table")
	}
	for _, e := range errorTable {
		t.Run(e.err.Error(), func(t *testing.T) {
			if got := toGRPCError(e.err); got != e.grpc {
				t.Fatalf("toGRPCError(%v) = %v, want %v", e.err, got, e.grpc)
			}
			wrapped := fmt.Errorf("apply: %w", fmt.Errorf("txn: %w", e.err))
			if got := toGRPCError(wrapped); got != e.grpc {
				t.Fatalf("toGRPCError(%v) = %v, want %v", wrapped, got, e.grpc)
			}
			checkReachesClient(t, e.grpc)
		})
	}
}

// The translations etcd makes of the errors cairn shares with it, pinned
// independently of the table.
func TestToGRPCError(t *testing.T) {
	for _, tc := range []struct {
		err    error
		client error
	}{
		{mvcc.ErrCompacted, rpctypes.ErrCompacted},
		{mvcc.ErrFutureRev, rpctypes.ErrFutureRev},
		{mvcc.ErrKeyNotFound, rpctypes.ErrKeyNotFound},
		{mvcc.ErrLeaseNotFound, rpctypes.ErrLeaseNotFound},
		{server.ErrRequestTooLarge, rpctypes.ErrRequestTooLarge},
		{server.ErrNoSpace, rpctypes.ErrNoSpace},
		{server.ErrTooManyRequests, rpctypes.ErrTooManyRequests},
		{server.ErrNoLeader, rpctypes.ErrNoLeader},
		{server.ErrNotLeader, rpctypes.ErrNotLeader},
		{server.ErrLeaderChanged, rpctypes.ErrLeaderChanged},
		{server.ErrStopped, rpctypes.ErrStopped},
		{server.ErrTimeout, rpctypes.ErrTimeout},
		{server.ErrTimeoutDueToLeaderFail, rpctypes.ErrTimeoutDueToLeaderFail},
		{server.ErrUnhealthy, rpctypes.ErrUnhealthy},
		{server.ErrCorrupt, rpctypes.ErrCorrupt},
		{membership.ErrIDRemoved, rpctypes.ErrMemberNotFound},
		{membership.ErrIDNotFound, rpctypes.ErrMemberNotFound},
		{membership.ErrIDExists, rpctypes.ErrMemberExist},
		{membership.ErrPeerURLExists, rpctypes.ErrPeerURLExist},
		{membership.ErrNotLearner, rpctypes.ErrMemberNotLearner},
		{membership.ErrTooManyLearners, rpctypes.ErrTooManyLearners},
	} {
		t.Run(tc.err.Error(), func(t *testing.T) {
			for _, err := range []error{tc.err, fmt.Errorf("range: %w", tc.err)} {
				if got := rpctypes.Error(overTheWire(toGRPCError(err))); got != tc.client {
					t.Errorf("%v reaches the client as %v, want %v", err, got, tc.client)
				}
			}
		})
	}
	for err, code := range map[error]codes.Code{
		context.Canceled:                                    codes.Canceled,
		context.DeadlineExceeded:                            codes.DeadlineExceeded,
		fmt.Errorf("wait: %w", context.DeadlineExceeded):    codes.DeadlineExceeded,
		fmt.Errorf("propose: %w", context.Canceled):         codes.Canceled,
		errors.Join(errors.New("other"), context.Canceled):  codes.Canceled,
		fmt.Errorf("%w: %w", server.ErrTimeout, io.EOF):     codes.Unavailable,
		fmt.Errorf("read: %w", membership.ErrIDNotFound):    codes.NotFound,
		fmt.Errorf("range: %w", mvcc.ErrCompacted):          codes.OutOfRange,
		fmt.Errorf("quota: %w", server.ErrNoSpace):          codes.ResourceExhausted,
		fmt.Errorf("apply: %w", server.ErrCorrupt):          codes.DataLoss,
		server.ErrTimeoutWaitAppliedIndex:                   codes.Unavailable,
		fmt.Errorf("promote: %w", membership.ErrNotLearner): codes.FailedPrecondition,
	} {
		if got := status.Code(overTheWire(toGRPCError(err))); got != code {
			t.Errorf("%v arrives with code %v, want %v", err, got, code)
		}
	}
}

func TestToGRPCErrorUnknown(t *testing.T) {
	if toGRPCError(nil) != nil {
		t.Fatal("toGRPCError(nil) is not nil")
	}
	err := toGRPCError(errors.New("disk on fire"))
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.Unknown || st.Message() != "disk on fire" {
		t.Fatalf("unknown error became %v (status %v, ok %v)", err, st, ok)
	}
	// A text that happens to be an etcd message is still unknown to the
	// table, but clientv3 recognises the text.
	err = toGRPCError(errors.New("etcdserver: no leader"))
	if status.Code(err) != codes.Unknown || rpctypes.Error(overTheWire(err)) != rpctypes.ErrNoLeader {
		t.Fatalf("etcd text became %v", err)
	}
}

func TestToGRPCErrorPassesStatusThrough(t *testing.T) {
	for _, err := range []error{
		status.Error(codes.Aborted, "aborted"),
		rpctypes.ErrGRPCEmptyKey,
		rpctypes.ErrGRPCDuplicateKey,
		status.Error(codes.Canceled, "context canceled"),
	} {
		if got := toGRPCError(err); got != err {
			t.Errorf("toGRPCError(%v) = %v, want it unchanged", err, got)
		}
	}
}
