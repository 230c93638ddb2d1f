package v3rpc

import (
	"context"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// Requests that carry clientv3.WithRequireLeader's metadata ("hasleader")
// want to hear at once when the member has no leader, rather than wait:
// a unary call is refused with etcd's "no leader" when the member knows no
// leader; a stream is refused when it opens without a leader, and once it
// is open it is cancelled with the same error after the member has gone
// maxNoLeaderChecks election timeouts without a leader. Streams are given
// that much slack because reconnecting them costs a client more than a
// refused call: a leader election usually finishes well within it.

// maxNoLeaderChecks is how many consecutive checks, one per election
// timeout, must find no leader before require-leader streams are cancelled
// (etcd's maxNoLeaderCnt).
const maxNoLeaderChecks = 3

// Leadership is what the require-leader checks need from a member.
type Leadership interface {
	// Leader returns the leader's ID, 0 if there is none.
	Leader() uint64
	// Done is closed when the member has stopped.
	Done() <-chan struct{}
}

// requiresLeader reports whether the request's metadata asks for a leader.
func requiresLeader(ctx context.Context) bool {
	md, ok := metadata.FromIncomingContext(ctx)
	if !ok {
		return false
	}
	ks := md[rpctypes.MetadataRequireLeaderKey]
	return len(ks) > 0 && ks[0] == rpctypes.MetadataHasLeader
}

func requireLeaderUnary(l Leadership) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if l.Leader() == 0 && requiresLeader(ctx) {
			return nil, rpctypes.ErrGRPCNoLeader
		}
		return handler(ctx, req)
	}
}

// leaderMonitor cancels the open require-leader streams once the member
// has been without a leader for maxNoLeaderChecks checks in a row.
type leaderMonitor struct {
	l Leadership

	mu      sync.Mutex
	streams map[*leaderStream]struct{}
}

// newLeaderMonitor starts checking l every interval until l is done.
func newLeaderMonitor(l Leadership, interval time.Duration) *leaderMonitor {
	t := time.NewTicker(interval)
	m := &leaderMonitor{l: l, streams: map[*leaderStream]struct{}{}}
	go func() {
		defer t.Stop()
		m.run(t.C, nil)
	}()
	return m
}

// run checks l every time ticks fires until l is done, calling checked (if
// set) after each check.
func (m *leaderMonitor) run(ticks <-chan time.Time, checked func()) {
	missed := 0
	for {
		select {
		case <-m.l.Done():
			return
		case <-ticks:
		}
		if m.l.Leader() != 0 {
			missed = 0
		} else if missed++; missed >= maxNoLeaderChecks {
			m.mu.Lock()
			for ls := range m.streams {
				ls.abort()
			}
			m.streams = map[*leaderStream]struct{}{}
			m.mu.Unlock()
		}
		if checked != nil {
			checked()
		}
	}
}

func (m *leaderMonitor) stream() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if !requiresLeader(ss.Context()) {
			return handler(srv, ss)
		}
		if m.l.Leader() == 0 {
			return rpctypes.ErrGRPCNoLeader
		}
		ls := newLeaderStream(ss)
		m.mu.Lock()
		m.streams[ls] = struct{}{}
		m.mu.Unlock()
		defer func() {
			m.mu.Lock()
			delete(m.streams, ls)
			m.mu.Unlock()
			ls.cancel()
		}()
		err := handler(srv, ls)
		if ls.aborted() {
			// Whatever the handler made of its interrupted stream, the
			// client is told why.
			return rpctypes.ErrGRPCNoLeader
		}
		return err
	}
}

// leaderStream is a stream the leader monitor can end. Its context is
// cancelled, and a receive blocked in the underlying stream returns at
// once, so that the handler ends however it waits for its client.
type leaderStream struct {
	grpc.ServerStream
	ctx    context.Context
	cancel context.CancelFunc
	// abortc is closed when the member lost its leader.
	abortc    chan struct{}
	abortOnce sync.Once
}

func newLeaderStream(ss grpc.ServerStream) *leaderStream {
	ctx, cancel := context.WithCancel(ss.Context())
	return &leaderStream{ServerStream: ss, ctx: ctx, cancel: cancel, abortc: make(chan struct{})}
}

func (ls *leaderStream) abort() {
	ls.abortOnce.Do(func() {
		close(ls.abortc)
		ls.cancel()
	})
}

func (ls *leaderStream) aborted() bool {
	select {
	case <-ls.abortc:
		return true
	default:
		return false
	}
}

// Context is cancelled when the stream is aborted; its Err is then etcd's
// "no leader".
func (ls *leaderStream) Context() context.Context { return noLeaderContext{ls.ctx, ls} }

// RecvMsg waits for the client's next message or the abort. An abandoned
// receive finishes when gRPC ends the stream after the handler returned;
// the message it may still fill is the handler's discarded one.
func (ls *leaderStream) RecvMsg(m any) error {
	if ls.aborted() {
		return rpctypes.ErrGRPCNoLeader
	}
	errc := make(chan error, 1)
	go func() { errc <- ls.ServerStream.RecvMsg(m) }()
	select {
	case err := <-errc:
		return err
	case <-ls.abortc:
		return rpctypes.ErrGRPCNoLeader
	}
}

// SendMsg refuses once the stream is aborted.
func (ls *leaderStream) SendMsg(m any) error {
	if ls.aborted() {
		return rpctypes.ErrGRPCNoLeader
	}
	return ls.ServerStream.SendMsg(m)
}

// noLeaderContext is the stream's context: cancelled when the stream is
// aborted, with etcd's "no leader" as its error then.
type noLeaderContext struct {
	context.Context
	ls *leaderStream
}

func (c noLeaderContext) Err() error {
	if c.ls.aborted() {
		return rpctypes.ErrGRPCNoLeader
	}
	return c.Context.Err()
}
