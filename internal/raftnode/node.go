// Package raftnode runs a member's raft state machine (go.etcd.io/raft/v3's
// RawNode) on one goroutine: it ticks, batches proposals, steps messages
// from peers, and processes each Ready in the order raft requires: persist
// the hard state and entries (one synced write), send messages, hand
// committed entries to the apply loop, advance. DESIGN.md says why it is
// shaped this way.
package raftnode

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// Sentinel errors.
var (
	// ErrStopped: the node has stopped.
	ErrStopped = errors.New("raftnode: stopped")
)

// Persister makes raft state durable. *storage.DB implements it.
type Persister interface {
	// SaveRaft persists a Ready's hard state, entries and snapshot in one
	// write, synced when sync is set.
	SaveRaft(hs raftpb.HardState, ents []raftpb.Entry, snap raftpb.Snapshot, sync bool) error
}

// Transport delivers messages to other members.
type Transport interface {
	// Send sends messages without blocking; undeliverable messages are
	// dropped (raft retries) and reported with ReportUnreachable.
	Send(msgs []raftpb.Message)
}

// Apply is a batch of committed work for the apply loop, in log order.
type Apply struct {
	// Snapshot, if not empty, must be installed before Entries.
	Snapshot raftpb.Snapshot
	Entries  []raftpb.Entry
	// ConfStates holds, for each configuration-change entry in Entries
	// (by log index), the configuration raft moved to when it was
	// committed; a snapshot taken at or after that index records it.
	ConfStates map[uint64]raftpb.ConfState
}

// Config configures a Node.
type Config struct {
	// ID is this member's raft ID. Required, non-zero.
	ID uint64
	// Bootstrap lists the initial voters of a new cluster (including this
	// member). Empty on restart or when joining an existing cluster.
	Bootstrap []uint64
	// State is the persisted raft state to restart from.
	State RestartState
	// Applied is the index of the last entry the state machine has applied
	// durably; raft re-delivers committed entries after it.
	Applied uint64

	// Ticks, if set, drives raft's clock instead of a ticker every
	// TickInterval: one tick per value received. Tests use it to step time
	// by hand.
	Ticks <-chan time.Time
	// TickInterval is the duration of one raft tick (etcd's
	// --heartbeat-interval). Default 100ms.
	TickInterval time.Duration
	// ElectionTicks is the election timeout in ticks. Default 10.
	ElectionTicks int
	// HeartbeatTicks is the heartbeat interval in ticks. Default 1.
	HeartbeatTicks int
	// MaxSizePerMsg caps the bytes of entries in one append message.
	// Default 1 MiB.
	MaxSizePerMsg uint64
	// MaxInflightMsgs caps append messages in flight to one follower.
	// Default 512.
	MaxInflightMsgs int
	// MaxUncommittedBytes caps the bytes of proposals the leader accepts
	// beyond what is committed; more are dropped. Default 64 MiB.
	MaxUncommittedBytes uint64
	// PreVote and CheckQuorum are enabled unless disabled here.
	DisablePreVote     bool
	DisableCheckQuorum bool

	Persister Persister
	Transport Transport
	// OnDrop is called on the raft goroutine with the tags of proposals
	// raft refused (no leader, leadership in transfer). Required.
	OnDrop func(tags []uint64, err error)
	// OnReadState is called on the raft goroutine for each ReadIndex
	// answer.
	OnReadState func(rs raft.ReadState)
	// OnLeaderChange is called on the raft goroutine when the known leader
	// or term changes (lead is 0 when there is none).
	OnLeaderChange func(lead, term uint64)
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// RestartState is what the node restarts from.
type RestartState struct {
	HardState raftpb.HardState
	Snapshot  raftpb.Snapshot
	Entries   []raftpb.Entry
}

// Node is a running raft member.
type Node struct {
	cfg Config
	lg  *slog.Logger
	rn  *raft.RawNode
	ms  *raft.MemoryStorage

	mu        sync.Mutex
	proposals []proposal
	reads     [][]byte
	msgs      []raftpb.Message
	reports   []report
	campaign  bool
	calls     []func(*raft.RawNode)
	wake      chan struct{}

	applyc   chan Apply
	stopc    chan struct{}
	stopOnce sync.Once
	donec    chan struct{}
	err      error

	lead, term, commit atomic.Uint64
	isLeader           atomic.Bool
	voters             atomic.Pointer[[]uint64]
}

type proposal struct {
	tag  uint64
	data []byte
	cc   raftpb.ConfChangeI
}

type report struct {
	id          uint64
	unreachable bool
	snapshot    raft.SnapshotStatus
}

// Start creates and runs a node.
func Start(cfg Config) (*Node, error) {
	if cfg.ID == 0 {
		return nil, errors.New("raftnode: member ID must not be zero")
	}
	if cfg.Persister == nil || cfg.Transport == nil || cfg.OnDrop == nil {
		return nil, errors.New("raftnode: Persister, Transport and OnDrop are required")
	}
	if cfg.TickInterval <= 0 {
		cfg.TickInterval = 100 * time.Millisecond
	}
	if cfg.ElectionTicks <= 0 {
		cfg.ElectionTicks = 10
	}
	if cfg.HeartbeatTicks <= 0 {
		cfg.HeartbeatTicks = 1
	}
	if cfg.MaxSizePerMsg == 0 {
		cfg.MaxSizePerMsg = 1 << 20
	}
	if cfg.MaxInflightMsgs <= 0 {
		cfg.MaxInflightMsgs = 512
	}
	if cfg.MaxUncommittedBytes == 0 {
		cfg.MaxUncommittedBytes = 64 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	lg := cfg.Logger.With("component", "raft")
	ms := raft.NewMemoryStorage()
	st := cfg.State
	if !raft.IsEmptySnap(st.Snapshot) {
		if err := ms.ApplySnapshot(st.Snapshot); err != nil {
			return nil, fmt.Errorf("raftnode: restore snapshot: %w", err)
		}
	}
	if !raft.IsEmptyHardState(st.HardState) {
		if err := ms.SetHardState(st.HardState); err != nil {
			return nil, fmt.Errorf("raftnode: restore hard state: %w", err)
		}
	}
	if len(st.Entries) > 0 {
		if err := ms.Append(st.Entries); err != nil {
			return nil, fmt.Errorf("raftnode: restore entries: %w", err)
		}
	}
	rc := &raft.Config{
		ID:                        cfg.ID,
		ElectionTick:              cfg.ElectionTicks,
		HeartbeatTick:             cfg.HeartbeatTicks,
		Storage:                   ms,
		Applied:                   cfg.Applied,
		MaxSizePerMsg:             cfg.MaxSizePerMsg,
		MaxInflightMsgs:           cfg.MaxInflightMsgs,
		MaxUncommittedEntriesSize: cfg.MaxUncommittedBytes,
		CheckQuorum:               !cfg.DisableCheckQuorum,
		PreVote:                   !cfg.DisablePreVote,
		ReadOnlyOption:            raft.ReadOnlySafe,
		Logger:                    &raftLogger{lg: lg},
	}
	rn, err := raft.NewRawNode(rc)
	if err != nil {
		return nil, fmt.Errorf("raftnode: %w", err)
	}
	if len(cfg.Bootstrap) > 0 {
		peers := make([]raft.Peer, len(cfg.Bootstrap))
		for i, id := range cfg.Bootstrap {
			peers[i] = raft.Peer{ID: id}
		}
		if err := rn.Bootstrap(peers); err != nil {
			return nil, fmt.Errorf("raftnode: bootstrap: %w", err)
		}
	}
	n := &Node{
		cfg:    cfg,
		lg:     lg,
		rn:     rn,
		ms:     ms,
		wake:   make(chan struct{}, 1),
		applyc: make(chan Apply, 64),
		stopc:  make(chan struct{}),
		donec:  make(chan struct{}),
	}
	n.commit.Store(st.HardState.Commit)
	n.updateVoters(rn.Status().Config.Voters.IDs())
	go n.run()
	return n, nil
}

// Applies returns the channel of committed work, in order. The apply loop
// must drain it; it is closed when the node stops.
func (n *Node) Applies() <-chan Apply { return n.applyc }

// Storage returns the in-memory raft log, for snapshots and compaction.
func (n *Node) Storage() *raft.MemoryStorage { return n.ms }

// Leader returns the current leader's ID (0 if none) and term.
func (n *Node) Leader() (lead, term uint64) { return n.lead.Load(), n.term.Load() }

// IsLeader reports whether this member is the leader.
func (n *Node) IsLeader() bool { return n.isLeader.Load() }

// CommitIndex returns the highest log index known to be committed.
func (n *Node) CommitIndex() uint64 { return n.commit.Load() }

// Voters returns the IDs of the voting members as of the last conf change
// applied to raft.
func (n *Node) Voters() []uint64 {
	if p := n.voters.Load(); p != nil {
		return *p
	}
	return nil
}

func (n *Node) updateVoters(ids map[uint64]struct{}) {
	out := make([]uint64, 0, len(ids))
	for id := range ids {
		out = append(out, id)
	}
	n.voters.Store(&out)
}

// Propose queues data for proposal. If raft refuses it, OnDrop is called
// with tag; otherwise it appears in Applies once committed.
func (n *Node) Propose(tag uint64, data []byte) {
	n.mu.Lock()
	n.proposals = append(n.proposals, proposal{tag: tag, data: data})
	n.mu.Unlock()
	n.poke()
}

// NewConfChange returns a configuration change of one member, as members
// propose them: a ConfChangeV2 of one step, which raft applies as a simple
// change (no joint configuration). context travels with it in the log.
func NewConfChange(typ raftpb.ConfChangeType, node uint64, context []byte) raftpb.ConfChangeV2 {
	return raftpb.ConfChangeV2{
		Transition: raftpb.ConfChangeTransitionAuto,
		Changes:    []raftpb.ConfChangeSingle{{Type: typ, NodeID: node}},
		Context:    context,
	}
}

// ProposeConfChange queues a configuration change.
func (n *Node) ProposeConfChange(tag uint64, cc raftpb.ConfChangeI) {
	n.mu.Lock()
	n.proposals = append(n.proposals, proposal{tag: tag, cc: cc})
	n.mu.Unlock()
	n.poke()
}

// ReadIndex asks raft for the commit index that a linearizable read
// identified by rctx must wait for; the answer arrives via OnReadState.
func (n *Node) ReadIndex(rctx []byte) {
	n.mu.Lock()
	n.reads = append(n.reads, rctx)
	n.mu.Unlock()
	n.poke()
}

// Step delivers a message from a peer.
func (n *Node) Step(m raftpb.Message) {
	n.mu.Lock()
	n.msgs = append(n.msgs, m)
	n.mu.Unlock()
	n.poke()
}

// ReportUnreachable tells raft a peer could not be reached.
func (n *Node) ReportUnreachable(id uint64) {
	n.mu.Lock()
	n.reports = append(n.reports, report{id: id, unreachable: true})
	n.mu.Unlock()
	n.poke()
}

// ReportSnapshot tells raft how sending a snapshot to a peer went.
func (n *Node) ReportSnapshot(id uint64, status raft.SnapshotStatus) {
	n.mu.Lock()
	n.reports = append(n.reports, report{id: id, snapshot: status})
	n.mu.Unlock()
	n.poke()
}

func (n *Node) poke() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// Stop stops the node and waits for its goroutine to exit.
func (n *Node) Stop() {
	n.stopOnce.Do(func() { close(n.stopc) })
	<-n.donec
}

// Done is closed when the node has stopped; Err then tells why.
func (n *Node) Done() <-chan struct{} { return n.donec }

// Err returns the error that stopped the node, if any.
func (n *Node) Err() error { return n.err }

func (n *Node) run() {
	defer close(n.donec)
	defer close(n.applyc)
	ticks := n.cfg.Ticks
	if ticks == nil {
		ticker := time.NewTicker(n.cfg.TickInterval)
		defer ticker.Stop()
		ticks = ticker.C
	}

	// A member that is the only voter need not wait an election timeout:
	// it campaigns as soon as the configuration it starts from is applied
	// (on a restart that configuration is only known after the log up to
	// the commit index has been replayed).
	autoCampaign := true
	n.poke()

	var (
		proposals []proposal
		reads     [][]byte
		msgs      []raftpb.Message
		reports   []report
	)
	for {
		select {
		case <-n.stopc:
			return
		case <-ticks:
			n.rn.Tick()
		case <-n.wake:
		}

		n.mu.Lock()
		proposals, n.proposals = n.proposals, proposals[:0]
		reads, n.reads = n.reads, reads[:0]
		msgs, n.msgs = n.msgs, msgs[:0]
		reports, n.reports = n.reports, reports[:0]
		calls := n.calls
		n.calls = nil
		campaign := n.campaign
		n.campaign = false
		n.mu.Unlock()

		if campaign {
			_ = n.rn.Campaign()
		}
		for _, fn := range calls {
			fn(n.rn)
		}
		for _, r := range reports {
			if r.unreachable {
				n.rn.ReportUnreachable(r.id)
			} else {
				n.rn.ReportSnapshot(r.id, r.snapshot)
			}
		}
		for i := range msgs {
			if err := n.rn.Step(msgs[i]); err != nil && !errors.Is(err, raft.ErrStepPeerNotFound) {
				n.lg.Debug("step failed", "type", msgs[i].Type, "from", msgs[i].From, "err", err)
			}
			msgs[i] = raftpb.Message{}
		}
		n.propose(proposals)
		for i := range proposals {
			proposals[i] = proposal{}
		}
		for _, rctx := range reads {
			n.rn.ReadIndex(rctx)
		}

		for n.rn.HasReady() {
			if err := n.handleReady(n.rn.Ready()); err != nil {
				if errors.Is(err, ErrStopped) {
					// Stop was called while a batch waited for the
					// apply loop: a normal shutdown.
					return
				}
				n.err = err
				n.lg.Error("raft loop stopped", "err", err)
				return
			}
		}
		if autoCampaign {
			if st := n.rn.Status(); st.RaftState != raft.StateFollower {
				autoCampaign = false
			} else if st.Applied >= st.Commit {
				autoCampaign = false
				if v := n.Voters(); len(v) == 1 && v[0] == n.cfg.ID {
					_ = n.rn.Campaign()
					n.poke()
				}
			}
		}
	}
}

// propose steps every queued proposal: normal entries together in one
// message, so that many concurrent requests share one append.
func (n *Node) propose(ps []proposal) {
	if len(ps) == 0 {
		return
	}
	var ents []raftpb.Entry
	var tags []uint64
	flush := func() {
		if len(ents) == 0 {
			return
		}
		err := n.rn.Step(raftpb.Message{Type: raftpb.MsgProp, From: n.cfg.ID, Entries: ents})
		if err != nil {
			n.cfg.OnDrop(tags, err)
		}
		ents, tags = nil, nil
	}
	for _, p := range ps {
		if p.cc != nil {
			flush()
			if err := n.rn.ProposeConfChange(p.cc); err != nil {
				n.cfg.OnDrop([]uint64{p.tag}, err)
			}
			continue
		}
		ents = append(ents, raftpb.Entry{Data: p.data})
		tags = append(tags, p.tag)
	}
	flush()
}

func (n *Node) handleReady(rd raft.Ready) error {
	if rd.SoftState != nil {
		lead := rd.SoftState.Lead
		n.isLeader.Store(rd.SoftState.RaftState == raft.StateLeader)
		if lead != n.lead.Load() || rd.HardState.Term != 0 && rd.HardState.Term != n.term.Load() {
			n.lead.Store(lead)
			if rd.HardState.Term != 0 {
				n.term.Store(rd.HardState.Term)
			}
			if n.cfg.OnLeaderChange != nil {
				n.cfg.OnLeaderChange(lead, n.term.Load())
			}
		}
	}
	if !raft.IsEmptyHardState(rd.HardState) {
		if rd.HardState.Term != n.term.Load() {
			n.term.Store(rd.HardState.Term)
			if n.cfg.OnLeaderChange != nil {
				n.cfg.OnLeaderChange(n.lead.Load(), rd.HardState.Term)
			}
		}
		n.commit.Store(rd.HardState.Commit)
	}
	for _, rs := range rd.ReadStates {
		if n.cfg.OnReadState != nil {
			n.cfg.OnReadState(rs)
		}
	}

	// The leader may send before it persists (raft thesis 10.2.1): its own
	// acknowledgement is only counted after Advance. Followers must persist
	// first.
	leader := n.isLeader.Load()
	if leader {
		n.send(rd.Messages)
	}
	needSync := raft.MustSync(rd.HardState, n.prevHardState(), len(rd.Entries))
	if err := n.cfg.Persister.SaveRaft(rd.HardState, rd.Entries, rd.Snapshot, needSync || !raft.IsEmptySnap(rd.Snapshot)); err != nil {
		return fmt.Errorf("persist ready: %w", err)
	}
	if !raft.IsEmptySnap(rd.Snapshot) {
		if err := n.ms.ApplySnapshot(rd.Snapshot); err != nil && !errors.Is(err, raft.ErrSnapOutOfDate) {
			return fmt.Errorf("install snapshot: %w", err)
		}
		// The snapshot carries the configuration.
		n.updateVoters(n.rn.Status().Config.Voters.IDs())
	}
	if !raft.IsEmptyHardState(rd.HardState) {
		if err := n.ms.SetHardState(rd.HardState); err != nil {
			return fmt.Errorf("set hard state: %w", err)
		}
	}
	if len(rd.Entries) > 0 {
		if err := n.ms.Append(rd.Entries); err != nil {
			return fmt.Errorf("append entries: %w", err)
		}
	}
	if !leader {
		n.send(rd.Messages)
	}

	// Committed entries are durable here (this Ready's entries were just
	// persisted), so the apply loop may make their effects durable too.
	if len(rd.CommittedEntries) > 0 || !raft.IsEmptySnap(rd.Snapshot) {
		ap := Apply{Snapshot: rd.Snapshot, Entries: rd.CommittedEntries}
		for _, e := range rd.CommittedEntries {
			if e.Type == raftpb.EntryConfChange || e.Type == raftpb.EntryConfChangeV2 {
				// Raft's view of the configuration follows the log
				// directly; the apply loop records membership.
				cc, err := confChangeOf(e)
				if err != nil {
					return err
				}
				cs := n.rn.ApplyConfChange(cc)
				n.updateVoters(n.rn.Status().Config.Voters.IDs())
				if ap.ConfStates == nil {
					ap.ConfStates = make(map[uint64]raftpb.ConfState)
				}
				ap.ConfStates[e.Index] = *cs
			}
		}
		select {
		case n.applyc <- ap:
		case <-n.stopc:
			return ErrStopped
		}
	}
	n.rn.Advance(rd)
	return nil
}

func (n *Node) prevHardState() raftpb.HardState {
	hs, _, _ := n.ms.InitialState()
	return hs
}

func (n *Node) send(msgs []raftpb.Message) {
	if len(msgs) == 0 {
		return
	}
	out := msgs[:0:0]
	for _, m := range msgs {
		if m.To == n.cfg.ID {
			continue
		}
		out = append(out, m)
	}
	if len(out) > 0 {
		n.cfg.Transport.Send(out)
	}
}

func confChangeOf(e raftpb.Entry) (raftpb.ConfChangeI, error) {
	switch e.Type {
	case raftpb.EntryConfChange:
		var cc raftpb.ConfChange
		if err := cc.Unmarshal(e.Data); err != nil {
			return nil, fmt.Errorf("decode conf change at %d: %w", e.Index, err)
		}
		return cc, nil
	default:
		var cc raftpb.ConfChangeV2
		if err := cc.Unmarshal(e.Data); err != nil {
			return nil, fmt.Errorf("decode conf change at %d: %w", e.Index, err)
		}
		return cc, nil
	}
}

// Campaign makes this member start an election.
func (n *Node) Campaign() {
	n.mu.Lock()
	n.campaign = true
	n.mu.Unlock()
	n.poke()
}

// raftLogger adapts slog to raft's Logger.
type raftLogger struct{ lg *slog.Logger }

func (l *raftLogger) Debug(v ...any)                   { l.lg.Debug(fmt.Sprint(v...)) }
func (l *raftLogger) Debugf(format string, v ...any)   { l.lg.Debug(fmt.Sprintf(format, v...)) }
func (l *raftLogger) Error(v ...any)                   { l.lg.Error(fmt.Sprint(v...)) }
func (l *raftLogger) Errorf(format string, v ...any)   { l.lg.Error(fmt.Sprintf(format, v...)) }
func (l *raftLogger) Info(v ...any)                    { l.lg.Info(fmt.Sprint(v...)) }
func (l *raftLogger) Infof(format string, v ...any)    { l.lg.Info(fmt.Sprintf(format, v...)) }
func (l *raftLogger) Warning(v ...any)                 { l.lg.Warn(fmt.Sprint(v...)) }
func (l *raftLogger) Warningf(format string, v ...any) { l.lg.Warn(fmt.Sprintf(format, v...)) }
func (l *raftLogger) Fatal(v ...any)                   { l.lg.Error(fmt.Sprint(v...)); panic(fmt.Sprint(v...)) }
func (l *raftLogger) Fatalf(format string, v ...any) {
	l.lg.Error(fmt.Sprintf(format, v...))
	panic(fmt.Sprintf(format, v...))
}
func (l *raftLogger) Panic(v ...any) { l.lg.Error(fmt.Sprint(v...)); panic(fmt.Sprint(v...)) }
func (l *raftLogger) Panicf(format string, v ...any) {
	l.lg.Error(fmt.Sprintf(format, v...))
	panic(fmt.Sprintf(format, v...))
}

// do runs fn on the raft goroutine and waits for it.
func (n *Node) do(fn func(*raft.RawNode)) bool {
	done := make(chan struct{})
	n.mu.Lock()
	n.calls = append(n.calls, func(rn *raft.RawNode) { fn(rn); close(done) })
	n.mu.Unlock()
	n.poke()
	select {
	case <-done:
		return true
	case <-n.donec:
		return false
	}
}

// Status returns raft's status, with the followers' progress on the leader.
func (n *Node) Status() raft.Status {
	var st raft.Status
	n.do(func(rn *raft.RawNode) { st = rn.Status() })
	return st
}

// TransferLeadership asks raft to hand leadership to member target.
func (n *Node) TransferLeadership(target uint64) {
	n.do(func(rn *raft.RawNode) { rn.TransferLeader(target) })
}
