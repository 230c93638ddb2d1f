package v2store

import (
	"time"
)

// Actions of events, as the v2 API names them.
const (
	Get              = "get"
	Create           = "create"
	Set              = "set"
	Update           = "update"
	Delete           = "delete"
	CompareAndSwap   = "compareAndSwap"
	CompareAndDelete = "compareAndDelete"
	Expire           = "expire"
)

// Event is the result of an operation and what a watcher receives. Its
// fields marshal in etcd's order: action, node, prevNode (and refresh for
// a TTL refresh).
type Event struct {
	Action   string      `json:"action"`
	Node     *NodeExtern `json:"node,omitempty"`
	PrevNode *NodeExtern `json:"prevNode,omitempty"`
	// EtcdIndex is the store index the response reports (X-Etcd-Index).
	EtcdIndex uint64 `json:"-"`
	Refresh   bool   `json:"refresh,omitempty"`
}

func newEvent(action, key string, modifiedIndex, createdIndex uint64) *Event {
	return &Event{Action: action, Node: &NodeExtern{Key: key, ModifiedIndex: modifiedIndex, CreatedIndex: createdIndex}}
}

// IsCreated reports whether the event created its node: a create, or a set
// of a key that did not exist. The v2 API answers those with 201.
func (e *Event) IsCreated() bool {
	return e.Action == Create || (e.Action == Set && e.PrevNode == nil)
}

// Index is the store index the event happened at.
func (e *Event) Index() uint64 { return e.Node.ModifiedIndex }

// Clone returns a deep copy without the Refresh mark. The API answers with
// clones, so "refresh" never appears in a response, as in etcd.
func (e *Event) Clone() *Event {
	return &Event{
		Action:    e.Action,
		EtcdIndex: e.EtcdIndex,
		Node:      e.Node.Clone(),
		PrevNode:  e.PrevNode.Clone(),
	}
}

// NodeExtern is a node as the v2 API shows it. Fields marshal in etcd's
// order; all are omitted when empty except value, which is a pointer so
// that an empty value still shows as "".
type NodeExtern struct {
	Key           string      `json:"key,omitempty"`
	Value         *string     `json:"value,omitempty"`
	Dir           bool        `json:"dir,omitempty"`
	Expiration    *time.Time  `json:"expiration,omitempty"`
	TTL           int64       `json:"ttl,omitempty"`
	Nodes         NodeExterns `json:"nodes,omitempty"`
	ModifiedIndex uint64      `json:"modifiedIndex,omitempty"`
	CreatedIndex  uint64      `json:"createdIndex,omitempty"`
}

// Clone returns a deep copy; nil stays nil.
func (n *NodeExtern) Clone() *NodeExtern {
	if n == nil {
		return nil
	}
	c := *n
	if n.Value != nil {
		v := *n.Value
		c.Value = &v
	}
	if n.Expiration != nil {
		t := *n.Expiration
		c.Expiration = &t
	}
	if n.Nodes != nil {
		c.Nodes = make(NodeExterns, len(n.Nodes))
		for i, child := range n.Nodes {
			c.Nodes[i] = child.Clone()
		}
	}
	return &c
}

// NodeExterns sorts by key.
type NodeExterns []*NodeExtern

func (ns NodeExterns) Len() int           { return len(ns) }
func (ns NodeExterns) Less(i, j int) bool { return ns[i].Key < ns[j].Key }
func (ns NodeExterns) Swap(i, j int)      { ns[i], ns[j] = ns[j], ns[i] }
