package server

import (
	"context"
	"errors"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/raft/v3"

	"github.com/cairn-io/cairn/internal/mvcc"
)

// Range serves a Range request: linearizable unless r.Serializable.
func (s *Server) Range(ctx context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	if !r.Serializable {
		if err := s.linearizableReadNotify(ctx); err != nil {
			return nil, err
		}
	}
	metricRange.Inc()
	return s.authRange(ctx, r)
}

// Put serves a Put request.
func (s *Server) Put(ctx context.Context, r *pb.PutRequest) (*pb.PutResponse, error) {
	if err := s.checkQuota(ctx, putCost(r)); err != nil {
		return nil, err
	}
	res, err := s.proposeResult(ctx, &pb.InternalRaftRequest{Put: r})
	if err != nil {
		return nil, err
	}
	metricPut.Inc()
	return res.resp.(*pb.PutResponse), nil
}

// DeleteRange serves a DeleteRange request.
func (s *Server) DeleteRange(ctx context.Context, r *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	res, err := s.proposeResult(ctx, &pb.InternalRaftRequest{DeleteRange: r})
	if err != nil {
		return nil, err
	}
	metricDelete.Inc()
	return res.resp.(*pb.DeleteRangeResponse), nil
}

// Txn serves a Txn request. A txn without writes does not go through raft:
// it is served locally, after a ReadIndex unless all its ranges are
// serializable.
func (s *Server) Txn(ctx context.Context, r *pb.TxnRequest) (*pb.TxnResponse, error) {
	metricTxn.Inc()
	if mvcc.IsReadOnlyTxn(r) {
		if !mvcc.IsSerializableTxn(r) {
			if err := s.linearizableReadNotify(ctx); err != nil {
				return nil, err
			}
		}
		return s.authReadTxn(ctx, r)
	}
	if err := s.checkQuota(ctx, txnCost(r)); err != nil {
		return nil, err
	}
	res, err := s.proposeResult(ctx, &pb.InternalRaftRequest{Txn: r})
	if err != nil {
		return nil, err
	}
	return res.resp.(*pb.TxnResponse), nil
}

// Compact compacts the store's history at r.Revision. With r.Physical it
// returns once the compacted revisions are deleted from storage.
func (s *Server) Compact(ctx context.Context, r *pb.CompactionRequest) (*pb.CompactionResponse, error) {
	res, err := s.proposeResult(ctx, &pb.InternalRaftRequest{Compaction: r})
	if err != nil {
		return nil, err
	}
	if r.Physical && res.physc != nil {
		select {
		case <-res.physc:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-s.stopping:
			return nil, ErrStopped
		}
	}
	resp := res.resp.(*pb.CompactionResponse)
	resp.Header.Revision = s.kv.Rev()
	return resp, nil
}

// proposeResult proposes r and returns its applied result, folding the
// result's error into the returned one.
func (s *Server) proposeResult(ctx context.Context, r *pb.InternalRaftRequest) (result, error) {
	res, err := s.propose(ctx, r)
	if err != nil {
		return res, err
	}
	if res.err != nil {
		return res, res.err
	}
	return res, nil
}

// propose replicates r through raft and waits until this member applied it.
func (s *Server) propose(ctx context.Context, r *pb.InternalRaftRequest) (result, error) {
	if ci, ai := s.CommittedIndex(), s.AppliedIndex(); ci > ai+maxGapBetweenApplyAndCommitIndex {
		return result{}, ErrTooManyRequests
	}
	if s.Leader() == 0 {
		return result{}, ErrNoLeader
	}
	id := s.reqIDs.next()
	r.Header = &pb.RequestHeader{ID: id}
	if err := s.stampAuth(ctx, r); err != nil {
		return result{}, err
	}
	data, err := r.Marshal()
	if err != nil {
		return result{}, err
	}
	if len(data) > int(s.cfg.MaxRequestBytes) {
		return result{}, ErrRequestTooLarge
	}
	ch := s.w.register(id)
	metricPending.Inc()
	defer metricPending.Dec()
	s.node.Propose(id, data)
	timer := time.NewTimer(s.cfg.ReqTimeout())
	defer timer.Stop()
	select {
	case res := <-ch:
		return res, nil
	case <-ctx.Done():
		s.w.forget(id)
		metricFailed.Inc()
		return result{}, ctx.Err()
	case <-timer.C:
		s.w.forget(id)
		metricFailed.Inc()
		if s.Leader() == 0 {
			return result{}, ErrTimeoutDueToLeaderFail
		}
		return result{}, ErrTimeout
	case <-s.stopping:
		return result{}, ErrStopped
	}
}

// onDrop answers proposals raft refused. Called on the raft goroutine.
func (s *Server) onDrop(tags []uint64, err error) {
	metricFailed.Add(float64(len(tags)))
	reason := ErrNoLeader
	switch {
	case !errors.Is(err, raft.ErrProposalDropped):
		reason = err
	case s.Leader() == 0:
	case s.IsLeader():
		reason = ErrTooManyRequests
	default:
		reason = ErrLeaderChanged
	}
	for _, id := range tags {
		s.w.trigger(id, result{err: reason})
	}
}
