package v2store

import (
	"fmt"
	"path"
	"strings"
)

// HistorySize is how many events the store keeps for watchers that start
// in the past (etcd's 1000).
const HistorySize = 1000

// history is a ring of the last HistorySize events. Every write takes the
// next store index and records exactly one event, so the events in the
// ring have consecutive indexes.
type history struct {
	events []*Event // ring storage, len == HistorySize once full
	front  int      // position of the oldest event
	size   int
	// startIndex and lastIndex are the indexes of the oldest and newest
	// events; both 0 while the ring is empty.
	startIndex, lastIndex uint64
}

func newHistory() *history { return &history{events: make([]*Event, HistorySize)} }

// add records e and returns the event it pushed out, if any.
func (h *history) add(e *Event) (evicted *Event) {
	back := (h.front + h.size) % HistorySize
	if h.size == HistorySize {
		evicted = h.events[h.front]
		h.front = (h.front + 1) % HistorySize
	} else {
		h.size++
	}
	h.events[back] = e
	h.lastIndex = e.Index()
	h.startIndex = h.events[h.front].Index()
	return evicted
}

// scan finds the first event at or after index that a watcher of key
// (recursive or not) would receive. It returns nil when there is none yet,
// and error 401 when index is older than the history.
func (h *history) scan(key string, recursive bool, index uint64) (*Event, *Error) {
	if index < h.startIndex {
		return nil, NewError(EcodeEventIndexCleared,
			fmt.Sprintf("the requested history has been cleared [%v/%v]", h.startIndex, index), 0)
	}
	if index > h.lastIndex {
		return nil, nil
	}
	prefix := path.Clean(key)
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	for i := int(index - h.startIndex); i < h.size; i++ {
		e := h.events[(h.front+i)%HistorySize]
		if e.Refresh {
			continue
		}
		ok := e.Node.Key == key || (recursive && strings.HasPrefix(e.Node.Key, prefix))
		// Deleting or expiring a directory ends the watches below it. As
		// in etcd the test is a plain string prefix: deleting /foo also
		// answers a watch of /foobar from history.
		if (e.Action == Delete || e.Action == Expire) && e.PrevNode != nil && e.PrevNode.Dir {
			ok = ok || strings.HasPrefix(key, e.PrevNode.Key)
		}
		if ok {
			return e, nil
		}
	}
	return nil, nil
}

// all returns the events oldest first.
func (h *history) all() []*Event {
	out := make([]*Event, h.size)
	for i := range out {
		out[i] = h.events[(h.front+i)%HistorySize]
	}
	return out
}
