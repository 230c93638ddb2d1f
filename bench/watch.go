package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// The benchmark tool's watch commands do not measure delivery latency:
// "watch" times each event from the moment its own response arrived (so
// every latency is about zero), and "watch-latency" starts the clock after
// the Put has returned and waits for one response per watcher per put with a
// goroutine each. The fan-out workload is therefore measured by this client.

// watchConfig shapes the fan-out workload.
type watchConfig struct {
	watchers int // watches opened
	keys     int // distinct keys; watcher i watches key i%keys
	streams  int // watch streams (clientv3.Watcher), spread over conns
	conns    int // gRPC connections, spread over the endpoints

	// The latency phase puts at rate puts per second for duration; every
	// event's delivery latency is measured.
	rate     int
	duration time.Duration
	// The throughput phase puts burst values as fast as putters concurrent
	// requests allow and measures how many events per second arrive.
	burst   int
	putters int
}

func watchConfigFor(quick bool) watchConfig {
	c := watchConfig{
		watchers: 10_000, keys: 10, streams: 100, conns: 10,
		rate: 10, duration: 10 * time.Second,
		burst: 1000, putters: 10,
	}
	if quick {
		c.watchers /= quickDivisor
		c.streams = max(c.streams/quickDivisor, 1)
		c.conns = max(c.conns/quickDivisor, 1)
		c.duration = 2 * time.Second
		c.burst /= quickDivisor
	}
	return c
}

// Event values carry when their put was due and which phase put them.
const (
	phaseLatency    = 1
	phaseThroughput = 2
	watchValueSize  = 256
)

// watchState is what the receivers share.
type watchState struct {
	base      time.Time       // event timestamps are nanoseconds since base
	received  [3]atomic.Int64 // by phase; index 0 is unused
	lastRecv2 atomic.Int64    // latest arrival in the throughput phase, ns since base
	lats      [][]int64       // per watcher: latency-phase delivery latencies, ns

	mu   sync.Mutex
	errs []error
}

func (s *watchState) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.errs) < 10 {
		s.errs = append(s.errs, err)
	}
}

// runWatch opens the watchers, runs both phases and reports the
// throughput phase's events per second and the latency phase's p99.
func runWatch(ctx context.Context, r *runner, d *deployment, c watchConfig) (values, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	eps := d.leaderFirst(ctx)
	clients := make([]*clientv3.Client, c.conns)
	for i := range clients {
		cli, err := newClient([]string{eps[i%len(eps)]})
		if err != nil {
			return nil, err
		}
		defer cli.Close()
		clients[i] = cli
	}
	streams := make([]clientv3.Watcher, c.streams)
	for i := range streams {
		streams[i] = clientv3.NewWatcher(clients[i%len(clients)])
		defer streams[i].Close()
	}
	keys := make([]string, c.keys)
	for i := range keys {
		keys[i] = fmt.Sprintf("bench/watch/%04d", i)
	}
	perKey := make([]int64, c.keys)

	st := &watchState{base: time.Now(), lats: make([][]int64, c.watchers)}
	var created, finished sync.WaitGroup
	created.Add(c.watchers)
	start := time.Now()
	for i := range c.watchers {
		k := i % c.keys
		perKey[k]++
		wch := streams[i%len(streams)].Watch(ctx, keys[k], clientv3.WithCreatedNotify())
		finished.Go(func() { st.receive(ctx, wch, i, created.Done) })
	}
	if err := waitGroup(ctx, &created, 5*time.Minute); err != nil {
		return nil, fmt.Errorf("opening %d watchers: %w", c.watchers, err)
	}
	r.logf("opened %d watchers on %s in %v", c.watchers, d.system, time.Since(start).Round(time.Millisecond))
	if err := st.err(); err != nil {
		return nil, err
	}

	// Latency phase: puts at a fixed rate. Each event's latency runs from
	// the moment its put was due, not from when a putter got round to it,
	// so a server that falls behind is not flattered by the delay.
	n1 := int(float64(c.rate) * c.duration.Seconds())
	jobs := make(chan int, n1)
	var putErr atomic.Pointer[error]
	var putters sync.WaitGroup
	phase1 := time.Since(st.base)
	for p := range 16 {
		kv := clients[p%len(clients)].KV
		putters.Go(func() {
			val := make([]byte, watchValueSize)
			for i := range jobs {
				due := int64(i) * int64(time.Second) / int64(c.rate)
				binary.BigEndian.PutUint64(val, uint64(int64(phase1)+due))
				val[8] = phaseLatency
				if _, err := kv.Put(ctx, keys[i%c.keys], string(val)); err != nil {
					putErr.CompareAndSwap(nil, &err)
				}
			}
		})
	}
	for i := range n1 {
		due := phase1 + time.Duration(int64(i)*int64(time.Second)/int64(c.rate))
		if wait := due - time.Since(st.base); wait > 0 {
			time.Sleep(wait)
		}
		jobs <- i
	}
	close(jobs)
	putters.Wait()
	if p := putErr.Load(); p != nil {
		return nil, fmt.Errorf("put: %w", *p)
	}
	var expected1 int64
	for i := range n1 {
		expected1 += perKey[i%c.keys]
	}
	waitCount(ctx, &st.received[phaseLatency], expected1, 30*time.Second)

	// Throughput phase: as fast as the putters go.
	n2 := c.burst
	var expected2 int64
	for i := range n2 {
		expected2 += perKey[i%c.keys]
	}
	phase2 := time.Since(st.base)
	var next atomic.Int64
	for p := range c.putters {
		kv := clients[p%len(clients)].KV
		putters.Go(func() {
			val := make([]byte, watchValueSize)
			val[8] = phaseThroughput
			for {
				i := int(next.Add(1)) - 1
				if i >= n2 {
					return
				}
				binary.BigEndian.PutUint64(val, uint64(time.Since(st.base)))
				if _, err := kv.Put(ctx, keys[i%c.keys], string(val)); err != nil {
					putErr.CompareAndSwap(nil, &err)
					return
				}
			}
		})
	}
	putters.Wait()
	if p := putErr.Load(); p != nil {
		return nil, fmt.Errorf("put: %w", *p)
	}
	waitCount(ctx, &st.received[phaseThroughput], expected2, 60*time.Second)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	cancel()
	finished.Wait()
	if err := st.err(); err != nil {
		return nil, err
	}

	var all []int64
	for _, l := range st.lats {
		all = append(all, l...)
	}
	if len(all) == 0 {
		return nil, errors.New("no event arrived in the latency phase")
	}
	slices.Sort(all)
	got1, got2 := st.received[phaseLatency].Load(), st.received[phaseThroughput].Load()
	elapsed := time.Duration(st.lastRecv2.Load()) - phase2
	if got2 == 0 || elapsed <= 0 {
		return nil, errors.New("no event arrived in the throughput phase")
	}
	return values{
		keyRate: float64(got2) / elapsed.Seconds(),
		keyP99:  time.Duration(percentile(all, 0.99)).Seconds(),
		// Events that never arrived.
		keyErrs: float64(expected1 - got1 + expected2 - got2),
	}, nil
}

// receive consumes one watch channel until ctx ends.
func (s *watchState) receive(ctx context.Context, wch clientv3.WatchChan, slot int, created func()) {
	isCreated := false
	defer func() {
		if !isCreated {
			created()
		}
	}()
	for resp := range wch {
		if resp.Created {
			if !isCreated {
				isCreated = true
				created()
			}
			continue
		}
		if err := resp.Err(); err != nil {
			if ctx.Err() == nil {
				s.fail(fmt.Errorf("watcher %d: %w", slot, err))
			}
			return
		}
		now := int64(time.Since(s.base))
		for _, ev := range resp.Events {
			v := ev.Kv.Value
			if len(v) < 9 {
				continue
			}
			sent := int64(binary.BigEndian.Uint64(v))
			switch v[8] {
			case phaseLatency:
				s.lats[slot] = append(s.lats[slot], now-sent)
				s.received[phaseLatency].Add(1)
			case phaseThroughput:
				s.received[phaseThroughput].Add(1)
				for {
					last := s.lastRecv2.Load()
					if now <= last || s.lastRecv2.CompareAndSwap(last, now) {
						break
					}
				}
			}
		}
	}
	if !isCreated && ctx.Err() == nil {
		s.fail(fmt.Errorf("watcher %d closed before it was created", slot))
	}
}

func (s *watchState) err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(s.errs...)
}

// waitGroup waits for wg, at most limit.
func waitGroup(ctx context.Context, wg *sync.WaitGroup, limit time.Duration) error {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-t.C:
		return fmt.Errorf("not done after %v", limit)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// waitCount polls until n reaches want, at most limit.
func waitCount(ctx context.Context, n *atomic.Int64, want int64, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for n.Load() < want && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
}

// percentile returns the p-quantile of sorted xs (nearest rank).
func percentile(sorted []int64, p float64) int64 {
	i := int(float64(len(sorted))*p+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// Watchers of the memory workload, as in a full run.
const (
	memWatchers      = 10_000
	memWatchersQuick = 500
	memStreams       = 5
)

// runWatchMemory opens memWatchers watchers on one member, each on a prefix
// of its own, over memStreams watch streams of one connection, and reports
// how much the member's resident set grew from before the first to after
// the last was created.
func runWatchMemory(ctx context.Context, r *runner, d *deployment) (values, error) {
	n := r.scale(memWatchers, memWatchersQuick)
	m := d.members[0]
	before, err := procStatusBytes(m.pid(), "VmRSS")
	if err != nil {
		return nil, err
	}
	cli, err := newClient([]string{m.endpoint()})
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	streams := make([]clientv3.Watcher, memStreams)
	for i := range streams {
		streams[i] = clientv3.NewWatcher(cli)
		defer streams[i].Close()
	}
	start := time.Now()
	var created sync.WaitGroup
	var failed atomic.Pointer[error]
	for i := range n {
		wch := streams[i%memStreams].Watch(ctx, fmt.Sprintf("bench/watch-mem/%05d/", i), clientv3.WithPrefix(), clientv3.WithCreatedNotify())
		created.Go(func() {
			wr, ok := <-wch
			switch {
			case !ok:
				err := fmt.Errorf("watcher %d closed before it was created", i)
				failed.CompareAndSwap(nil, &err)
			case wr.Err() != nil:
				err := fmt.Errorf("watcher %d: %w", i, wr.Err())
				failed.CompareAndSwap(nil, &err)
			}
		})
	}
	if err := waitGroup(ctx, &created, 5*time.Minute); err != nil {
		return nil, fmt.Errorf("opening %d watchers: %w", n, err)
	}
	if p := failed.Load(); p != nil {
		return nil, *p
	}
	r.logf("opened %d watchers on %s in %v", n, d.system, time.Since(start).Round(time.Millisecond))
	after, err := procStatusBytes(m.pid(), "VmRSS")
	if err != nil {
		return nil, err
	}
	return values{"watch_rss": float64(after-before) / mib}, nil
}
