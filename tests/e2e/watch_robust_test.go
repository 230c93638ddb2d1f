package e2e

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/cairn-io/cairn/tests/framework"
)

// loadPhase is what one round of writes measured.
type loadPhase struct {
	puts     int
	took     time.Duration // until every put was acknowledged
	observed time.Duration // until the healthy watcher had the last event
}

func (p loadPhase) putRate() float64      { return float64(p.puts) / p.took.Seconds() }
func (p loadPhase) deliveryRate() float64 { return float64(p.puts) / p.observed.Seconds() }

// TestStalledWatcher: a watcher whose client stops reading (a raw Watch
// stream on its own connection, with gRPC's smallest fixed flow-control
// window, that is never received from) must not slow writes or other
// watchers, and once it reads again it must get every event exactly once,
// in order. Rates are compared with the same load run without the stalled
// watcher, best of two each; a slowdown to less than half fails.
func TestStalledWatcher(t *testing.T) {
	m := framework.Start(t, framework.Config{})
	cli := m.Client(t)
	ctx := deadlineCtx(t, 5*time.Minute)

	// The healthy watcher: drained all the time, it reports the newest
	// revision it has seen.
	healthy := cli.Watch(ctx, "load/", clientv3.WithPrefix(), clientv3.WithCreatedNotify())
	if wr := <-healthy; !wr.Created {
		t.Fatalf("healthy watcher: first response %+v", wr)
	}
	var seenMu sync.Mutex
	seenRev := int64(0)
	seenCh := make(chan struct{}, 1)
	go func() {
		for wr := range healthy {
			if n := len(wr.Events); n > 0 {
				seenMu.Lock()
				seenRev = wr.Events[n-1].Kv.ModRevision
				seenMu.Unlock()
				select {
				case seenCh <- struct{}{}:
				default:
				}
			}
		}
	}()

	written := map[int64]string{} // revision -> key, for the stalled watcher's check
	var writtenMu sync.Mutex
	run := func(phase string) loadPhase {
		t.Helper()
		const puts, writers = 1500, 4
		value := strings.Repeat("w", 1024)
		start := time.Now()
		var wg sync.WaitGroup
		var maxRev int64
		var mu sync.Mutex
		errs := make(chan error, writers)
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < puts; i += writers {
					key := fmt.Sprintf("load/%s/%04d", phase, i)
					r, err := cli.Put(ctx, key, value)
					if err != nil {
						errs <- err
						return
					}
					mu.Lock()
					maxRev = max(maxRev, r.Header.Revision)
					mu.Unlock()
					writtenMu.Lock()
					written[r.Header.Revision] = key
					writtenMu.Unlock()
				}
			}()
		}
		wg.Wait()
		took := time.Since(start)
		select {
		case err := <-errs:
			t.Fatalf("phase %s: put: %v", phase, err)
		default:
		}
		deadline := time.After(time.Minute)
		for {
			seenMu.Lock()
			done := seenRev >= maxRev
			seenMu.Unlock()
			if done {
				break
			}
			select {
			case <-seenCh:
			case <-deadline:
				t.Fatalf("phase %s: the healthy watcher did not get revision %d within a minute of the last put", phase, maxRev)
			}
		}
		p := loadPhase{puts: puts, took: took, observed: time.Since(start)}
		t.Logf("phase %s: %.0f puts/s, healthy watcher %.0f events/s", phase, p.putRate(), p.deliveryRate())
		return p
	}

	baseline := []loadPhase{run("a1"), run("a2")}

	// The stalled watcher, from the next revision on.
	conn, err := grpc.NewClient(m.Endpoint(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stalled, err := pb.NewWatchClient(conn).Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stalled.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: &pb.WatchCreateRequest{
		Key: []byte("load/"), RangeEnd: []byte(clientv3.GetPrefixRangeEnd("load/")),
	}}}); err != nil {
		t.Fatal(err)
	}
	created, err := stalled.Recv()
	if err != nil || !created.Created {
		t.Fatalf("stalled watcher: %v %v", created, err)
	}
	from := created.Header.Revision + 1
	// From here on nothing reads it: 3000 events of about 1.1 KiB are far
	// more than its 64 KiB window and the server's queues.
	withStalled := []loadPhase{run("b1"), run("b2")}

	best := func(ps []loadPhase, rate func(loadPhase) float64) float64 {
		return max(rate(ps[0]), rate(ps[1]))
	}
	if a, b := best(baseline, loadPhase.putRate), best(withStalled, loadPhase.putRate); b < a/2 {
		t.Errorf("a stalled watcher slowed puts from %.0f/s to %.0f/s", a, b)
	}
	if a, b := best(baseline, loadPhase.deliveryRate), best(withStalled, loadPhase.deliveryRate); b < a/2 {
		t.Errorf("a stalled watcher slowed another watcher from %.0f to %.0f events/s", a, b)
	}

	// Resume: every event since its start, once each, in order.
	writtenMu.Lock()
	var want []int64
	for rev := range written {
		if rev >= from {
			want = append(want, rev)
		}
	}
	writtenMu.Unlock()
	next := from
	var received atomic.Int64
	recvDone := make(chan error, 1)
	go func() {
		for received.Load() < int64(len(want)) {
			r, err := stalled.Recv()
			if err != nil {
				recvDone <- fmt.Errorf("after %d events: %w", received.Load(), err)
				return
			}
			if r.Canceled || r.CompactRevision != 0 {
				recvDone <- fmt.Errorf("after %d events the watcher was canceled: %v", received.Load(), r)
				return
			}
			for _, ev := range r.Events {
				rev := ev.Kv.ModRevision
				if rev < next {
					recvDone <- fmt.Errorf("event at revision %d again or out of order (expected %d next)", rev, next)
					return
				}
				if rev != next {
					recvDone <- fmt.Errorf("events of revisions %d to %d missing", next, rev-1)
					return
				}
				writtenMu.Lock()
				key := written[rev]
				writtenMu.Unlock()
				if string(ev.Kv.Key) != key {
					recvDone <- fmt.Errorf("event at revision %d is for %q, the put at that revision wrote %q", rev, ev.Kv.Key, key)
					return
				}
				next++
				received.Add(1)
			}
		}
		recvDone <- nil
	}()
	select {
	case err := <-recvDone:
		if err != nil {
			t.Fatalf("the stalled watcher, reading again: %v", err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatalf("the stalled watcher got %d of %d events within 2 minutes of reading again", received.Load(), len(want))
	}
	if n := received.Load(); n != int64(len(want)) {
		t.Fatalf("the stalled watcher got %d events, want %d", n, len(want))
	}
}

// TestManyWatchers puts 10,000 watchers on one member, over 5 streams, and
// checks that every one of them gets the event of one put; it reports the
// member's resident memory before the watchers, with them, and after the
// event.
func TestManyWatchers(t *testing.T) {
	const streams, perStream = 5, 2000
	m := framework.Start(t, framework.Config{})
	cli := m.Client(t)
	ctx := deadlineCtx(t, 5*time.Minute)
	pid := m.PID()
	if pid == 0 {
		t.Fatal("no PID for the member")
	}
	rssBefore := memberRSS(t, pid)

	type stream struct {
		ws      pb.Watch_WatchClient
		created chan int64
		events  chan int64 // watch IDs that got the event
	}
	var all []*stream
	for s := range streams {
		ws, err := pb.NewWatchClient(cli.ActiveConnection()).Watch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		st := &stream{ws: ws, created: make(chan int64, perStream), events: make(chan int64, perStream)}
		all = append(all, st)
		go func() {
			for {
				r, err := ws.Recv()
				if err != nil {
					return
				}
				switch {
				case r.Created && !r.Canceled:
					st.created <- r.WatchId
				case len(r.Events) > 0:
					st.events <- r.WatchId
				}
			}
		}()
		go func() {
			for i := range perStream {
				// Half watch the key, half a prefix holding it.
				cr := &pb.WatchCreateRequest{Key: []byte("hot")}
				if i%2 == 1 {
					cr = &pb.WatchCreateRequest{Key: []byte("h"), RangeEnd: []byte("i")}
				}
				if err := ws.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: cr}}); err != nil {
					t.Errorf("stream %d: create %d: %v", s, i, err)
					return
				}
			}
		}()
	}
	start := time.Now()
	for s, st := range all {
		for i := range perStream {
			select {
			case <-st.created:
			case <-time.After(time.Minute):
				t.Fatalf("stream %d: %d of %d watchers created after a minute", s, i, perStream)
			}
		}
	}
	t.Logf("%d watchers created in %v", streams*perStream, time.Since(start).Round(time.Millisecond))
	rssWatchers := memberRSS(t, pid)

	put, err := cli.Put(ctx, "hot", "x")
	if err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	for s, st := range all {
		got := map[int64]bool{}
		for len(got) < perStream {
			select {
			case id := <-st.events:
				if got[id] {
					t.Fatalf("stream %d: watcher %d got the event of revision %d twice", s, id, put.Header.Revision)
				}
				got[id] = true
			case <-time.After(time.Minute):
				t.Fatalf("stream %d: %d of %d watchers got the put's event within a minute", s, len(got), perStream)
			}
		}
	}
	t.Logf("all %d watchers got the event in %v", streams*perStream, time.Since(start).Round(time.Millisecond))
	rssAfter := memberRSS(t, pid)
	t.Logf("member RSS: %s before, %s with %d watchers (%.1f KiB each), %s after the event",
		inMiB(rssBefore), inMiB(rssWatchers), streams*perStream, float64(rssWatchers-rssBefore)/1024/(streams*perStream), inMiB(rssAfter))
	// A sanity bound, far above anything reasonable: 100 KiB per watcher.
	if grown := rssAfter - rssBefore; grown > streams*perStream*100<<10 {
		t.Errorf("the member grew by %s for %d watchers", inMiB(grown), streams*perStream)
	}
	for _, st := range all {
		st.ws.CloseSend()
	}
}
