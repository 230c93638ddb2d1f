package watch

import (
	"math/rand/v2"
	"strings"
)

// rangeKey is a watched range [key, end); an empty end means every key from
// key on. (A range with a real end is never empty-ended: its end is above
// its key, so above "".)
type rangeKey struct{ key, end string }

func (rk rangeKey) holds(key string) bool {
	return key >= rk.key && endsAfter(rk.end, key)
}

// compare orders ranges by start, then by end with the open end last.
func (rk rangeKey) compare(o rangeKey) int {
	if c := strings.Compare(rk.key, o.key); c != 0 {
		return c
	}
	switch {
	case rk.end == o.end:
		return 0
	case rk.end == "":
		return 1
	case o.end == "":
		return -1
	}
	return strings.Compare(rk.end, o.end)
}

// endsAfter reports whether a range ending at end (exclusive; "" for no
// end) reaches past key.
func endsAfter(end, key string) bool { return end == "" || end > key }

// laterEnd returns the later of two range ends.
func laterEnd(a, b string) string {
	if a == "" || b == "" {
		return ""
	}
	return max(a, b)
}

// rangeIndex holds the synced watchers of key ranges, one node per distinct
// range. The nodes form a treap (a binary search tree by range, kept
// balanced by random heap priorities) in which every node also records the
// latest end in its subtree, so the ranges holding a key are found without
// looking at the others: a subtree whose ranges all end at or before the
// key is skipped, and so is everything right of a range starting after it.
// Finding the m ranges that hold a key among n costs O(log n) per range
// found (and O(log n) when there is none), against O(n) for checking them
// all, which matters on the apply loop with thousands of watched prefixes.
type rangeIndex struct {
	root  *rangeNode
	nodes map[rangeKey]*rangeNode
}

type rangeNode struct {
	rk       rangeKey
	watchers map[*watcher]struct{}

	prio        uint64
	left, right *rangeNode
	maxEnd      string // the latest end in this subtree ("" for open)
}

func newRangeIndex() rangeIndex { return rangeIndex{nodes: map[rangeKey]*rangeNode{}} }

func (ix *rangeIndex) len() int { return len(ix.nodes) }

// add indexes w under rk.
func (ix *rangeIndex) add(rk rangeKey, w *watcher) {
	n := ix.nodes[rk]
	if n == nil {
		n = &rangeNode{rk: rk, watchers: map[*watcher]struct{}{}, prio: rand.Uint64()}
		ix.nodes[rk] = n
		ix.root = insertRange(ix.root, n)
	}
	n.watchers[w] = struct{}{}
}

// remove takes w out of rk's node, and the node out of the tree once it has
// no watchers left.
func (ix *rangeIndex) remove(rk rangeKey, w *watcher) {
	n := ix.nodes[rk]
	if n == nil {
		return
	}
	delete(n.watchers, w)
	if len(n.watchers) == 0 {
		delete(ix.nodes, rk)
		ix.root = removeRange(ix.root, rk)
	}
}

// stab appends to out every node whose range holds key, in range order.
func (ix *rangeIndex) stab(key string, out []*rangeNode) []*rangeNode {
	return stabRange(ix.root, key, out)
}

func stabRange(n *rangeNode, key string, out []*rangeNode) []*rangeNode {
	for n != nil && endsAfter(n.maxEnd, key) {
		out = stabRange(n.left, key, out)
		if n.rk.key > key {
			break // it and everything right of it start after key
		}
		if endsAfter(n.rk.end, key) {
			out = append(out, n)
		}
		n = n.right
	}
	return out
}

// fix recomputes n's subtree end from its own range and its children's.
func (n *rangeNode) fix() {
	end := n.rk.end
	if n.left != nil {
		end = laterEnd(end, n.left.maxEnd)
	}
	if n.right != nil {
		end = laterEnd(end, n.right.maxEnd)
	}
	n.maxEnd = end
}

func insertRange(n, x *rangeNode) *rangeNode {
	if n == nil {
		x.left, x.right = nil, nil
		x.fix()
		return x
	}
	if x.rk.compare(n.rk) < 0 {
		n.left = insertRange(n.left, x)
		if n.left.prio > n.prio {
			return rotateRight(n)
		}
	} else {
		n.right = insertRange(n.right, x)
		if n.right.prio > n.prio {
			return rotateLeft(n)
		}
	}
	n.fix()
	return n
}

func removeRange(n *rangeNode, rk rangeKey) *rangeNode {
	if n == nil {
		return nil
	}
	switch c := rk.compare(n.rk); {
	case c < 0:
		n.left = removeRange(n.left, rk)
	case c > 0:
		n.right = removeRange(n.right, rk)
	default:
		return mergeRanges(n.left, n.right)
	}
	n.fix()
	return n
}

// mergeRanges joins two treaps, every range of a ordered before b's.
func mergeRanges(a, b *rangeNode) *rangeNode {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	case a.prio > b.prio:
		a.right = mergeRanges(a.right, b)
		a.fix()
		return a
	default:
		b.left = mergeRanges(a, b.left)
		b.fix()
		return b
	}
}

func rotateRight(n *rangeNode) *rangeNode {
	l := n.left
	n.left = l.right
	n.fix()
	l.right = n
	l.fix()
	return l
}

func rotateLeft(n *rangeNode) *rangeNode {
	r := n.right
	n.right = r.left
	n.fix()
	r.left = n
	r.fix()
	return r
}
