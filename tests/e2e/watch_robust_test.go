package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/cairn-io/cairn/tests/framework"
)

// The member's watcher gauges, under etcd's names.
const (
	metricWatchers     = "etcd_debugging_mvcc_watcher_total"
	metricSlowWatchers = "etcd_debugging_mvcc_slow_watcher_total"
)

// written records which key each put wrote, by revision.
type written struct {
	mu   sync.Mutex
	keys map[int64]string
}

func newWritten() *written { return &written{keys: map[int64]string{}} }

func (w *written) add(rev int64, key string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.keys[rev] = key
}

func (w *written) key(rev int64) (string, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	k, ok := w.keys[rev]
	return k, ok
}

// from returns the revisions written at or after rev, in order.
func (w *written) from(rev int64) []int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []int64
	for r := range w.keys {
		if r >= rev {
			out = append(out, r)
		}
	}
	slices.Sort(out)
	return out
}

// putConcurrently writes n values of size bytes under prefix from writers
// goroutines, records each in w, and returns the last revision. Keys cycle
// through keys distinct names.
func putConcurrently(ctx context.Context, t *testing.T, cli *clientv3.Client, w *written, prefix string, n, keys, size, writers int) int64 {
	t.Helper()
	value := strings.Repeat("x", size)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		last    int64
		firstEr error
	)
	for g := range writers {
		wg.Go(func() {
			for i := g; i < n; i += writers {
				key := fmt.Sprintf("%s%d", prefix, i%keys)
				r, err := cli.Put(ctx, key, value)
				mu.Lock()
				if err != nil {
					if firstEr == nil {
						firstEr = err
					}
					mu.Unlock()
					return
				}
				last = max(last, r.Header.Revision)
				mu.Unlock()
				w.add(r.Header.Revision, key)
			}
		})
	}
	wg.Wait()
	if firstEr != nil {
		t.Fatalf("put under %s: %v", prefix, firstEr)
	}
	return last
}

// rawWatch opens a watch stream on a connection of its own, with gRPC's
// smallest fixed flow-control window (64 KiB), so that once nobody reads it
// the member's sends block soon, and creates one watcher on prefix from the
// next revision. It returns the stream and the watcher's first revision.
func rawWatch(ctx context.Context, t *testing.T, m *framework.Member, prefix string) (pb.Watch_WatchClient, int64) {
	t.Helper()
	conn, err := grpc.NewClient(m.Endpoint(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ws, err := pb.NewWatchClient(conn).Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := ws.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: &pb.WatchCreateRequest{
		Key: []byte(prefix), RangeEnd: []byte(clientv3.GetPrefixRangeEnd(prefix)),
	}}}); err != nil {
		t.Fatal(err)
	}
	created, err := ws.Recv()
	if err != nil || !created.Created {
		t.Fatalf("watch on %s: %v %v", prefix, created, err)
	}
	return ws, created.Header.Revision + 1
}

// eventCheck follows one watcher's events: they must be exactly the
// revisions written from its start on, once each, in order, each for the
// key written at that revision. Events are checked against what was
// written when upTo is called, once the puts they come from have returned.
// It is safe for concurrent use.
type eventCheck struct {
	name  string
	start int64
	w     *written

	mu      sync.Mutex
	events  []watchedEvent // in arrival order
	last    int64          // the revision of the last event received
	checked int            // events[:checked] are checked
	next    int64          // the revision after the last checked event's
	err     error
}

func newEventCheck(name string, start int64, w *written) *eventCheck {
	return &eventCheck{name: name, start: start, w: w, next: start}
}

func (c *eventCheck) add(ev *mvccpb.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return
	}
	switch rev := ev.Kv.ModRevision; {
	case rev < c.start:
		c.err = fmt.Errorf("%s: event at revision %d, before its start revision %d", c.name, rev, c.start)
	case rev <= c.last:
		c.err = fmt.Errorf("%s: event at revision %d again or out of order (after %d)", c.name, rev, c.last)
	default:
		c.last = rev
		c.events = append(c.events, watchedEvent{rev: rev, key: string(ev.Kv.Key)})
	}
}

func (c *eventCheck) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = fmt.Errorf("%s: %w", c.name, err)
	}
}

// upTo returns nil once the watcher has every event up to revision last,
// fails the test if it got a wrong one or missed one, and says where it is
// otherwise. Every put up to last must have returned.
func (c *eventCheck) upTo(t *testing.T, last int64) error {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for ; c.err == nil && c.checked < len(c.events); c.checked++ {
		ev := c.events[c.checked]
		// Every revision in between must be one nobody wrote under the
		// prefix.
		for r := c.next; r < ev.rev; r++ {
			if k, ok := c.w.key(r); ok {
				c.err = fmt.Errorf("%s: event of revision %d (%s) missing; next came %d", c.name, r, k, ev.rev)
			}
		}
		if k, _ := c.w.key(ev.rev); c.err == nil && ev.key != k {
			c.err = fmt.Errorf("%s: event at revision %d is for %q, the put at that revision wrote %q", c.name, ev.rev, ev.key, k)
		}
		c.next = ev.rev + 1
	}
	if c.err != nil {
		t.Fatal(c.err)
	}
	if c.next > last {
		return nil
	}
	return fmt.Errorf("%s has %d events, up to revision %d of %d", c.name, c.checked, c.next-1, last)
}

func (c *eventCheck) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.events)
}

// readRaw feeds c from ws until ws fails.
func readRaw(ctx context.Context, ws pb.Watch_WatchClient, c *eventCheck) {
	for {
		r, err := ws.Recv()
		if err != nil {
			if ctx.Err() == nil {
				c.fail(err)
			}
			return
		}
		if r.Canceled || r.CompactRevision != 0 {
			c.fail(fmt.Errorf("watcher canceled: %v", r))
			return
		}
		for _, ev := range r.Events {
			c.add(ev)
		}
	}
}

// readWatch feeds c from wch until it ends.
func readWatch(ctx context.Context, wch clientv3.WatchChan, c *eventCheck) {
	for wr := range wch {
		if err := wr.Err(); err != nil {
			if ctx.Err() == nil {
				c.fail(err)
			}
			return
		}
		for _, ev := range wr.Events {
			c.add((*mvccpb.Event)(ev))
		}
	}
}

// pollGauge waits until the member's gauge satisfies ok.
func pollGauge(t *testing.T, m *framework.Member, name string, d time.Duration, want string, ok func(float64) bool) {
	t.Helper()
	framework.Poll(t, d, name+" "+want, func() error {
		v, err := scrapeMetric(t, m.ClientURL(), name)
		if err != nil {
			return err
		}
		if !ok(v) {
			return fmt.Errorf("%s is %v", name, v)
		}
		return nil
	})
}

// TestStalledWatcherDoesNotHoldBackOthers: two watchers fall more than a
// catch-up batch (1000 changes) behind because their clients stop reading.
// A new watcher from a recent start revision must get its events while
// they are still stalled, and nothing from before its start; then one of
// the stalled ones reads again and must get every event from its start,
// once each, in order, while the other still reads nothing; then the last
// one too.
func TestStalledWatcherDoesNotHoldBackOthers(t *testing.T) {
	m := framework.Start(t, framework.Config{})
	cli := m.Client(t)
	ctx := deadlineCtx(t, 5*time.Minute)
	w := newWritten()

	stalled, stalledFrom := rawWatch(ctx, t, m, "k/")
	slow, slowFrom := rawWatch(ctx, t, m, "k/")
	// 3000 events of 2 KiB: far more than the streams' windows and the
	// member's queues, and three catch-up batches.
	last := putConcurrently(ctx, t, cli, w, "k/", 3000, 10, 2048, 4)
	pollGauge(t, m, metricSlowWatchers, time.Minute, "counts both stalled watchers", func(v float64) bool { return v >= 2 })

	start := last - 100
	fresh := newEventCheck("the new watcher", start, w)
	go readWatch(ctx, cli.Watch(ctx, "k/", clientv3.WithPrefix(), clientv3.WithRev(start)), fresh)
	framework.Poll(t, time.Minute, "the new watcher's first event, with two watchers stalled", func() error { return fresh.upTo(t, start) })
	framework.Poll(t, time.Minute, "the new watcher's events, with two watchers stalled", func() error { return fresh.upTo(t, last) })

	// One of the stalled watchers reads again, while writes go on.
	slowCheck := newEventCheck("the slow watcher", slowFrom, w)
	go readRaw(ctx, slow, slowCheck)
	last = putConcurrently(ctx, t, cli, w, "k/", 200, 10, 2048, 4)
	framework.Poll(t, 2*time.Minute, "the slow watcher's events since it stalled", func() error { return slowCheck.upTo(t, last) })
	framework.Poll(t, time.Minute, "the new watcher's later events", func() error { return fresh.upTo(t, last) })

	// And the last one.
	stalledCheck := newEventCheck("the stalled watcher", stalledFrom, w)
	go readRaw(ctx, stalled, stalledCheck)
	framework.Poll(t, 2*time.Minute, "the stalled watcher's events", func() error { return stalledCheck.upTo(t, last) })
	pollGauge(t, m, metricSlowWatchers, time.Minute, "back to 0", func(v float64) bool { return v == 0 })

	// All three are synced: a last write reaches each once.
	last = putConcurrently(ctx, t, cli, w, "k/", 1, 10, 16, 1)
	for _, c := range []*eventCheck{fresh, slowCheck, stalledCheck} {
		framework.Poll(t, time.Minute, c.name+"'s last event", func() error { return c.upTo(t, last) })
	}
}

// loadPhase is what one round of writes measured: how fast the puts were
// acknowledged, and how long after each put's acknowledgement the healthy
// watcher had its event.
type loadPhase struct {
	name     string
	putRate  float64
	p50, p99 time.Duration
}

// TestStalledWatcher: a watcher whose client stops reading (a raw Watch
// stream that is never received from) must not slow writes or other
// watchers, and once it reads again it must get every event exactly once,
// in order. The same load runs twice without the stalled watcher and twice
// with it; the healthy watcher's delivery latency (from each put's
// acknowledgement to its event's arrival) and the put rate with it must not
// be more than a few times worse than without it (best of two each). The
// stalled watcher must really have fallen back to catching up from storage
// (the member counts it as a slow watcher).
func TestStalledWatcher(t *testing.T) {
	m := framework.Start(t, framework.Config{})
	cli := m.Client(t)
	ctx := deadlineCtx(t, 5*time.Minute)
	w := newWritten()

	// The healthy watcher: drained all the time, it records when each
	// revision's event arrived.
	healthy := cli.Watch(ctx, "load/", clientv3.WithPrefix(), clientv3.WithCreatedNotify())
	if wr := <-healthy; !wr.Created {
		t.Fatalf("healthy watcher: first response %+v", wr)
	}
	var arrivedMu sync.Mutex
	arrived := map[int64]time.Time{}
	go func() {
		for wr := range healthy {
			now := time.Now()
			arrivedMu.Lock()
			for _, ev := range wr.Events {
				arrived[ev.Kv.ModRevision] = now
			}
			arrivedMu.Unlock()
		}
	}()

	run := func(phase string) loadPhase {
		t.Helper()
		const puts, writers = 1500, 4
		value := strings.Repeat("w", 1024)
		var (
			wg    sync.WaitGroup
			mu    sync.Mutex
			acked = map[int64]time.Time{}
			errs  = make(chan error, writers)
		)
		begin := time.Now()
		for g := range writers {
			wg.Go(func() {
				for i := g; i < puts; i += writers {
					key := fmt.Sprintf("load/%s/%04d", phase, i)
					r, err := cli.Put(ctx, key, value)
					if err != nil {
						errs <- err
						return
					}
					now := time.Now()
					mu.Lock()
					acked[r.Header.Revision] = now
					mu.Unlock()
					w.add(r.Header.Revision, key)
				}
			})
		}
		wg.Wait()
		took := time.Since(begin)
		select {
		case err := <-errs:
			t.Fatalf("phase %s: put: %v", phase, err)
		default:
		}
		var lats []time.Duration
		framework.Poll(t, time.Minute, "phase "+phase+": every event at the healthy watcher", func() error {
			arrivedMu.Lock()
			defer arrivedMu.Unlock()
			lats = lats[:0]
			for rev, ack := range acked {
				at, ok := arrived[rev]
				if !ok {
					return fmt.Errorf("revision %d not there yet", rev)
				}
				// An event may arrive before its put's response: a
				// negative latency, kept as it is.
				lats = append(lats, at.Sub(ack))
			}
			return nil
		})
		slices.Sort(lats)
		p := loadPhase{name: phase, putRate: puts / took.Seconds(), p50: pct(lats, 50), p99: pct(lats, 99)}
		t.Logf("phase %s: %.0f puts/s; healthy watcher, put acknowledged to event: p50 %v, p99 %v", phase, p.putRate, p.p50, p.p99)
		return p
	}

	baseline := []loadPhase{run("a1"), run("a2")}

	stalled, from := rawWatch(ctx, t, m, "load/")
	// From here on nothing reads it: 3000 events of about 1.1 KiB are far
	// more than its 64 KiB window and the member's queues.
	withStalled := []loadPhase{run("b1"), run("b2")}
	pollGauge(t, m, metricWatchers, time.Minute, "counts the healthy and the stalled watcher", func(v float64) bool { return v == 2 })
	pollGauge(t, m, metricSlowWatchers, time.Minute, "counts the stalled watcher", func(v float64) bool { return v == 1 })

	// Each side's figure is the better of its two runs. The allowance is
	// generous, for a loaded machine: a few times the figure without the
	// stalled watcher (more for the tail), plus a millisecond or two for
	// figures near zero (an event can even arrive before its put's
	// response: a negative latency).
	const factor = 4
	best := func(ps []loadPhase, f func(loadPhase) time.Duration) time.Duration {
		return min(f(ps[0]), f(ps[1]))
	}
	for _, c := range []struct {
		what   string
		f      func(loadPhase) time.Duration
		factor time.Duration
		slack  time.Duration
	}{
		{"p50", func(p loadPhase) time.Duration { return p.p50 }, factor, time.Millisecond},
		{"p99", func(p loadPhase) time.Duration { return p.p99 }, 2 * factor, 2 * time.Millisecond},
	} {
		if a, b := best(baseline, c.f), best(withStalled, c.f); b > c.factor*max(a, 0)+c.slack {
			t.Errorf("a stalled watcher delayed another watcher's events: %s from %v to %v (put acknowledged to event)", c.what, a, b)
		}
	}
	if a, b := max(baseline[0].putRate, baseline[1].putRate), max(withStalled[0].putRate, withStalled[1].putRate); b < a/factor {
		t.Errorf("a stalled watcher slowed puts from %.0f/s to %.0f/s", a, b)
	}

	// Resume: every event since its start, once each, in order; then it is
	// synced again.
	want := w.from(from)
	last := want[len(want)-1]
	c := newEventCheck("the stalled watcher", from, w)
	go readRaw(ctx, stalled, c)
	framework.Poll(t, 2*time.Minute, "the stalled watcher's events once it reads again", func() error { return c.upTo(t, last) })
	if n := c.count(); n != len(want) {
		t.Fatalf("the stalled watcher got %d events, want %d", n, len(want))
	}
	pollGauge(t, m, metricSlowWatchers, time.Minute, "back to 0", func(v float64) bool { return v == 0 })
}

// watchedEvent is one event as a watch stream received it.
type watchedEvent struct {
	id  int64
	rev int64
	key string
}

// openWatchers opens streams watch streams on cli's connection and creates
// perStream watchers on each, watcher i of stream s with watch ID i+1 and
// the range create(s, i) gives, and returns once all are created. Each
// stream's events arrive on its channel.
func openWatchers(ctx context.Context, t *testing.T, cli *clientv3.Client, streams, perStream int, create func(s, i int) *pb.WatchCreateRequest) []chan watchedEvent {
	t.Helper()
	var out []chan watchedEvent
	created := make([]chan int64, streams)
	for s := range streams {
		ws, err := pb.NewWatchClient(cli.ActiveConnection()).Watch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ws.CloseSend() })
		events := make(chan watchedEvent, 2*perStream)
		created[s] = make(chan int64, perStream)
		out = append(out, events)
		go func() {
			for {
				r, err := ws.Recv()
				if err != nil {
					return
				}
				switch {
				case r.Created && !r.Canceled:
					created[s] <- r.WatchId
				case r.Canceled:
					t.Errorf("stream %d: watcher %d canceled: %v", s, r.WatchId, r.CancelReason)
				}
				for _, ev := range r.Events {
					events <- watchedEvent{id: r.WatchId, key: string(ev.Kv.Key)}
				}
			}
		}()
		go func() {
			for i := range perStream {
				cr := create(s, i)
				cr.WatchId = int64(i + 1)
				if err := ws.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: cr}}); err != nil {
					t.Errorf("stream %d: create %d: %v", s, i, err)
					return
				}
			}
		}()
	}
	start := time.Now()
	for s := range streams {
		for i := range perStream {
			select {
			case <-created[s]:
			case <-time.After(time.Minute):
				t.Fatalf("stream %d: %d of %d watchers created after a minute", s, i, perStream)
			}
		}
	}
	t.Logf("%d watchers created in %v", streams*perStream, time.Since(start).Round(time.Millisecond))
	return out
}

// TestManyWatchers puts 10,000 watchers on one member, over 5 streams:
// half on one key and half on one prefix holding it, where one put must
// reach every one of them once; or each on a prefix of its own, where puts
// must reach exactly the watchers whose prefix holds their key. It logs the
// member's resident memory with the watchers (bench/ measures memory).
func TestManyWatchers(t *testing.T) {
	const streams, perStream = 5, 2000
	t.Run("one key", func(t *testing.T) {
		m := framework.Start(t, framework.Config{})
		cli := m.Client(t)
		ctx := deadlineCtx(t, 5*time.Minute)
		rssBefore := memberRSS(t, m.PID())
		all := openWatchers(ctx, t, cli, streams, perStream, func(_, i int) *pb.WatchCreateRequest {
			if i%2 == 1 {
				return &pb.WatchCreateRequest{Key: []byte("h"), RangeEnd: []byte("i")}
			}
			return &pb.WatchCreateRequest{Key: []byte("hot")}
		})
		rssWatchers := memberRSS(t, m.PID())
		put, err := cli.Put(ctx, "hot", "x")
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		for s, events := range all {
			got := map[int64]bool{}
			for len(got) < perStream {
				select {
				case ev := <-events:
					if got[ev.id] {
						t.Fatalf("stream %d: watcher %d got the event of revision %d twice", s, ev.id, put.Header.Revision)
					}
					got[ev.id] = true
				case <-time.After(time.Minute):
					t.Fatalf("stream %d: %d of %d watchers got the put's event within a minute", s, len(got), perStream)
				}
			}
		}
		t.Logf("all %d watchers got the event in %v", streams*perStream, time.Since(start).Round(time.Millisecond))
		t.Logf("member RSS: %s before, %s with %d watchers", inMiB(rssBefore), inMiB(rssWatchers), streams*perStream)
	})

	t.Run("distinct prefixes", func(t *testing.T) {
		m := framework.Start(t, framework.Config{})
		cli := m.Client(t)
		ctx := deadlineCtx(t, 5*time.Minute)
		prefix := func(s, i int) string { return fmt.Sprintf("p/%d/%04d/", s, i) }
		all := openWatchers(ctx, t, cli, streams, perStream, func(s, i int) *pb.WatchCreateRequest {
			p := prefix(s, i)
			return &pb.WatchCreateRequest{Key: []byte(p), RangeEnd: []byte(clientv3.GetPrefixRangeEnd(p))}
		})
		// Puts into every 40th prefix of each stream, and puts between
		// prefixes that nobody watches; then, last, one into the last
		// prefix of each stream. A stream's responses come in revision
		// order, so once its last put's event is in, every event it
		// will get is.
		want := make([]map[watchedEvent]bool, streams)
		var puts []string
		for s := range streams {
			want[s] = map[watchedEvent]bool{}
			for i := 0; i < perStream-1; i += 40 {
				key := prefix(s, i) + "k"
				want[s][watchedEvent{id: int64(i + 1), key: key}] = true
				puts = append(puts, key, fmt.Sprintf("p/%d/%04dx", s, i))
			}
		}
		for _, key := range puts {
			if _, err := cli.Put(ctx, key, "v"); err != nil {
				t.Fatal(err)
			}
		}
		for s := range streams {
			key := prefix(s, perStream-1) + "last"
			want[s][watchedEvent{id: perStream, key: key}] = true
			if _, err := cli.Put(ctx, key, "v"); err != nil {
				t.Fatal(err)
			}
		}
		for s, events := range all {
			got := map[watchedEvent]bool{}
			for ev := (watchedEvent{}); ev.id != perStream; {
				select {
				case ev = <-events:
				case <-time.After(time.Minute):
					t.Fatalf("stream %d: no event of its last put within a minute; got %d of %d events", s, len(got), len(want[s]))
				}
				if got[ev] {
					t.Fatalf("stream %d: watcher %d got the event of %s twice", s, ev.id, ev.key)
				}
				if !want[s][ev] {
					t.Fatalf("stream %d: watcher %d (on %s) got an event for %s", s, ev.id, prefix(s, int(ev.id-1)), ev.key)
				}
				got[ev] = true
			}
			if len(got) != len(want[s]) {
				for ev := range want[s] {
					if !got[ev] {
						t.Errorf("stream %d: watcher %d got no event for %s", s, ev.id, ev.key)
					}
				}
			}
		}
	})
}
