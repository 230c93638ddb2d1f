// Package v2store is the tree behind etcd's v2 keys API: directories and
// keys, hidden "_" keys, TTLs, compare-and-swap and compare-and-delete,
// in-order keys, the store index, the 1000-event history and watchers, with
// etcd 2.3's results and errors to the field.
//
// The store is a deterministic state machine. Every write takes the time it
// needs from its caller (from the replicated request, never from the
// applying member's clock), so members that apply the same requests reach
// byte-identical states. Each write also records its changes in a storage
// batch (the apply loop's, under storage.PrefixV2), and Load rebuilds the
// store from storage at start or after a snapshot was installed. See
// persist.go for the layout.
//
// Concurrency: one writer (the apply loop) and any number of readers and
// watchers, as in etcd: writes hold the store's lock exclusively.
package v2store

import (
	"fmt"
	"path"
	"strings"
	"sync"
	"time"
)

// minExpireTime: expiration times before it are treated as "no TTL" (they
// come from zero times serialized by clients), as etcd does.
var minExpireTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// TTLOptions are the TTL settings of a write.
type TTLOptions struct {
	// ExpireTime is when the node expires; zero for none.
	ExpireTime time.Time
	// Refresh keeps the value and only resets the TTL; watchers are not
	// told.
	Refresh bool
}

// Store is the v2 tree.
type Store struct {
	mu    sync.RWMutex
	root  *node
	index uint64
	hist  *history
	ttl   ttlHeap
	hub   *hub
	stats Stats
}

// New returns an empty store at index 0.
func New() *Store {
	return &Store{root: newDir("/", 0, nil, time.Time{}), hist: newHistory(), hub: newHub()}
}

// Index returns the store index: the index of the last write.
func (s *Store) Index() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.index
}

// HasTTLKeys reports whether any node has a TTL.
func (s *Store) HasTTLKeys() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.ttl) > 0
}

// NextExpiry returns the earliest expiration time of any node, and false
// when no node has a TTL.
func (s *Store) NextExpiry() (time.Time, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if n := s.ttl.top(); n != nil {
		return n.expireTime, true
	}
	return time.Time{}, false
}

// WatcherCount returns how many watchers wait for events.
func (s *Store) WatcherCount() int64 { return s.hub.count.Load() }

// cleanPath makes p absolute and clean, as etcd does with every path.
func cleanPath(p string) string { return path.Clean(path.Join("/", p)) }

// Get returns the node at p, a directory with its children (all levels if
// recursive). now is the time TTLs are shown relative to.
func (s *Store) Get(p string, recursive, sorted bool, now time.Time) (*Event, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	p = cleanPath(p)
	n, err := s.internalGet(p)
	count(err, &s.stats.GetSuccess, &s.stats.GetFail)
	if err != nil {
		return nil, err
	}
	e := newEvent(Get, p, n.modifiedIndex, n.createdIndex)
	if n == s.root {
		// etcd keeps the keys under a hidden top-level directory and
		// strips its name from keys, which leaves the root without one.
		e.Node.Key = ""
	}
	e.EtcdIndex = s.index
	if n.isDir() {
		e.Node.Dir = true
		e.Node.Nodes = n.listChildren(recursive, sorted, now)
	} else {
		v := n.value
		e.Node.Value = &v
	}
	e.Node.Expiration, e.Node.TTL = n.expirationAndTTL(now)
	return e, nil
}

// Set creates or replaces the key (or creates the directory) at p.
func (s *Store) Set(b Batch, p string, dir bool, value string, opts TTLOptions, now time.Time) (*Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := &writer{b: b}
	e, err := s.set(w, cleanPath(p), dir, value, opts, now)
	count(err, &s.stats.SetSuccess, &s.stats.SetFail)
	return finish(w, e, err)
}

func (s *Store) set(w *writer, p string, dir bool, value string, opts TTLOptions, now time.Time) (*Event, *Error) {
	n, getErr := s.internalGet(p)
	if getErr != nil && getErr.ErrorCode != EcodeKeyNotFound {
		return nil, getErr
	}
	if opts.Refresh {
		if getErr != nil {
			return nil, getErr
		}
		value = n.value
	}
	var prev *NodeExtern
	if getErr == nil {
		prev = n.repr(false, false, now)
	}
	e, err := s.internalCreate(w, p, dir, value, false, true, opts.ExpireTime, Set, now)
	if err != nil {
		return nil, err
	}
	e.EtcdIndex = s.index
	e.PrevNode = prev
	s.record(w, e, opts.Refresh)
	return e, nil
}

// Create creates the key or directory at p, failing if it exists. With
// unique, p names a directory and the new node is p/<20-digit index>.
func (s *Store) Create(b Batch, p string, dir bool, value string, unique bool, opts TTLOptions, now time.Time) (*Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := &writer{b: b}
	e, err := s.internalCreate(w, p, dir, value, unique, false, opts.ExpireTime, Create, now)
	if err == nil {
		e.EtcdIndex = s.index
		s.record(w, e, false)
	}
	count(err, &s.stats.CreateSuccess, &s.stats.CreateFail)
	return finish(w, e, err)
}

// Update changes the value and TTL of the existing key at p, or the TTL
// of the directory at p.
func (s *Store) Update(b Batch, p string, value string, opts TTLOptions, now time.Time) (*Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := &writer{b: b}
	e, err := s.update(w, cleanPath(p), value, opts, now)
	count(err, &s.stats.UpdateSuccess, &s.stats.UpdateFail)
	return finish(w, e, err)
}

func (s *Store) update(w *writer, p string, value string, opts TTLOptions, now time.Time) (*Event, *Error) {
	if p == "/" {
		return nil, NewError(EcodeRootROnly, "/", s.index)
	}
	cur, next := s.index, s.index+1
	n, err := s.internalGet(p)
	if err != nil {
		return nil, err
	}
	if n.isDir() && value != "" {
		return nil, NewError(EcodeNotFile, p, cur)
	}
	if opts.Refresh {
		value = n.value
	}
	e := newEvent(Update, p, next, n.createdIndex)
	e.EtcdIndex = next
	e.PrevNode = n.repr(false, false, now)
	if n.isDir() {
		// etcd 2.3 updates only the TTL of a directory; its modified
		// index stays.
		e.Node.Dir = true
	} else {
		n.value = value
		n.modifiedIndex = next
		v := value
		e.Node.Value = &v
	}
	s.updateTTL(n, opts.ExpireTime)
	e.Node.Expiration, e.Node.TTL = n.expirationAndTTL(now)
	s.index = next
	w.putNode(n)
	s.record(w, e, opts.Refresh)
	return e, nil
}

// CompareAndSwap replaces the value of the key at p if its value is
// prevValue (unless empty) and its modified index is prevIndex (unless 0).
func (s *Store) CompareAndSwap(b Batch, p, prevValue string, prevIndex uint64, value string, opts TTLOptions, now time.Time) (*Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := &writer{b: b}
	e, err := s.compareAndSwap(w, cleanPath(p), prevValue, prevIndex, value, opts, now)
	count(err, &s.stats.CompareAndSwapSuccess, &s.stats.CompareAndSwapFail)
	return finish(w, e, err)
}

func (s *Store) compareAndSwap(w *writer, p, prevValue string, prevIndex uint64, value string, opts TTLOptions, now time.Time) (*Event, *Error) {
	if p == "/" {
		return nil, NewError(EcodeRootROnly, "/", s.index)
	}
	n, err := s.internalGet(p)
	if err != nil {
		return nil, err
	}
	if n.isDir() {
		return nil, NewError(EcodeNotFile, p, s.index)
	}
	if ok, which := n.compare(prevValue, prevIndex); !ok {
		return nil, NewError(EcodeTestFailed, compareFailCause(n, which, prevValue, prevIndex), s.index)
	}
	if opts.Refresh {
		value = n.value
	}
	s.index++
	e := newEvent(CompareAndSwap, p, s.index, n.createdIndex)
	e.EtcdIndex = s.index
	e.PrevNode = n.repr(false, false, now)
	n.value = value
	n.modifiedIndex = s.index
	s.updateTTL(n, opts.ExpireTime)
	v := value
	e.Node.Value = &v
	e.Node.Expiration, e.Node.TTL = n.expirationAndTTL(now)
	w.putNode(n)
	s.record(w, e, opts.Refresh)
	return e, nil
}

func compareFailCause(n *node, which int, prevValue string, prevIndex uint64) string {
	switch which {
	case compareIndexNotMatch:
		return fmt.Sprintf("[%v != %v]", prevIndex, n.modifiedIndex)
	case compareValueNotMatch:
		return fmt.Sprintf("[%v != %v]", prevValue, n.value)
	default:
		return fmt.Sprintf("[%v != %v] [%v != %v]", prevValue, n.value, prevIndex, n.modifiedIndex)
	}
}

// Delete removes the key at p, or the directory at p if dir (when empty)
// or recursive.
func (s *Store) Delete(b Batch, p string, dir, recursive bool, now time.Time) (*Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := &writer{b: b}
	e, err := s.delete(w, cleanPath(p), dir, recursive, now)
	count(err, &s.stats.DeleteSuccess, &s.stats.DeleteFail)
	return finish(w, e, err)
}

func (s *Store) delete(w *writer, p string, dir, recursive bool, now time.Time) (*Event, *Error) {
	if p == "/" {
		return nil, NewError(EcodeRootROnly, "/", s.index)
	}
	if recursive {
		dir = true
	}
	n, err := s.internalGet(p)
	if err != nil {
		return nil, err
	}
	next := s.index + 1
	e := newEvent(Delete, p, next, n.createdIndex)
	e.EtcdIndex = next
	e.PrevNode = n.repr(false, false, now)
	if n.isDir() {
		e.Node.Dir = true
	}
	if err := s.remove(n, dir, recursive, s.deletedCallback(e)); err != nil {
		return nil, err
	}
	s.index++
	w.deleteNode(n)
	s.record(w, e, false)
	return e, nil
}

// CompareAndDelete removes the key at p if its value is prevValue (unless
// empty) and its modified index is prevIndex (unless 0).
func (s *Store) CompareAndDelete(b Batch, p, prevValue string, prevIndex uint64, now time.Time) (*Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := &writer{b: b}
	e, err := s.compareAndDelete(w, cleanPath(p), prevValue, prevIndex, now)
	count(err, &s.stats.CompareAndDeleteSuccess, &s.stats.CompareAndDeleteFail)
	return finish(w, e, err)
}

func (s *Store) compareAndDelete(w *writer, p, prevValue string, prevIndex uint64, now time.Time) (*Event, *Error) {
	n, err := s.internalGet(p)
	if err != nil {
		return nil, err
	}
	if n.isDir() {
		return nil, NewError(EcodeNotFile, p, s.index)
	}
	if ok, which := n.compare(prevValue, prevIndex); !ok {
		return nil, NewError(EcodeTestFailed, compareFailCause(n, which, prevValue, prevIndex), s.index)
	}
	s.index++
	e := newEvent(CompareAndDelete, p, s.index, n.createdIndex)
	e.EtcdIndex = s.index
	e.PrevNode = n.repr(false, false, now)
	s.remove(n, false, false, s.deletedCallback(e))
	w.deleteNode(n)
	s.record(w, e, false)
	return e, nil
}

// DeleteExpiredKeys expires every node whose expiration time is not after
// cutoff, earliest first, each with an expire event. cutoff comes from the
// replicated SYNC request: the leader's clock when it proposed it.
func (s *Store) DeleteExpiredKeys(b Batch, cutoff time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := &writer{b: b}
	for {
		n := s.ttl.top()
		if n == nil || n.expireTime.After(cutoff) {
			break
		}
		s.index++
		e := newEvent(Expire, n.path, s.index, n.createdIndex)
		e.EtcdIndex = s.index
		e.PrevNode = n.repr(false, false, cutoff)
		if n.isDir() {
			e.Node.Dir = true
		}
		s.ttl.remove(n)
		s.remove(n, true, true, s.deletedCallback(e))
		s.stats.ExpireCount.Add(1)
		w.deleteNode(n)
		s.record(w, e, false)
	}
	return w.err
}

// Watch starts a watch of p (and everything below it if recursive) from
// store index since; 0 means from the next write. An index still in the
// history is answered at once; one older than the history is error 401.
func (s *Store) Watch(p string, recursive, stream bool, since uint64) (*Watcher, error) {
	return s.WatchAllowed(p, recursive, stream, since, nil)
}

// WatchAllowed is Watch with a check of every event before it is
// delivered (nil: none): an event allow refuses drops the watcher instead,
// which ends its response. It runs under the store's locks and must not
// call back into the store.
func (s *Store) WatchAllowed(p string, recursive, stream bool, since uint64, allow func(*Event) bool) (*Watcher, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	key := cleanPath(p)
	if since == 0 {
		since = s.index + 1
	}
	w, err := s.hub.watch(s.hist, key, recursive, stream, since, s.index, allow)
	if err != nil {
		return nil, err
	}
	return w, nil
}

// internalGet walks to the node at the clean path p.
func (s *Store) internalGet(p string) (*node, *Error) {
	return s.walk(p, func(parent *node, name string) (*node, *Error) {
		if !parent.isDir() {
			return nil, NewError(EcodeNotDir, parent.path, s.index)
		}
		if child, ok := parent.children[name]; ok {
			return child, nil
		}
		return nil, NewError(EcodeKeyNotFound, path.Join(parent.path, name), s.index)
	})
}

// walk follows p from the root, calling step for each path element; an
// empty element (a trailing slash) ends the walk.
func (s *Store) walk(p string, step func(parent *node, name string) (*node, *Error)) (*node, *Error) {
	cur := s.root
	parts := strings.Split(p, "/")
	for _, name := range parts[1:] {
		if name == "" {
			return cur, nil
		}
		var err *Error
		if cur, err = step(cur, name); err != nil {
			return nil, err
		}
	}
	return cur, nil
}

// internalCreate creates the node at p, creating missing directories on
// the way. replace allows replacing an existing key (not a directory).
func (s *Store) internalCreate(w *writer, p string, dir bool, value string, unique, replace bool,
	expire time.Time, action string, now time.Time) (*Event, *Error) {
	cur, next := s.index, s.index+1
	if unique {
		p += "/" + fmt.Sprintf("%020d", next)
	}
	p = cleanPath(p)
	if p == "/" {
		return nil, NewError(EcodeRootROnly, "/", cur)
	}
	if expire.Before(minExpireTime) {
		expire = time.Time{}
	}
	dirName, name := path.Split(p)
	d, err := s.walk(dirName, func(parent *node, name string) (*node, *Error) {
		if child, ok := parent.children[name]; ok {
			if child.isDir() {
				return child, nil
			}
			return nil, NewError(EcodeNotDir, child.path, s.index)
		}
		n := newDir(path.Join(parent.path, name), s.index+1, parent, time.Time{})
		parent.children[name] = n
		w.putNode(n)
		return n, nil
	})
	if err != nil {
		// etcd counts this failure as a failed set too, whatever the
		// action.
		s.stats.SetFail.Add(1)
		err.Index = cur
		return nil, err
	}
	e := newEvent(action, p, next, next)
	if old, ok := d.children[name]; ok {
		if !replace {
			return nil, NewError(EcodeNodeExist, p, cur)
		}
		if old.isDir() {
			return nil, NewError(EcodeNotFile, p, cur)
		}
		e.PrevNode = old.repr(false, false, now)
		s.remove(old, false, false, nil)
	}
	var n *node
	if dir {
		e.Node.Dir = true
		n = newDir(p, next, d, expire)
	} else {
		v := value
		e.Node.Value = &v
		n = newKV(p, value, next, d, expire)
	}
	d.children[name] = n
	if !n.isPermanent() {
		s.ttl.push(n)
		e.Node.Expiration, e.Node.TTL = n.expirationAndTTL(now)
	}
	s.index = next
	w.putNode(n)
	return e, nil
}

// updateTTL moves n to expire (zero: never), keeping the TTL heap in step.
func (s *Store) updateTTL(n *node, expire time.Time) {
	switch {
	case !n.isPermanent() && expire.IsZero():
		n.expireTime = expire
		s.ttl.remove(n)
	case !n.isPermanent():
		n.expireTime = expire
		s.ttl.update(n)
	case !expire.IsZero():
		n.expireTime = expire
		s.ttl.push(n)
	}
}

// remove unlinks n (and with recursive its subtree, children first in key
// order), calling cb with the path of every node removed.
func (s *Store) remove(n *node, dir, recursive bool, cb func(string)) *Error {
	name := path.Base(n.path)
	if !n.isDir() {
		if n.parent != nil && n.parent.children[name] == n {
			delete(n.parent.children, name)
		}
		if cb != nil {
			cb(n.path)
		}
		s.ttl.remove(n)
		return nil
	}
	if !dir {
		return NewError(EcodeNotFile, n.path, s.index)
	}
	if len(n.children) != 0 && !recursive {
		return NewError(EcodeDirNotEmpty, n.path, s.index)
	}
	for _, c := range n.sortedChildren() {
		s.remove(c, true, true, cb)
	}
	if n.parent != nil && n.parent.children[name] == n {
		delete(n.parent.children, name)
		if cb != nil {
			cb(n.path)
		}
		s.ttl.remove(n)
	}
	return nil
}

// deletedCallback tells the watchers of each removed path about e.
func (s *Store) deletedCallback(e *Event) func(string) {
	return func(p string) { s.hub.notifyWatchers(e, p, true) }
}

// record adds e to the history (and storage) and, unless it is a TTL
// refresh, notifies the watchers.
func (s *Store) record(w *writer, e *Event, refresh bool) {
	if refresh {
		e.Refresh = true
	}
	if evicted := s.hist.add(e); evicted != nil {
		w.deleteEvent(evicted.Index())
	}
	w.putEvent(e)
	w.putIndex(s.index)
	if !refresh {
		s.hub.notify(e)
	}
}

// finish turns a result into the API's: a nil *Error must not become a
// non-nil error, and a storage failure wins over everything.
func finish(w *writer, e *Event, err *Error) (*Event, error) {
	if w.err != nil {
		return nil, w.err
	}
	if err != nil {
		return nil, err
	}
	return e, nil
}
