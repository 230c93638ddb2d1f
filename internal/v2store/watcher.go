package v2store

import (
	"container/list"
	"path"
	"strings"
	"sync"
	"sync/atomic"
)

// watcherBuffer is how many events a watcher may have undelivered before it
// is dropped (etcd's 100).
const watcherBuffer = 100

// Watcher receives the events of one watch. A long-poll watch receives one
// event; a stream watch receives every matching event until it is
// removed. The channel is closed when the watcher is dropped: removed,
// too slow to keep up, or the store was replaced by a snapshot.
type Watcher struct {
	ch         chan *Event
	stream     bool
	recursive  bool
	sinceIndex uint64
	startIndex uint64
	hub        *hub
	allow      func(*Event) bool // nil: every event
	removed    bool              // guarded by hub.mu
	remove     func()
}

// EventChan delivers the watcher's events.
func (w *Watcher) EventChan() <-chan *Event { return w.ch }

// StartIndex is the store index when the watch began (X-Etcd-Index of the
// watch response).
func (w *Watcher) StartIndex() uint64 { return w.startIndex }

// Remove ends the watch and closes the channel. Safe to call more than
// once and after the watcher was dropped.
func (w *Watcher) Remove() {
	w.hub.mu.Lock()
	defer w.hub.mu.Unlock()
	w.drop()
}

// drop removes the watcher from the hub and closes its channel; the caller
// holds hub.mu.
func (w *Watcher) drop() {
	if w.removed {
		return
	}
	w.removed = true
	close(w.ch)
	if w.remove != nil {
		w.remove()
	}
}

// notify delivers e if the watcher wants it: at its own path, below it for
// a recursive watcher, or because a directory above it was deleted. It
// reports whether the watcher took the event. A watcher whose buffer is
// full is dropped, which ends its HTTP response. Caller holds hub.mu.
func (w *Watcher) notify(e *Event, originalPath, deleted bool) bool {
	if (w.recursive || originalPath || deleted) && e.Index() >= w.sinceIndex {
		if w.allow != nil && !w.allow(e) {
			w.drop()
			return true
		}
		select {
		case w.ch <- e:
		default:
			w.drop()
		}
		return true
	}
	return false
}

// hub keeps the watchers by the path they watch.
type hub struct {
	mu       sync.Mutex
	watchers map[string]*list.List
	count    atomic.Int64
}

func newHub() *hub { return &hub{watchers: map[string]*list.List{}} }

// watch registers a watcher of key, or answers it at once from history.
func (h *hub) watch(hist *history, key string, recursive, stream bool, since, storeIndex uint64, allow func(*Event) bool) (*Watcher, *Error) {
	e, err := hist.scan(key, recursive, since)
	if err != nil {
		err.Index = storeIndex
		return nil, err
	}
	w := &Watcher{
		ch:         make(chan *Event, watcherBuffer),
		recursive:  recursive,
		stream:     stream,
		sinceIndex: since,
		startIndex: storeIndex,
		hub:        h,
		allow:      allow,
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if e != nil {
		if allow != nil && !allow(e) {
			w.drop()
			return w, nil
		}
		ne := e.Clone()
		ne.EtcdIndex = storeIndex
		w.ch <- ne
		return w, nil
	}
	l, ok := h.watchers[key]
	if !ok {
		l = list.New()
		h.watchers[key] = l
	}
	elem := l.PushBack(w)
	w.remove = func() {
		l.Remove(elem)
		h.count.Add(-1)
		if l.Len() == 0 && h.watchers[key] == l {
			delete(h.watchers, key)
		}
	}
	h.count.Add(1)
	return w, nil
}

// notify sends e to the watchers of its key and of every directory above
// it.
func (h *hub) notify(e *Event) {
	cur := "/"
	for _, seg := range strings.Split(e.Node.Key, "/") {
		cur = path.Join(cur, seg)
		h.notifyWatchers(e, cur, false)
	}
}

// notifyWatchers sends e to the watchers of nodePath; deleted says
// nodePath itself was removed by e (a delete or expiry above it).
func (h *hub) notifyWatchers(e *Event, nodePath string, deleted bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	l, ok := h.watchers[nodePath]
	if !ok {
		return
	}
	for cur := l.Front(); cur != nil; {
		next := cur.Next()
		w := cur.Value.(*Watcher)
		original := e.Node.Key == nodePath
		if (original || !isHidden(nodePath, e.Node.Key)) && w.notify(e, original, deleted) && !w.stream && !w.removed {
			// A long-poll watcher is done after one event; its channel
			// stays open until the reader has taken the event and calls
			// Remove.
			w.removed = true
			w.remove()
			w.remove = nil
		}
		cur = next
	}
}

// closeAll drops every watcher (the store was replaced).
func (h *hub) closeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, l := range h.watchers {
		for cur := l.Front(); cur != nil; {
			next := cur.Next()
			cur.Value.(*Watcher).drop()
			cur = next
		}
	}
	h.watchers = map[string]*list.List{}
}

// isHidden reports whether keyPath is hidden from a watcher of watchPath:
// some path element below watchPath starts with an underscore.
func isHidden(watchPath, keyPath string) bool {
	// A watcher below a deleted directory is notified with the
	// directory's (shorter) key.
	if len(watchPath) > len(keyPath) {
		return false
	}
	after := path.Clean("/" + keyPath[len(watchPath):])
	return strings.Contains(after, "/_")
}
