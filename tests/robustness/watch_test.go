package robustness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/grpc"
)

type mvccKV = mvccpb.KeyValue

// event is one watch event on a key under keyPrefix.
type event struct {
	Delete bool      `json:"delete,omitempty"`
	KV     keyValue  `json:"kv"`   // for a delete: the key and the revision
	Prev   *keyValue `json:"prev"` // prev_kv, nil if the server sent none
}

func (e event) String() string {
	typ := "put"
	if e.Delete {
		typ = "delete"
	}
	s := fmt.Sprintf("%s %s@%d", typ, e.KV.Key, e.KV.Mod)
	if !e.Delete {
		s += fmt.Sprintf("=%s (create %d, version %d, lease %x)", e.KV.Value, e.KV.Create, e.KV.Version, e.KV.Lease)
	}
	if e.Prev != nil {
		s += fmt.Sprintf(" prev %s=%s@%d", e.Prev.Key, e.Prev.Value, e.Prev.Mod)
	} else {
		s += " prev none"
	}
	return s
}

func fromEvent(ev *mvccpb.Event) event {
	e := event{Delete: ev.Type == mvccpb.DELETE}
	if ev.Kv != nil {
		e.KV = fromPB([]*mvccKV{ev.Kv})[0]
	}
	if ev.PrevKv != nil {
		p := fromPB([]*mvccKV{ev.PrevKv})[0]
		e.Prev = &p
	}
	return e
}

// watchResponse is one response of a watch stream that carried events.
type watchResponse struct {
	Header int64   `json:"header"` // the response header's revision
	Events []event `json:"events"`
	Stream int     `json:"stream"` // which stream of the watcher (0, then one more per resumption)
}

// watcher watches every key under keyPrefix on the member in one slot,
// with prev_kv, from a start revision. When its stream breaks (the member
// was killed, partitioned or replaced) it opens a new one on the member
// then in that slot, from the revision after the last event it received.
type watcher struct {
	slot  int
	eps   *endpoints
	start int64

	mu        sync.Mutex
	resps     []watchResponse
	last      int64 // revision of the last event received; start-1 before any
	streams   int   // how many streams were opened
	protoErrs []string
	cancel    context.CancelFunc
	done      chan struct{}
}

func startWatcher(eps *endpoints, slot int, start int64) *watcher {
	ctx, cancel := context.WithCancel(context.Background())
	w := &watcher{slot: slot, eps: eps, start: start, last: start - 1, cancel: cancel, done: make(chan struct{})}
	go w.run(ctx)
	return w
}

func (w *watcher) run(ctx context.Context) {
	defer close(w.done)
	retry := time.NewTicker(100 * time.Millisecond)
	defer retry.Stop()
	for ctx.Err() == nil {
		err := w.stream(ctx, w.eps.conn(w.slot))
		if ctx.Err() != nil {
			return
		}
		if err != nil && !isTransient(err) {
			w.mu.Lock()
			w.protoErrs = append(w.protoErrs, err.Error())
			w.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-retry.C:
		}
	}
}

// errWatchProtocol marks a watch response that breaks the protocol (a
// canceled or compacted watch), as opposed to a broken connection.
var errWatchProtocol = errors.New("watch protocol")

func isTransient(err error) bool { return !errors.Is(err, errWatchProtocol) }

// stream runs one watch stream until it breaks.
func (w *watcher) stream(ctx context.Context, conn *grpc.ClientConn) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ws, err := pb.NewWatchClient(conn).Watch(sctx)
	if err != nil {
		return err
	}
	w.mu.Lock()
	from := w.last + 1
	stream := w.streams
	w.streams++
	w.mu.Unlock()
	err = ws.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: &pb.WatchCreateRequest{
		Key: []byte(keyPrefix), RangeEnd: []byte(rangeEnd), StartRevision: from, PrevKv: true,
	}}})
	if err != nil {
		return err
	}
	for {
		resp, err := ws.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if resp.Canceled || resp.CompactRevision != 0 {
			return fmt.Errorf("%w: stream %d from revision %d: canceled %v, compact revision %d, reason %q",
				errWatchProtocol, stream, from, resp.Canceled, resp.CompactRevision, resp.CancelReason)
		}
		if len(resp.Events) == 0 {
			continue
		}
		wr := watchResponse{Header: resp.Header.GetRevision(), Stream: stream}
		for _, ev := range resp.Events {
			wr.Events = append(wr.Events, fromEvent(ev))
		}
		w.mu.Lock()
		w.resps = append(w.resps, wr)
		w.last = max(w.last, wr.Events[len(wr.Events)-1].KV.Mod)
		w.mu.Unlock()
	}
}

func (w *watcher) lastRev() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last
}

// stop ends the watcher and returns what it received.
func (w *watcher) stop() (resps []watchResponse, streams int, protoErrs []string) {
	w.cancel()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.resps, w.streams, w.protoErrs
}

// readHistory reads every event under keyPrefix in revisions [from, to]
// from the member at conn with one watch, the reference the run's
// watchers and operations are checked against.
func readHistory(ctx context.Context, conn *grpc.ClientConn, from, to int64) ([]watchResponse, error) {
	if to < from {
		return nil, nil
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ws, err := pb.NewWatchClient(conn).Watch(sctx)
	if err != nil {
		return nil, err
	}
	err = ws.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: &pb.WatchCreateRequest{
		Key: []byte(keyPrefix), RangeEnd: []byte(rangeEnd), StartRevision: from, PrevKv: true,
	}}})
	if err != nil {
		return nil, err
	}
	var out []watchResponse
	for {
		resp, err := ws.Recv()
		if err != nil {
			return out, err
		}
		if resp.Canceled || resp.CompactRevision != 0 {
			return out, fmt.Errorf("watch from %d canceled (compact revision %d): %s", from, resp.CompactRevision, resp.CancelReason)
		}
		if len(resp.Events) == 0 {
			continue
		}
		wr := watchResponse{Header: resp.Header.GetRevision()}
		for _, ev := range resp.Events {
			wr.Events = append(wr.Events, fromEvent(ev))
		}
		out = append(out, wr)
		if wr.Events[len(wr.Events)-1].KV.Mod >= to {
			return out, nil
		}
	}
}
