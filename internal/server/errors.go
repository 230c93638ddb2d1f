package server

import "errors"

// Sentinel errors of a member. Their texts are etcd's: the API edge
// translates each to the gRPC error etcd's clients expect (see
// internal/api/v3rpc), and the texts also appear in logs and the v2 API.
var (
	// ErrStopped: the member is shutting down.
	ErrStopped = errors.New("etcdserver: server stopped")
	// ErrTimeout: a proposal was not applied within the request timeout.
	ErrTimeout = errors.New("etcdserver: request timed out")
	// ErrTimeoutDueToLeaderFail: the timeout is probably due to the leader
	// failing.
	ErrTimeoutDueToLeaderFail = errors.New("etcdserver: request timed out, possibly due to previous leader failure")
	// ErrNoLeader: there is no leader, so a write or linearizable read
	// cannot be served.
	ErrNoLeader = errors.New("etcdserver: no leader")
	// ErrNotLeader: the operation needs the leader.
	ErrNotLeader = errors.New("etcdserver: not leader")
	// ErrLeaderChanged: leadership changed while the request was pending.
	ErrLeaderChanged = errors.New("etcdserver: leader changed")
	// ErrRequestTooLarge: the encoded request exceeds --max-request-bytes.
	ErrRequestTooLarge = errors.New("etcdserver: request is too large")
	// ErrNoSpace: the store exceeded --quota-backend-bytes.
	ErrNoSpace = errors.New("etcdserver: no space")
	// ErrTooManyRequests: applying lags too far behind committing.
	ErrTooManyRequests = errors.New("etcdserver: too many requests")
	// ErrUnhealthy: the member is unhealthy.
	ErrUnhealthy = errors.New("etcdserver: unhealthy cluster")
	// ErrCorrupt: the member's data is corrupt.
	ErrCorrupt = errors.New("etcdserver: corrupt cluster")
	// ErrTimeoutWaitAppliedIndex: a linearizable read waited too long for
	// the apply loop.
	ErrTimeoutWaitAppliedIndex = errors.New("etcdserver: request timed out, waiting for the applied index took too long")
	// ErrBadConfig: the member configuration is unusable.
	ErrBadConfig = errors.New("etcdserver: invalid configuration")
)
