package server

import (
	"io"
	"log/slog"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"go.etcd.io/raft/v3/raftpb"
)

type sendFunc func([]raftpb.Message)

func (f sendFunc) Send(msgs []raftpb.Message) { f(msgs) }

// TestHeartbeatMonitor counts a heartbeat as failed when it goes to a
// member more than two heartbeat intervals after the previous one of the
// same term, as etcd does; a new term starts afresh, and every message is
// passed on.
func TestHeartbeatMonitor(t *testing.T) {
	var passed int
	h := newHeartbeatMonitor(sendFunc(func(msgs []raftpb.Message) { passed += len(msgs) }), 100*time.Millisecond,
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	clock := time.Unix(1000, 0)
	h.now = func() time.Time { return clock }
	failures := func() float64 {
		var m dto.Metric
		if err := metricHeartbeatSendFailures.Write(&m); err != nil {
			t.Fatal(err)
		}
		return m.GetCounter().GetValue()
	}
	start := failures()
	hb := func(to, term uint64) raftpb.Message {
		return raftpb.Message{Type: raftpb.MsgHeartbeat, To: to, Term: term}
	}
	steps := []struct {
		after time.Duration
		msgs  []raftpb.Message
		fails float64 // failures counted so far
	}{
		{0, []raftpb.Message{hb(2, 5), hb(3, 5), {Type: raftpb.MsgApp, To: 2, Term: 5}}, 0},
		{100 * time.Millisecond, []raftpb.Message{hb(2, 5), hb(3, 5)}, 0},
		{200 * time.Millisecond, []raftpb.Message{hb(2, 5)}, 0},                     // exactly two intervals: on time
		{250 * time.Millisecond, []raftpb.Message{hb(2, 5), hb(3, 5)}, 2},           // both late (3 by 450ms)
		{time.Second, []raftpb.Message{hb(2, 7)}, 2},                                // a new term: the election, not a delay
		{150 * time.Millisecond, []raftpb.Message{{Type: raftpb.MsgApp, To: 2}}, 2}, // only heartbeats count
		{100 * time.Millisecond, []raftpb.Message{hb(2, 7)}, 3},                     // 250ms after the last heartbeat
	}
	for i, st := range steps {
		clock = clock.Add(st.after)
		h.Send(st.msgs)
		if got := failures() - start; got != st.fails {
			t.Fatalf("step %d: %v failures counted, want %v", i, got, st.fails)
		}
	}
	if passed != 11 {
		t.Fatalf("%d messages passed on, want all 11", passed)
	}
}
