// Package watch delivers store changes to watchers, with etcd's guarantees:
// events arrive in revision order, exactly once per watcher, never ahead of
// what has been applied, and the events of one revision arrive together.
//
// A watcher is either synced or unsynced. Synced watchers are indexed by key
// and get new changes pushed to them by the apply loop (Notify), which never
// blocks: a watcher whose stream is full simply becomes unsynced, remembering
// the first revision it missed. Unsynced watchers (new ones with a start
// revision in the past, and those that fell behind) are caught up from
// storage by the hub's own goroutine, a bounded slice of history at a time,
// and join the synced set once they have everything. So a slow watcher never
// slows writes or other watchers; it only reads its own backlog from disk.
//
// Catch-up never moves a watcher backwards: each round sorts the unsynced
// watchers by the revision they need next and reads history in windows from
// the lowest, each window serving the watchers whose next revision falls in
// it, so watchers far apart do not hold each other back. A watcher whose
// stream is full is left out of the round altogether (its client is not
// reading; reading history for it would be wasted) and tried again shortly.
package watch

import (
	"bytes"
	"cmp"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/cairn-io/cairn/internal/mvcc"
)

// Sentinel errors, with etcd's texts (they reach clients as cancel
// reasons).
var (
	ErrDuplicateID = errors.New("mvcc: duplicate watch ID provided on the WatchStream")
	ErrEmptyRange  = errors.New("mvcc: watcher range is empty")
	ErrNotFound    = errors.New("mvcc: watcher does not exist")
)

// InvalidWatchID is the ID of responses that concern no single watcher.
const InvalidWatchID = -1

// Source is the store the hub reads history from.
type Source interface {
	Rev() int64
	CompactRev() int64
	History(from, to int64, fn func(mvcc.Change) bool) error
}

// Response is what a stream receives: events for one watcher, a compaction
// notice, or a progress notification.
type Response struct {
	WatchID int64
	Events  []mvccpb.Event
	// Revision is the store revision the response reflects (the header
	// revision).
	Revision int64
	// CompactRevision is set when the watcher's start is compacted; the
	// watcher is gone.
	CompactRevision int64
}

// Config configures a Hub.
type Config struct {
	Source Source
	// StreamBuffer is the number of responses a stream holds before its
	// watchers fall back to catching up from storage. Default 128.
	StreamBuffer int
	// SyncInterval is how often unsynced watchers are caught up at the
	// latest. Default 100ms.
	SyncInterval time.Duration
	// SyncBatch bounds the changes read from storage per catch-up round.
	// Default 1000.
	SyncBatch int
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Hub is the set of all watchers of a member.
type Hub struct {
	cfg Config
	lg  *slog.Logger

	mu       sync.Mutex
	rev      int64 // newest revision dispatched
	gen      int64 // bumped by Reset: history read before it is stale
	byKey    map[string]map[*watcher]struct{}
	byRange  rangeIndex
	unsynced map[*watcher]struct{}
	streams  map[*Stream]struct{}

	syncc chan struct{}
	stopc chan struct{}
	donec chan struct{}
}

type watcher struct {
	id       int64
	key, end []byte // end nil: one key; empty: every key from key on
	// nextRev is the revision of the first event this watcher still needs.
	nextRev int64
	// startRev is the start revision the watcher asked for (0: none).
	startRev     int64
	noPut, noDel bool
	stream       *Stream
	synced       bool
	gone         bool
}

func (w *watcher) matches(key []byte) bool {
	switch {
	case w.end == nil:
		return bytes.Equal(key, w.key)
	case len(w.end) == 0:
		return bytes.Compare(key, w.key) >= 0
	default:
		return bytes.Compare(key, w.key) >= 0 && bytes.Compare(key, w.end) < 0
	}
}

// filter numbers the watcher's event-type filters, 0 to 3.
func (w *watcher) filter() int {
	f := 0
	if w.noPut {
		f |= 1
	}
	if w.noDel {
		f |= 2
	}
	return f
}

// pick returns the events of events[idx] the watcher still needs and wants,
// in order.
func (w *watcher) pick(events []mvccpb.Event, idx []int) []mvccpb.Event {
	var evs []mvccpb.Event
	for _, i := range idx {
		if ev := &events[i]; ev.Kv.ModRevision >= w.nextRev && w.wants(ev) {
			evs = append(evs, *ev)
		}
	}
	return evs
}

func (w *watcher) wants(ev *mvccpb.Event) bool {
	if ev.Type == mvccpb.PUT {
		return !w.noPut
	}
	return !w.noDel
}

// New starts a hub.
func New(cfg Config) *Hub {
	h := initHub(cfg)
	go h.syncLoop()
	return h
}

// initHub returns a hub without its catch-up goroutine.
func initHub(cfg Config) *Hub {
	if cfg.StreamBuffer <= 0 {
		cfg.StreamBuffer = 128
	}
	if cfg.SyncInterval <= 0 {
		cfg.SyncInterval = 100 * time.Millisecond
	}
	if cfg.SyncBatch <= 0 {
		cfg.SyncBatch = 1000
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	h := &Hub{
		cfg:      cfg,
		lg:       cfg.Logger.With("component", "watch"),
		rev:      cfg.Source.Rev(),
		byKey:    map[string]map[*watcher]struct{}{},
		byRange:  newRangeIndex(),
		unsynced: map[*watcher]struct{}{},
		streams:  map[*Stream]struct{}{},
		syncc:    make(chan struct{}, 1),
		stopc:    make(chan struct{}),
		donec:    make(chan struct{}),
	}
	return h
}

// Stop stops the catch-up goroutine and closes every stream.
func (h *Hub) Stop() {
	select {
	case <-h.stopc:
		return
	default:
	}
	close(h.stopc)
	<-h.donec
	h.mu.Lock()
	streams := h.streams
	h.streams = map[*Stream]struct{}{}
	h.mu.Unlock()
	for s := range streams {
		s.shutdown()
	}
}

// Rev returns the newest revision the hub has dispatched.
func (h *Hub) Rev() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.rev
}

func (h *Hub) kick() {
	select {
	case h.syncc <- struct{}{}:
	default:
	}
}

// Notify dispatches published changes (in revision order) to the synced
// watchers. Called by the apply loop after each Publish; it never blocks.
func (h *Hub) Notify(changes []mvcc.Change) {
	if len(changes) == 0 {
		return
	}
	rev := changes[len(changes)-1].KV.ModRevision
	h.mu.Lock()
	defer h.mu.Unlock()
	h.rev = rev
	if len(h.byKey) == 0 && h.byRange.len() == 0 {
		return
	}
	events := make([]mvccpb.Event, len(changes))
	for i := range changes {
		events[i] = toEvent(&changes[i])
	}
	type delivery struct {
		w   *watcher
		evs []mvccpb.Event
	}
	var out []delivery
	// deliver finds the events of each watcher in set among events[idx].
	// Watchers with the same filters that need all of them share one
	// slice (read-only), so a put watched by thousands allocates once.
	deliver := func(set map[*watcher]struct{}, idx []int) {
		var shared [4][]mvccpb.Event
		var built [4]bool
		first := events[idx[0]].Kv.ModRevision
		for w := range set {
			var evs []mvccpb.Event
			if f := w.filter(); w.nextRev <= first {
				if !built[f] {
					shared[f], built[f] = w.pick(events, idx), true
				}
				evs = shared[f]
			} else {
				evs = w.pick(events, idx)
			}
			if len(evs) > 0 {
				out = append(out, delivery{w, evs})
			}
		}
	}
	if len(h.byKey) > 0 {
		perKey := map[string][]int{}
		for i := range events {
			k := string(events[i].Kv.Key)
			perKey[k] = append(perKey[k], i)
		}
		for k, idx := range perKey {
			if set := h.byKey[k]; len(set) > 0 {
				deliver(set, idx)
			}
		}
	}
	if h.byRange.len() > 0 {
		// The events of each watched range that holds one, in order.
		var perRange map[*rangeNode][]int
		var hits []*rangeNode
		for i := range events {
			hits = h.byRange.stab(string(events[i].Kv.Key), hits[:0])
			for _, n := range hits {
				if perRange == nil {
					perRange = map[*rangeNode][]int{}
				}
				perRange[n] = append(perRange[n], i)
			}
		}
		for n, idx := range perRange {
			deliver(n.watchers, idx)
		}
	}
	for _, d := range out {
		if d.w.stream.trySend(Response{WatchID: d.w.id, Events: d.evs, Revision: rev}) {
			d.w.nextRev = rev + 1
			continue
		}
		// The stream is full: catch up from storage later, from the
		// first event this batch could not deliver.
		h.unsyncLocked(d.w, d.evs[0].Kv.ModRevision)
	}
}

func toEvent(c *mvcc.Change) mvccpb.Event {
	kv := c.KV
	if c.Delete {
		return mvccpb.Event{Type: mvccpb.DELETE, Kv: &mvccpb.KeyValue{Key: kv.Key, ModRevision: kv.ModRevision}}
	}
	return mvccpb.Event{Type: mvccpb.PUT, Kv: &kv}
}

func (w *watcher) rangeKey() rangeKey { return rangeKey{string(w.key), string(w.end)} }

// indexLocked makes w synced: Notify delivers to it from now on.
func (h *Hub) indexLocked(w *watcher) {
	h.leaveUnsyncedLocked(w)
	w.synced = true
	if w.end == nil {
		set := h.byKey[string(w.key)]
		if set == nil {
			set = map[*watcher]struct{}{}
			h.byKey[string(w.key)] = set
		}
		set[w] = struct{}{}
		return
	}
	h.byRange.add(w.rangeKey(), w)
}

// unindexLocked takes w out of the hub, synced or not.
func (h *Hub) unindexLocked(w *watcher) {
	if !w.synced {
		h.leaveUnsyncedLocked(w)
		return
	}
	w.synced = false
	if w.end == nil {
		if set := h.byKey[string(w.key)]; set != nil {
			delete(set, w)
			if len(set) == 0 {
				delete(h.byKey, string(w.key))
			}
		}
		return
	}
	h.byRange.remove(w.rangeKey(), w)
}

// unsyncLocked moves w to catching up from storage, from revision from on.
func (h *Hub) unsyncLocked(w *watcher, from int64) {
	h.unindexLocked(w)
	w.nextRev = from
	h.joinUnsyncedLocked(w)
	h.kick()
}

func (h *Hub) joinUnsyncedLocked(w *watcher) {
	if _, ok := h.unsynced[w]; !ok {
		h.unsynced[w] = struct{}{}
		metricSlowWatchers.Inc()
	}
}

func (h *Hub) leaveUnsyncedLocked(w *watcher) {
	if _, ok := h.unsynced[w]; ok {
		delete(h.unsynced, w)
		metricSlowWatchers.Dec()
	}
}

// fullRetry is how soon catch-up tries again (at the latest SyncInterval)
// after a round left watchers out because their streams were full. A reader
// that was only outrun by a burst (one put for more watchers than a stream
// holds) has made room by then; one that stopped reading costs a look at
// its watchers each time, not a read of history. etcd retries its blocked
// watchers as often.
const fullRetry = 10 * time.Millisecond

// syncLoop catches unsynced watchers up from storage.
func (h *Hub) syncLoop() {
	defer close(h.donec)
	t := time.NewTimer(h.cfg.SyncInterval)
	defer t.Stop()
	for {
		select {
		case <-h.stopc:
			return
		case <-h.syncc:
		case <-t.C:
		}
		for {
			more, full := h.syncOnce()
			if !more {
				wait := h.cfg.SyncInterval
				if full {
					wait = min(wait, fullRetry)
				}
				t.Reset(wait)
				break
			}
			select {
			case <-h.stopc:
				return
			default:
			}
		}
	}
}

// catchUp is an unsynced watcher taken into a catch-up round, with the
// revision it needed next when the round began.
type catchUp struct {
	w    *watcher
	from int64
}

// syncOnce runs one catch-up round. It reports whether another round has
// work right away (more: some watcher advanced and some are still behind;
// a round that advanced nobody returns false, so the loop waits instead of
// spinning), and whether it left watchers behind because their streams
// were full.
func (h *Hub) syncOnce() (more, full bool) {
	h.mu.Lock()
	if len(h.unsynced) == 0 {
		h.mu.Unlock()
		return false, false
	}
	gen, target := h.gen, h.rev
	compactRev := h.cfg.Source.CompactRev()
	ws := make([]catchUp, 0, len(h.unsynced))
	for w := range h.unsynced {
		switch {
		case w.nextRev > target:
			// Nothing to read for it: it has everything up to now.
			h.indexLocked(w)
		case w.stream.fullLocked():
			// Its client is not reading. Reading history for it now would
			// be wasted, and its revision must not hold back the window
			// the others read: try again next round.
			full = true
		case w.nextRev < compactRev:
			// Its history is gone: tell it, and drop it once told.
			// As in etcd, a compaction notice carries no revision.
			if w.stream.trySend(Response{WatchID: w.id, CompactRevision: compactRev}) {
				// It leaves the hub but stays on its stream, unsynced,
				// until the client cancels it: as in etcd, the stream
				// gets no progress notification meanwhile.
				h.unindexLocked(w)
				w.gone = true
			}
		default:
			ws = append(ws, catchUp{w, w.nextRev})
		}
	}
	h.mu.Unlock()

	// Read history in windows from the lowest revision needed. Each window
	// serves the watchers whose next revision falls in it; the rest, further
	// ahead, get the next window, which starts at the lowest of theirs.
	slices.SortFunc(ws, func(a, b catchUp) int { return cmp.Compare(a.from, b.from) })
	advanced := false
	for len(ws) > 0 {
		from := ws[0].from
		changes, upTo, err := h.readHistory(from, target)
		if errors.Is(err, mvcc.ErrCompacted) {
			// Compacted since the round began: the next round tells the
			// watchers concerned.
			return true, full
		}
		if err != nil {
			h.lg.Error("reading history for watchers", "from", from, "to", target, "err", err)
			return false, full
		}
		n, _ := slices.BinarySearchFunc(ws, upTo+1, func(c catchUp, rev int64) int { return cmp.Compare(c.from, rev) })
		ok, adv, blocked := h.deliverHistory(gen, target, upTo, changes, ws[:n])
		if !ok {
			return true, full // the store was replaced meanwhile: start again
		}
		advanced, full = advanced || adv, full || blocked
		ws = ws[n:]
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return advanced && len(h.unsynced) > 0, full
}

// readHistory reads the changes from revision from on, up to target and at
// most about SyncBatch of them: once the batch is full it stops at a
// revision boundary, so that a revision's events are never split. upTo is
// the last revision the changes cover.
func (h *Hub) readHistory(from, target int64) (changes []mvcc.Change, upTo int64, err error) {
	upTo = target
	err = h.cfg.Source.History(from, target, func(c mvcc.Change) bool {
		if len(changes) >= h.cfg.SyncBatch && c.KV.ModRevision != changes[len(changes)-1].KV.ModRevision {
			upTo = changes[len(changes)-1].KV.ModRevision
			return false
		}
		changes = append(changes, c)
		return true
	})
	return changes, upTo, err
}

// deliverHistory sends each watcher of batch its events among changes, the
// history up to revision upTo from the lowest revision they need, and moves
// it past upTo; a watcher whose stream is full stays where it is. It reports
// false if the store was replaced since the round began (the changes may
// be stale), whether any watcher advanced, and whether any stayed because
// its stream was full.
func (h *Hub) deliverHistory(gen, target, upTo int64, changes []mvcc.Change, batch []catchUp) (ok, advanced, full bool) {
	// Pick each watcher's events before taking the lock; the apply loop
	// waits for it. Most watchers watch one key: index the changes by key
	// once, so that each looks at its own key's changes only, and watchers
	// of one key that need the same events share one slice of them
	// (read-only).
	byKey := map[string][]int{}
	for i := range changes {
		k := string(changes[i].KV.Key)
		byKey[k] = append(byKey[k], i)
	}
	type batchKey struct {
		key          string
		from         int64
		noPut, noDel bool
	}
	shared := map[batchKey][]mvccpb.Event{}
	collect := func(c catchUp, idx func(yield func(int) bool)) []mvccpb.Event {
		var evs []mvccpb.Event
		for i := range idx {
			ch := &changes[i]
			if ch.KV.ModRevision < c.from || !c.w.matches(ch.KV.Key) {
				continue
			}
			ev := toEvent(ch)
			if c.w.wants(&ev) {
				evs = append(evs, ev)
			}
		}
		return evs
	}
	evs := make([][]mvccpb.Event, len(batch))
	for i, c := range batch {
		w := c.w
		if w.end == nil {
			bk := batchKey{string(w.key), c.from, w.noPut, w.noDel}
			var ok bool
			if evs[i], ok = shared[bk]; !ok {
				evs[i] = collect(c, slices.Values(byKey[bk.key]))
				shared[bk] = evs[i]
			}
			continue
		}
		evs[i] = collect(c, func(yield func(int) bool) {
			for i := range changes {
				if !yield(i) {
					return
				}
			}
		})
	}

	h.mu.Lock()
	defer h.mu.Unlock()
	if h.gen != gen {
		return false, false, false
	}
	for i, c := range batch {
		w := c.w
		if _, behind := h.unsynced[w]; !behind || w.nextRev != c.from {
			continue // canceled, or dropped for compaction, meanwhile
		}
		// Each catch-up response carries the revision the hub was at when
		// the round began, as etcd's do.
		if len(evs[i]) > 0 && !w.stream.trySend(Response{WatchID: w.id, Events: evs[i], Revision: target}) {
			full = true // it stays where it is
			continue
		}
		w.nextRev = upTo + 1
		advanced = true
		// Holding h.mu, no Notify runs: if the watcher has everything up
		// to h.rev, the next Notify brings it the revisions after, once.
		if w.nextRev > h.rev {
			h.indexLocked(w)
		}
	}
	return true, advanced, full
}

// Reset follows the store after its content was replaced (a snapshot from
// the leader): every watcher catches up from storage from where it was, or
// learns that its history was compacted.
func (h *Hub) Reset() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.rev = h.cfg.Source.Rev()
	h.gen++
	for s := range h.streams {
		for _, w := range s.watchers {
			if w.synced {
				h.unindexLocked(w)
				h.joinUnsyncedLocked(w)
			}
		}
	}
	h.kick()
}
