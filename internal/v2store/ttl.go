package v2store

import "container/heap"

// ttlHeap orders the nodes that have a TTL by expiration time, ties broken
// by path, so that every member expires them in the same order.
type ttlHeap []*node

func (h ttlHeap) Len() int { return len(h) }
func (h ttlHeap) Less(i, j int) bool {
	if !h[i].expireTime.Equal(h[j].expireTime) {
		return h[i].expireTime.Before(h[j].expireTime)
	}
	return h[i].path < h[j].path
}
func (h ttlHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIndex = i
	h[j].heapIndex = j
}
func (h *ttlHeap) Push(x any) {
	n := x.(*node)
	n.heapIndex = len(*h)
	*h = append(*h, n)
}
func (h *ttlHeap) Pop() any {
	old := *h
	n := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	n.heapIndex = -1
	return n
}

func (h *ttlHeap) top() *node {
	if len(*h) == 0 {
		return nil
	}
	return (*h)[0]
}

func (h *ttlHeap) push(n *node) { heap.Push(h, n) }

func (h *ttlHeap) update(n *node) {
	if n.heapIndex >= 0 {
		heap.Fix(h, n.heapIndex)
	}
}

func (h *ttlHeap) remove(n *node) {
	if n.heapIndex >= 0 {
		heap.Remove(h, n.heapIndex)
	}
}
