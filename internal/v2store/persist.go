package v2store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/cairn-io/cairn/internal/storage"
)

// Storage layout, under storage.PrefixV2 ('v'):
//
//	v i              the store index, 8 bytes big-endian
//	v n <path>       a node (the root is implicit and not stored)
//	v e <8-byte idx> an event of the history, by store index
//
// A directory's descendants are exactly the keys with prefix
// "v n <path>/", so removing a subtree is one range delete. Values are a
// small binary encoding (below) rather than JSON, because v2 values and
// keys are arbitrary bytes that JSON would not carry unchanged.
const (
	kindIndex = 'i'
	kindNode  = 'n'
	kindEvent = 'e'

	encodingVersion = 1
)

func indexKey() []byte { return []byte{storage.PrefixV2, kindIndex} }

func nodeKey(p string) []byte {
	return append([]byte{storage.PrefixV2, kindNode}, p...)
}

func eventKey(index uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{storage.PrefixV2, kindEvent}, index)
}

// Batch receives the store's changes: the apply loop's *pebble.Batch.
type Batch interface {
	Set(key, value []byte, opts *pebble.WriteOptions) error
	Delete(key []byte, opts *pebble.WriteOptions) error
	DeleteRange(start, end []byte, opts *pebble.WriteOptions) error
}

// Reader is what Load reads: a *pebble.DB or *pebble.Snapshot.
type Reader interface {
	NewIter(o *pebble.IterOptions) (*pebble.Iterator, error)
	Get(key []byte) ([]byte, io.Closer, error)
}

// writer records changes in a batch, if there is one, and keeps the first
// error.
type writer struct {
	b   Batch
	err error
}

func (w *writer) set(k, v []byte) {
	if w.b != nil && w.err == nil {
		if err := w.b.Set(k, v, nil); err != nil {
			w.err = fmt.Errorf("v2store: persist: %w", err)
		}
	}
}

func (w *writer) putIndex(index uint64) {
	w.set(indexKey(), binary.BigEndian.AppendUint64(nil, index))
}

func (w *writer) putNode(n *node) { w.set(nodeKey(n.path), encodeNode(n)) }

func (w *writer) putEvent(e *Event) { w.set(eventKey(e.Index()), encodeEvent(e)) }

func (w *writer) deleteEvent(index uint64) {
	if w.b != nil && w.err == nil {
		if err := w.b.Delete(eventKey(index), nil); err != nil {
			w.err = fmt.Errorf("v2store: persist: %w", err)
		}
	}
}

// deleteNode removes n and, for a directory, everything below it.
func (w *writer) deleteNode(n *node) {
	if w.b == nil || w.err != nil {
		return
	}
	if err := w.b.Delete(nodeKey(n.path), nil); err != nil {
		w.err = fmt.Errorf("v2store: persist: %w", err)
		return
	}
	if n.isDir() {
		lo := nodeKey(n.path + "/")
		hi := nodeKey(n.path + "0") // '0' follows '/'
		if err := w.b.DeleteRange(lo, hi, nil); err != nil {
			w.err = fmt.Errorf("v2store: persist: %w", err)
		}
	}
}

// A node: version, flags (1: directory), created and modified index
// (uvarint), expiration in Unix nanoseconds (varint, 0 for none), value.
func encodeNode(n *node) []byte {
	b := []byte{encodingVersion, 0}
	if n.isDir() {
		b[1] = 1
	}
	b = binary.AppendUvarint(b, n.createdIndex)
	b = binary.AppendUvarint(b, n.modifiedIndex)
	var exp int64
	if !n.isPermanent() {
		exp = n.expireTime.UnixNano()
	}
	b = binary.AppendVarint(b, exp)
	return append(b, n.value...)
}

func decodeNode(p string, b []byte) (*node, error) {
	d := decoder{b: b}
	if d.byte() != encodingVersion {
		return nil, errBadRecord
	}
	flags := d.byte()
	created, modified, exp := d.uvarint(), d.uvarint(), d.varint()
	if d.err != nil || flags > 1 {
		return nil, errBadRecord
	}
	var expire time.Time
	if exp != 0 {
		expire = time.Unix(0, exp)
	}
	var n *node
	if flags == 1 {
		if len(d.b) != 0 {
			return nil, errBadRecord
		}
		n = newDir(p, created, nil, expire)
	} else {
		n = newKV(p, string(d.b), created, nil, expire)
	}
	n.modifiedIndex = modified
	return n, nil
}

// An event: version, action, flags (1: refresh, 2: has prevNode), node,
// prevNode. Write events carry no child nodes.
func encodeEvent(e *Event) []byte {
	b := []byte{encodingVersion}
	b = appendString(b, e.Action)
	var flags byte
	if e.Refresh {
		flags |= 1
	}
	if e.PrevNode != nil {
		flags |= 2
	}
	b = append(b, flags)
	b = appendNodeExtern(b, e.Node)
	if e.PrevNode != nil {
		b = appendNodeExtern(b, e.PrevNode)
	}
	return b
}

func decodeEvent(b []byte) (*Event, error) {
	d := decoder{b: b}
	if d.byte() != encodingVersion {
		return nil, errBadRecord
	}
	e := &Event{Action: d.string()}
	flags := d.byte()
	e.Refresh = flags&1 != 0
	e.Node = d.nodeExtern()
	if flags&2 != 0 {
		e.PrevNode = d.nodeExtern()
	}
	if d.err != nil || flags > 3 || len(d.b) != 0 {
		return nil, errBadRecord
	}
	switch e.Action {
	case Create, Set, Update, Delete, CompareAndSwap, CompareAndDelete, Expire:
	default:
		return nil, errBadRecord
	}
	e.EtcdIndex = e.Node.ModifiedIndex
	return e, nil
}

// A node as shown: key, flags (1: value, 2: dir, 4: expiration), value,
// expiration (varint nanoseconds), ttl (varint), modified and created index.
func appendNodeExtern(b []byte, n *NodeExtern) []byte {
	b = appendString(b, n.Key)
	var flags byte
	if n.Value != nil {
		flags |= 1
	}
	if n.Dir {
		flags |= 2
	}
	if n.Expiration != nil {
		flags |= 4
	}
	b = append(b, flags)
	if n.Value != nil {
		b = appendString(b, *n.Value)
	}
	if n.Expiration != nil {
		b = binary.AppendVarint(b, n.Expiration.UnixNano())
	}
	b = binary.AppendVarint(b, n.TTL)
	b = binary.AppendUvarint(b, n.ModifiedIndex)
	return binary.AppendUvarint(b, n.CreatedIndex)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

var errBadRecord = errors.New("undecodable record")

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = errBadRecord
	}
	d.b = nil
}

func (d *decoder) byte() byte {
	if len(d.b) == 0 {
		d.fail()
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string {
	l := d.uvarint()
	if l > uint64(len(d.b)) {
		d.fail()
		return ""
	}
	s := string(d.b[:l])
	d.b = d.b[l:]
	return s
}

func (d *decoder) nodeExtern() *NodeExtern {
	n := &NodeExtern{Key: d.string()}
	flags := d.byte()
	if flags > 7 {
		d.fail()
	}
	if flags&1 != 0 {
		v := d.string()
		n.Value = &v
	}
	n.Dir = flags&2 != 0
	if flags&4 != 0 {
		t := time.Unix(0, d.varint()).UTC()
		n.Expiration = &t
	}
	n.TTL = d.varint()
	n.ModifiedIndex = d.uvarint()
	n.CreatedIndex = d.uvarint()
	return n
}

// Load builds a store from what earlier writes recorded in r.
func Load(r Reader) (*Store, error) {
	s := New()
	if err := s.load(r); err != nil {
		return nil, err
	}
	return s, nil
}

// Reload replaces the store's contents with what r holds (after a
// snapshot from the leader was installed). Every watcher is dropped: its
// history no longer exists.
func (s *Store) Reload(r Reader) error {
	fresh, err := Load(r)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.root, s.index, s.hist, s.ttl = fresh.root, fresh.index, fresh.hist, fresh.ttl
	s.hub.closeAll()
	return nil
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("v2store: "+format+": %w", append(args, storage.ErrCorrupt)...)
}

func (s *Store) load(r Reader) error {
	v, closer, err := r.Get(indexKey())
	switch {
	case errors.Is(err, pebble.ErrNotFound):
	case err != nil:
		return fmt.Errorf("v2store: load index: %w", err)
	default:
		if len(v) != 8 {
			closer.Close()
			return corrupt("index record of %d bytes", len(v))
		}
		s.index = binary.BigEndian.Uint64(v)
		closer.Close()
	}

	dirs := map[string]*node{"/": s.root}
	err = scan(r, kindNode, func(k, v []byte) error {
		p := string(k[2:])
		if p == "/" || cleanPath(p) != p {
			return corrupt("node key %q", p)
		}
		n, err := decodeNode(p, v)
		if err != nil {
			return corrupt("node %q: %v", p, err)
		}
		if n.createdIndex > n.modifiedIndex || n.modifiedIndex > s.index {
			return corrupt("node %q created at %d and modified at %d, with the store at %d", p, n.createdIndex, n.modifiedIndex, s.index)
		}
		// Keys sort parents before children, so the parent is known.
		parent, ok := dirs[path.Dir(p)]
		if !ok {
			return corrupt("node %q has no parent directory", p)
		}
		n.parent = parent
		parent.children[path.Base(p)] = n
		if n.isDir() {
			dirs[p] = n
		}
		if !n.isPermanent() {
			s.ttl.push(n)
		}
		return nil
	})
	if err != nil {
		return err
	}

	err = scan(r, kindEvent, func(k, v []byte) error {
		if len(k) != 10 {
			return corrupt("event key %x", k)
		}
		idx := binary.BigEndian.Uint64(k[2:])
		e, err := decodeEvent(v)
		if err != nil || e.Index() != idx {
			return corrupt("event %d: %v", idx, err)
		}
		if s.hist.size > 0 && idx != s.hist.lastIndex+1 {
			return corrupt("event %d follows event %d", idx, s.hist.lastIndex)
		}
		if idx > s.index {
			return corrupt("event %d is after the store index %d", idx, s.index)
		}
		s.hist.add(e)
		return nil
	})
	if err != nil {
		return err
	}
	// Every write records one event at the next index, so the newest event
	// is the store index itself.
	if s.hist.size > 0 && s.hist.lastIndex != s.index {
		return corrupt("the newest event is %d but the store index is %d", s.hist.lastIndex, s.index)
	}
	return nil
}

func scan(r Reader, kind byte, fn func(k, v []byte) error) error {
	it, err := r.NewIter(&pebble.IterOptions{
		LowerBound: []byte{storage.PrefixV2, kind},
		UpperBound: []byte{storage.PrefixV2, kind + 1},
	})
	if err != nil {
		return fmt.Errorf("v2store: load: %w", err)
	}
	for it.First(); it.Valid(); it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return fmt.Errorf("v2store: load: %w", err)
		}
		if err := fn(it.Key(), v); err != nil {
			it.Close()
			return err
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("v2store: load: %w", err)
	}
	return nil
}
