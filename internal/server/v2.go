package server

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/cairn-io/cairn/internal/raftnode"
	"github.com/cairn-io/cairn/internal/transport"
	"github.com/cairn-io/cairn/internal/v2store"
)

// The v2 keys API. Writes are etcd's own v2 request (etcdserverpb.Request)
// inside an InternalRaftRequest, applied by v2store in the apply loop's
// batch. Plain reads and watches are served from the local store, quorum
// reads after a ReadIndex. TTLs expire through raft: the leader proposes a
// SYNC carrying its clock whenever a TTL is due, so every member expires
// the same nodes at the same log position.

// v2SyncInterval is how often the leader looks for due TTLs (etcd's 500ms).
const v2SyncInterval = 500 * time.Millisecond

// v2State is the member's v2 keys API state.
type v2State struct {
	store *v2store.Store
	stats *v2Stats
}

// openV2 loads the v2 tree from storage.
func openV2(db *pebble.DB) (*v2State, error) {
	st, err := v2store.Load(db)
	if err != nil {
		return nil, err
	}
	return &v2State{store: st, stats: newV2Stats()}, nil
}

// startV2 starts the leader's TTL loop.
func (s *Server) startV2() {
	s.wg.Add(1)
	go s.v2SyncLoop()
}

// applyV2 applies a v2 request in batch b.
func (s *Server) applyV2(b *pebble.Batch, r *pb.Request) result {
	ev, err := s.v2.store.Apply(b, r)
	if err != nil {
		var verr *v2store.Error
		if !errors.As(err, &verr) {
			s.lg.Error("applying a v2 request", "method", r.Method, "path", r.Path, "err", err)
		}
		return result{err: err}
	}
	return result{resp: ev}
}

// V2Store returns the v2 tree.
func (s *Server) V2Store() *v2store.Store { return s.v2.store }

// V2Do serves a v2 keys request as etcd's server does: POST, PUT and
// DELETE go through raft; GET with quorum=true reads after a ReadIndex
// (wait is then ignored, as in etcd); GET with wait=true starts a watch;
// other GETs and HEADs read the local store. With auth on, the request
// acts for the user of the credentials in ctx (auth.WithCredentials) and
// is checked as checkV2 says. It returns the event, or the watcher, or an
// error: a *v2store.Error for the client, an auth error, or a member
// error (no leader, timeout).
func (s *Server) V2Do(ctx context.Context, r *pb.Request) (*v2store.Event, *v2store.Watcher, error) {
	if r.Method == "GET" && r.Quorum {
		r.Method = "QGET"
	}
	switch r.Method {
	case "POST", "PUT", "DELETE":
		if r.Time == 0 {
			r.Time = time.Now().UnixNano()
		}
		res, err := s.proposeResult(ctx, &pb.InternalRaftRequest{V2: r})
		if err != nil {
			return nil, nil, err
		}
		return s.v2Visible(ctx, r, res.resp.(*v2store.Event)), nil, nil
	case "QGET":
		if s.authStore.IsEnabled() {
			// Credentials first: a refused client costs no read index.
			if _, err := s.v2AuthInfo(ctx); err != nil {
				return nil, nil, err
			}
		}
		if err := s.linearizableReadNotify(ctx); err != nil {
			return nil, nil, err
		}
		ev, err := s.v2Read(ctx, r)
		return ev, nil, err
	case "GET":
		if r.Wait {
			w, err := s.v2Watch(ctx, r)
			return nil, w, err
		}
		ev, err := s.v2Read(ctx, r)
		return ev, nil, err
	case "HEAD":
		ev, err := s.v2Read(ctx, r)
		return ev, nil, err
	}
	return nil, nil, ErrUnknownMethod
}

// ErrUnknownMethod: a v2 request with a method the store does not know.
var ErrUnknownMethod = errors.New("etcdserver: unknown method")

// v2SyncLoop runs on every member; only the leader proposes. A SYNC is
// proposed only when some TTL is due, so an idle store writes nothing.
func (s *Server) v2SyncLoop() {
	defer s.wg.Done()
	t := time.NewTicker(v2SyncInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stopping:
			return
		case <-t.C:
		}
		now := time.Now()
		s.v2.stats.observeLeader(s.Leader(), now)
		if !s.IsLeader() {
			continue
		}
		if next, ok := s.v2.store.NextExpiry(); !ok || next.After(now) {
			continue
		}
		id := s.reqIDs.next()
		req := pb.InternalRaftRequest{
			Header: &pb.RequestHeader{ID: id},
			V2:     &pb.Request{ID: id, Method: "SYNC", Time: now.UnixNano()},
		}
		data, err := req.Marshal()
		if err != nil {
			s.lg.Error("encoding a v2 SYNC", "err", err)
			continue
		}
		// Nobody waits for the result; a dropped SYNC is retried on
		// the next tick.
		s.node.Propose(id, data)
	}
}

// V2StoreStats is the body of /v2/stats/store.
func (s *Server) V2StoreStats() []byte { return s.v2.store.StatsJSON() }

// V2SelfStats is the body of /v2/stats/self.
func (s *Server) V2SelfStats() []byte {
	return s.v2.stats.selfJSON(s.cfg.Name, s.id, s.Leader(), s.node.Status().RaftState)
}

// V2LeaderStats is the body of /v2/stats/leader, nil unless this member
// leads.
func (s *Server) V2LeaderStats() []byte {
	if !s.IsLeader() {
		return nil
	}
	var followers []uint64
	for _, m := range s.cluster.Members() {
		if m.ID != s.id {
			followers = append(followers, m.ID)
		}
	}
	return s.v2.stats.leaderJSON(s.id, followers)
}

// v2Stats counts what etcd's /v2/stats/self and /v2/stats/leader show:
// append requests sent and received, and per follower the append results
// and the heartbeat round-trip latency. It watches the raft messages going
// out (sender) and coming in (receiver).
type v2Stats struct {
	start      time.Time
	sendAppend atomic.Uint64
	recvAppend atomic.Uint64

	mu          sync.Mutex
	leader      uint64
	leaderSince time.Time
	followers   map[uint64]*followerStats
}

type followerStats struct {
	heartbeatSent time.Time
	latency       latencyStats
	counts        countsStats
	samples       float64 // latency measurements so far
	averageSquare float64
}

type countsStats struct {
	Fail    uint64 `json:"fail"`
	Success uint64 `json:"success"`
}

// latencyStats is etcd's, in milliseconds.
type latencyStats struct {
	Current           float64 `json:"current"`
	Average           float64 `json:"average"`
	StandardDeviation float64 `json:"standardDeviation"`
	Minimum           float64 `json:"minimum"`
	Maximum           float64 `json:"maximum"`
}

func newV2Stats() *v2Stats {
	now := time.Now()
	return &v2Stats{start: now, leaderSince: now, followers: map[uint64]*followerStats{}}
}

func (st *v2Stats) follower(id uint64) *followerStats {
	f, ok := st.followers[id]
	if !ok {
		f = &followerStats{}
		f.latency.Minimum = 1 << 63
		st.followers[id] = f
	}
	return f
}

// observeLeader notes the current leader, for the leader's uptime.
func (st *v2Stats) observeLeader(lead uint64, now time.Time) {
	st.mu.Lock()
	st.seeLeader(lead, now)
	st.mu.Unlock()
}

// seeLeader notes the current leader; the caller holds mu.
func (st *v2Stats) seeLeader(lead uint64, now time.Time) {
	if lead != st.leader {
		st.leader, st.leaderSince = lead, now
	}
}

// observe records one heartbeat round trip, in milliseconds as etcd
// reports latency.
func (f *followerStats) observe(d time.Duration) {
	n := f.samples
	cur := float64(d) / float64(time.Millisecond)
	f.latency.Current = cur
	f.latency.Maximum = max(f.latency.Maximum, cur)
	f.latency.Minimum = min(f.latency.Minimum, cur)
	f.latency.Average = (n*f.latency.Average + cur) / (n + 1)
	f.averageSquare = (n*f.averageSquare + cur*cur) / (n + 1)
	f.samples = n + 1
	f.latency.StandardDeviation = math.Sqrt(max(0, f.averageSquare-f.latency.Average*f.latency.Average))
}

func (st *v2Stats) selfJSON(name string, id, lead uint64, state raft.StateType) []byte {
	now := time.Now()
	st.mu.Lock()
	st.seeLeader(lead, now)
	since := st.leaderSince
	st.mu.Unlock()
	type leaderInfo struct {
		Name      string    `json:"leader"`
		Uptime    string    `json:"uptime"`
		StartTime time.Time `json:"startTime"`
	}
	b, _ := json.Marshal(struct {
		Name                 string         `json:"name"`
		ID                   string         `json:"id"`
		State                raft.StateType `json:"state"`
		StartTime            time.Time      `json:"startTime"`
		LeaderInfo           leaderInfo     `json:"leaderInfo"`
		RecvAppendRequestCnt uint64         `json:"recvAppendRequestCnt"`
		SendAppendRequestCnt uint64         `json:"sendAppendRequestCnt"`
	}{
		Name:                 name,
		ID:                   hexID(id),
		State:                state,
		StartTime:            st.start,
		LeaderInfo:           leaderInfo{Name: hexID(lead), Uptime: now.Sub(since).String(), StartTime: since},
		RecvAppendRequestCnt: st.recvAppend.Load(),
		SendAppendRequestCnt: st.sendAppend.Load(),
	})
	return b
}

func (st *v2Stats) leaderJSON(id uint64, followers []uint64) []byte {
	type follower struct {
		Latency latencyStats `json:"latency"`
		Counts  countsStats  `json:"counts"`
	}
	st.mu.Lock()
	fs := map[string]follower{}
	for _, fid := range followers {
		f := st.follower(fid)
		fs[hexID(fid)] = follower{Latency: f.latency, Counts: f.counts}
	}
	st.mu.Unlock()
	b, _ := json.Marshal(struct {
		Leader    string              `json:"leader"`
		Followers map[string]follower `json:"followers"`
	}{hexID(id), fs})
	return b
}

// sender counts the messages raft sends before the transport gets them.
func (st *v2Stats) sender(t raftnode.Transport) raftnode.Transport {
	return statsSender{st: st, next: t}
}

type statsSender struct {
	st   *v2Stats
	next raftnode.Transport
}

func (ss statsSender) Send(msgs []raftpb.Message) {
	var now time.Time
	for i := range msgs {
		switch msgs[i].Type {
		case raftpb.MsgApp:
			ss.st.sendAppend.Add(1)
		case raftpb.MsgHeartbeat:
			if now.IsZero() {
				now = time.Now()
			}
			ss.st.mu.Lock()
			ss.st.follower(msgs[i].To).heartbeatSent = now
			ss.st.mu.Unlock()
		}
	}
	ss.next.Send(msgs)
}

// receiver counts the messages the transport hands to raft.
func (st *v2Stats) receiver(r transport.Raft) transport.Raft {
	return statsReceiver{st: st, Raft: r}
}

type statsReceiver struct {
	st *v2Stats
	transport.Raft
}

func (sr statsReceiver) Step(m raftpb.Message) {
	switch m.Type {
	case raftpb.MsgApp:
		sr.st.recvAppend.Add(1)
	case raftpb.MsgAppResp:
		sr.st.mu.Lock()
		f := sr.st.follower(m.From)
		if m.Reject {
			f.counts.Fail++
		} else {
			f.counts.Success++
		}
		sr.st.mu.Unlock()
	case raftpb.MsgHeartbeatResp:
		sr.st.mu.Lock()
		f := sr.st.follower(m.From)
		if !f.heartbeatSent.IsZero() {
			f.observe(time.Since(f.heartbeatSent))
			f.heartbeatSent = time.Time{}
		}
		sr.st.mu.Unlock()
	}
	sr.Raft.Step(m)
}

func (sr statsReceiver) ReportUnreachable(id uint64) {
	sr.st.mu.Lock()
	sr.st.follower(id).counts.Fail++
	sr.st.mu.Unlock()
	sr.Raft.ReportUnreachable(id)
}
