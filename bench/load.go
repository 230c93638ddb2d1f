package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// loadSpec describes keys written by the harness's own loader.
type loadSpec struct {
	prefix  string
	first   int // keys are prefix + %08d of first .. first+count-1
	count   int
	valSize int
	conns   int // gRPC connections, spread over the endpoints
	workers int // concurrent requests
}

// keyName returns the i-th key of a load.
func keyName(prefix string, i int) string { return fmt.Sprintf("%s%08d", prefix, i) }

// load puts every key of spec once, with a value of fresh random bytes per
// put. Unlike the benchmark tool, which writes one value for every put,
// the values do not repeat, so a storage engine that compresses cannot make
// the data smaller than it would be in real use.
func load(ctx context.Context, endpoints []string, spec loadSpec) error {
	conns := max(spec.conns, 1)
	clients := make([]*clientv3.Client, conns)
	for i := range clients {
		cli, err := newClient([]string{endpoints[i%len(endpoints)]})
		if err != nil {
			return err
		}
		defer cli.Close()
		clients[i] = cli
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	for w := range max(spec.workers, 1) {
		kv := clients[w%conns].KV
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), uint64(spec.first)))
			val := make([]byte, spec.valSize)
			for {
				i := int(next.Add(1)) - 1
				if i >= spec.count || ctx.Err() != nil {
					return
				}
				fillRandom(rng, val)
				if _, err := kv.Put(ctx, keyName(spec.prefix, spec.first+i), string(val)); err != nil {
					errOnce.Do(func() {
						firstErr = fmt.Errorf("put %s: %w", keyName(spec.prefix, spec.first+i), err)
						cancel()
					})
					return
				}
			}
		})
	}
	wg.Wait()
	return firstErr
}

func fillRandom(rng *rand.Rand, b []byte) {
	for i := 0; i < len(b); i += 8 {
		x := rng.Uint64()
		for j := i; j < i+8 && j < len(b); j++ {
			b[j] = byte(x)
			x >>= 8
		}
	}
}

// loadRangeKeys writes the keys the range workloads read: one key, and
// rangeManyCount keys under one prefix, each with a 256-byte value.
func loadRangeKeys(ctx context.Context, r *runner, d *deployment) error {
	eps := d.endpoints()
	if err := load(ctx, eps, loadSpec{prefix: rangeManyFrom, count: rangeManyCount, valSize: 256, conns: 1, workers: 16}); err != nil {
		return err
	}
	cli, err := newClient(eps)
	if err != nil {
		return err
	}
	defer cli.Close()
	val := make([]byte, 256)
	fillRandom(rand.New(rand.NewPCG(1, 2)), val)
	_, err = cli.Put(ctx, rangeOneKey, string(val))
	return err
}
