package server

import (
	"context"
	"errors"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/cairn-io/cairn/internal/auth"
	"github.com/cairn-io/cairn/internal/lease"
)

// Lease operations. Grants, revocations and checkpoints go through raft;
// renewals and time-to-live answers come from the leader's clock.

const (
	// leaseRevokeRate caps how many expired leases the leader revokes per
	// second, so that a pile of expiries cannot swamp the log.
	leaseRevokeRate = 1000
	// leaseExpiryCheck is how often the leader looks for expired leases.
	leaseExpiryCheck = 500 * time.Millisecond
	// leaseRevokeRetry is how long after proposing a revocation the leader
	// tries again if the lease is still there.
	leaseRevokeRetry = 3 * time.Second
)

// LeaseGrant grants a lease; an ID of 0 lets the server choose one.
func (s *Server) LeaseGrant(ctx context.Context, r *pb.LeaseGrantRequest) (*pb.LeaseGrantResponse, error) {
	for r.ID == 0 {
		r.ID = int64(s.reqIDs.next() & (1<<63 - 1))
	}
	if r.TTL > lease.MaxTTL {
		return nil, lease.ErrTTLTooLarge
	}
	if err := s.checkQuota(ctx, leaseOverhead); err != nil {
		return nil, err
	}
	res, err := s.proposeResult(ctx, &pb.InternalRaftRequest{LeaseGrant: r})
	if err != nil {
		return nil, err
	}
	return res.resp.(*pb.LeaseGrantResponse), nil
}

// LeaseRevoke revokes a lease and deletes the keys attached to it.
func (s *Server) LeaseRevoke(ctx context.Context, r *pb.LeaseRevokeRequest) (*pb.LeaseRevokeResponse, error) {
	res, err := s.proposeResult(ctx, &pb.InternalRaftRequest{LeaseRevoke: r})
	if err != nil {
		return nil, err
	}
	return res.resp.(*pb.LeaseRevokeResponse), nil
}

// LeaseRenew restarts a lease's TTL and returns it (0 if the lease does
// not exist). Only the leader renews.
func (s *Server) LeaseRenew(ctx context.Context, id int64) (int64, error) {
	if err := s.checkLeaseRenew(ctx, id); err != nil {
		return 0, err
	}
	if !s.IsLeader() {
		return s.forwardLeaseRenew(ctx, id)
	}
	// The lease may have been granted by an entry this leader has
	// committed but not applied yet.
	if err := s.waitApplied(s.CommittedIndex()); err != nil {
		return -1, err
	}
	ttl, err := s.lessor.Renew(ctx, id)
	switch {
	case errors.Is(err, lease.ErrNotFound):
		return 0, nil
	case errors.Is(err, lease.ErrNotPrimary):
		return -1, ErrNotLeader
	case err != nil:
		return -1, err
	}
	return ttl, nil
}

// proposeLeaseCheckpoint records one remaining TTL through raft and waits
// until this member applied it. The lessor calls it to clear a lease's
// checkpoint when the lease is renewed; the member makes that proposal on
// its own behalf, whoever sent the keep-alive.
func (s *Server) proposeLeaseCheckpoint(ctx context.Context, id, remaining int64) error {
	req := &pb.LeaseCheckpointRequest{Checkpoints: []*pb.LeaseCheckpoint{{ID: id, Remaining_TTL: remaining}}}
	_, err := s.proposeResult(auth.AsInternal(ctx), &pb.InternalRaftRequest{LeaseCheckpoint: req})
	return err
}

// LeaseTimeToLive reports a lease's granted and remaining TTL, and its keys
// if asked.
func (s *Server) LeaseTimeToLive(ctx context.Context, r *pb.LeaseTimeToLiveRequest) (*pb.LeaseTimeToLiveResponse, error) {
	authDone, err := s.checkLeaseTimeToLive(ctx, r)
	if err != nil {
		return nil, err
	}
	resp, err := s.leaseTimeToLive(ctx, r)
	if err != nil {
		return nil, err
	}
	if err := authDone(); err != nil {
		return nil, err
	}
	return resp, nil
}

func (s *Server) leaseTimeToLive(ctx context.Context, r *pb.LeaseTimeToLiveRequest) (*pb.LeaseTimeToLiveResponse, error) {
	if !s.IsLeader() {
		return s.forwardLeaseTTL(ctx, r)
	}
	if err := s.waitApplied(s.CommittedIndex()); err != nil {
		return nil, err
	}
	info, remaining, err := s.lessor.TimeToLive(r.ID, r.Keys)
	if err != nil {
		return nil, err
	}
	resp := &pb.LeaseTimeToLiveResponse{
		Header:     &pb.ResponseHeader{},
		ID:         r.ID,
		TTL:        int64(remaining.Seconds()),
		GrantedTTL: info.GrantedTTL,
	}
	if r.Keys {
		resp.Keys = make([][]byte, len(info.Keys))
		for i, k := range info.Keys {
			resp.Keys[i] = []byte(k)
		}
	}
	if !s.lessor.IsPrimary() {
		return nil, ErrLeaderChanged
	}
	return resp, nil
}

// LeaseLeases lists the leases.
func (s *Server) LeaseLeases(ctx context.Context, r *pb.LeaseLeasesRequest) (*pb.LeaseLeasesResponse, error) {
	ids := s.lessor.IDs()
	if err := s.checkLeaseLeases(ctx, ids); err != nil {
		return nil, err
	}
	resp := &pb.LeaseLeasesResponse{Header: &pb.ResponseHeader{}, Leases: make([]*pb.LeaseStatus, len(ids))}
	for i, id := range ids {
		resp.Leases[i] = &pb.LeaseStatus{ID: id}
	}
	return resp, nil
}

// everyOnLeader calls fn every interval while this member leads, until the
// member stops.
func (s *Server) everyOnLeader(interval time.Duration, fn func()) {
	defer s.wg.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.stopping:
			return
		case <-t.C:
		}
		if s.IsLeader() {
			fn()
		}
	}
}

// leaseExpiryLoop proposes the revocation of expired leases, on the leader.
func (s *Server) leaseExpiryLoop() {
	s.everyOnLeader(leaseExpiryCheck, func() {
		limit := int(leaseRevokeRate * leaseExpiryCheck / time.Second)
		for _, id := range s.lessor.Expired(limit, leaseRevokeRetry) {
			go func(id int64) {
				// The member revokes as root, as etcd's does.
				ctx, cancel := context.WithTimeout(auth.AsInternal(context.Background()), s.cfg.ReqTimeout())
				defer cancel()
				_, err := s.LeaseRevoke(ctx, &pb.LeaseRevokeRequest{ID: id})
				switch {
				case err == nil:
					metricLeaseExpired.Inc()
				case !errors.Is(err, lease.ErrNotFound):
					s.lg.Warn("revoking an expired lease", "lease", id, "err", err)
				}
			}(id)
		}
	})
}

// leaseCheckpointLoop records remaining TTLs through raft on the leader, so
// that a new leader does not hand a lease nobody renews a whole new TTL.
func (s *Server) leaseCheckpointLoop() {
	interval := s.cfg.LeaseCheckpointInterval
	s.everyOnLeader(interval, func() {
		cps := s.lessor.Checkpoints(interval)
		if len(cps) == 0 {
			return
		}
		req := &pb.LeaseCheckpointRequest{}
		for id, rem := range cps {
			req.Checkpoints = append(req.Checkpoints, &pb.LeaseCheckpoint{ID: id, Remaining_TTL: rem})
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ReqTimeout())
		if _, err := s.proposeResult(ctx, &pb.InternalRaftRequest{LeaseCheckpoint: req}); err != nil {
			s.lg.Warn("lease checkpoint", "err", err)
		}
		cancel()
	})
}
