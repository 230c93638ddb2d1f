package mvcc

import (
	"fmt"
	"sync"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

func TestValueCacheBoundsAndReturnsCopies(t *testing.T) {
	c := newValueCache(cacheShards * 4096)
	for i := int64(0); i < 10000; i++ {
		c.put(revID{i, 0}, mvccpb.KeyValue{Key: []byte(fmt.Sprint(i)), Value: make([]byte, 100), ModRevision: i})
	}
	var total int64
	for i := range c.shards {
		sh := &c.shards[i]
		if sh.bytes > c.perShard {
			t.Fatalf("shard %d holds %d bytes, bound %d", i, sh.bytes, c.perShard)
		}
		if len(sh.m) != len(sh.ring) {
			t.Fatalf("shard %d: map %d, ring %d", i, len(sh.m), len(sh.ring))
		}
		total += sh.bytes
	}
	if total == 0 {
		t.Fatal("nothing cached")
	}
	kv, ok := c.get(revID{9999, 0})
	if !ok || kv.ModRevision != 9999 {
		t.Fatalf("newest entry: %v %v", kv, ok)
	}
	kv.ModRevision = 1 // a copy: the cached entry is unchanged
	if again, _ := c.get(revID{9999, 0}); again.ModRevision != 9999 {
		t.Fatal("get returned the cached entry itself")
	}
	if _, ok := c.get(revID{12345, 0}); ok {
		t.Fatal("found an entry never put")
	}
	var nilCache *valueCache
	nilCache.put(revID{1, 0}, mvccpb.KeyValue{})
	if _, ok := nilCache.get(revID{1, 0}); ok {
		t.Fatal("a disabled cache returned an entry")
	}
}

func TestValueCacheConcurrent(t *testing.T) {
	c := newValueCache(1 << 20)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := int64(0); i < 5000; i++ {
				id := revID{i % 700, int64(g)}
				if kv, ok := c.get(id); ok && kv.ModRevision != id.main {
					t.Errorf("entry %v holds revision %d", id, kv.ModRevision)
					return
				}
				c.put(id, mvccpb.KeyValue{Key: []byte("k"), ModRevision: id.main})
			}
		}(g)
	}
	wg.Wait()
}
