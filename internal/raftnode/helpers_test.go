package raftnode

import (
	"encoding/binary"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// never is a tick interval no test outlives: a node configured with it
// only does what it does without ticks (no election timeouts, no
// heartbeats), which makes its behaviour deterministic.
const never = time.Hour

// waitTimeout bounds every wait; reaching it means the test failed.
const waitTimeout = 5 * time.Second

// saveCall is one SaveRaft call as the persister saw it.
type saveCall struct {
	hs   raftpb.HardState
	ents []raftpb.Entry
	snap raftpb.Snapshot
	sync bool
}

// dataEntries counts the entries of c that carry a proposal.
func (c saveCall) dataEntries() int {
	n := 0
	for _, e := range c.ents {
		if e.Type == raftpb.EntryNormal && len(e.Data) > 0 {
			n++
		}
	}
	return n
}

// memPersister is a Persister that keeps the durable state in memory,
// truncating the log on conflict as storage does, and records every call.
type memPersister struct {
	mu    sync.Mutex
	hs    raftpb.HardState
	ents  []raftpb.Entry
	calls []saveCall
	// synced maps the index of each entry saved with sync=true to its term.
	synced map[uint64]uint64
	// err, once set, is returned by every later call (nothing is saved).
	err error
	// hook, if set, runs at the start of every call that does not fail,
	// before anything is recorded; it may block to make the persister slow.
	hook func(saveCall)
}

func newMemPersister() *memPersister {
	return &memPersister{synced: map[uint64]uint64{}}
}

func (p *memPersister) SaveRaft(hs raftpb.HardState, ents []raftpb.Entry, snap raftpb.Snapshot, sync bool) error {
	c := saveCall{hs: hs, ents: append([]raftpb.Entry(nil), ents...), snap: snap, sync: sync}
	p.mu.Lock()
	err, hook := p.err, p.hook
	p.mu.Unlock()
	if err != nil {
		return err
	}
	// The save takes effect when the call returns, as a synced write does.
	if hook != nil {
		hook(c)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, c)
	if !raft.IsEmptyHardState(hs) {
		p.hs = hs
	}
	if len(c.ents) > 0 {
		first := c.ents[0].Index
		keep := 0
		for keep < len(p.ents) && p.ents[keep].Index < first {
			keep++
		}
		p.ents = append(p.ents[:keep], c.ents...)
		if sync {
			for _, e := range c.ents {
				p.synced[e.Index] = e.Term
			}
		}
	}
	return nil
}

func (p *memPersister) setHook(h func(saveCall)) {
	p.mu.Lock()
	p.hook = h
	p.mu.Unlock()
}

func (p *memPersister) fail(err error) {
	p.mu.Lock()
	p.err = err
	p.mu.Unlock()
}

// state returns what a restart would load.
func (p *memPersister) state() (raftpb.HardState, []raftpb.Entry) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hs, append([]raftpb.Entry(nil), p.ents...)
}

func (p *memPersister) savedCalls() []saveCall {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]saveCall(nil), p.calls...)
}

// isSynced reports whether entry e was saved with sync=true.
func (p *memPersister) isSynced(e raftpb.Entry) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	term, ok := p.synced[e.Index]
	return ok && term == e.Term
}

// recTransport records the messages a node sends. If route is set, it is
// called with each message as well.
type recTransport struct {
	mu    sync.Mutex
	msgs  []raftpb.Message
	route func(raftpb.Message)
}

func (t *recTransport) Send(msgs []raftpb.Message) {
	t.mu.Lock()
	t.msgs = append(t.msgs, msgs...)
	route := t.route
	t.mu.Unlock()
	if route != nil {
		for _, m := range msgs {
			route(m)
		}
	}
}

func (t *recTransport) sent() []raftpb.Message {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]raftpb.Message(nil), t.msgs...)
}

// dropped is one OnDrop call.
type dropped struct {
	tags []uint64
	err  error
}

// harness is a node with fakes around it and channels of its callbacks.
type harness struct {
	t       *testing.T
	n       *Node
	p       *memPersister
	tr      *recTransport
	drops   chan dropped
	reads   chan raft.ReadState
	leaders chan [2]uint64
}

// start starts a node with fakes. cfg's Persister and Transport are used
// if set; callbacks are always the harness's.
func start(t *testing.T, cfg Config) *harness {
	t.Helper()
	h := &harness{
		t:       t,
		p:       newMemPersister(),
		tr:      &recTransport{},
		drops:   make(chan dropped, 1024),
		reads:   make(chan raft.ReadState, 1024),
		leaders: make(chan [2]uint64, 1024),
	}
	if p, ok := cfg.Persister.(*memPersister); ok {
		h.p = p
	}
	if tr, ok := cfg.Transport.(*recTransport); ok {
		h.tr = tr
	}
	cfg.Persister, cfg.Transport = h.p, h.tr
	cfg.OnDrop = func(tags []uint64, err error) {
		h.drops <- dropped{tags: append([]uint64(nil), tags...), err: err}
	}
	cfg.OnReadState = func(rs raft.ReadState) { h.reads <- rs }
	cfg.OnLeaderChange = func(lead, term uint64) { h.leaders <- [2]uint64{lead, term} }
	if cfg.TickInterval == 0 {
		cfg.TickInterval = never
	}
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	n, err := Start(cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	h.n = n
	t.Cleanup(func() {
		h.p.setHook(nil)
		n.Stop()
	})
	return h
}

// waitFor polls cond until it holds, failing the test after waitTimeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitLeader waits until the node is the leader.
func (h *harness) waitLeader() {
	h.t.Helper()
	waitFor(h.t, "leadership", h.n.IsLeader)
}

// nextApply returns the next batch from Applies.
func (h *harness) nextApply() Apply {
	h.t.Helper()
	select {
	case ap, ok := <-h.n.Applies():
		if !ok {
			h.t.Fatalf("Applies closed (Err: %v)", h.n.Err())
		}
		return ap
	case <-time.After(waitTimeout):
		h.t.Fatal("timed out waiting for an Apply")
	}
	panic("unreachable")
}

// applyUntil collects applied entries until one carrying proposal tag
// last has been seen, and returns the entries in the order applied.
func (h *harness) applyUntil(last uint64) []raftpb.Entry {
	h.t.Helper()
	var out []raftpb.Entry
	for {
		ap := h.nextApply()
		out = append(out, ap.Entries...)
		for _, e := range ap.Entries {
			if tag, ok := tagOf(e); ok && tag == last {
				return out
			}
		}
	}
}

// payload encodes a proposal tag as entry data, so that applied entries
// can be matched to proposals.
func payload(tag uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte("tag:"), tag)
}

func tagOf(e raftpb.Entry) (uint64, bool) {
	if e.Type != raftpb.EntryNormal || len(e.Data) != 12 || string(e.Data[:4]) != "tag:" {
		return 0, false
	}
	return binary.BigEndian.Uint64(e.Data[4:]), true
}

// tagsOf returns the tags of the proposals among ents, in order.
func tagsOf(ents []raftpb.Entry) []uint64 {
	var out []uint64
	for _, e := range ents {
		if tag, ok := tagOf(e); ok {
			out = append(out, tag)
		}
	}
	return out
}

// checkContiguous fails unless ents have consecutive indexes.
func checkContiguous(t *testing.T, ents []raftpb.Entry) {
	t.Helper()
	for i := 1; i < len(ents); i++ {
		if ents[i].Index != ents[i-1].Index+1 {
			t.Fatalf("applied index %d after %d", ents[i].Index, ents[i-1].Index)
		}
	}
}
