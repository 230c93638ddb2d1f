package v2store

import (
	"path"
	"sort"
	"time"
)

// node is a key (children == nil) or a directory.
type node struct {
	path          string
	createdIndex  uint64
	modifiedIndex uint64
	// expireTime is zero for a permanent node.
	expireTime time.Time
	value      string
	children   map[string]*node
	parent     *node
	// heapIndex is the node's position in the TTL heap, -1 when absent.
	heapIndex int
}

func newKV(p, value string, index uint64, parent *node, expire time.Time) *node {
	return &node{path: p, createdIndex: index, modifiedIndex: index, parent: parent, expireTime: expire, value: value, heapIndex: -1}
}

func newDir(p string, index uint64, parent *node, expire time.Time) *node {
	return &node{path: p, createdIndex: index, modifiedIndex: index, parent: parent, expireTime: expire,
		children: map[string]*node{}, heapIndex: -1}
}

func (n *node) isDir() bool       { return n.children != nil }
func (n *node) isPermanent() bool { return n.expireTime.IsZero() }

// isHidden: the node's name starts with an underscore. Hidden nodes are
// left out of directory listings and of recursive watches above them.
func (n *node) isHidden() bool {
	_, name := path.Split(n.path)
	return name != "" && name[0] == '_'
}

// sortedChildren lists a directory's children by name, so that every
// traversal (listings, recursive removal, persistence) is deterministic.
func (n *node) sortedChildren() []*node {
	out := make([]*node, 0, len(n.children))
	for _, c := range n.children {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].path < out[j].path })
	return out
}

// expirationAndTTL is what the API shows of a node's TTL at now: the
// expiration time in UTC and the seconds left, rounded up.
func (n *node) expirationAndTTL(now time.Time) (*time.Time, int64) {
	if n.isPermanent() {
		return nil, 0
	}
	left := n.expireTime.Sub(now)
	ttl := left / time.Second
	if left%time.Second > 0 {
		ttl++
	}
	t := n.expireTime.UTC()
	return &t, int64(ttl)
}

// compare checks prevValue and prevIndex (empty and 0 always match) and
// says which failed.
func (n *node) compare(prevValue string, prevIndex uint64) (ok bool, which int) {
	indexOK := prevIndex == 0 || n.modifiedIndex == prevIndex
	valueOK := prevValue == "" || n.value == prevValue
	switch {
	case indexOK && valueOK:
		return true, compareMatch
	case indexOK:
		return false, compareValueNotMatch
	case valueOK:
		return false, compareIndexNotMatch
	default:
		return false, compareNotMatch
	}
}

const (
	compareMatch = iota
	compareIndexNotMatch
	compareValueNotMatch
	compareNotMatch
)

// repr is the node as the API shows it, with its children (recursively if
// asked) but without hidden ones.
func (n *node) repr(recursive, sorted bool, now time.Time) *NodeExtern {
	e := &NodeExtern{Key: n.path, ModifiedIndex: n.modifiedIndex, CreatedIndex: n.createdIndex}
	e.Expiration, e.TTL = n.expirationAndTTL(now)
	if !n.isDir() {
		v := n.value
		e.Value = &v
		return e
	}
	e.Dir = true
	if recursive {
		e.Nodes = n.listChildren(recursive, sorted, now)
	}
	return e
}

// listChildren lists a directory's visible children. Listings are always in
// key order: etcd leaves the order of an unsorted listing unspecified, and
// key order is one such order.
func (n *node) listChildren(recursive, sorted bool, now time.Time) NodeExterns {
	out := make(NodeExterns, 0, len(n.children))
	for _, c := range n.sortedChildren() {
		if c.isHidden() {
			continue
		}
		out = append(out, c.repr(recursive, sorted, now))
	}
	return out
}
