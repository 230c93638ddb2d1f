package watch

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/cairn-io/cairn/internal/mvcc"
)

// fakeStore is an in-memory history with the store's revision rules: each
// write call makes one revision.
type fakeStore struct {
	mu      sync.Mutex
	rev     int64
	compact int64
	history []mvcc.Change
	reads   int // History calls
	// If set, called (without mu) before and after each History read.
	beforeRead, afterRead func()
}

func newFakeStore() *fakeStore { return &fakeStore{rev: 1} }

func (f *fakeStore) Rev() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rev
}

func (f *fakeStore) CompactRev() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.compact
}

func (f *fakeStore) History(from, to int64, fn func(mvcc.Change) bool) error {
	f.mu.Lock()
	f.reads++
	before, after := f.beforeRead, f.afterRead
	f.mu.Unlock()
	if before != nil {
		before()
	}
	if after != nil {
		defer after()
	}
	f.mu.Lock()
	hist := append([]mvcc.Change(nil), f.history...)
	compact := f.compact
	f.mu.Unlock()
	if from < compact {
		return mvcc.ErrCompacted
	}
	for _, c := range hist {
		if c.KV.ModRevision < from || c.KV.ModRevision > to {
			continue
		}
		if !fn(c) {
			return nil
		}
	}
	return nil
}

// write records one revision: puts of key=value pairs, or deletes of keys
// given with an empty value, and returns its changes for Notify.
func (f *fakeStore) write(kvs ...string) []mvcc.Change {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rev++
	var out []mvcc.Change
	for i := 0; i < len(kvs); i += 2 {
		c := mvcc.Change{KV: mvccpb.KeyValue{Key: []byte(kvs[i]), Value: []byte(kvs[i+1]), ModRevision: f.rev, CreateRevision: f.rev, Version: 1}}
		if kvs[i+1] == "" {
			c.Delete = true
			c.KV = mvccpb.KeyValue{Key: []byte(kvs[i]), ModRevision: f.rev}
		}
		out = append(out, c)
	}
	f.history = append(f.history, out...)
	return out
}

func (f *fakeStore) historyReads() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reads
}

func (f *fakeStore) compactAt(rev int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.compact = rev
}

func newHub(t *testing.T, src *fakeStore, buf int) *Hub {
	t.Helper()
	h := New(Config{Source: src, StreamBuffer: buf, SyncInterval: 5 * time.Millisecond, SyncBatch: 3})
	t.Cleanup(h.Stop)
	return h
}

// recv waits for the next response on s.
func recv(t *testing.T, s *Stream) Response {
	t.Helper()
	select {
	case r := <-s.Chan():
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no response within 10s")
	}
	return Response{}
}

func noResponse(t *testing.T, s *Stream) {
	t.Helper()
	select {
	case r := <-s.Chan():
		t.Fatalf("unexpected response %+v", r)
	default:
	}
}

func evString(evs []mvccpb.Event) string {
	out := ""
	for _, e := range evs {
		out += fmt.Sprintf("%s %s@%d;", e.Type, e.Kv.Key, e.Kv.ModRevision)
	}
	return out
}

func TestSyncedWatchersMatchKeysRangesAndFilters(t *testing.T) {
	src := newFakeStore()
	h := newHub(t, src, 16)
	s := h.NewStream()
	mustWatch := func(o WatchOptions) int64 {
		id, _, err := s.Watch(o)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	one := mustWatch(WatchOptions{Key: []byte("a")})
	rng := mustWatch(WatchOptions{Key: []byte("a"), End: []byte("c")})
	from := mustWatch(WatchOptions{Key: []byte("b"), End: []byte{}})
	noDel := mustWatch(WatchOptions{Key: []byte("a"), End: []byte("z"), NoDelete: true})
	if one != 0 || rng != 1 || from != 2 || noDel != 3 {
		t.Fatalf("auto IDs %d %d %d %d, want 0 1 2 3", one, rng, from, noDel)
	}
	h.Notify(src.write("a", "1", "b", "1", "d", "1")) // rev 2
	h.Notify(src.write("a", ""))                      // rev 3
	got := map[int64]string{}
	for i := 0; i < 6; i++ {
		r := recv(t, s)
		got[r.WatchID] += evString(r.Events)
	}
	want := map[int64]string{
		one:   "PUT a@2;DELETE a@3;",
		rng:   "PUT a@2;PUT b@2;DELETE a@3;",
		from:  "PUT b@2;PUT d@2;",
		noDel: "PUT a@2;PUT b@2;PUT d@2;",
	}
	for id, w := range want {
		if got[id] != w {
			t.Errorf("watcher %d got %q, want %q", id, got[id], w)
		}
	}
	noResponse(t, s)
}

func TestWatchErrors(t *testing.T) {
	h := newHub(t, newFakeStore(), 4)
	s := h.NewStream()
	if _, _, err := s.Watch(WatchOptions{ID: 5, Key: []byte("a")}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Watch(WatchOptions{ID: 5, Key: []byte("b")}); !errors.Is(err, ErrDuplicateID) {
		t.Fatalf("duplicate ID: %v", err)
	}
	if _, _, err := s.Watch(WatchOptions{Key: []byte("b"), End: []byte("a")}); !errors.Is(err, ErrEmptyRange) {
		t.Fatalf("empty range: %v", err)
	}
	if err := s.Cancel(42); !errors.Is(err, ErrNotFound) {
		t.Fatalf("cancel unknown: %v", err)
	}
	if err := s.Cancel(5); err != nil {
		t.Fatal(err)
	}
}

func TestHistoryThenLiveExactlyOnce(t *testing.T) {
	src := newFakeStore()
	h := newHub(t, src, 64)
	for i := 0; i < 10; i++ {
		h.Notify(src.write("k", fmt.Sprint(i))) // revs 2..11
	}
	s := h.NewStream()
	if _, _, err := s.Watch(WatchOptions{Key: []byte("k"), StartRev: 4}); err != nil {
		t.Fatal(err)
	}
	// Writes keep coming while the watcher catches up.
	for i := 10; i < 20; i++ {
		h.Notify(src.write("k", fmt.Sprint(i))) // revs 12..21
	}
	next := int64(4)
	for next <= 21 {
		r := recv(t, s)
		for _, e := range r.Events {
			if e.Kv.ModRevision != next {
				t.Fatalf("got revision %d, want %d (gap or duplicate)", e.Kv.ModRevision, next)
			}
			next++
		}
	}
	noResponse(t, s)
}

func TestSlowStreamFallsBackAndCatchesUp(t *testing.T) {
	src := newFakeStore()
	h := newHub(t, src, 2)
	slow := h.NewStream()
	fast := h.NewStream()
	if _, _, err := slow.Watch(WatchOptions{Key: []byte("k")}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := fast.Watch(WatchOptions{Key: []byte("k")}); err != nil {
		t.Fatal(err)
	}
	// Nobody reads slow; fast is drained as we go. Notify never blocks.
	var fastGot []int64
	for i := 0; i < 50; i++ {
		h.Notify(src.write("k", fmt.Sprint(i))) // revs 2..51
		for _, e := range recv(t, fast).Events {
			fastGot = append(fastGot, e.Kv.ModRevision)
		}
	}
	if len(fastGot) != 50 {
		t.Fatalf("the fast watcher got %d events, want 50", len(fastGot))
	}
	// Now the slow one reads: every event once, in order, from storage.
	next := int64(2)
	for next <= 51 {
		for _, e := range recv(t, slow).Events {
			if e.Kv.ModRevision != next {
				t.Fatalf("slow watcher got revision %d, want %d", e.Kv.ModRevision, next)
			}
			next++
		}
	}
	// And it is synced again: a new write arrives directly.
	h.Notify(src.write("k", "last"))
	if r := recv(t, slow); len(r.Events) != 1 || r.Events[0].Kv.ModRevision != 52 {
		t.Fatalf("after catching up: %+v", r)
	}
}

func TestCompactedStart(t *testing.T) {
	src := newFakeStore()
	h := newHub(t, src, 4)
	for i := 0; i < 5; i++ {
		h.Notify(src.write("k", fmt.Sprint(i))) // revs 2..6
	}
	src.mu.Lock()
	src.compact = 5
	src.mu.Unlock()
	s := h.NewStream()
	id, _, err := s.Watch(WatchOptions{Key: []byte("k"), StartRev: 3})
	if err != nil {
		t.Fatal(err)
	}
	r := recv(t, s)
	if r.WatchID != id || r.CompactRevision != 5 || len(r.Events) != 0 {
		t.Fatalf("compacted start: %+v", r)
	}
	if s.RequestProgress() {
		t.Fatal("progress sent on a stream holding a compacted watcher")
	}
	h.mu.Lock()
	inHub := len(h.unsynced) + len(h.byKey)
	h.mu.Unlock()
	if inHub != 0 {
		t.Fatalf("the compacted watcher is still in the hub (%d)", inHub)
	}
	// The client cancels it, as clientv3 does.
	if err := s.Cancel(id); err != nil {
		t.Fatalf("cancel of the compacted watcher: %v", err)
	}
	// Starting at the compaction revision itself is allowed.
	if _, _, err := s.Watch(WatchOptions{Key: []byte("k"), StartRev: 5}); err != nil {
		t.Fatal(err)
	}
	if r := recv(t, s); evString(r.Events) != "PUT k@5;PUT k@6;" {
		t.Fatalf("from the compaction revision: %q", evString(r.Events))
	}
}

func TestFutureStartAndProgress(t *testing.T) {
	src := newFakeStore()
	h := newHub(t, src, 8)
	s := h.NewStream()
	if _, _, err := s.Watch(WatchOptions{Key: []byte("k"), StartRev: 4}); err != nil {
		t.Fatal(err)
	}
	// As in etcd, no progress before a watcher reached its start revision.
	if s.RequestProgress() {
		t.Fatal("progress sent for a watcher still waiting for its start revision")
	}
	h.Notify(src.write("k", "2")) // rev 2: before the start
	h.Notify(src.write("k", "3")) // rev 3: before the start
	h.Notify(src.write("k", "4")) // rev 4
	if r := recv(t, s); evString(r.Events) != "PUT k@4;" {
		t.Fatalf("future start: %q", evString(r.Events))
	}
	if !s.RequestProgress() {
		t.Fatal("progress refused with every watcher synced")
	}
	if r := recv(t, s); r.WatchID != InvalidWatchID || r.Revision != 4 {
		t.Fatalf("progress: %+v", r)
	}
	if h.NewStream().RequestProgress() {
		t.Fatal("progress sent on a stream without watchers")
	}
	// An unsynced watcher blocks stream-wide progress.
	if _, _, err := s.Watch(WatchOptions{Key: []byte("k"), StartRev: 2}); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	allSynced := len(h.unsynced) == 0
	h.mu.Unlock()
	if !allSynced && s.RequestProgress() {
		t.Fatal("progress sent while a watcher was unsynced")
	}
}

func TestClosedStreamGetsNothing(t *testing.T) {
	src := newFakeStore()
	h := newHub(t, src, 8)
	s := h.NewStream()
	if _, _, err := s.Watch(WatchOptions{Key: []byte("k")}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	h.Notify(src.write("k", "1"))
	noResponse(t, s)
	select {
	case <-s.Done():
	default:
		t.Fatal("Done not closed")
	}
	if _, _, err := s.Watch(WatchOptions{Key: []byte("k")}); err == nil {
		t.Fatal("watch on a closed stream succeeded")
	}
}
