package server

import (
	"bytes"
	"context"
	"encoding/binary"
	"time"

	"go.etcd.io/raft/v3"
)

// Linearizable reads. Every read that arrives while a ReadIndex round is in
// flight joins the next round, so a burst of reads costs one round: the
// reads wait for raft to confirm leadership and name the commit index, and
// for the apply loop to reach it, then run against the local store.

type readBatch struct {
	done chan struct{}
	err  error
}

func newReadBatch() *readBatch { return &readBatch{done: make(chan struct{})} }

type readState struct {
	index uint64
	ctx   []byte
}

// linearizableReadNotify returns once this member has applied everything
// committed before the call.
func (s *Server) linearizableReadNotify(ctx context.Context) error {
	s.readMu.Lock()
	rb := s.readBatch
	s.readMu.Unlock()
	select {
	case s.readwaitc <- struct{}{}:
	default:
	}
	select {
	case <-rb.done:
		return rb.err
	case <-ctx.Done():
		return ctx.Err()
	case <-s.stopping:
		return ErrStopped
	}
}

func (s *Server) readLoop() {
	defer s.wg.Done()
	for {
		select {
		case <-s.readwaitc:
		case <-s.stopping:
			return
		}
		s.readMu.Lock()
		rb := s.readBatch
		s.readBatch = newReadBatch()
		s.readMu.Unlock()

		index, err := s.requestReadIndex()
		if err == nil {
			err = s.waitApplied(index)
		}
		rb.err = err
		close(rb.done)
	}
}

func (s *Server) requestReadIndex() (uint64, error) {
	if s.Leader() == 0 {
		return 0, ErrNoLeader
	}
	var rctx [8]byte
	binary.BigEndian.PutUint64(rctx[:], s.reqIDs.next())
	// Drop a leader-change signal from before this round.
	select {
	case <-s.leaderc:
	default:
	}
	s.node.ReadIndex(rctx[:])
	timeout := time.NewTimer(s.cfg.ReqTimeout())
	defer timeout.Stop()
	retry := time.NewTicker(500 * time.Millisecond)
	defer retry.Stop()
	for {
		select {
		case rs := <-s.readStates:
			if bytes.Equal(rs.ctx, rctx[:]) {
				return rs.index, nil
			}
			// An answer to an earlier, abandoned round.
		case <-s.leaderc:
			return 0, ErrLeaderChanged
		case <-retry.C:
			if s.Leader() == 0 {
				return 0, ErrNoLeader
			}
			s.node.ReadIndex(rctx[:])
		case <-timeout.C:
			return 0, ErrTimeout
		case <-s.stopping:
			return 0, ErrStopped
		}
	}
}

func (s *Server) waitApplied(index uint64) error {
	timeout := time.NewTimer(s.cfg.ReqTimeout())
	defer timeout.Stop()
	for {
		ch := *s.applyNotify.Load()
		if s.AppliedIndex() >= index {
			return nil
		}
		select {
		case <-ch:
		case <-timeout.C:
			return ErrTimeoutWaitAppliedIndex
		case <-s.stopping:
			return ErrStopped
		}
	}
}

// onReadState receives ReadIndex answers. Called on the raft goroutine, so
// it never blocks.
func (s *Server) onReadState(rs raft.ReadState) {
	select {
	case s.readStates <- readState{index: rs.Index, ctx: rs.RequestCtx}:
	default:
		s.lg.Warn("dropping a read state: the read loop is not keeping up")
	}
}

// onLeaderChange is called on the raft goroutine when leader or term
// changes.
func (s *Server) onLeaderChange(lead, term uint64) {
	prev := s.prevLead.Swap(lead)
	if lead != 0 {
		metricHasLeader.Set(1)
	} else {
		metricHasLeader.Set(0)
	}
	if lead == s.id {
		metricIsLeader.Set(1)
	} else {
		metricIsLeader.Set(0)
	}
	if prev != lead {
		switch {
		case lead == s.id:
			// Leases restart their remaining TTL from now, plus the time
			// an election may have taken, on the member that keeps time.
			s.lessor.Promote(s.cfg.ElectionTimeout)
		case prev == s.id:
			s.lessor.Demote()
		}
		if lead != 0 {
			metricLeaderChanges.Inc()
		}
		if prev != 0 {
			select {
			case s.leaderc <- struct{}{}:
			default:
			}
		}
		s.lg.Info("leader changed", "leader", lead, "term", term)
	}
}
