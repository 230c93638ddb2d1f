package server

import (
	"sync"
	"sync/atomic"
	"time"
)

// idGenerator makes request IDs unique across members and restarts, as
// etcd's: the member ID's low 16 bits, then a millisecond timestamp, then a
// counter.
type idGenerator struct {
	prefix uint64
	suffix atomic.Uint64
}

const (
	idTSBits  = 5 * 8
	idCntBits = 8
	idSufBits = idTSBits + idCntBits
)

func (g *idGenerator) init(memberID uint64) {
	g.prefix = (memberID & 0xffff) << idSufBits
	ms := uint64(time.Now().UnixMilli())
	g.suffix.Store((ms & (1<<idTSBits - 1)) << idCntBits)
}

func (g *idGenerator) next() uint64 {
	suf := g.suffix.Add(1) & (1<<idSufBits - 1)
	return g.prefix | suf
}

// result is what applying a proposal produced.
type result struct {
	resp any
	err  error
	// physc, for a compaction, is closed when the deleted revisions are
	// gone from storage.
	physc <-chan struct{}
}

// waiters maps pending proposal IDs to the channels their results go to.
// Sharded to keep concurrent clients off one lock.
type waiters struct {
	shards [64]waitShard
}

type waitShard struct {
	mu sync.Mutex
	m  map[uint64]chan result
}

func (w *waiters) init() {
	for i := range w.shards {
		w.shards[i].m = make(map[uint64]chan result)
	}
}

func (w *waiters) register(id uint64) chan result {
	ch := make(chan result, 1)
	sh := &w.shards[id%uint64(len(w.shards))]
	sh.mu.Lock()
	sh.m[id] = ch
	sh.mu.Unlock()
	return ch
}

// trigger delivers r to the waiter of id, if any, and forgets it.
func (w *waiters) trigger(id uint64, r result) {
	sh := &w.shards[id%uint64(len(w.shards))]
	sh.mu.Lock()
	ch, ok := sh.m[id]
	if ok {
		delete(sh.m, id)
	}
	sh.mu.Unlock()
	if ok {
		ch <- r
	}
}

// forget drops the waiter of id without delivering anything.
func (w *waiters) forget(id uint64) {
	sh := &w.shards[id%uint64(len(w.shards))]
	sh.mu.Lock()
	delete(sh.m, id)
	sh.mu.Unlock()
}

// failAll delivers err to every waiter.
func (w *waiters) failAll(err error) {
	for i := range w.shards {
		sh := &w.shards[i]
		sh.mu.Lock()
		for id, ch := range sh.m {
			ch <- result{err: err}
			delete(sh.m, id)
		}
		sh.mu.Unlock()
	}
}
