package watch

import "bytes"

// Stream is one client watch stream: a set of watchers sharing one
// response channel.
type Stream struct {
	hub *Hub
	ch  chan Response

	// Guarded by hub.mu.
	watchers map[int64]*watcher
	nextID   int64
	closed   bool
	closedc  chan struct{}
}

// NewStream opens a stream.
func (h *Hub) NewStream() *Stream {
	s := &Stream{
		hub:      h,
		ch:       make(chan Response, h.cfg.StreamBuffer),
		watchers: map[int64]*watcher{},
		closedc:  make(chan struct{}),
	}
	h.mu.Lock()
	h.streams[s] = struct{}{}
	h.mu.Unlock()
	metricStreams.Inc()
	return s
}

// Chan returns the stream's responses. It is never closed; select on Done
// as well.
func (s *Stream) Chan() <-chan Response { return s.ch }

// Done is closed when the stream is closed.
func (s *Stream) Done() <-chan struct{} { return s.closedc }

// fullLocked reports whether a send would fail now. Every send happens
// under hub.mu, so while the caller holds it the answer can only go from
// full to not full, as the reader takes responses.
func (s *Stream) fullLocked() bool { return s.closed || len(s.ch) == cap(s.ch) }

func (s *Stream) trySend(r Response) bool {
	if s.closed {
		return false
	}
	select {
	case s.ch <- r:
		return true
	default:
		return false
	}
}

// WatchOptions are the options of a new watcher.
type WatchOptions struct {
	// ID is the watch ID the client chose; 0 lets the stream pick.
	ID int64
	// Key and End select the keys: End nil watches Key only, an empty End
	// every key from Key on, otherwise [Key, End).
	Key, End []byte
	// StartRev is the first revision to report; 0 means the next one.
	StartRev int64
	// NoPut and NoDelete filter event types out.
	NoPut, NoDelete bool
}

// Watch adds a watcher and returns its ID and the revision the hub was at
// when it was added.
func (s *Stream) Watch(o WatchOptions) (int64, int64, error) {
	if len(o.End) != 0 && bytes.Compare(o.Key, o.End) >= 0 {
		return InvalidWatchID, 0, ErrEmptyRange
	}
	h := s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	if s.closed {
		return InvalidWatchID, 0, ErrNotFound
	}
	id := o.ID
	if id == 0 {
		for s.watchers[s.nextID] != nil {
			s.nextID++
		}
		id = s.nextID
		s.nextID++
	} else if s.watchers[id] != nil {
		return InvalidWatchID, 0, ErrDuplicateID
	}
	w := &watcher{
		id:       id,
		startRev: o.StartRev,
		key:      append([]byte(nil), o.Key...),
		noPut:    o.NoPut,
		noDel:    o.NoDelete,
		stream:   s,
	}
	if o.End != nil {
		w.end = append([]byte{}, o.End...)
	}
	s.watchers[id] = w
	metricWatchers.Inc()
	switch {
	case o.StartRev <= 0:
		w.nextRev = h.rev + 1
		h.indexLocked(w)
	case o.StartRev > h.rev:
		// A future start: synced, skipping events before it.
		w.nextRev = o.StartRev
		h.indexLocked(w)
	default:
		w.nextRev = o.StartRev
		h.joinUnsyncedLocked(w)
		h.kick()
	}
	return id, h.rev, nil
}

// Cancel removes watcher id.
func (s *Stream) Cancel(id int64) error {
	h := s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	w := s.watchers[id]
	if w == nil {
		return ErrNotFound
	}
	s.dropLocked(w)
	return nil
}

func (s *Stream) dropLocked(w *watcher) {
	s.hub.unindexLocked(w)
	w.gone = true
	delete(s.watchers, w.id)
	metricWatchers.Dec()
}

// RequestProgress queues a progress notification for the whole stream (watch
// ID -1) at the hub's revision, if the stream has watchers and every one of
// them is synced and has reached its start revision; otherwise it does
// nothing, as etcd does, since such a watcher has not seen everything up to
// that revision. It reports whether it queued one.
func (s *Stream) RequestProgress() bool {
	h := s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(s.watchers) == 0 {
		return false
	}
	for _, w := range s.watchers {
		if !progressable(w, h.rev) {
			return false
		}
	}
	return s.trySend(Response{WatchID: InvalidWatchID, Revision: h.rev})
}

func progressable(w *watcher, rev int64) bool {
	return w.synced && rev >= w.startRev
}

// RequestWatcherProgress queues a progress notification for watcher id if
// it is synced.
func (s *Stream) RequestWatcherProgress(id int64) bool {
	h := s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	w := s.watchers[id]
	if w == nil || !progressable(w, h.rev) {
		return false
	}
	return s.trySend(Response{WatchID: id, Revision: h.rev})
}

// Close removes every watcher of the stream.
func (s *Stream) Close() {
	h := s.hub
	h.mu.Lock()
	delete(h.streams, s)
	h.mu.Unlock()
	s.shutdown()
}

func (s *Stream) shutdown() {
	h := s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	if s.closed {
		return
	}
	for _, w := range s.watchers {
		s.dropLocked(w)
	}
	s.closed = true
	close(s.closedc)
	metricStreams.Dec()
}
