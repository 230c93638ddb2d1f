package conformance_test

import (
	"context"
	"fmt"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Watch steps. A raw stream (wopen) is a Watch RPC on the client's
// connection: the scenario sends create, cancel and progress requests as
// they are (client-chosen IDs, fragment, invalid ranges, which clientv3
// cannot express) and compares what arrives on the wire, fragments and
// control responses included. clientv3 watchers (cwatch) are compared as
// clientv3 delivers them.

// recvTimeout bounds the wait for the responses a step expects. etcd
// catches unsynced watchers up every 100ms and sends progress notifications
// every 500ms in the scenarios that ask for them.
const recvTimeout = 10 * time.Second

// rawStream is one Watch RPC and what arrived on it so far.
type rawStream struct {
	stream pb.Watch_WatchClient
	in     chan *pb.WatchResponse // fed by a goroutine until the stream ends
	done   chan struct{}          // closed when the stream has ended
	err    error                  // why it ended; set before done is closed

	// What check has seen, per watch ID.
	created  map[int64]bool
	lastRev  map[int64]int64 // the newest event revision delivered
	lastFrag map[int64]bool  // the last response was a fragment
	progress map[int64]int64 // the newest progress notification that covered it
}

func openRawStream(ctx context.Context, c *clientv3.Client) (*rawStream, error) {
	st, err := pb.NewWatchClient(c.ActiveConnection()).Watch(ctx)
	if err != nil {
		return nil, err
	}
	rs := &rawStream{
		stream:   st,
		in:       make(chan *pb.WatchResponse, 1<<16),
		done:     make(chan struct{}),
		created:  map[int64]bool{},
		lastRev:  map[int64]int64{},
		lastFrag: map[int64]bool{},
		progress: map[int64]int64{},
	}
	go func() {
		for {
			r, err := st.Recv()
			if err != nil {
				rs.err = err
				close(rs.done)
				return
			}
			rs.in <- r
		}
	}()
	return rs, nil
}

// isProgress reports whether r is a progress notification.
func isProgress(r *pb.WatchResponse) bool {
	return len(r.Events) == 0 && !r.Created && !r.Canceled && r.CompactRevision == 0
}

// check records r, received in this order, and returns the guarantees it
// breaks: no events before the watcher's created response; every event of
// a watcher after the ones before it (a revision split only across the
// fragments of one response); no event newer than its header; and no event
// at or below a revision a progress notification already reported.
func (rs *rawStream) check(r *pb.WatchResponse) []string {
	var v []string
	id := r.WatchId
	rev := r.Header.GetRevision()
	switch {
	case r.Created && !r.Canceled:
		// A client-chosen ID may be used again after a cancel.
		rs.created[id] = true
		delete(rs.lastRev, id)
		delete(rs.lastFrag, id)
		delete(rs.progress, id)
		return nil
	case r.Canceled:
		delete(rs.created, id)
		return nil
	case isProgress(r):
		covered := []int64{id}
		if id == -1 {
			covered = nil
			for w := range rs.created {
				covered = append(covered, w)
			}
		}
		for _, w := range covered {
			if rs.lastRev[w] > rev {
				v = append(v, fmt.Sprintf("watch %d: progress notification at revision %d after an event at %d", w, rev, rs.lastRev[w]))
			}
			rs.progress[w] = max(rs.progress[w], rev)
		}
		return v
	}
	if !rs.created[id] {
		v = append(v, fmt.Sprintf("watch %d: events before its created response", id))
	}
	prev := rs.lastRev[id]
	for i, ev := range r.Events {
		mod := ev.Kv.ModRevision
		switch {
		case mod > rev:
			v = append(v, fmt.Sprintf("watch %d: event at revision %d in a response with header revision %d", id, mod, rev))
		case mod < prev, mod == prev && i == 0 && !rs.lastFrag[id]:
			v = append(v, fmt.Sprintf("watch %d: event at revision %d after one at %d (repeated or out of order)", id, mod, prev))
		}
		if p := rs.progress[id]; mod <= p {
			v = append(v, fmt.Sprintf("watch %d: event at revision %d after a progress notification at %d", id, mod, p))
		}
		prev = max(prev, mod)
	}
	rs.lastRev[id] = prev
	rs.lastFrag[id] = r.Fragment
	return v
}

// receive takes responses off the stream until until says the step has
// them all, or recvTimeout passes.
func (rs *rawStream) receive(ctx context.Context, until func(got []*pb.WatchResponse) bool, want string) outcome {
	ctx, cancel := context.WithTimeout(ctx, recvTimeout)
	defer cancel()
	batch := &watchBatch{}
	o := outcome{method: "Watch", req: "receive " + want}
	for !until(batch.resps) {
		select {
		case r := <-rs.in:
			o.violations = append(o.violations, rs.check(r)...)
			batch.resps = append(batch.resps, r)
		case <-rs.done:
			if len(rs.in) > 0 {
				continue // take what arrived before the end first
			}
			batch.missing = fmt.Sprintf("the stream ended (%v) before %s arrived", rs.err, want)
			o.resp = batch
			return o
		case <-ctx.Done():
			batch.missing = fmt.Sprintf("%s did not arrive within %v", want, recvTimeout)
			o.resp = batch
			return o
		}
	}
	o.resp = batch
	return o
}

func (s *side) stream(name string) (*rawStream, error) {
	rs := s.streams[name]
	if rs == nil {
		return nil, fmt.Errorf("the scenario has no stream %q", name)
	}
	return rs, nil
}

// wopen opens a raw watch stream under the name.
func wopen(name string) step {
	return step{exec: func(ctx context.Context, s *side) outcome {
		rs, err := openRawStream(s.ctx, s.cli)
		if err != nil {
			return outcome{method: "Watch", err: toRPCErr(err)}
		}
		s.streams[name] = rs
		return outcome{method: "Watch", resp: &sent{"open " + name}}
	}}
}

// wsend sends one request on a raw stream.
func wsend(name string, req *pb.WatchRequest) step {
	return step{exec: func(ctx context.Context, s *side) outcome {
		o := outcome{method: "Watch", req: req}
		rs, err := s.stream(name)
		if err == nil {
			err = rs.stream.Send(req)
		}
		if err != nil {
			o.err = toRPCErr(err)
			return o
		}
		o.resp = &sent{fmt.Sprintf("%s: %v", name, req)}
		return o
	}}
}

// wclosesend closes the client's sending side of a raw stream (as the JSON
// gateway does once it has read a request body): the server must go on
// sending until the stream ends.
func wclosesend(name string) step {
	return step{exec: func(ctx context.Context, s *side) outcome {
		o := outcome{method: "Watch"}
		rs, err := s.stream(name)
		if err == nil {
			err = rs.stream.CloseSend()
		}
		if err != nil {
			o.err = toRPCErr(err)
			return o
		}
		o.resp = &sent{"close send " + name}
		return o
	}}
}

// wcreate sends a create request.
func wcreate(name string, cr *pb.WatchCreateRequest) step {
	return wsend(name, &pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: cr}})
}

// wcancel sends a cancel request.
func wcancel(name string, id int64) step {
	return wsend(name, &pb.WatchRequest{RequestUnion: &pb.WatchRequest_CancelRequest{CancelRequest: &pb.WatchCancelRequest{WatchId: id}}})
}

// wprogress sends a progress request.
func wprogress(name string) step {
	return wsend(name, &pb.WatchRequest{RequestUnion: &pb.WatchRequest_ProgressRequest{ProgressRequest: &pb.WatchProgressRequest{}}})
}

// wrecv receives exactly n responses from a raw stream; an extra one shows
// up in the next receive.
func wrecv(name string, n int) step {
	return step{exec: func(ctx context.Context, s *side) outcome {
		rs, err := s.stream(name)
		if err != nil {
			return outcome{method: "Watch", err: toRPCErr(err)}
		}
		return rs.receive(ctx, func(got []*pb.WatchResponse) bool { return len(got) >= n }, fmt.Sprintf("%d responses on %s", n, name))
	}}
}

// wfence sends a progress request and receives everything up to the
// stream-wide progress notification that answers it. etcd sends that
// notification through the same queue as events, after everything queued
// before it, and only when every watcher of the stream is synced and at or
// past its start revision (a stream with no watchers gets none): a fence
// shows that a stream has received nothing more than the scenario expects.
func wfence(name string) step {
	return step{exec: func(ctx context.Context, s *side) outcome {
		rs, err := s.stream(name)
		if err == nil {
			err = rs.stream.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_ProgressRequest{ProgressRequest: &pb.WatchProgressRequest{}}})
		}
		if err != nil {
			return outcome{method: "Watch", err: toRPCErr(err)}
		}
		return rs.receive(ctx, func(got []*pb.WatchResponse) bool {
			return len(got) > 0 && got[len(got)-1].WatchId == -1 && isProgress(got[len(got)-1])
		}, "the progress notification of a fence on "+name)
	}}
}

// cwatch starts a clientv3 watcher under the name. All clientv3 watchers
// of a side share one gRPC stream.
func cwatch(name, key string, opts ...clientv3.OpOption) step {
	return step{exec: func(ctx context.Context, s *side) outcome {
		s.watches[name] = s.cli.Watch(s.ctx, key, opts...)
		return outcome{method: "Watch", resp: &sent{fmt.Sprintf("clientv3 watch %s on %q", name, key)}}
	}}
}

// crecv receives exactly n responses from a clientv3 watcher.
func crecv(name string, n int) step {
	return step{exec: func(ctx context.Context, s *side) outcome {
		o := outcome{method: "Watch", req: fmt.Sprintf("receive %d responses from clientv3 watcher %s", n, name)}
		wc := s.watches[name]
		if wc == nil {
			o.err = toRPCErr(fmt.Errorf("the scenario has no clientv3 watcher %q", name))
			return o
		}
		ctx, cancel := context.WithTimeout(ctx, recvTimeout)
		defer cancel()
		batch := &clientBatch{}
		o.resp = batch
		for len(batch.resps) < n {
			select {
			case wr, ok := <-wc:
				if !ok {
					batch.missing = fmt.Sprintf("the channel closed after %d of %d responses", len(batch.resps), n)
					return o
				}
				cr := clientResp{
					resp: &pb.WatchResponse{
						Header: &wr.Header, Events: eventsOf(wr.Events), CompactRevision: wr.CompactRevision,
						Created: wr.Created, Canceled: wr.Canceled,
					},
					progress: wr.IsProgressNotify(),
				}
				if err := wr.Err(); err != nil {
					cr.err = err.Error()
				}
				batch.resps = append(batch.resps, cr)
			case <-ctx.Done():
				batch.missing = fmt.Sprintf("%d of %d responses did not arrive within %v", n-len(batch.resps), n, recvTimeout)
				return o
			}
		}
		return o
	}}
}

func eventsOf(evs []*clientv3.Event) []*mvccpb.Event {
	out := make([]*mvccpb.Event, len(evs))
	for i, ev := range evs {
		out[i] = (*mvccpb.Event)(ev)
	}
	return out
}

// cprogress asks for a progress notification on the clientv3 watchers'
// stream (clientv3's RequestProgress).
func cprogress() step {
	return step{exec: func(ctx context.Context, s *side) outcome {
		if err := s.cli.RequestProgress(s.ctx); err != nil {
			return outcome{method: "Watch", err: toRPCErr(err)}
		}
		return outcome{method: "Watch", resp: &sent{"clientv3 RequestProgress"}}
	}}
}

// Checks on the reference's watch responses.

// events states how many responses of a step carry events, and how
// many events they carry in all.
func (s step) events(responses, events int) step {
	return s.with(func(o outcome) error {
		var rs []*pb.WatchResponse
		switch b := o.resp.(type) {
		case *watchBatch:
			rs = b.resps
		case *clientBatch:
			for _, cr := range b.resps {
				rs = append(rs, cr.resp)
			}
		default:
			return fmt.Errorf("want watch responses, got %s", render(o))
		}
		gotR, gotE := 0, 0
		for _, r := range rs {
			if len(r.Events) > 0 {
				gotR++
				gotE += len(r.Events)
			}
		}
		if gotR != responses || gotE != events {
			return fmt.Errorf("want %d responses with %d events in all, got %d with %d", responses, events, gotR, gotE)
		}
		return nil
	})
}

// where states a property of the reference's watch responses.
func (s step) where(what string, pred func(rs []*pb.WatchResponse) bool) step {
	return s.with(func(o outcome) error {
		b, ok := o.resp.(*watchBatch)
		if !ok {
			return fmt.Errorf("want watch responses, got %s", render(o))
		}
		if b.missing != "" {
			return fmt.Errorf("%s", b.missing)
		}
		if !pred(b.resps) {
			return fmt.Errorf("want %s", what)
		}
		return nil
	})
}

// Create requests.

func watchKey(key string) *pb.WatchCreateRequest {
	return &pb.WatchCreateRequest{Key: []byte(key)}
}

func watchRange(key, end string) *pb.WatchCreateRequest {
	return &pb.WatchCreateRequest{Key: []byte(key), RangeEnd: []byte(end)}
}

func watchPrefix(prefix string) *pb.WatchCreateRequest {
	return &pb.WatchCreateRequest{Key: []byte(prefix), RangeEnd: []byte(clientv3.GetPrefixRangeEnd(prefix))}
}

// from, withID and the other with* functions return a modified copy of a
// create request.

func from(cr *pb.WatchCreateRequest, rev int64) *pb.WatchCreateRequest {
	c := *cr
	c.StartRevision = rev
	return &c
}

func withID(cr *pb.WatchCreateRequest, id int64) *pb.WatchCreateRequest {
	c := *cr
	c.WatchId = id
	return &c
}

func withPrev(cr *pb.WatchCreateRequest) *pb.WatchCreateRequest {
	c := *cr
	c.PrevKv = true
	return &c
}

func withFilters(cr *pb.WatchCreateRequest, fs ...pb.WatchCreateRequest_FilterType) *pb.WatchCreateRequest {
	c := *cr
	c.Filters = fs
	return &c
}

func withFragment(cr *pb.WatchCreateRequest) *pb.WatchCreateRequest {
	c := *cr
	c.Fragment = true
	return &c
}

func withProgressNotify(cr *pb.WatchCreateRequest) *pb.WatchCreateRequest {
	c := *cr
	c.ProgressNotify = true
	return &c
}
