package mvcc

import (
	"sync"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// valueCache keeps recently written and read revisions' values in memory so
// that reads of hot keys do not go to the storage engine. Revisions never
// change once written, so entries are never invalidated; a revision that
// compaction removed is simply never asked for again and ages out.
//
// It is split into shards, each a CLOCK cache bounded by bytes, so that
// concurrent readers rarely share a lock.
type valueCache struct {
	shards   [cacheShards]cacheShard
	perShard int64
}

const cacheShards = 64

type cacheShard struct {
	mu    sync.Mutex
	m     map[revID]*cacheEntry
	ring  []*cacheEntry
	hand  int
	bytes int64
}

type cacheEntry struct {
	id   revID
	kv   mvccpb.KeyValue
	size int64
	ref  bool
}

// entryOverhead approximates the bytes an entry costs beyond its key and
// value (the entry, its map slot and ring slot).
const entryOverhead = 160

func newValueCache(maxBytes int64) *valueCache {
	if maxBytes <= 0 {
		return nil
	}
	c := &valueCache{perShard: maxBytes / cacheShards}
	for i := range c.shards {
		c.shards[i].m = map[revID]*cacheEntry{}
	}
	return c
}

func (c *valueCache) shard(id revID) *cacheShard {
	h := uint64(id.main)*0x9e3779b97f4a7c15 ^ uint64(id.sub)
	return &c.shards[h>>58]
}

// get returns a copy of the cached value of revision id.
func (c *valueCache) get(id revID) (mvccpb.KeyValue, bool) {
	if c == nil {
		return mvccpb.KeyValue{}, false
	}
	sh := c.shard(id)
	sh.mu.Lock()
	e, ok := sh.m[id]
	if !ok {
		sh.mu.Unlock()
		return mvccpb.KeyValue{}, false
	}
	e.ref = true
	kv := e.kv
	sh.mu.Unlock()
	return kv, true
}

// put caches kv as revision id's value. The byte slices in kv must not be
// changed afterwards (values read back share them).
func (c *valueCache) put(id revID, kv mvccpb.KeyValue) {
	if c == nil {
		return
	}
	size := int64(len(kv.Key)+len(kv.Value)) + entryOverhead
	if size > c.perShard/4 {
		return // too big to be worth a slot
	}
	sh := c.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if _, ok := sh.m[id]; ok {
		return
	}
	for sh.bytes+size > c.perShard && len(sh.ring) > 0 {
		sh.evictOne()
	}
	e := &cacheEntry{id: id, kv: kv, size: size}
	sh.m[id] = e
	sh.ring = append(sh.ring, e)
	sh.bytes += size
}

// evictOne removes one entry, giving recently used ones a second chance.
func (sh *cacheShard) evictOne() {
	for {
		if sh.hand >= len(sh.ring) {
			sh.hand = 0
		}
		e := sh.ring[sh.hand]
		if e.ref {
			e.ref = false
			sh.hand++
			continue
		}
		last := len(sh.ring) - 1
		sh.ring[sh.hand] = sh.ring[last]
		sh.ring[last] = nil
		sh.ring = sh.ring[:last]
		delete(sh.m, e.id)
		sh.bytes -= e.size
		return
	}
}
