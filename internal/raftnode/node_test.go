package raftnode

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

func TestStartValidatesConfig(t *testing.T) {
	ok := Config{ID: 1, Persister: newMemPersister(), Transport: &recTransport{}, OnDrop: func([]uint64, error) {}, Logger: quiet}
	for _, tc := range []struct {
		name string
		edit func(*Config)
	}{
		{"zero ID", func(c *Config) { c.ID = 0 }},
		{"no persister", func(c *Config) { c.Persister = nil }},
		{"no transport", func(c *Config) { c.Transport = nil }},
		{"no OnDrop", func(c *Config) { c.OnDrop = nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ok
			tc.edit(&cfg)
			if n, err := Start(cfg); err == nil {
				n.Stop()
				t.Fatal("Start accepted the config")
			}
		})
	}
}

// A sole voter elects itself as soon as its configuration is known: the
// node's ticker never fires here, so no election timeout can be involved.
func TestSingleVoterElectsItselfAndCommits(t *testing.T) {
	h := start(t, Config{ID: 1, Bootstrap: []uint64{1}})

	first := h.nextApply()
	if len(first.Entries) == 0 || first.Entries[0].Index != 1 || first.Entries[0].Type != raftpb.EntryConfChange {
		t.Fatalf("first Apply = %+v, want the bootstrap conf change at index 1", first.Entries)
	}
	if cs, ok := first.ConfStates[1]; !ok || !slices.Equal(cs.Voters, []uint64{1}) {
		t.Fatalf("ConfStates[1] = %+v, %v; want voters [1]", cs, ok)
	}

	h.waitLeader()
	if lead, term := h.n.Leader(); lead != 1 || term < 2 {
		t.Fatalf("Leader() = %d, %d; want 1 at term >= 2", lead, term)
	}
	_, term := h.n.Leader()
	for l := [2]uint64{}; l != [2]uint64{1, term}; {
		select {
		case l = <-h.leaders:
		case <-time.After(waitTimeout):
			t.Fatalf("OnLeaderChange never reported leader 1 at term %d", term)
		}
	}
	if v := h.n.Voters(); !slices.Equal(v, []uint64{1}) {
		t.Fatalf("Voters() = %v", v)
	}

	for tag := uint64(1); tag <= 3; tag++ {
		h.n.Propose(tag, payload(tag))
	}
	ents := append(first.Entries, h.applyUntil(3)...)
	checkContiguous(t, ents)
	if got := tagsOf(ents); !slices.Equal(got, []uint64{1, 2, 3}) {
		t.Fatalf("applied proposals %v, want [1 2 3]", got)
	}
	if last := ents[len(ents)-1].Index; h.n.CommitIndex() < last {
		t.Fatalf("CommitIndex() = %d, below applied index %d", h.n.CommitIndex(), last)
	}
	select {
	case d := <-h.drops:
		t.Fatalf("OnDrop(%v, %v) on a leader", d.tags, d.err)
	default:
	}
}

// Every entry handed to the apply loop was saved with sync=true before it
// was handed over. The persister holds each call until the test has looked
// at what was applied so far, so an entry applied before (or without) its
// synced save is caught while that save is still in progress.
func TestPersistBeforeApply(t *testing.T) {
	p := newMemPersister()
	calls := make(chan saveCall)
	release := make(chan struct{})
	done := make(chan struct{})
	p.hook = func(c saveCall) {
		select {
		case calls <- c:
		case <-done:
			return
		}
		select {
		case <-release:
		case <-done:
		}
	}
	h := start(t, Config{ID: 1, Bootstrap: []uint64{1}, Persister: p})
	t.Cleanup(func() { close(done) })

	const want = 50
	var applied []raftpb.Entry
	check := func(ap Apply) {
		t.Helper()
		for _, e := range ap.Entries {
			if !p.isSynced(e) {
				t.Fatalf("entry %d (term %d) applied before it was saved with sync=true", e.Index, e.Term)
			}
		}
		applied = append(applied, ap.Entries...)
	}
	proposed := false
	timeout := time.After(waitTimeout)
	for len(tagsOf(applied)) < want {
		select {
		case c := <-calls:
			// Whatever was handed over before this save started must have
			// been synced by an earlier one.
			for drained := false; !drained; {
				select {
				case ap := <-h.n.Applies():
					check(ap)
				default:
					drained = true
				}
			}
			if len(c.ents) > 0 && !c.sync {
				t.Errorf("SaveRaft with %d entries and sync=false", len(c.ents))
			}
			release <- struct{}{}
		case ap, ok := <-h.n.Applies():
			if !ok {
				t.Fatalf("Applies closed: %v", h.n.Err())
			}
			check(ap)
		case <-timeout:
			t.Fatalf("timed out with %d of %d proposals applied", len(tagsOf(applied)), want)
		}
		if !proposed && h.n.IsLeader() {
			proposed = true
			go func() {
				for tag := uint64(1); tag <= want; tag++ {
					h.n.Propose(tag, payload(tag))
				}
			}()
		}
	}
	checkContiguous(t, applied)
	if got := tagsOf(applied); len(got) != want {
		t.Fatalf("applied %d proposals, want %d", len(got), want)
	}
}

// Proposals queued while the raft goroutine is busy persisting go out
// together: one step, one Ready, one SaveRaft.
func TestProposalsAreBatched(t *testing.T) {
	p := newMemPersister()
	h := start(t, Config{ID: 1, Bootstrap: []uint64{1}, Persister: p})
	h.waitLeader()

	blocked := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	p.setHook(func(c saveCall) {
		if c.dataEntries() == 0 {
			return
		}
		once.Do(func() {
			close(blocked)
			<-release
		})
	})
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})

	const n = 100
	h.n.Propose(0, payload(0))
	select {
	case <-blocked:
	case <-time.After(waitTimeout):
		t.Fatal("the first proposal never reached SaveRaft")
	}
	var wg sync.WaitGroup
	for tag := uint64(1); tag < n; tag++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.n.Propose(tag, payload(tag))
		}()
	}
	wg.Wait()
	close(release)

	seen := map[uint64]bool{}
	for len(seen) < n {
		for _, tag := range tagsOf(h.nextApply().Entries) {
			if seen[tag] {
				t.Fatalf("proposal %d applied twice", tag)
			}
			seen[tag] = true
		}
	}
	var withData []int
	for _, c := range p.savedCalls() {
		if k := c.dataEntries(); k > 0 {
			withData = append(withData, k)
		}
	}
	if !slices.Equal(withData, []int{1, n - 1}) {
		t.Fatalf("proposal entries per SaveRaft call = %v, want [1 %d]", withData, n-1)
	}
	select {
	case d := <-h.drops:
		t.Fatalf("OnDrop(%v, %v)", d.tags, d.err)
	default:
	}
}

// Without a leader raft refuses proposals; OnDrop gets every refused tag.
// The node is one of three voters whose peers never answer, and it never
// ticks, so there is no election at all.
func TestOnDropWithoutLeader(t *testing.T) {
	h := start(t, Config{ID: 1, Bootstrap: []uint64{1, 2, 3}})

	var wg sync.WaitGroup
	for tag := uint64(1); tag <= 20; tag++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.n.Propose(tag, payload(tag))
		}()
	}
	wg.Wait()
	h.n.ProposeConfChange(21, NewConfChange(raftpb.ConfChangeAddLearnerNode, 4, nil))

	got := map[uint64]bool{}
	timeout := time.After(waitTimeout)
	for len(got) < 21 {
		select {
		case d := <-h.drops:
			if !errors.Is(d.err, raft.ErrProposalDropped) {
				t.Fatalf("OnDrop(%v, %v): want raft.ErrProposalDropped", d.tags, d.err)
			}
			for _, tag := range d.tags {
				if got[tag] {
					t.Fatalf("tag %d dropped twice", tag)
				}
				got[tag] = true
			}
		case <-timeout:
			t.Fatalf("OnDrop reported %d of 21 tags", len(got))
		}
	}
	if h.n.IsLeader() {
		t.Fatal("a member of three became leader alone")
	}
	if lead, _ := h.n.Leader(); lead != 0 {
		t.Fatalf("Leader() = %d, want 0", lead)
	}
	if v := h.n.Voters(); !slices.Equal(slices.Sorted(slices.Values(v)), []uint64{1, 2, 3}) {
		t.Fatalf("Voters() = %v", v)
	}
}

// With ticks, a member of three whose peers never answer keeps asking for
// votes through the transport, never sends to itself, and stays without a
// leader.
func TestCampaignsThroughTransport(t *testing.T) {
	h := start(t, Config{ID: 1, Bootstrap: []uint64{1, 2, 3}, TickInterval: time.Millisecond, ElectionTicks: 3})
	waitFor(t, "pre-vote requests to both peers", func() bool {
		to := map[uint64]bool{}
		for _, m := range h.tr.sent() {
			if m.Type == raftpb.MsgPreVote {
				to[m.To] = true
			}
		}
		return to[2] && to[3]
	})
	for _, m := range h.tr.sent() {
		if m.To == 1 {
			t.Fatalf("sent %v to itself", m.Type)
		}
	}
	h.n.Propose(1, payload(1))
	select {
	case d := <-h.drops:
		if !slices.Equal(d.tags, []uint64{1}) {
			t.Fatalf("OnDrop(%v)", d.tags)
		}
	case <-time.After(waitTimeout):
		t.Fatal("proposal without a leader was not dropped")
	}
}

func TestReadIndexOnLeader(t *testing.T) {
	h := start(t, Config{ID: 1, Bootstrap: []uint64{1}})
	h.waitLeader()

	h.n.Propose(1, payload(1))
	ents := h.applyUntil(1)
	idx := ents[len(ents)-1].Index

	for i, rctx := range [][]byte{[]byte("read-1"), []byte("read-2")} {
		h.n.ReadIndex(rctx)
		select {
		case rs := <-h.reads:
			if !bytes.Equal(rs.RequestCtx, rctx) {
				t.Fatalf("read %d: ReadState for %q, want %q", i, rs.RequestCtx, rctx)
			}
			if rs.Index < idx {
				t.Fatalf("read %d: index %d is below the applied write at %d", i, rs.Index, idx)
			}
		case <-time.After(waitTimeout):
			t.Fatalf("read %d: no ReadState", i)
		}
	}
}

var errDisk = errors.New("disk on fire")

func TestSaveRaftErrorStopsNode(t *testing.T) {
	for _, tc := range []struct {
		name string
		// failAfterLeader lets the node become leader before the
		// persister starts failing.
		failAfterLeader bool
	}{
		{"first save", false},
		{"after election", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newMemPersister()
			if !tc.failAfterLeader {
				p.fail(errDisk)
			}
			h := start(t, Config{ID: 1, Bootstrap: []uint64{1}, Persister: p})
			if tc.failAfterLeader {
				h.waitLeader()
				p.fail(errDisk)
				h.n.Propose(1, payload(1))
			}
			select {
			case <-h.n.Done():
			case <-time.After(waitTimeout):
				t.Fatal("node kept running after SaveRaft failed")
			}
			if err := h.n.Err(); !errors.Is(err, errDisk) {
				t.Fatalf("Err() = %v, want it to wrap %v", err, errDisk)
			}
			for ap := range h.n.Applies() {
				if tags := tagsOf(ap.Entries); len(tags) > 0 {
					t.Fatalf("applied %v, which was never saved", tags)
				}
			}
			stopped := make(chan struct{})
			go func() { h.n.Stop(); close(stopped) }()
			select {
			case <-stopped:
			case <-time.After(waitTimeout):
				t.Fatal("Stop blocked on a failed node")
			}
		})
	}
}

// A member restarting from what it persisted re-delivers the committed
// entries after Applied and, as the sole voter, leads again.
func TestRestartFromPersistedLog(t *testing.T) {
	p1 := newMemPersister()
	h1 := start(t, Config{ID: 1, Bootstrap: []uint64{1}, Persister: p1})
	h1.waitLeader()
	for tag := uint64(1); tag <= 5; tag++ {
		h1.n.Propose(tag, payload(tag))
	}
	before := h1.applyUntil(5)
	_, term1 := h1.n.Leader()
	h1.n.Stop()

	hs, ents := p1.state()
	if hs.Commit < before[len(before)-1].Index {
		t.Fatalf("persisted commit %d is below applied index %d", hs.Commit, before[len(before)-1].Index)
	}
	p2 := newMemPersister()
	p2.hs, p2.ents = hs, slices.Clone(ents)
	h2 := start(t, Config{ID: 1, Persister: p2, State: RestartState{HardState: hs, Entries: ents}})

	var again []raftpb.Entry
	for len(again) == 0 || again[len(again)-1].Index < hs.Commit {
		again = append(again, h2.nextApply().Entries...)
	}
	if again[0].Index != 1 {
		t.Fatalf("re-delivery starts at %d, want 1", again[0].Index)
	}
	checkContiguous(t, again)
	if got := tagsOf(again); !slices.Equal(got, []uint64{1, 2, 3, 4, 5}) {
		t.Fatalf("re-delivered proposals %v, want [1 2 3 4 5]", got)
	}
	for _, e := range again[:hs.Commit] {
		if e.Term != ents[e.Index-1].Term || !bytes.Equal(e.Data, ents[e.Index-1].Data) {
			t.Fatalf("entry %d re-delivered as %+v, persisted as %+v", e.Index, e, ents[e.Index-1])
		}
	}

	h2.waitLeader()
	if _, term2 := h2.n.Leader(); term2 <= term1 {
		t.Fatalf("term after restart %d, before %d", term2, term1)
	}
	h2.n.Propose(6, payload(6))
	if got := tagsOf(h2.applyUntil(6)); !slices.Equal(got, []uint64{6}) {
		t.Fatalf("after restart applied %v, want [6]", got)
	}
}

// A restart from a snapshot: raft knows the configuration from the
// snapshot, re-delivers only what follows Applied (the snapshot index), and
// the sole voter campaigns once that is done.
func TestRestartFromSnapshot(t *testing.T) {
	snap := raftpb.Snapshot{Metadata: raftpb.SnapshotMetadata{
		Index: 10, Term: 3, ConfState: raftpb.ConfState{Voters: []uint64{1}},
	}}
	ents := []raftpb.Entry{
		{Index: 11, Term: 3, Data: payload(11)},
		{Index: 12, Term: 4, Data: payload(12)},
		{Index: 13, Term: 4, Data: payload(13)},
	}
	hs := raftpb.HardState{Term: 4, Vote: 1, Commit: 12}
	h := start(t, Config{ID: 1, Applied: 10, State: RestartState{HardState: hs, Snapshot: snap, Entries: ents}})

	got := tagsOf(h.applyUntil(12))
	if !slices.Equal(got, []uint64{11, 12}) {
		t.Fatalf("re-delivered %v, want [11 12]", got)
	}
	h.waitLeader()
	// Entry 13 was never committed; the new leader commits it with its
	// first entry.
	if got := tagsOf(h.applyUntil(13)); !slices.Equal(got, []uint64{13}) {
		t.Fatalf("then applied %v, want [13]", got)
	}
	if _, term := h.n.Leader(); term <= 4 {
		t.Fatalf("leader at term %d, want > 4", term)
	}
}

// A learner added through the log shows up in the Apply's ConfStates but
// not among the voters, and the leader replicates to it.
func TestConfChangeAddsLearner(t *testing.T) {
	h := start(t, Config{ID: 1, Bootstrap: []uint64{1}})
	h.waitLeader()
	h.n.ProposeConfChange(9, NewConfChange(raftpb.ConfChangeAddLearnerNode, 2, nil))

	for found := false; !found; {
		ap := h.nextApply()
		for _, e := range ap.Entries {
			if e.Type != raftpb.EntryConfChangeV2 {
				continue
			}
			cs, ok := ap.ConfStates[e.Index]
			if !ok {
				t.Fatalf("no ConfState for the conf change at %d", e.Index)
			}
			if !slices.Equal(cs.Voters, []uint64{1}) || !slices.Equal(cs.Learners, []uint64{2}) {
				t.Fatalf("ConfState %+v, want voters [1] learners [2]", cs)
			}
			found = true
		}
	}
	if v := h.n.Voters(); !slices.Equal(v, []uint64{1}) {
		t.Fatalf("Voters() = %v", v)
	}
	h.n.Propose(1, payload(1))
	h.applyUntil(1)
	waitFor(t, "an append to the learner", func() bool {
		for _, m := range h.tr.sent() {
			if m.To == 2 && m.Type == raftpb.MsgApp {
				return true
			}
		}
		return false
	})
}

func TestStopIsIdempotentAndPrompt(t *testing.T) {
	t.Run("sequential", func(t *testing.T) {
		h := start(t, Config{ID: 1, Bootstrap: []uint64{1}, TickInterval: time.Millisecond})
		h.waitLeader()
		stopWithin(t, h.n)
		stopWithin(t, h.n)
		if err := h.n.Err(); err != nil {
			t.Fatalf("Err() after Stop = %v", err)
		}
		drainClosed(t, h.n)
	})
	// Callers racing to stop a node (a failing server and its shutdown
	// path) must all return, without closing anything twice. Stop's own
	// bookkeeping is hammered on bare nodes whose goroutine has already
	// exited, which makes a lost race likely enough to be seen on every run.
	t.Run("concurrent", func(t *testing.T) {
		h := start(t, Config{ID: 1, Bootstrap: []uint64{1}, TickInterval: time.Millisecond})
		stopConcurrently(h.n, 8)
		drainClosed(t, h.n)
		for range 50000 {
			n := &Node{stopc: make(chan struct{}), donec: make(chan struct{})}
			close(n.donec)
			stopConcurrently(n, 2)
		}
	})
	// The apply loop has stopped draining: the raft goroutine waits to hand
	// over a batch, and Stop must still end it, without reporting an error.
	t.Run("apply loop not draining", func(t *testing.T) {
		h := start(t, Config{ID: 1, Bootstrap: []uint64{1}})
		h.waitLeader()
		for tag := uint64(0); len(h.n.applyc) < cap(h.n.applyc); tag++ {
			k := len(h.n.applyc)
			h.n.Propose(tag, payload(tag))
			waitFor(t, fmt.Sprintf("proposal %d to be handed over", tag), func() bool { return len(h.n.applyc) > k })
		}
		// One more, which the raft goroutine cannot hand over: once its
		// commit is known, the goroutine is at (or on its way to) the send.
		const last = 1 << 20
		h.n.Propose(last, payload(last))
		var idx uint64
		waitFor(t, "the last proposal to be persisted", func() bool {
			for _, c := range h.p.savedCalls() {
				for _, e := range c.ents {
					if tag, ok := tagOf(e); ok && tag == last {
						idx = e.Index
						return true
					}
				}
			}
			return false
		})
		waitFor(t, "the last proposal to commit", func() bool { return h.n.CommitIndex() >= idx })
		stopWithin(t, h.n)
		if err := h.n.Err(); err != nil {
			t.Fatalf("Err() after Stop = %v", err)
		}
		drainClosed(t, h.n)
	})
}

// stopConcurrently calls n.Stop from k goroutines released together (they
// spin on a flag, so that they reach Stop as nearly at once as they can).
func stopConcurrently(n *Node, k int) {
	var wg sync.WaitGroup
	var ready atomic.Int32
	var released atomic.Bool
	for range k {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ready.Add(1)
			for !released.Load() {
				runtime.Gosched()
			}
			n.Stop()
		}()
	}
	for ready.Load() < int32(k) {
		runtime.Gosched()
	}
	released.Store(true)
	wg.Wait()
}

func stopWithin(t *testing.T, n *Node) {
	t.Helper()
	stopped := make(chan struct{})
	go func() { n.Stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(waitTimeout):
		t.Fatal("Stop did not return")
	}
	select {
	case <-n.Done():
	default:
		t.Fatal("Done not closed after Stop")
	}
}

func drainClosed(t *testing.T, n *Node) {
	t.Helper()
	timeout := time.After(waitTimeout)
	for {
		select {
		case _, ok := <-n.Applies():
			if !ok {
				return
			}
		case <-timeout:
			t.Fatal("Applies not closed after Stop")
		}
	}
}

// Three nodes wired through a transport that steps messages into each
// other: they elect a leader, and a proposal made on any member (followers
// forward to the leader) is applied everywhere in the same order.
func TestThreeMembersReplicate(t *testing.T) {
	var mu sync.Mutex
	nodes := map[uint64]*Node{}
	route := func(m raftpb.Message) {
		mu.Lock()
		n := nodes[m.To]
		mu.Unlock()
		if n != nil {
			n.Step(m)
		}
	}
	hs := map[uint64]*harness{}
	for id := uint64(1); id <= 3; id++ {
		hs[id] = start(t, Config{
			ID: id, Bootstrap: []uint64{1, 2, 3},
			TickInterval: time.Millisecond, ElectionTicks: 50,
			Transport: &recTransport{route: route},
		})
		mu.Lock()
		nodes[id] = hs[id].n
		mu.Unlock()
	}
	var leader uint64
	waitFor(t, "a leader all members agree on", func() bool {
		l1, _ := hs[1].n.Leader()
		l2, _ := hs[2].n.Leader()
		l3, _ := hs[3].n.Leader()
		leader = l1
		return l1 != 0 && l1 == l2 && l2 == l3
	})
	follower := leader%3 + 1
	hs[leader].n.Propose(1, payload(1))
	hs[follower].n.Propose(2, payload(2))

	var logs [][]raftpb.Entry
	for id := uint64(1); id <= 3; id++ {
		var ents []raftpb.Entry
		for !slices.Contains(tagsOf(ents), 1) || !slices.Contains(tagsOf(ents), 2) {
			ents = append(ents, hs[id].nextApply().Entries...)
		}
		checkContiguous(t, ents)
		logs = append(logs, ents)
	}
	for i := 1; i < 3; i++ {
		if !slices.Equal(tagsOf(logs[i]), tagsOf(logs[0])) {
			t.Fatalf("member %d applied %v, member 1 applied %v", i+1, tagsOf(logs[i]), tagsOf(logs[0]))
		}
	}
	for id, h := range hs {
		for _, e := range logs[id-1] {
			if !h.p.isSynced(e) {
				t.Fatalf("member %d applied entry %d without a synced save", id, e.Index)
			}
		}
	}
}
