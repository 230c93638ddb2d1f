package watch

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// newManualHub returns a hub whose catch-up rounds the test runs itself
// (syncOnce), with streams of buf responses and sync batches of batch
// changes.
func newManualHub(t *testing.T, src *fakeStore, buf, batch int) *Hub {
	t.Helper()
	h := initHub(Config{Source: src, StreamBuffer: buf, SyncBatch: batch, SyncInterval: time.Hour})
	close(h.donec) // no catch-up goroutine to wait for in Stop
	t.Cleanup(h.Stop)
	return h
}

// revSeq checks that one watcher's events are exactly the revisions from
// its start on, once each and in order (every revision of the tests that
// use it is one put of the watched key).
type revSeq struct {
	name string
	id   int64
	next int64
}

func (q *revSeq) take(t *testing.T, r Response) {
	t.Helper()
	if r.WatchID != q.id {
		t.Fatalf("%s: response for watcher %d, want %d: %+v", q.name, r.WatchID, q.id, r)
	}
	if len(r.Events) == 0 {
		t.Fatalf("%s: response without events: %+v", q.name, r)
	}
	for _, e := range r.Events {
		if rev := e.Kv.ModRevision; rev != q.next {
			t.Fatalf("%s: got revision %d, want %d (%s)", q.name, rev, q.next, evString(r.Events))
		}
		q.next++
	}
}

// drain takes every response queued on s.
func (q *revSeq) drain(t *testing.T, s *Stream) {
	t.Helper()
	for {
		select {
		case r := <-s.Chan():
			q.take(t, r)
		default:
			return
		}
	}
}

func mustWatchFrom(t *testing.T, s *Stream, key string, start int64) int64 {
	t.Helper()
	id, _, err := s.Watch(WatchOptions{Key: []byte(key), StartRev: start})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func isSynced(h *Hub, s *Stream, id int64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	w := s.watchers[id]
	return w != nil && w.synced
}

// runRounds runs catch-up rounds while the hub reports more work, calling
// between(i) after round i, and fails if that never ends.
func runRounds(t *testing.T, h *Hub, between func()) {
	t.Helper()
	for i := 0; ; i++ {
		if i == 1000 {
			t.Fatal("catch-up still reports more work after 1000 rounds")
		}
		more, _ := h.syncOnce()
		between()
		if !more {
			return
		}
	}
}

// TestCatchUpKeepsWatchersApart: three watchers catch up from storage, far
// apart (the gaps between their start revisions are larger than a sync
// batch). The oldest one's stream is full and never read. The others must
// not wait for it, must never be moved back to its revisions, and must get
// every event from their start once, in order; the hub must not re-read
// history in a loop for the stalled one; and once it reads again, it too
// gets everything once.
func TestCatchUpKeepsWatchersApart(t *testing.T) {
	src := newFakeStore()
	h := newManualHub(t, src, 2, 10)
	for i := range 100 {
		h.Notify(src.write("k", fmt.Sprint(i))) // revs 2..101
	}
	stalledS, readerS, slowS := h.NewStream(), h.NewStream(), h.NewStream()
	stalled := &revSeq{name: "stalled", id: mustWatchFrom(t, stalledS, "k", 2), next: 2}
	reader := &revSeq{name: "reader", id: mustWatchFrom(t, readerS, "k", 80), next: 80}
	slow := &revSeq{name: "slow", id: mustWatchFrom(t, slowS, "k", 30), next: 30}

	// The reader drains its stream after every round; the slow one takes
	// one response per round; the stalled one reads nothing.
	takeOne := func() {
		select {
		case r := <-slowS.Chan():
			slow.take(t, r)
		default:
		}
	}
	for tick := 0; slow.next <= 101; tick++ {
		if tick == 100 {
			t.Fatalf("the slow watcher is at revision %d after 100 ticks", slow.next)
		}
		runRounds(t, h, func() { reader.drain(t, readerS); takeOne() })
	}
	if reader.next != 102 || !isSynced(h, readerS, reader.id) {
		t.Fatalf("the reader got revisions up to %d (synced %v) while another watcher was stalled, want all up to 101",
			reader.next-1, isSynced(h, readerS, reader.id))
	}
	if !isSynced(h, slowS, slow.id) {
		t.Fatal("the slow watcher has every event but is not synced")
	}
	if got := len(stalledS.Chan()); got != cap(stalledS.Chan()) {
		t.Fatalf("the stalled stream holds %d responses, want it full (%d)", got, cap(stalledS.Chan()))
	}

	// Only the stalled watcher is behind, and its stream is full: a round
	// has nothing to do, reads nothing and says so.
	reads := src.historyReads()
	for range 3 {
		if more, full := h.syncOnce(); more || !full {
			t.Fatalf("a round with only a full stream behind: more work %v, full streams %v; want false, true", more, full)
		}
	}
	if n := src.historyReads() - reads; n != 0 {
		t.Fatalf("%d history reads for a watcher whose stream is full", n)
	}

	// New writes reach the synced watchers directly.
	h.Notify(src.write("k", "new")) // rev 102
	reader.drain(t, readerS)
	slow.drain(t, slowS)
	if reader.next != 103 || slow.next != 103 {
		t.Fatalf("after a write at 102: reader at %d, slow at %d", reader.next, slow.next)
	}

	// The stalled one reads again: everything since 2, once, in order.
	for tick := 0; stalled.next <= 102; tick++ {
		if tick == 100 {
			t.Fatalf("the stalled watcher is at revision %d after 100 ticks of reading", stalled.next)
		}
		stalled.drain(t, stalledS)
		runRounds(t, h, func() { stalled.drain(t, stalledS) })
	}
	if !isSynced(h, stalledS, stalled.id) {
		t.Fatal("the stalled watcher caught up but is not synced")
	}
	if more, full := h.syncOnce(); more || full {
		t.Fatalf("a round with every watcher synced: more work %v, full streams %v", more, full)
	}
	h.Notify(src.write("k", "last")) // rev 103
	for _, c := range []struct {
		q *revSeq
		s *Stream
	}{{stalled, stalledS}, {reader, readerS}, {slow, slowS}} {
		c.q.take(t, recv(t, c.s))
		noResponse(t, c.s)
		if c.q.next != 104 {
			t.Fatalf("%s: at revision %d after the last write, want 104", c.q.name, c.q.next)
		}
	}
}

// TestStalledWatcherDoesNotHoldBackNewOne runs the same situation with the
// hub's own catch-up goroutine: a watcher whose stream is full and far
// behind must not keep a watcher from a later start revision from getting
// its events, and must get its own once it reads again.
func TestStalledWatcherDoesNotHoldBackNewOne(t *testing.T) {
	src := newFakeStore()
	h := New(Config{Source: src, StreamBuffer: 2, SyncBatch: 10, SyncInterval: 5 * time.Millisecond})
	t.Cleanup(h.Stop)
	for i := range 100 {
		h.Notify(src.write("k", fmt.Sprint(i))) // revs 2..101
	}
	stalledS := h.NewStream()
	stalled := &revSeq{name: "stalled", id: mustWatchFrom(t, stalledS, "k", 2), next: 2}
	for deadline := time.Now().Add(10 * time.Second); len(stalledS.Chan()) < cap(stalledS.Chan()); {
		if time.Now().After(deadline) {
			t.Fatal("the stalled stream did not fill within 10s")
		}
		time.Sleep(time.Millisecond)
	}
	newS := h.NewStream()
	fresh := &revSeq{name: "new", id: mustWatchFrom(t, newS, "k", 80), next: 80}
	for fresh.next <= 101 {
		fresh.take(t, recv(t, newS))
	}
	// Writes go on; then the stalled one reads.
	for i := range 20 {
		h.Notify(src.write("k", fmt.Sprint(i))) // revs 102..121
	}
	for fresh.next <= 121 {
		fresh.take(t, recv(t, newS))
	}
	for stalled.next <= 121 {
		stalled.take(t, recv(t, stalledS))
	}
	noResponse(t, newS)
	noResponse(t, stalledS)
}

// TestBurstLargerThanStream: one put for more watchers of one stream than
// the stream holds. The first ones get it directly, the rest once the
// reader has made room, each exactly once.
func TestBurstLargerThanStream(t *testing.T) {
	src := newFakeStore()
	h := newHub(t, src, 4)
	s := h.NewStream()
	const n = 50
	for range n {
		mustWatchFrom(t, s, "k", 0)
	}
	h.Notify(src.write("k", "v")) // rev 2
	got := map[int64]bool{}
	for len(got) < n {
		r := recv(t, s)
		if got[r.WatchID] || evString(r.Events) != "PUT k@2;" {
			t.Fatalf("watcher %d: %q (got it before: %v)", r.WatchID, evString(r.Events), got[r.WatchID])
		}
		got[r.WatchID] = true
	}
	h.Notify(src.write("k", "w")) // rev 3: the same again
	for range n {
		if r := recv(t, s); evString(r.Events) != "PUT k@3;" {
			t.Fatalf("watcher %d: %q", r.WatchID, evString(r.Events))
		}
	}
	noResponse(t, s)
}

// TestCatchUpCompactedMeanwhile: history is compacted while watchers catch
// up, once between rounds and once between a round's start and its read.
// Each watcher gets its events in order up to where it had read, then the
// compaction notice, and nothing after; a watcher canceled meanwhile gets
// nothing more.
func TestCatchUpCompactedMeanwhile(t *testing.T) {
	src := newFakeStore()
	h := newManualHub(t, src, 1, 5)
	for i := range 60 {
		h.Notify(src.write("k", fmt.Sprint(i))) // revs 2..61
	}
	aS, bS, cS := h.NewStream(), h.NewStream(), h.NewStream()
	a := &revSeq{name: "a", id: mustWatchFrom(t, aS, "k", 2), next: 2}
	b := &revSeq{name: "b", id: mustWatchFrom(t, bS, "k", 5), next: 5}
	c := &revSeq{name: "c", id: mustWatchFrom(t, cS, "k", 20), next: 20}
	h.syncOnce() // one window each: a 2..6, b 5..6, c 20..24
	a.take(t, recv(t, aS))
	b.take(t, recv(t, bS))
	c.take(t, recv(t, cS))
	if a.next != 7 || b.next != 7 || c.next != 25 {
		t.Fatalf("after one round: a at %d, b at %d, c at %d; want 7, 7, 25", a.next, b.next, c.next)
	}

	// b is canceled; the store is compacted at 30 between rounds.
	if err := bS.Cancel(b.id); err != nil {
		t.Fatal(err)
	}
	src.compactAt(30)
	runRounds(t, h, func() {})
	for _, q := range []struct {
		q *revSeq
		s *Stream
	}{{a, aS}, {c, cS}} {
		if r := recv(t, q.s); r.WatchID != q.q.id || r.CompactRevision != 30 || len(r.Events) != 0 {
			t.Fatalf("%s: want the compaction notice at 30, got %+v", q.q.name, r)
		}
		noResponse(t, q.s)
	}
	noResponse(t, bS)

	// A compaction that lands after a round has looked at the compaction
	// revision and before it reads history.
	dS := h.NewStream()
	d := &revSeq{name: "d", id: mustWatchFrom(t, dS, "k", 40), next: 40}
	src.mu.Lock()
	src.beforeRead = func() {
		src.mu.Lock()
		src.compact, src.beforeRead = 50, nil
		src.mu.Unlock()
	}
	src.mu.Unlock()
	if more, _ := h.syncOnce(); !more {
		t.Fatal("a round whose read found history compacted reports no more work")
	}
	noResponse(t, dS)
	runRounds(t, h, func() {})
	if r := recv(t, dS); r.WatchID != d.id || r.CompactRevision != 50 || len(r.Events) != 0 {
		t.Fatalf("d: want the compaction notice at 50, got %+v", r)
	}
	noResponse(t, dS)
	h.mu.Lock()
	behind := len(h.unsynced)
	h.mu.Unlock()
	if behind != 0 {
		t.Fatalf("%d watchers still catching up after their history was compacted", behind)
	}
}

// TestCatchUpAcrossReset: the store is replaced (Reset) between a round's
// read and its delivery; what was read before is not delivered, and the
// watcher catches up from the new store.
func TestCatchUpAcrossReset(t *testing.T) {
	src := newFakeStore()
	h := newManualHub(t, src, 4, 100)
	for i := range 10 {
		h.Notify(src.write("k", fmt.Sprint(i))) // revs 2..11
	}
	s := h.NewStream()
	q := &revSeq{name: "w", id: mustWatchFrom(t, s, "k", 5), next: 5}
	src.mu.Lock()
	src.afterRead = func() {
		// The new store has the same revisions with other values.
		src.mu.Lock()
		src.afterRead = nil
		for i := range src.history {
			src.history[i].KV.Value = []byte("replaced")
		}
		src.mu.Unlock()
		h.Reset()
	}
	src.mu.Unlock()
	runRounds(t, h, func() {})
	r := recv(t, s)
	q.take(t, r)
	if q.next != 12 {
		t.Fatalf("caught up to %d, want 11", q.next-1)
	}
	for _, e := range r.Events {
		if string(e.Kv.Value) != "replaced" {
			t.Fatalf("event at %d from the store before the reset: %q", e.Kv.ModRevision, e.Kv.Value)
		}
	}
	noResponse(t, s)
}

// TestWatcherGauges: etcd's watcher gauges follow watchers as they are
// added, fall behind, catch up and go.
func TestWatcherGauges(t *testing.T) {
	gauge := func(name string) float64 {
		t.Helper()
		mfs, err := prometheus.DefaultGatherer.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == name {
				return mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		t.Fatalf("no metric %s", name)
		return 0
	}
	const (
		streams  = "etcd_debugging_mvcc_watch_stream_total"
		watchers = "etcd_debugging_mvcc_watcher_total"
		slow     = "etcd_debugging_mvcc_slow_watcher_total"
	)
	base := map[string]float64{streams: gauge(streams), watchers: gauge(watchers), slow: gauge(slow)}
	expect := func(what string, s, w, sl float64) {
		t.Helper()
		for name, want := range map[string]float64{streams: s, watchers: w, slow: sl} {
			if got := gauge(name) - base[name]; got != want {
				t.Fatalf("%s: %s moved by %v, want %v", what, name, got, want)
			}
		}
	}
	src := newFakeStore()
	h := newManualHub(t, src, 1, 10)
	for i := range 10 {
		h.Notify(src.write("k", fmt.Sprint(i))) // revs 2..11
	}
	s := h.NewStream()
	mustWatchFrom(t, s, "k", 0)
	past := mustWatchFrom(t, s, "k", 2)
	expect("a stream with a live and a past watcher", 1, 2, 1)
	runRounds(t, h, func() {})
	expect("caught up", 1, 2, 0)
	h.Notify(src.write("k", "x")) // the stream is full: both fall behind
	expect("fallen behind", 1, 2, 2)
	if err := s.Cancel(past); err != nil {
		t.Fatal(err)
	}
	expect("one canceled", 1, 1, 1)
	s.Close()
	expect("closed", 0, 0, 0)
}
