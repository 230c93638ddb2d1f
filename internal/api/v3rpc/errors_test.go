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

	"github.com/cairn-io/cairn/internal/lease"
	"github.com/cairn-io/cairn/internal/membership"
	"github.com/cairn-io/cairn/internal/mvcc"
	"github.com/cairn-io/cairn/internal/server"
)

// untypedErrors have no typed client error: clientv3 hands them on as
// gRPC statuses. For cancellation it goes by the code and answers with its
// own context's error; rpctypes does not register the applied-index
// timeout's text, so clients see that status as it is (as they do with
// etcd).
var untypedErrors = map[error]codes.Code{
	rpctypes.ErrGRPCCanceled:                codes.Canceled,
	rpctypes.ErrGRPCDeadlineExceeded:        codes.DeadlineExceeded,
	rpctypes.ErrGRPCTimeoutWaitAppliedIndex: codes.Unavailable,
	// Nor "permission not given" (a grant without a permission, which
	// clientv3 never sends).
	rpctypes.ErrGRPCPermissionNotGiven: codes.InvalidArgument,
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

// checkReachesClient fails unless grpcErr crosses the wire intact (same
// code and text, so errors.Is still matches it, as clientv3's retry logic
// relies on) and clientv3 turns it into its typed error.
func checkReachesClient(t *testing.T, grpcErr error) {
	t.Helper()
	wire := overTheWire(grpcErr)
	if rpctypes.ErrorDesc(wire) != rpctypes.ErrorDesc(grpcErr) || status.Code(wire) != status.Code(grpcErr) {
		t.Errorf("%v arrives as %v", grpcErr, wire)
	}
	if code, ok := untypedErrors[grpcErr]; ok {
		got := rpctypes.Error(wire)
		if status.Code(got) != code || !errors.Is(wire, grpcErr) {
			t.Errorf("%v arrives as %v, want code %v and the same text", grpcErr, got, code)
		}
		return
	}
	want, typed := rpctypes.Error(grpcErr).(rpctypes.EtcdError)
	if !typed {
		t.Errorf("clientv3 does not know the text of %v, so it has no typed error for it", grpcErr)
		return
	}
	if got := rpctypes.Error(wire); got != want {
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
		{server.ErrLearnerNotReady, rpctypes.ErrMemberLearnerNotReady},
		{server.ErrNotEnoughStartedMembers, rpctypes.ErrMemberNotEnoughStarted},
		{server.ErrBadLeaderTransferee, rpctypes.ErrBadLeaderTransferee},
		{server.ErrNotSupportedForLearner, rpctypes.Error(rpctypes.ErrGRPCNotSupportedForLearner)},
		{lease.ErrNotFound, rpctypes.ErrLeaseNotFound},
		{lease.ErrExists, rpctypes.ErrLeaseExist},
		{lease.ErrTTLTooLarge, rpctypes.ErrLeaseTTLTooLarge},
		{lease.ErrNotPrimary, rpctypes.ErrNotLeader},
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
