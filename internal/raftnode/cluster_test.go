package raftnode

import (
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
)

// Several nodes on an in-memory network whose clocks the tests drive by
// hand (Config.Ticks): nothing happens on a timer, so elections and
// heartbeats happen only when a test ticks a node. Messages travel between
// the nodes' goroutines, encoded and decoded as on the wire; the network
// can isolate a node or cut a link, and lets a test hold or fail snapshots.

const (
	testElectionTicks = 10
	// electionTimeout is enough ticks for any node to time out an
	// election: raft randomises the timeout in [election, 2*election).
	electionTimeout = 2 * testElectionTicks
)

// member is one node of a memNet and what it applied.
type member struct {
	id    uint64
	n     *Node
	p     *memPersister
	ticks chan time.Time
	drops chan dropped

	mu      sync.Mutex
	applied []raftpb.Entry    // entries applied, in order
	snaps   []raftpb.Snapshot // snapshots installed, in order
	conf    raftpb.ConfState  // the configuration applied last
	last    uint64            // index of the last entry or snapshot applied
}

// memNet connects members.
type memNet struct {
	t       *testing.T
	mu      sync.Mutex
	members map[uint64]*member
	// isolated members neither send nor receive; cut holds directed links
	// that drop messages.
	isolated map[uint64]bool
	cut      map[[2]uint64]bool
	// sent is every message a node handed to its transport, in order.
	sent []raftpb.Message
	// onSnap, if set, decides what happens to a snapshot message that the
	// network would deliver: true delivers it and reports SnapshotFinish to
	// the sender; false leaves it to the test, which reports.
	onSnap func(m raftpb.Message) bool
}

func newMemNet(t *testing.T) *memNet {
	return &memNet{t: t, members: map[uint64]*member{}, isolated: map[uint64]bool{}, cut: map[[2]uint64]bool{}}
}

// netTransport is one member's view of the network.
type netTransport struct {
	nw   *memNet
	from uint64
}

func (tr netTransport) Send(msgs []raftpb.Message) {
	nw := tr.nw
	for _, m := range msgs {
		// As on the wire: the receiver gets its own copy.
		data, err := m.Marshal()
		if err != nil {
			panic(err)
		}
		var c raftpb.Message
		if err := c.Unmarshal(data); err != nil {
			panic(err)
		}
		nw.mu.Lock()
		nw.sent = append(nw.sent, c)
		to, from := nw.members[m.To], nw.members[tr.from]
		blocked := to == nil || nw.isolated[m.From] || nw.isolated[m.To] || nw.cut[[2]uint64{m.From, m.To}]
		onSnap := nw.onSnap
		nw.mu.Unlock()
		if m.Type == raftpb.MsgSnap {
			// The sending side reports how the transfer went, as the
			// peer transport does.
			switch {
			case blocked:
				from.n.ReportSnapshot(m.To, raft.SnapshotFailure)
			case onSnap != nil && !onSnap(c):
			default:
				to.n.Step(c)
				from.n.ReportSnapshot(m.To, raft.SnapshotFinish)
			}
			continue
		}
		if !blocked {
			to.n.Step(c)
		}
	}
}

// start starts member id (a new cluster's voter if bootstrap is set, an
// empty node that is to join otherwise).
func (nw *memNet) start(id uint64, bootstrap ...uint64) *member {
	t := nw.t
	t.Helper()
	m := &member{id: id, p: newMemPersister(), ticks: make(chan time.Time), drops: make(chan dropped, 1024)}
	n, err := Start(Config{
		ID:             id,
		Bootstrap:      bootstrap,
		Ticks:          m.ticks,
		ElectionTicks:  testElectionTicks,
		HeartbeatTicks: 1,
		Persister:      m.p,
		Transport:      netTransport{nw: nw, from: id},
		OnDrop: func(tags []uint64, err error) {
			m.drops <- dropped{tags: slices.Clone(tags), err: err}
		},
		Logger: quiet,
	})
	if err != nil {
		t.Fatalf("Start(%d): %v", id, err)
	}
	m.n = n
	nw.mu.Lock()
	nw.members[id] = m
	nw.mu.Unlock()
	go m.collect()
	t.Cleanup(n.Stop)
	return m
}

// collect drains the member's Applies.
func (m *member) collect() {
	for ap := range m.n.Applies() {
		m.mu.Lock()
		if !raft.IsEmptySnap(ap.Snapshot) {
			m.snaps = append(m.snaps, ap.Snapshot)
			m.conf = ap.Snapshot.Metadata.ConfState
			m.last = ap.Snapshot.Metadata.Index
		}
		for _, e := range ap.Entries {
			if cs, ok := ap.ConfStates[e.Index]; ok {
				m.conf = cs
			}
			m.applied = append(m.applied, e)
			m.last = e.Index
		}
		m.mu.Unlock()
	}
}

// tick advances the member's clock by k ticks.
func (m *member) tick(k int) {
	for range k {
		m.ticks <- time.Time{}
	}
}

func (m *member) lastApplied() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.last
}

func (m *member) confState() raftpb.ConfState {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.conf
}

func (m *member) appliedTags() []uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return tagsOf(m.applied)
}

func (m *member) snapshots() []raftpb.Snapshot {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.snaps)
}

// waitLeader waits until every given member names lead as leader.
func waitLeader(t *testing.T, lead uint64, ms ...*member) {
	t.Helper()
	waitFor(t, fmt.Sprintf("members to agree on leader %d", lead), func() bool {
		for _, m := range ms {
			if l, _ := m.n.Leader(); l != lead {
				return false
			}
		}
		return true
	})
}

// proposeAll proposes tags on m and waits until every member in wait has
// applied all of them.
func proposeAll(t *testing.T, m *member, tags []uint64, wait ...*member) {
	t.Helper()
	for _, tag := range tags {
		m.n.Propose(tag, payload(tag))
	}
	for _, w := range wait {
		waitFor(t, fmt.Sprintf("member %d to apply %d proposals", w.id, len(tags)), func() bool {
			got := w.appliedTags()
			for _, tag := range tags {
				if !slices.Contains(got, tag) {
					return false
				}
			}
			return true
		})
	}
}

func span(from, to uint64) []uint64 {
	var out []uint64
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

// isolate cuts a member off the network, or reconnects it.
func (nw *memNet) isolate(id uint64, on bool) {
	nw.mu.Lock()
	nw.isolated[id] = on
	nw.mu.Unlock()
}

// mark returns a position in the log of sent messages.
func (nw *memNet) mark() int {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	return len(nw.sent)
}

// sentSince returns the messages sent since mark that match.
func (nw *memNet) sentSince(mark int, match func(raftpb.Message) bool) []raftpb.Message {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	var out []raftpb.Message
	for _, m := range nw.sent[mark:] {
		if match(m) {
			out = append(out, m)
		}
	}
	return out
}

// confChange proposes a one-step configuration change on leader and waits
// until every member in wait applied a configuration that satisfies ok.
func confChange(t *testing.T, leader *member, typ raftpb.ConfChangeType, node uint64, ok func(raftpb.ConfState) bool, wait ...*member) {
	t.Helper()
	leader.n.ProposeConfChange(0, NewConfChange(typ, node, nil))
	for _, w := range wait {
		waitFor(t, fmt.Sprintf("member %d to apply %v %d", w.id, typ, node), func() bool { return ok(w.confState()) })
	}
}

// tickUntil ticks the members once each per round, letting messages
// settle between rounds, until cond holds, failing after max rounds.
func tickUntil(t *testing.T, what string, max int, cond func() bool, ms ...*member) {
	t.Helper()
	for range max {
		for _, m := range ms {
			m.tick(1)
		}
		settle := time.Now().Add(20 * time.Millisecond)
		for time.Now().Before(settle) {
			if cond() {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}
	t.Fatalf("%s: not after %d ticks", what, max)
}

func sorted(ids []uint64) []uint64 { return slices.Sorted(slices.Values(ids)) }

// Three members elect the one that campaigns; proposals made on any member
// are applied by all in one order.
func TestClusterElectsAndReplicates(t *testing.T) {
	nw := newMemNet(t)
	m1, m2, m3 := nw.start(1, 1, 2, 3), nw.start(2, 1, 2, 3), nw.start(3, 1, 2, 3)
	// Without ticks nobody campaigns.
	if l, _ := m1.n.Leader(); l != 0 {
		t.Fatalf("leader %d before any tick", l)
	}
	// Only member 2's clock runs: it times out and wins.
	m2.tick(electionTimeout)
	waitLeader(t, 2, m1, m2, m3)
	proposeAll(t, m2, span(1, 10), m1, m2, m3)
	proposeAll(t, m3, span(11, 20), m1, m2, m3) // forwarded by a follower
	want := m1.appliedTags()
	for _, m := range []*member{m2, m3} {
		if got := m.appliedTags(); !slices.Equal(got, want) {
			t.Fatalf("member %d applied %v, member 1 %v", m.id, got, want)
		}
	}
	if len(want) != 20 {
		t.Fatalf("applied %d proposals, want 20", len(want))
	}
}

// A leader cut off from the others steps down after an election timeout
// (check quorum) and refuses proposals; the others elect a new leader at a
// higher term and keep committing; once the partition heals the old leader
// follows the new one and applies what it missed, and nothing it was asked
// to commit while cut off is applied anywhere.
func TestClusterPartitionedLeaderIsReplaced(t *testing.T) {
	nw := newMemNet(t)
	m1, m2, m3 := nw.start(1, 1, 2, 3), nw.start(2, 1, 2, 3), nw.start(3, 1, 2, 3)
	m1.tick(electionTimeout)
	waitLeader(t, 1, m1, m2, m3)
	_, term1 := m1.n.Leader()
	proposeAll(t, m1, span(1, 5), m1, m2, m3)

	nw.isolate(1, true)
	// The old leader hears from nobody: within two election timeouts it
	// steps down.
	tickUntil(t, "the isolated leader to step down", 2*electionTimeout, func() bool { return !m1.n.IsLeader() }, m1)
	m1.n.Propose(100, payload(100))
	select {
	case d := <-m1.drops:
		if !slices.Equal(d.tags, []uint64{100}) {
			t.Fatalf("dropped %v, want [100]", d.tags)
		}
	case <-time.After(waitTimeout):
		t.Fatal("a proposal on the isolated, former leader was not dropped")
	}
	// The others stop hearing heartbeats; once their election timeouts
	// pass, one of them wins.
	var lead uint64
	tickUntil(t, "a new leader among 2 and 3", 5*electionTimeout, func() bool {
		l2, _ := m2.n.Leader()
		l3, _ := m3.n.Leader()
		lead = l2
		return l2 != 0 && l2 != 1 && l2 == l3
	}, m2, m3)
	if _, term := m2.n.Leader(); term <= term1 {
		t.Fatalf("new leader's term %d is not above the old one's %d", term, term1)
	}
	leader := nw.members[lead]
	proposeAll(t, leader, span(6, 10), m2, m3)
	if got := m1.appliedTags(); slices.Contains(got, 6) {
		t.Fatalf("the isolated member applied %v", got)
	}

	nw.isolate(1, false)
	// The new leader's heartbeats reach member 1.
	leader.tick(1)
	waitLeader(t, lead, m1, m2, m3)
	proposeAll(t, leader, span(11, 12), m1, m2, m3)
	want := m2.appliedTags()
	if !slices.Equal(want, span(1, 12)) {
		t.Fatalf("member 2 applied %v, want 1..12", want)
	}
	for _, m := range []*member{m1, m3} {
		if got := m.appliedTags(); !slices.Equal(got, want) {
			t.Fatalf("member %d applied %v, want %v", m.id, got, want)
		}
	}
}

// Membership changes through the log: a learner joins and receives the log
// without voting, is promoted, a voter joins directly, and a voter is
// removed, after which nothing is sent to it and the rest commit without
// it.
func TestClusterConfChanges(t *testing.T) {
	nw := newMemNet(t)
	m1, m2, m3 := nw.start(1, 1, 2, 3), nw.start(2, 1, 2, 3), nw.start(3, 1, 2, 3)
	m1.tick(electionTimeout)
	waitLeader(t, 1, m1, m2, m3)
	proposeAll(t, m1, span(1, 3), m1, m2, m3)

	// Add a learner.
	m4 := nw.start(4)
	confChange(t, m1, raftpb.ConfChangeAddLearnerNode, 4, func(cs raftpb.ConfState) bool {
		return slices.Equal(cs.Learners, []uint64{4})
	}, m1, m2, m3)
	if cs := m1.confState(); !slices.Equal(sorted(cs.Voters), []uint64{1, 2, 3}) {
		t.Fatalf("voters after adding a learner: %v", cs.Voters)
	}
	if v := sorted(m1.n.Voters()); !slices.Equal(v, []uint64{1, 2, 3}) {
		t.Fatalf("Voters() after adding a learner: %v", v)
	}
	proposeAll(t, m1, span(4, 6), m1, m4)
	if got := m4.appliedTags(); !slices.Equal(got, span(1, 6)) {
		t.Fatalf("the learner applied %v, want 1..6", got)
	}
	if st := m1.n.Status(); !st.Progress[4].IsLearner {
		t.Fatalf("leader's view of the learner: progress %+v", st.Progress[4])
	}

	// Promote it.
	confChange(t, m1, raftpb.ConfChangeAddNode, 4, func(cs raftpb.ConfState) bool {
		return len(cs.Learners) == 0 && slices.Equal(sorted(cs.Voters), []uint64{1, 2, 3, 4})
	}, m1, m2, m3, m4)
	if v := sorted(m4.n.Voters()); !slices.Equal(v, []uint64{1, 2, 3, 4}) {
		t.Fatalf("the promoted member's Voters(): %v", v)
	}

	// Add a voter directly.
	m5 := nw.start(5)
	confChange(t, m1, raftpb.ConfChangeAddNode, 5, func(cs raftpb.ConfState) bool {
		return slices.Equal(sorted(cs.Voters), []uint64{1, 2, 3, 4, 5})
	}, m1, m2, m3, m4)
	proposeAll(t, m1, span(7, 8), m1, m2, m3, m4, m5)

	// Remove member 2.
	confChange(t, m1, raftpb.ConfChangeRemoveNode, 2, func(cs raftpb.ConfState) bool {
		return slices.Equal(sorted(cs.Voters), []uint64{1, 3, 4, 5})
	}, m1, m3, m4, m5)
	mark := nw.mark()
	appliedBy2 := len(m2.appliedTags())
	// Heartbeats and appends to everyone left...
	m1.tick(3)
	proposeAll(t, m1, span(9, 12), m1, m3, m4, m5)
	// ...and a quorum of the four left without member 2: cut off members
	// 3 and 2 entirely, and 1, 4, 5 still commit.
	nw.isolate(3, true)
	proposeAll(t, m1, span(13, 14), m1, m4, m5)
	nw.isolate(3, false)
	m1.tick(1)
	proposeAll(t, m1, []uint64{15}, m1, m3, m4, m5)
	if to2 := nw.sentSince(mark, func(m raftpb.Message) bool { return m.To == 2 }); len(to2) > 0 {
		t.Fatalf("%d messages sent to the removed member after every other member applied its removal, first %v from %d",
			len(to2), to2[0].Type, to2[0].From)
	}
	if n := len(m2.appliedTags()); n != appliedBy2 {
		t.Fatalf("the removed member applied %d more proposals", n-appliedBy2)
	}
	if pr, ok := m1.n.Status().Progress[2]; ok {
		t.Fatalf("the leader still tracks the removed member: %+v", pr)
	}
}

// A follower that was away while the leader compacted its log past the
// follower's position gets a snapshot (MsgSnap). While the transfer is in
// flight the leader sends it no appends; a failed transfer (reported by
// the sending side) is retried; after a finished one the follower installs
// the snapshot (Apply.Snapshot), applies the entries after it, and keeps up.
func TestClusterSnapshotToLaggingFollower(t *testing.T) {
	nw := newMemNet(t)
	m1, m2, m3 := nw.start(1, 1, 2, 3), nw.start(2, 1, 2, 3), nw.start(3, 1, 2, 3)
	m1.tick(electionTimeout)
	waitLeader(t, 1, m1, m2, m3)
	proposeAll(t, m1, span(1, 5), m1, m2, m3)

	nw.isolate(3, true)
	proposeAll(t, m1, span(6, 50), m1, m2)

	// Snapshot the leader's state machine at what it applied and compact
	// its log there.
	snapIndex := m1.lastApplied()
	cs := m1.confState()
	ms := m1.n.Storage()
	snap, err := ms.CreateSnapshot(snapIndex, &cs, []byte(fmt.Sprintf("state@%d", snapIndex)))
	if err != nil {
		t.Fatalf("CreateSnapshot(%d): %v", snapIndex, err)
	}
	if err := ms.Compact(snapIndex); err != nil {
		t.Fatalf("Compact(%d): %v", snapIndex, err)
	}
	if fi, _ := ms.FirstIndex(); fi != snapIndex+1 {
		t.Fatalf("first index after compaction %d, want %d", fi, snapIndex+1)
	}

	// The test holds every snapshot message.
	snaps := make(chan raftpb.Message, 16)
	nw.mu.Lock()
	nw.onSnap = func(m raftpb.Message) bool { snaps <- m; return false }
	nw.mu.Unlock()
	nextSnap := func(what string) raftpb.Message {
		t.Helper()
		deadline := time.After(waitTimeout)
		for {
			select {
			case m := <-snaps:
				return m
			case <-deadline:
				t.Fatalf("no MsgSnap %s", what)
			case <-time.After(10 * time.Millisecond):
				// Heartbeats make the leader probe the follower again.
				m1.tick(1)
			}
		}
	}

	nw.isolate(3, false)
	first := nextSnap("to the follower that fell behind")
	if first.To != 3 || first.Snapshot.Metadata.Index != snapIndex || string(first.Snapshot.Data) != string(snap.Data) {
		t.Fatalf("MsgSnap to %d at %d with %q; want to 3 at %d with %q",
			first.To, first.Snapshot.Metadata.Index, first.Snapshot.Data, snapIndex, snap.Data)
	}
	if pr := m1.n.Status().Progress[3]; pr.State != tracker.StateSnapshot {
		t.Fatalf("follower's progress while its snapshot is in flight: %v", pr)
	}
	// In flight: heartbeats only, no appends to it.
	mark := nw.mark()
	m1.tick(3)
	proposeAll(t, m1, span(51, 52), m1, m2)
	if apps := nw.sentSince(mark, func(m raftpb.Message) bool { return m.To == 3 && m.Type == raftpb.MsgApp }); len(apps) > 0 {
		t.Fatalf("%d appends sent to a follower whose snapshot is in flight", len(apps))
	}

	// The transfer fails: the leader goes back to probing and sends the
	// snapshot again.
	m1.n.ReportSnapshot(3, raft.SnapshotFailure)
	waitFor(t, "the leader to leave StateSnapshot after a failure", func() bool {
		return m1.n.Status().Progress[3].State != tracker.StateSnapshot
	})
	second := nextSnap("after a failed transfer")
	if second.To != 3 || second.Snapshot.Metadata.Index < snapIndex {
		t.Fatalf("retried MsgSnap to %d at %d", second.To, second.Snapshot.Metadata.Index)
	}

	// This time it arrives and the sender reports it finished.
	m3.n.Step(second)
	m1.n.ReportSnapshot(3, raft.SnapshotFinish)
	waitFor(t, "the follower to install the snapshot", func() bool { return len(m3.snapshots()) == 1 })
	got := m3.snapshots()[0]
	if got.Metadata.Index != second.Snapshot.Metadata.Index || string(got.Data) != string(second.Snapshot.Data) ||
		!slices.Equal(sorted(got.Metadata.ConfState.Voters), []uint64{1, 2, 3}) {
		t.Fatalf("installed snapshot %+v, sent %+v", got.Metadata, second.Snapshot.Metadata)
	}
	// The snapshot is persisted with sync before it is handed over.
	persisted := false
	for _, c := range m3.p.savedCalls() {
		if c.snap.Metadata.Index == got.Metadata.Index && c.sync {
			persisted = true
		}
	}
	if !persisted {
		t.Fatal("the follower handed over a snapshot it had not saved with sync=true")
	}
	nw.mu.Lock()
	nw.onSnap = nil
	nw.mu.Unlock()
	proposeAll(t, m1, span(53, 55), m1, m2, m3)
	waitFor(t, "the leader to replicate to the follower again", func() bool {
		pr := m1.n.Status().Progress[3]
		return pr.State == tracker.StateReplicate && pr.Match >= m1.lastApplied()
	})
	// What it applied: the entries before it fell behind, then (after the
	// snapshot) only entries that follow the snapshot, in order.
	m3.mu.Lock()
	applied := slices.Clone(m3.applied)
	m3.mu.Unlock()
	var after []raftpb.Entry
	for _, e := range applied {
		if e.Index > got.Metadata.Index {
			after = append(after, e)
		}
	}
	if len(after) == 0 || after[0].Index != got.Metadata.Index+1 {
		t.Fatalf("after the snapshot at %d the follower applied from %v", got.Metadata.Index, after)
	}
	checkContiguous(t, after)
	for _, tag := range span(53, 55) {
		if !slices.Contains(tagsOf(after), tag) {
			t.Fatalf("the follower did not apply proposal %d after the snapshot: %v", tag, tagsOf(after))
		}
	}
}

// A member that joins after the leader compacted its log past the member's
// addition learns everything, configuration included, from a snapshot:
// raft and the node's Voters must both reflect it.
func TestClusterJoinFromSnapshot(t *testing.T) {
	nw := newMemNet(t)
	m1, m2, m3 := nw.start(1, 1, 2, 3), nw.start(2, 1, 2, 3), nw.start(3, 1, 2, 3)
	m1.tick(electionTimeout)
	waitLeader(t, 1, m1, m2, m3)
	proposeAll(t, m1, span(1, 5), m1, m2, m3)
	// Member 4 is added as a learner but not started yet.
	confChange(t, m1, raftpb.ConfChangeAddLearnerNode, 4, func(cs raftpb.ConfState) bool {
		return slices.Equal(cs.Learners, []uint64{4})
	}, m1, m2, m3)
	proposeAll(t, m1, span(6, 20), m1, m2, m3)
	snapIndex := m1.lastApplied()
	cs := m1.confState()
	if _, err := m1.n.Storage().CreateSnapshot(snapIndex, &cs, []byte("state")); err != nil {
		t.Fatal(err)
	}
	if err := m1.n.Storage().Compact(snapIndex); err != nil {
		t.Fatal(err)
	}

	m4 := nw.start(4)
	// The leader's heartbeats make it probe the new member again.
	tickUntil(t, "the new member to install a snapshot", electionTimeout, func() bool { return len(m4.snapshots()) == 1 }, m1)
	snap := m4.snapshots()[0]
	if snap.Metadata.Index != snapIndex || !slices.Equal(snap.Metadata.ConfState.Learners, []uint64{4}) {
		t.Fatalf("snapshot installed at %d with %+v; want %d with learner 4", snap.Metadata.Index, snap.Metadata.ConfState, snapIndex)
	}
	proposeAll(t, m1, span(21, 22), m1, m4)
	if got := m4.appliedTags(); !slices.Equal(got, []uint64{21, 22}) {
		t.Fatalf("the new member applied %v after the snapshot, want [21 22]", got)
	}
	if st := m4.n.Status(); !slices.Equal(slices.Sorted(maps.Keys(st.Config.Voters.IDs())), []uint64{1, 2, 3}) {
		t.Fatalf("raft's voters on the new member: %v", st.Config.Voters)
	}
	if v := sorted(m4.n.Voters()); !slices.Equal(v, []uint64{1, 2, 3}) {
		t.Errorf("Voters() on a member that got its configuration from a snapshot = %v, want [1 2 3] (raft's own configuration): "+
			"the node updates it only for conf-change entries, not when it installs a snapshot", v)
	}
	// Promoted through the log, it votes.
	confChange(t, m1, raftpb.ConfChangeAddNode, 4, func(cs raftpb.ConfState) bool {
		return len(cs.Learners) == 0 && len(cs.Voters) == 4
	}, m1, m2, m3, m4)
	if v := sorted(m4.n.Voters()); !slices.Equal(v, []uint64{1, 2, 3, 4}) {
		t.Fatalf("Voters() after promotion = %v", v)
	}
}
