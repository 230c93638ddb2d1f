package server

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/cairn-io/cairn/internal/membership"
	"github.com/cairn-io/cairn/internal/mvcc"
	"github.com/cairn-io/cairn/internal/raftnode"
	"github.com/cairn-io/cairn/internal/storage"
)

// applyLoop applies committed work in log order. Each batch of committed
// entries becomes one unsynced storage batch carrying every state change
// and the applied index together: the raft log already holds the entries
// durably, so after a crash the entries past the durable applied index are
// simply applied again.
func (s *Server) applyLoop() {
	defer s.wg.Done()
	for ap := range s.node.Applies() {
		if err := s.applyAll(ap); err != nil {
			s.lg.Error("apply failed, member stops", "err", err)
			s.fail(err)
			// Keep draining so the raft loop can stop cleanly.
			for range s.node.Applies() {
			}
			return
		}
	}
}

type done struct {
	id  uint64
	res result
}

type applyBatch struct {
	b     *pebble.Batch
	index uint64
	term  uint64
	done  []done
	// peersChanged: a membership change was applied; the transport's
	// peers follow once the batch is committed.
	peersChanged bool
}

func (s *Server) applyAll(ap raftnode.Apply) error {
	if !raft.IsEmptySnap(ap.Snapshot) && ap.Snapshot.Metadata.Index > s.appliedIndex.Load() {
		if err := s.installSnapshot(ap.Snapshot); err != nil {
			return err
		}
	}
	applied := s.appliedIndex.Load()
	ab := &applyBatch{b: s.db.NewBatch()}
	for i := range ap.Entries {
		e := &ap.Entries[i]
		if cs, ok := ap.ConfStates[e.Index]; ok {
			s.confState = cs
		}
		if e.Index <= applied {
			continue
		}
		switch e.Type {
		case raftpb.EntryNormal:
			if len(e.Data) > 0 {
				if err := s.applyNormal(ab, e); err != nil {
					ab.b.Close()
					return err
				}
			}
		case raftpb.EntryConfChange, raftpb.EntryConfChangeV2:
			if err := s.applyConfChange(ab, e, s.confState); err != nil {
				ab.b.Close()
				return err
			}
		}
		ab.index, ab.term = e.Index, e.Term
	}
	if ab.index == 0 {
		ab.b.Close()
		return nil
	}
	if err := s.flush(ab); err != nil {
		return err
	}
	ab.b.Close()
	if s.removedSelf {
		s.onRemoved()
		return nil
	}
	s.dropRejectedSnapshots()
	s.maybeSnapshot()
	return nil
}

// flush commits the batch with the applied index, publishes the new
// revisions, and answers the waiting clients. It leaves ab ready for more.
func (s *Server) flush(ab *applyBatch) error {
	storage.PutUint64(ab.b, storage.MetaAppliedIndex, ab.index)
	storage.PutUint64(ab.b, storage.MetaAppliedTerm, ab.term)
	if err := s.db.Apply(ab.b, false); err != nil {
		return fmt.Errorf("commit applied state at %d: %w", ab.index, err)
	}
	ab.b.Reset()
	s.hub.Notify(s.kv.Publish())
	s.appliedIndex.Store(ab.index)
	s.appliedTerm.Store(ab.term)
	if ab.peersChanged {
		s.syncPeers()
		ab.peersChanged = false
	}
	for _, d := range ab.done {
		s.w.trigger(d.id, d.res)
	}
	ab.done = ab.done[:0]
	// Wake linearizable reads waiting for this index.
	next := make(chan struct{})
	old := s.applyNotify.Swap(&next)
	close(*old)
	return nil
}

func (s *Server) applyNormal(ab *applyBatch, e *raftpb.Entry) error {
	var req pb.InternalRaftRequest
	if err := req.Unmarshal(e.Data); err != nil {
		return fmt.Errorf("decode entry %d: %v: %w", e.Index, err, storage.ErrCorrupt)
	}
	var id uint64
	if req.Header != nil {
		id = req.Header.ID
	}
	if req.Compaction != nil {
		// A compaction must not run ahead of what readers can see:
		// publish everything before it first.
		if ab.index > 0 {
			if err := s.flush(ab); err != nil {
				return err
			}
		}
	}
	res, ok := s.applyAuth(ab.b, &req, e.Index)
	if !ok {
		res = s.applyRequest(ab.b, &req)
	}
	ab.done = append(ab.done, done{id: id, res: res})
	return nil
}

// applyRequest applies one request to the state machines in batch b.
// Errors in the result are answers to the client (the state is unchanged);
// they are the same on every member.
func (s *Server) applyRequest(b *pebble.Batch, req *pb.InternalRaftRequest) result {
	noSpace := s.alarms.active(pb.AlarmType_NOSPACE)
	if s.alarms.active(pb.AlarmType_CORRUPT) && req.Alarm == nil {
		return result{err: ErrCorrupt}
	}
	switch {
	case req.Put != nil:
		if noSpace {
			return result{err: ErrNoSpace}
		}
		tw := s.kv.Write(b)
		resp, err := mvcc.ApplyPut(tw, s.lessor, req.Put)
		tw.End()
		return result{resp: resp, err: err}
	case req.DeleteRange != nil:
		tw := s.kv.Write(b)
		resp, err := mvcc.ApplyDeleteRange(tw, req.DeleteRange)
		tw.End()
		return result{resp: resp, err: err}
	case req.Txn != nil:
		if noSpace && txnCost(req.Txn) > 0 {
			return result{err: ErrNoSpace}
		}
		tw := s.kv.Write(b)
		resp, err := mvcc.ApplyTxn(tw, s.lessor, req.Txn)
		tw.End()
		return result{resp: resp, err: err}
	case req.Compaction != nil:
		physc, err := s.kv.Compact(b, req.Compaction.Revision)
		if err != nil {
			return result{err: err}
		}
		return result{resp: &pb.CompactionResponse{Header: &pb.ResponseHeader{}}, physc: physc}
	case req.LeaseGrant != nil:
		if noSpace {
			return result{err: ErrNoSpace}
		}
		l, err := s.lessor.Grant(b, req.LeaseGrant.ID, req.LeaseGrant.TTL)
		if err != nil {
			return result{err: err}
		}
		return result{resp: &pb.LeaseGrantResponse{Header: &pb.ResponseHeader{Revision: s.kv.WriteRev()}, ID: l.ID, TTL: l.TTL}}
	case req.LeaseRevoke != nil:
		return s.applyLeaseRevoke(b, req.LeaseRevoke.ID)
	case req.LeaseCheckpoint != nil:
		for _, c := range req.LeaseCheckpoint.Checkpoints {
			if err := s.lessor.Checkpoint(b, c.ID, c.Remaining_TTL); err != nil {
				return result{err: err}
			}
		}
		return result{resp: &pb.LeaseCheckpointResponse{Header: &pb.ResponseHeader{}}}
	case req.Alarm != nil:
		resp, err := s.applyAlarm(b, req.Alarm)
		return result{resp: resp, err: err}
	case req.ClusterMemberAttrSet != nil:
		r := req.ClusterMemberAttrSet
		err := s.cluster.Update(b, r.Member_ID, func(m *membership.Member) {
			if r.MemberAttributes != nil {
				m.Name = r.MemberAttributes.Name
				m.ClientURLs = append([]string(nil), r.MemberAttributes.ClientUrls...)
			}
		})
		if err != nil {
			s.lg.Warn("publishing member attributes", "member-id", fmt.Sprintf("%x", r.Member_ID), "err", err)
		}
		return result{resp: &pb.MemberUpdateResponse{}, err: err}
	case req.V2 != nil:
		return s.applyV2(b, req.V2)
	case req.ClusterVersionSet != nil, req.DowngradeInfoSet != nil, req.DowngradeVersionTest != nil:
		// Cluster version negotiation: every cairn member runs the same
		// version, so there is nothing to record.
		return result{}
	}
	return result{err: fmt.Errorf("%w: request type not supported by this version", ErrBadRequest)}
}

// applyLeaseRevoke removes a lease and deletes its keys in one write
// transaction (one revision), in key order so every member writes the
// same history.
func (s *Server) applyLeaseRevoke(b *pebble.Batch, id int64) result {
	keys, err := s.lessor.Revoke(b, id)
	if err != nil {
		return result{err: err}
	}
	tw := s.kv.Write(b)
	for _, k := range keys {
		tw.DeleteRange([]byte(k), nil)
	}
	rev := tw.Rev()
	if len(tw.Changes()) > 0 {
		rev++
	}
	tw.End()
	return result{resp: &pb.LeaseRevokeResponse{Header: &pb.ResponseHeader{Revision: rev}}}
}

// ErrBadRequest: a committed request this member cannot apply.
var ErrBadRequest = errors.New("etcdserver: unsupported request")

// confChangeContext is the context of a membership change this member
// proposes (a ConfChangeV2): the request waiting for it, and the member it
// adds, updates or promotes.
type confChangeContext struct {
	RequestID uint64            `json:"requestID"`
	Member    membership.Member `json:"member"`
}

// decodeConfChange reads a committed configuration change: its steps, the
// member it carries (nil if none) and the ID of the request waiting for it
// (0 if none). Both entry types are read: ConfChange (V1) entries, which
// older members proposed and raft's bootstrap writes, carry the request ID
// in their ID and the member as their context; ConfChangeV2 entries carry a
// confChangeContext, or nothing when raft itself proposed them.
func decodeConfChange(e *raftpb.Entry) (changes []raftpb.ConfChangeSingle, m *membership.Member, reqID uint64, err error) {
	switch e.Type {
	case raftpb.EntryConfChange:
		var cc raftpb.ConfChange
		if err := cc.Unmarshal(e.Data); err != nil {
			return nil, nil, 0, fmt.Errorf("decode conf change %d: %v: %w", e.Index, err, storage.ErrCorrupt)
		}
		changes = []raftpb.ConfChangeSingle{{Type: cc.Type, NodeID: cc.NodeID}}
		if len(cc.Context) > 0 {
			m = new(membership.Member)
			if err := json.Unmarshal(cc.Context, m); err != nil {
				return nil, nil, 0, fmt.Errorf("decode conf change %d member: %v: %w", e.Index, err, storage.ErrCorrupt)
			}
		}
		return changes, m, cc.ID, nil
	case raftpb.EntryConfChangeV2:
		var cc raftpb.ConfChangeV2
		if err := cc.Unmarshal(e.Data); err != nil {
			return nil, nil, 0, fmt.Errorf("decode conf change %d: %v: %w", e.Index, err, storage.ErrCorrupt)
		}
		if len(cc.Context) == 0 {
			return cc.Changes, nil, 0, nil
		}
		var c confChangeContext
		if err := json.Unmarshal(cc.Context, &c); err != nil {
			return nil, nil, 0, fmt.Errorf("decode conf change %d context: %v: %w", e.Index, err, storage.ErrCorrupt)
		}
		return cc.Changes, &c.Member, c.RequestID, nil
	}
	return nil, nil, 0, fmt.Errorf("entry %d of type %v is not a configuration change: %w", e.Index, e.Type, storage.ErrCorrupt)
}

// applyConfChange records a committed membership change. Raft itself has
// already moved to the new configuration (see raftnode); cs is that
// configuration, recorded so that snapshots carry it.
func (s *Server) applyConfChange(ab *applyBatch, e *raftpb.Entry, cs raftpb.ConfState) error {
	changes, carried, id, err := decodeConfChange(e)
	if err != nil {
		return err
	}
	var m membership.Member
	if carried != nil {
		m = *carried
	}
	for _, c := range changes {
		switch c.Type {
		case raftpb.ConfChangeAddNode, raftpb.ConfChangeAddLearnerNode:
			learner := c.Type == raftpb.ConfChangeAddLearnerNode
			if _, ok := s.cluster.Member(c.NodeID); ok {
				// A promotion, or an initial member recorded at
				// bootstrap (whose entry carries no member).
				err = s.cluster.Update(ab.b, c.NodeID, func(x *membership.Member) { x.IsLearner = learner })
				continue
			}
			if carried == nil {
				continue
			}
			m.ID, m.IsLearner = c.NodeID, learner
			if err = s.cluster.Add(ab.b, m); err == nil {
				s.lg.Info("member added", "member-id", hexID(m.ID), "peer-urls", m.PeerURLs, "learner", learner)
			}
		case raftpb.ConfChangeRemoveNode:
			if err = s.cluster.Remove(ab.b, c.NodeID); err == nil {
				s.lg.Info("member removed", "member-id", hexID(c.NodeID))
				if c.NodeID == s.id {
					s.removedSelf = true
				}
			}
		case raftpb.ConfChangeUpdateNode:
			if carried != nil {
				err = s.cluster.Update(ab.b, c.NodeID, func(x *membership.Member) { x.PeerURLs = m.PeerURLs })
			}
		}
		if err != nil {
			s.lg.Warn("membership change", "type", c.Type, "member-id", hexID(c.NodeID), "err", err)
		}
	}
	data, merr := cs.Marshal()
	if merr != nil {
		return merr
	}
	ab.b.Set(storage.MetaKey(storage.MetaConfState), data, nil)
	ab.done = append(ab.done, done{id: id, res: result{err: err}})
	ab.peersChanged = true
	return nil
}

// maybeSnapshot truncates the raft log every SnapshotCount applied entries,
// keeping SnapshotCatchUpEntries for followers that lag. The snapshot is
// only metadata: the state it stands for is the database itself.
func (s *Server) maybeSnapshot() {
	applied := s.appliedIndex.Load()
	if applied-s.snapIndex <= s.cfg.SnapshotCount {
		return
	}
	ms := s.node.Storage()
	cs := s.confState
	snap, err := ms.CreateSnapshot(applied, &cs, nil)
	if err != nil {
		if !errors.Is(err, raft.ErrSnapOutOfDate) {
			s.lg.Warn("creating raft snapshot", "index", applied, "err", err)
		}
		return
	}
	var compactTo uint64
	if applied > s.cfg.SnapshotCatchUpEntries {
		compactTo = applied - s.cfg.SnapshotCatchUpEntries
	}
	if err := s.db.SaveSnapshot(snap, compactTo); err != nil {
		s.lg.Error("saving raft snapshot", "index", applied, "err", err)
		return
	}
	if compactTo > 0 {
		if err := ms.Compact(compactTo); err != nil && !errors.Is(err, raft.ErrCompacted) {
			s.lg.Warn("compacting raft log", "index", compactTo, "err", err)
		}
	}
	s.snapIndex = applied
	metricSnapshots.Inc()
	s.lg.Debug("raft snapshot", "index", applied, "log-compacted-to", compactTo)
}
